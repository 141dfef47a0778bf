"""Where a probe's packets go: addresses, host routes, neighbours, listeners per topology.

Every probe needs its source address in the sending namespace, its destination in the
receiving one, host routes and permanent neighbour entries both ways (no ARP/NDP ever
crosses the firewall), and a listener on the probed port. :class:`ProbeState` keeps that
state per topology, changes only what a probe needs (over rtnetlink, no ``ip`` process)
and keeps each on-demand address in exactly one namespace.

Paths follow the pve-sim model: zones on the same bridge talk over it; zones on different
bridges are routed by the host; the host itself sends out of, and receives on, the bridge
of the other end.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
import struct
from dataclasses import dataclass

from tests.harness.netns import NetNs
from tests.harness.nftrace import TraceEvent
from tests.harness.rtnl import NETLINK_ROUTE, Rtnl
from tests.harness.timing import FALLBACK_TIMEOUT
from tests.harness.topology import Topology, Zone


class ProbeError(RuntimeError):
    """The probe cannot be built as asked (it says nothing about the firewall)."""


@dataclass(slots=True)
class Hop:
    """Where a namespace sends packets for an address: device and next-hop MAC."""

    dev: str
    mac: str


class ProbeState:
    """Listeners, raw sockets and on-demand addresses/routes of one topology."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.listeners: dict[tuple[str, int, str, int], socket.socket] = {}
        self.raw: dict[tuple[str, int], socket.socket] = {}
        self.extra: dict[str, tuple[Zone, str]] = {}  # address -> (zone, device)
        self.hops: dict[tuple[str, str], Hop] = {}  # (namespace, address) -> hop
        self.rtnl: dict[str, Rtnl] = {}
        self.ifindex: dict[tuple[str, str], int] = {}
        self.groups: set[tuple[str, str, int]] = set()
        self.ports = itertools.cycle(range(20000, 61000))
        self.ids = itertools.cycle(range(1, 65536))
        self.probes = 0
        self.last_trace: list[TraceEvent] = []
        self.fallbacks = 0  # DROPs that needed the timeout: the trace missed something
        topo.on_destroy(self.close)

    def close(self) -> None:
        for s in [*self.listeners.values(), *self.raw.values()]:
            s.close()
        for conn in self.rtnl.values():
            conn.close()
        self.listeners.clear()
        self.raw.clear()
        self.rtnl.clear()

    # -- addresses and routes -------------------------------------------------------------
    def _rtnl(self, ns: NetNs) -> Rtnl:
        conn = self.rtnl.get(ns.name)
        if conn is None:
            conn = Rtnl(ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE))
            self.rtnl[ns.name] = conn
        return conn

    def _ifindex(self, ns: NetNs, dev: str) -> int:
        key = (ns.name, dev)
        index = self.ifindex.get(key)
        if index is None:
            index = self.ifindex[key] = ns.if_index(dev)
        return index

    def place_address(self, zone: Zone, addr: str, dev: str) -> None:
        """Make ``addr`` local to ``zone`` (and to no other namespace of ours)."""
        if zone.owns(addr):
            return
        current = self.extra.get(addr)
        if current is not None and current[0] is zone:
            return
        if current is not None:
            self._remove_address(addr)
        ip = ipaddress.ip_address(addr)
        conn = self._rtnl(zone.ns)
        conn.addr(True, self._ifindex(zone.ns, dev), ip)
        self.extra[addr] = (zone, dev)
        if ip.version == 6:
            conn.wait_local(ip, FALLBACK_TIMEOUT)

    def _remove_address(self, addr: str) -> None:
        zone, dev = self.extra.pop(addr)
        ip = ipaddress.ip_address(addr)
        self._rtnl(zone.ns).addr(False, self._ifindex(zone.ns, dev), ip)
        # removing an interface's last IPv4 address flushes its routes: forget them all
        self.hops = {k: v for k, v in self.hops.items() if k[0] != zone.ns.name}

    def prepare(self, s: Zone, r: Zone, src: str, dst: str, path: Path, multicast: bool) -> None:
        """Addresses, host routes and neighbours for one probe's packets and answers."""
        self.evict(src, s)
        self.evict(dst, None if multicast else r)
        self.place_address(s, src, path.send_dev)
        if not multicast:
            self.place_address(r, dst, path.recv_dev)
            self.route(s.ns, dst, path.send_hop)
        self.route(r.ns, src, path.recv_hop)
        if path.routed is not None:
            self.route(self.topo.host.ns, dst, path.routed[0])
            self.route(self.topo.host.ns, src, path.routed[1])

    def evict(self, addr: str, keep: Zone | None) -> None:
        """Take an on-demand address away from any namespace other than ``keep``."""
        current = self.extra.get(addr)
        if current is not None and current[0] is not keep:
            self._remove_address(addr)

    def route(self, ns: NetNs, addr: str, hop: Hop) -> None:
        """A host route plus a permanent neighbour entry: no ARP/NDP is ever needed."""
        key = (ns.name, addr)
        if self.hops.get(key) == hop:
            return
        ip = ipaddress.ip_address(addr)
        conn = self._rtnl(ns)
        index = self._ifindex(ns, hop.dev)
        conn.host_route(index, ip)
        if not ip.is_multicast:
            conn.neighbour(index, ip, hop.mac)
        self.hops[key] = hop

    # -- receivers -----------------------------------------------------------------------
    def listener(self, zone: Zone, version: int, proto: str, port: int) -> socket.socket:
        key = (zone.ns.name, version, proto, port)
        sock = self.listeners.get(key)
        if sock is None:
            fam = socket.AF_INET if version == 4 else socket.AF_INET6
            kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
            sock = zone.ns.socket(fam, kind)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if version == 6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(("0.0.0.0" if version == 4 else "::", port))
            if proto == "tcp":
                sock.listen(256)
            sock.setblocking(False)
            self.listeners[key] = sock
        return sock

    def raw_socket(self, zone: Zone, version: int) -> socket.socket:
        key = (zone.ns.name, version)
        sock = self.raw.get(key)
        if sock is None:
            if version == 4:
                sock = zone.ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            else:
                sock = zone.ns.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            sock.setblocking(False)
            self.raw[key] = sock
        return sock

    def join(self, zone: Zone, sock: socket.socket, group: str, dev: str) -> None:
        ifindex = zone.ns.if_index(dev)
        key = (zone.ns.name, group, ifindex)
        if key in self.groups:
            return
        ip = ipaddress.ip_address(group)
        if ip.version == 4:
            mreq = ip.packed + struct.pack("=4si", b"\0" * 4, ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        else:
            mreq6 = ip.packed + struct.pack("=I", ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq6)
        self.groups.add(key)

    def next_port(self, wanted: int | None) -> int:
        return wanted if wanted is not None else next(self.ports)


def state_of(topo: Topology) -> ProbeState:
    state = topo.probe_state
    if not isinstance(state, ProbeState):
        state = ProbeState(topo)
        topo.probe_state = state
    return state


@dataclass(slots=True)
class Path:
    send_dev: str  # device in the sender's namespace
    recv_dev: str  # device in the receiver's namespace (ingress)
    send_hop: Hop  # sender -> destination
    recv_hop: Hop  # receiver -> source (the way back)
    routed: tuple[Hop, Hop] | None = None  # host: to destination, to source


def bridge_mac(topo: Topology, bridge: str | None) -> str:
    if bridge is None or bridge not in topo.bridges:
        raise ProbeError(f"zone is on no bridge of the host ({bridge})")
    return topo.bridges[bridge].mac


def path_between(topo: Topology, s: Zone, r: Zone) -> Path:
    if s is r:
        raise ProbeError(f"source and destination zone are both {s.name}")
    if s.is_host:
        assert r.bridge and r.mac and r.ifname
        return Path(
            r.bridge, r.ifname, Hop(r.bridge, r.mac), Hop(r.ifname, bridge_mac(topo, r.bridge))
        )
    assert s.bridge and s.mac and s.ifname
    if r.is_host:
        return Path(
            s.ifname, s.bridge, Hop(s.ifname, bridge_mac(topo, s.bridge)), Hop(s.bridge, s.mac)
        )
    assert r.bridge and r.mac and r.ifname
    if s.bridge == r.bridge:
        return Path(s.ifname, r.ifname, Hop(s.ifname, r.mac), Hop(r.ifname, s.mac))
    # different bridges: the host routes between them, as pve-sim does
    return Path(
        s.ifname,
        r.ifname,
        Hop(s.ifname, bridge_mac(topo, s.bridge)),
        Hop(r.ifname, bridge_mac(topo, r.bridge)),
        routed=(Hop(r.bridge, r.mac), Hop(s.bridge, s.mac)),
    )
