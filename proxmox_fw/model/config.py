"""The whole configuration as read for one node."""

from __future__ import annotations

from pydantic import Field

from proxmox_fw.model.cluster import Corosync
from proxmox_fw.model.common import Model
from proxmox_fw.model.fwfile import ClusterFw, HostFw, VnetFw
from proxmox_fw.model.guest import Guest
from proxmox_fw.model.sdn import Ipam, Sdn


class PveConfig(Model):
    nodename: str
    cluster: ClusterFw = Field(default_factory=ClusterFw)
    host: HostFw = Field(default_factory=HostFw)
    corosync: Corosync = Field(default_factory=Corosync)
    guests: dict[int, Guest] = Field(default_factory=dict)  # local guests only, by vmid
    sdn: Sdn = Field(default_factory=Sdn)
    ipam: Ipam = Field(default_factory=Ipam)
    vnets: dict[str, VnetFw] = Field(default_factory=dict)  # sdn/firewall/<name>.fw
    # Paths that exist but could not be read: the kernel must keep its previous rules.
    unreadable: list[str] = Field(default_factory=list)
