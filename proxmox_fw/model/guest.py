"""Guests of this node: the ``.vmlist`` entry plus the ``netN`` lines of their config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from proxmox_fw.model.address import Cidr
from proxmox_fw.model.common import Model, Origin
from proxmox_fw.model.fwfile import GuestFw

GuestKind = Literal["qemu", "lxc"]


class Nic(Model):
    origin: Origin
    index: int = Field(ge=0, le=31)  # N of netN
    model: str | None = None  # qemu NIC model (virtio, e1000, ...); None for containers
    mac: str | None = None  # upper-case colon form "BC:24:11:49:8D:75"
    bridge: str | None = None
    firewall: bool = False
    tag: int | None = None
    # container addresses: a literal CIDR, or None for dhcp/manual/auto/absent
    ip: Cidr | None = None
    ip6: Cidr | None = None
    # The netN line could not be understood. Its port is still firewalled (fail closed):
    # everything the guest sends through it is dropped until the line is fixed.
    unparsed: bool = False

    @property
    def key(self) -> str:
        return f"net{self.index}"


class Guest(Model):
    vmid: int
    kind: GuestKind
    node: str
    nics: dict[int, Nic] = Field(default_factory=dict)
    fw: GuestFw = Field(default_factory=GuestFw)

    @property
    def port_prefix(self) -> str:
        return "tap" if self.kind == "qemu" else "veth"

    def port_name(self, index: int) -> str:
        return f"{self.port_prefix}{self.vmid}i{index}"


class VmListEntry(Model):
    vmid: int
    node: str
    kind: GuestKind
