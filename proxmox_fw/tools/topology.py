"""A throwaway node for ``simulate``: a host namespace with bridge ``vmbr0`` and an
``outside`` namespace behind the bridge port ``eth0`` (the uplink), built with pyroute2.

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


def _build_outside() -> None:
    with IPRoute() as ipr:
        _up(ipr, "lo")
        idx = ipr.link_lookup(ifname="peer0")[0]
        ipr.link("set", index=idx, ifname=OUTSIDE_IF)
        _up(ipr, OUTSIDE_IF)


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

    def build(self, host_cidr: str) -> Node:
        self.host.call(_build_host, self.outside.ns_path, host_cidr)
        self.outside.call(_build_outside)
        return self

    def place(self, zone: str, addr: str, peer: str) -> None:
        """Give ``zone`` the address ``addr`` and a route to ``peer`` on its link."""
        if zone == "host":
            self.host.call(_place, BRIDGE, addr, peer)
        else:
            self.outside.call(_place, OUTSIDE_IF, addr, peer)

    def worker(self, zone: str) -> NetnsWorker:
        return self.host if zone == "host" else self.outside

    def close(self) -> None:
        self.outside.close()
        self.host.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
