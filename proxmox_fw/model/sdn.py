"""SDN running config and IPAM state: the ``+sdn/...`` ipsets."""

from __future__ import annotations

from pydantic import Field

from proxmox_fw.model.address import Cidr, IpAddr, IpRange
from proxmox_fw.model.common import Model


class Subnet(Model):
    cidr: Cidr
    gateway: IpAddr | None = None
    dhcp_ranges: list[IpRange] = Field(default_factory=list)


class Vnet(Model):
    name: str
    zone: str
    tag: int | None = None
    subnets: list[Subnet] = Field(default_factory=list)


class Sdn(Model):
    present: bool = False
    vnets: dict[str, Vnet] = Field(default_factory=dict)


class Ipam(Model):
    present: bool = False
    # vmid -> addresses assigned to it by the PVE IPAM
    guest_ips: dict[int, list[IpAddr]] = Field(default_factory=dict)
