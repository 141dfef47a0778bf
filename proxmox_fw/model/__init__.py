"""Pydantic models of the firewall configuration: plain data, no I/O."""

from .address import (
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
from .cluster import Corosync, CorosyncNode
from .common import Direction, Family, LogLevel, Model, Origin, Verdict
from .config import PveConfig
from .fwfile import (
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
    SecurityGroup,
    VnetFw,
    VnetOptions,
)
from .guest import Guest, GuestKind, Nic, VmListEntry
from .rule import IcmpType, PortRange, Protocol, Rule
from .sdn import Ipam, Sdn, Subnet, Vnet

__all__ = [
    "AddressMatch", "Alias", "AliasRef", "Cidr", "ClusterFw", "ClusterOptions", "Corosync",
    "CorosyncNode", "Direction", "Family", "Guest", "GuestFw", "GuestKind", "GuestOptions",
    "HostFw", "HostOptions", "IcmpType", "IpAddr", "IpEntry", "IpList", "IpRange", "Ipam",
    "Ipset", "IpsetEntry", "IpsetRef", "LogLevel", "LogRateLimit", "Model", "Nic", "Origin",
    "PortRange", "Protocol", "PveConfig", "Rule", "Sdn", "SecurityGroup", "Subnet", "Verdict",
    "VmListEntry", "Vnet", "VnetFw", "VnetOptions", "entry_family", "family_of",
]
