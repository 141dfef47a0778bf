"""Pydantic models of the firewall configuration: plain data, no I/O."""

from proxmox_fw.model.address import (
    AddressMatch,
    AliasRef,
    Cidr,
    IpAddr,
    IpEntry,
    IpList,
    IpRange,
    IpsetRef,
    entry_family,
    family_of,
)
from proxmox_fw.model.cluster import Corosync, CorosyncNode
from proxmox_fw.model.common import Direction, Family, LogLevel, Model, Origin, Verdict
from proxmox_fw.model.config import PveConfig
from proxmox_fw.model.fwfile import (
    Alias,
    ClusterFw,
    ClusterOptions,
    GuestFw,
    GuestOptions,
    HostFw,
    HostOptions,
    Ipset,
    IpsetEntry,
    LogRateLimit,
    OptionSyntax,
    SecurityGroup,
    VnetFw,
    VnetOptions,
)
from proxmox_fw.model.guest import Guest, GuestKind, Nic, VmListEntry
from proxmox_fw.model.rule import IcmpType, PortRange, Protocol, Rule
from proxmox_fw.model.sdn import Ipam, Sdn, Subnet, Vnet

__all__ = [
    "AddressMatch", "Alias", "AliasRef", "Cidr", "ClusterFw", "ClusterOptions", "Corosync",
    "CorosyncNode", "Direction", "Family", "Guest", "GuestFw", "GuestKind", "GuestOptions",
    "HostFw", "HostOptions", "IcmpType", "IpAddr", "IpEntry", "IpList", "IpRange", "Ipam",
    "Ipset", "IpsetEntry", "IpsetRef", "LogLevel", "LogRateLimit", "Model", "Nic",
    "OptionSyntax", "Origin", "PortRange", "Protocol", "PveConfig", "Rule", "Sdn",
    "SecurityGroup", "Subnet", "Verdict", "VmListEntry", "Vnet", "VnetFw", "VnetOptions",
    "entry_family", "family_of",
]
