"""A throwaway node for ``simulate``: a host namespace with bridge ``vmbr0`` and an
``outside`` namespace behind the bridge port ``eth0`` (the uplink), built with pyroute2;
guests on demand (:meth:`Node.add_guest`), each in its own namespace behind a bridge port
named as Proxmox names it with the nftables firewall (``tap<vmid>i<N>`` for a VM,
``veth<vmid>i<N>`` for a container: no fwbr in between), its NIC carrying the MAC of the
guest's config.

Both namespaces are anonymous (:class:`NetnsWorker`): they have no name and no mount, so
they vanish when the workers end, also if the process is killed. Addresses are placed
on demand (:meth:`Node.place`): a packet's source and destination are whatever the
operator asks for.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from pyroute2 import IPRoute

from proxmox_fw.nft.netns import NetnsWorker

BRIDGE = "vmbr0"
UPLINK = "eth0"  # the host's bridge port towards the outside zone
OUTSIDE_IF = "eth0"  # its peer, inside the outside namespace


def _up(ipr: IPRoute, name: str) -> int:
    idx = int(ipr.link_lookup(ifname=name)[0])
    ipr.link("set", index=idx, state="up")
    return idx


def _build_host(outside_ns: str, host_cidr: str) -> None:
    with IPRoute() as ipr:
        _up(ipr, "lo")
        ipr.link("add", ifname=BRIDGE, kind="bridge")
        ipr.link("add", ifname=UPLINK, kind="veth", peer="peer0")
        fd = os.open(outside_ns, os.O_RDONLY)
        try:
            ipr.link("set", index=ipr.link_lookup(ifname="peer0")[0], net_ns_fd=fd)
        finally:
            os.close(fd)
        br = _up(ipr, BRIDGE)
        ipr.link("set", index=ipr.link_lookup(ifname=UPLINK)[0], master=br)
        _up(ipr, UPLINK)
        iface = ipaddress.ip_interface(host_cidr)
        ipr.addr("add", index=br, address=str(iface.ip), prefixlen=iface.network.prefixlen)


def _build_end(peer: str = "peer0", mac: str | None = None) -> None:
    with IPRoute() as ipr:
        _up(ipr, "lo")
        idx = ipr.link_lookup(ifname=peer)[0]
        ipr.link("set", index=idx, ifname=OUTSIDE_IF)
        if mac is not None:
            ipr.link("set", index=idx, address=mac.lower())
        _up(ipr, OUTSIDE_IF)


def _plug_guest(guest_ns: str, port: str, peer: str) -> None:
    """The guest's bridge port ``port`` on vmbr0; its peer moved into ``guest_ns``."""
    with IPRoute() as ipr:
        ipr.link("add", ifname=port, kind="veth", peer=peer)
        fd = os.open(guest_ns, os.O_RDONLY)
        try:
            ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], net_ns_fd=fd)
        finally:
            os.close(fd)
        br = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.link("set", index=ipr.link_lookup(ifname=port)[0], master=br)
        _up(ipr, port)


def _place(dev: str, addr: str, peer: str) -> None:
    """``addr`` on ``dev`` (as a /32 or /128) and ``peer`` reachable on that link."""
    ip = ipaddress.ip_address(addr)
    plen = 32 if ip.version == 4 else 128
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=dev)[0]
        have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx)}
        if str(ip) not in have:
            ipr.addr("add", index=idx, address=str(ip), prefixlen=plen, nodad=True) \
                if ip.version == 6 else ipr.addr("add", index=idx, address=str(ip), prefixlen=plen)
        ipr.route("replace", dst=f"{peer}/{plen}", oif=idx, scope=253)


@dataclass(slots=True)
class Node:
    """The two namespaces; close() removes them."""

    host: NetnsWorker = field(default_factory=NetnsWorker)
    outside: NetnsWorker = field(default_factory=NetnsWorker)
    guests: dict[str, NetnsWorker] = field(default_factory=dict)  # zone -> its namespace

    def build(self, host_cidr: str) -> Node:
        self.host.call(_build_host, self.outside.ns_path, host_cidr)
        self.outside.call(_build_end)
        return self

    def add_guest(self, zone: str, port: str, mac: str | None) -> None:
        """Zone ``zone``: a namespace whose ``eth0`` (with ``mac``) is vmbr0's ``port``."""
        worker = NetnsWorker()
        self.guests[zone] = worker
        peer = f"gp{len(self.guests)}"
        self.host.call(_plug_guest, worker.ns_path, port, peer)
        worker.call(_build_end, peer, mac)

    def place(self, zone: str, addr: str, peer: str) -> None:
        """Give ``zone`` the address ``addr`` and a route to ``peer`` on its link."""
        dev = BRIDGE if zone == "host" else OUTSIDE_IF
        self.worker(zone).call(_place, dev, addr, peer)

    def worker(self, zone: str) -> NetnsWorker:
        if zone in self.guests:
            return self.guests[zone]
        return self.host if zone == "host" else self.outside

    def close(self) -> None:
        for worker in self.guests.values():
            worker.close()
        self.outside.close()
        self.host.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
