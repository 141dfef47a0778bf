"""``corosync.conf``: the cluster network, where corosync traffic is accepted from."""

from __future__ import annotations

from pydantic import Field

from proxmox_fw.model.common import Model


class CorosyncNode(Model):
    name: str
    nodeid: int | None = None
    # link number -> address as written (an IP, or a hostname that is not resolved)
    links: dict[int, str] = Field(default_factory=dict)


class Corosync(Model):
    present: bool = False
    nodes: list[CorosyncNode] = Field(default_factory=list)
    transport: str | None = None  # totem.transport (knet, udp, udpu)
    ip_version: str | None = None
