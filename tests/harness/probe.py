"""Real packets between zones, and the verdict the sender sees: ACCEPT, DROP or REJECT.

- TCP: a completed handshake is ACCEPT; a reset or an ICMP error is REJECT.
- UDP: ACCEPT when the listener reads the probe's token; an ICMP error is REJECT.
- ICMP/ICMPv6 echo request: ACCEPT when the echo reply comes back; other ICMP types are
  one-way, so ACCEPT is the receiver's raw socket seeing the probe; an ICMP error quoting
  the probe is REJECT.
- DROP is "nothing comes back". It is decided from the nftables trace of the host
  namespace (:mod:`tests.harness.trace`): once a packet of the probe's flow met a drop
  verdict and every packet heading back to the sender was dropped too, waiting longer
  cannot change the outcome. A timeout remains only as a fallback.

A reject is NF_DROP to the kernel as well, but its reset/ICMP error is sent (and traced)
before the rejecting rule's own verdict event, so a rejected probe always shows a packet
heading back that was not dropped, and the sender's socket is left to report it.

Every probe uses a fresh source port (or ICMP id); listeners on the probed ports are kept
open per namespace, so the kernel never answers a closed port with its own reset. Source
and destination addresses that are not a zone's own are added on demand, together with
host routes and permanent neighbour entries (no ARP/NDP crosses the firewall), and taken
away from wherever they were before, so one address lives in one namespace at a time.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import itertools
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Literal

from tests.harness.netns import NetNs
from tests.harness.packets import (
    DEFAULT_DPORT,
    PROTO_NUM,
    icmp_message,
    icmp_type_code,
    icmp_view,
    quotes,
)
from tests.harness.topology import Topology, Zone
from tests.harness.trace import ECHO_REPLY, ICMP_ERRORS, ICMPV6_ERRORS, DropTracker, Flow, Tracer

Verdict = Literal["ACCEPT", "DROP", "REJECT"]

DEFAULT_SOURCE = {4: "100.100.1.2", 6: "fd00:100:100:1::2"}
DEFAULT_DEST = {4: "100.200.3.4", 6: "fd00:100:200:3::4"}
DEFAULT_HOST = {4: "172.16.1.2", 6: "fd00:16:1::2"}

_BASELINE_LOOP_SECONDS = 0.004  # the calibration loop below on the development machine


def _calibrate() -> float:
    """How much slower than a normal machine this one runs (a TCG VM: ~30x)."""
    env = os.environ.get("PFWT_TIME_SCALE")
    if env:
        return max(1.0, float(env))
    start = time.perf_counter()
    total = 0
    for i in range(100_000):
        total += i & 7
    elapsed = time.perf_counter() - start
    return min(100.0, max(1.0, elapsed / _BASELINE_LOOP_SECONDS))


TIME_SCALE = _calibrate()
FALLBACK_TIMEOUT = 1.5 * TIME_SCALE  # seconds; only reached when the trace says nothing
MULTICAST_GRACE = 0.05 * TIME_SCALE  # a flooded copy may be dropped at another port


class ProbeError(RuntimeError):
    """The probe cannot be built as asked (it says nothing about the firewall)."""


# -- per-topology state ---------------------------------------------------------------


@dataclass(slots=True)
class _Hop:
    """Where a namespace sends packets for an address: device and next-hop MAC."""

    dev: str
    mac: str


class _ProbeState:
    """Listeners, raw sockets and on-demand addresses/routes of one topology."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.listeners: dict[tuple[str, int, str, int], socket.socket] = {}
        self.raw: dict[tuple[str, int], socket.socket] = {}
        self.extra: dict[str, tuple[Zone, str]] = {}  # address -> (zone, device)
        self.hops: dict[tuple[str, str], _Hop] = {}  # (namespace, address) -> hop
        self.groups: set[tuple[str, str, int]] = set()
        self.ports = itertools.cycle(range(20000, 61000))
        self.ids = itertools.cycle(range(1, 65536))
        topo.on_destroy(self.close)

    def close(self) -> None:
        for s in [*self.listeners.values(), *self.raw.values()]:
            s.close()
        self.listeners.clear()
        self.raw.clear()

    # -- addresses and routes -------------------------------------------------------------
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
        plen = 32 if ip.version == 4 else 128
        extra = " nodad noprefixroute" if ip.version == 6 else " noprefixroute"
        zone.ns.ip_batch([f"addr add {ip}/{plen} dev {dev}{extra}"])
        self.extra[addr] = (zone, dev)

    def _remove_address(self, addr: str) -> None:
        zone, dev = self.extra.pop(addr)
        ip = ipaddress.ip_address(addr)
        plen = 32 if ip.version == 4 else 128
        zone.ns.ip_batch([f"addr del {ip}/{plen} dev {dev}"])
        # removing an interface's last IPv4 address flushes its routes: forget them all
        self.hops = {k: v for k, v in self.hops.items() if k[0] != zone.ns.name}

    def evict(self, addr: str, keep: Zone | None) -> None:
        """Take an on-demand address away from any namespace other than ``keep``."""
        current = self.extra.get(addr)
        if current is not None and current[0] is not keep:
            self._remove_address(addr)

    def route(self, ns: NetNs, addr: str, hop: _Hop) -> None:
        """A host route plus a permanent neighbour entry: no ARP/NDP is ever needed."""
        key = (ns.name, addr)
        if self.hops.get(key) == hop:
            return
        ip = ipaddress.ip_address(addr)
        plen = 32 if ip.version == 4 else 128
        lines = [f"route replace {ip}/{plen} dev {hop.dev}"]
        if not ip.is_multicast:
            lines.append(f"neigh replace {ip} lladdr {hop.mac} dev {hop.dev} nud permanent")
        ns.ip_batch(lines)
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


def _state(topo: Topology) -> _ProbeState:
    state = topo.probe_state
    if not isinstance(state, _ProbeState):
        state = _ProbeState(topo)
        topo.probe_state = state
    return state


def _drain(sock: socket.socket) -> list[bytes]:
    out: list[bytes] = []
    while True:
        try:
            out.append(sock.recv(65536))
        except (BlockingIOError, InterruptedError):
            return out
        except OSError:
            continue  # a queued ICMP error of an earlier probe


def _drain_accepts(sock: socket.socket) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            continue
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


# -- path --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Path:
    send_dev: str  # device in the sender's namespace
    recv_dev: str  # device in the receiver's namespace (ingress)
    send_hop: _Hop  # sender -> destination
    recv_hop: _Hop  # receiver -> source (the way back)
    routed: tuple[_Hop, _Hop] | None = None  # host: to destination, to source


def _bridge_mac(topo: Topology, bridge: str | None) -> str:
    if bridge is None or bridge not in topo.bridges:
        raise ProbeError(f"zone is on no bridge of the host ({bridge})")
    return topo.bridges[bridge].mac


def _path(topo: Topology, s: Zone, r: Zone) -> _Path:
    if s.is_host and r.is_host:
        raise ProbeError("source and destination zone are both the host")
    if s.is_host:
        assert r.bridge and r.mac and r.ifname
        return _Path(
            r.bridge, r.ifname, _Hop(r.bridge, r.mac), _Hop(r.ifname, _bridge_mac(topo, r.bridge))
        )
    assert s.bridge and s.mac and s.ifname
    if r.is_host:
        return _Path(
            s.ifname, s.bridge, _Hop(s.ifname, _bridge_mac(topo, s.bridge)), _Hop(s.bridge, s.mac)
        )
    assert r.bridge and r.mac and r.ifname
    if s.bridge == r.bridge:
        return _Path(s.ifname, r.ifname, _Hop(s.ifname, r.mac), _Hop(r.ifname, s.mac))
    # different bridges: the host routes between them, as pve-sim does
    return _Path(
        s.ifname,
        r.ifname,
        _Hop(s.ifname, _bridge_mac(topo, s.bridge)),
        _Hop(r.ifname, _bridge_mac(topo, r.bridge)),
        routed=(_Hop(r.bridge, r.mac), _Hop(s.bridge, s.mac)),
    )


# -- the probe ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """What one probe waits on and how it reads each readiness."""

    flow: Flow
    token: bytes
    sender: socket.socket
    connecting: bool = False  # tcp: writable means decided
    listener: socket.socket | None = None  # udp
    raw_recv: socket.socket | None = None  # icmp non-echo: receiver's raw socket
    multicast: bool = False
    verdict: Verdict | None = None

    def read_ready(self, ready: set[socket.socket]) -> None:
        if self.verdict is not None:
            return
        if self.flow.proto == 6:
            if self.sender in ready:
                err = self.sender.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                self.verdict = "ACCEPT" if err == 0 else "REJECT"
            return
        if self.flow.proto == 17:
            if self.sender in ready:
                try:
                    self.sender.recv(65536)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self.verdict = "REJECT"
                    return
            if (
                self.listener is not None
                and self.listener in ready
                and any(self.token in d for d in _drain(self.listener))
            ):
                self.verdict = "ACCEPT"
            return
        # icmp
        if self.sender in ready:
            self._read_sender_icmp()
        if self.verdict is None and self.raw_recv is not None and self.raw_recv in ready:
            for data, peer in _drain_from(self.raw_recv):
                view = icmp_view(data, self.flow.version, peer)
                if view and view[0] == self.flow.src and self.token in view[1]:
                    self.verdict = "ACCEPT"

    def _read_sender_icmp(self) -> None:
        flow = self.flow
        errors = ICMPV6_ERRORS if flow.version == 6 else ICMP_ERRORS
        for data, peer in _drain_from(self.sender):
            view = icmp_view(data, flow.version, peer)
            if view is None or len(view[1]) < 8:
                continue
            src, msg = view
            if (
                flow.echo
                and src == flow.dst
                and msg[0] == ECHO_REPLY[flow.version]
                and struct.unpack_from("!H", msg, 4)[0] == flow.icmp_id
                and self.token in msg
            ):
                self.verdict = "ACCEPT"
                return
            if msg[0] in errors and quotes(msg, flow):
                self.verdict = "REJECT"
                return

    def sockets(self) -> tuple[list[socket.socket], list[socket.socket]]:
        readers = [s for s in (self.sender, self.listener, self.raw_recv) if s is not None]
        if self.connecting:
            return [r for r in readers if r is not self.sender], [self.sender]
        return readers, []


def _drain_from(sock: socket.socket) -> list[tuple[bytes, str]]:
    out: list[tuple[bytes, str]] = []
    while True:
        try:
            data, addr = sock.recvfrom(65536)
        except (BlockingIOError, InterruptedError):
            return out
        except OSError:
            continue
        out.append((data, str(addr[0]).split("%")[0]))


def probe(
    topo: Topology,
    src_zone: str,
    dst_zone: str,
    proto: str = "tcp",
    dport: int | str | None = None,
    *,
    source: str | None = None,
    dest: str | None = None,
    sport: int | None = None,
    multicast: bool = False,
    v6: bool = False,
    timeout: float | None = None,
) -> Verdict:
    """Send one probe from ``src_zone`` to ``dst_zone`` and return what the sender sees.

    ``dport`` is the ICMP type (number, ``type/code`` or name) for icmp/icmpv6. Without
    ``source``/``dest`` the pve-sim defaults apply (100.100.1.2 -> 100.200.3.4, the host's
    own address for the host). ``multicast`` sends to ``dest`` as a group the receiver
    joins. Raises :class:`ProbeError` when the packet cannot be built at all.
    """
    proto = proto.lower()
    if proto not in PROTO_NUM:
        raise ProbeError(f"unsupported protocol {proto!r}")
    for addr in (source, dest):
        if addr is not None and ipaddress.ip_address(addr).version == 6:
            v6 = True
    if proto == "icmpv6":
        v6 = True
    version = 6 if v6 else 4
    if proto == "icmp" and v6:
        raise ProbeError("icmp over IPv6: use proto icmpv6")
    s = topo.zone(src_zone)
    r = topo.zone(dst_zone)
    src = (
        str(ipaddress.ip_address(source))
        if source
        else (DEFAULT_HOST[version] if s.is_host else DEFAULT_SOURCE[version])
    )
    dst = (
        str(ipaddress.ip_address(dest))
        if dest
        else (DEFAULT_HOST[version] if r.is_host else DEFAULT_DEST[version])
    )
    for addr in (src, dst):
        if ipaddress.ip_address(addr).version != version:
            raise ProbeError(f"address {addr} does not match IPv{version}")
    dst_ip = ipaddress.ip_address(dst)
    if dst_ip.is_multicast and not multicast:
        raise ProbeError(f"{dst} is a multicast address: a unicast packet to it cannot exist")
    if multicast and not dst_ip.is_multicast:
        raise ProbeError(f"multicast probe to non-multicast address {dst}")
    if multicast and proto != "udp":
        raise ProbeError("multicast probes are udp only")
    if src == dst:
        raise ProbeError("source and destination address are the same")
    for zone, addr in ((r, src), (s, dst)):
        if zone.owns(addr) and not dst_ip.is_multicast:
            raise ProbeError(f"{addr} is an own address of {zone.name}: it would stay local")

    state = _state(topo)
    path = _path(topo, s, r)
    host = topo.host
    if multicast and path.routed is not None:
        raise ProbeError("multicast between different bridges is not routed")

    # addresses: src only in the sender, dst only in the receiver
    state.evict(src, s)
    state.evict(dst, None if multicast else r)
    state.place_address(s, src, path.send_dev)
    if not multicast:
        state.place_address(r, dst, path.recv_dev)
        state.route(s.ns, dst, path.send_hop)
    state.route(r.ns, src, path.recv_hop)
    if path.routed is not None:
        state.route(host.ns, dst, path.routed[0])
        state.route(host.ns, src, path.routed[1])

    tracer = topo.tracer
    tracer.ensure()
    budget = FALLBACK_TIMEOUT if timeout is None else timeout
    proto_num = PROTO_NUM[proto]
    token = os.urandom(12)

    if proto in ("tcp", "udp"):
        port = int(dport) if dport is not None else DEFAULT_DPORT
        listener = state.listener(r, version, proto, port)
        if multicast:
            state.join(r, listener, dst, path.recv_dev)
        if proto == "tcp":
            _drain_accepts(listener)
        else:
            _drain(listener)
        run, flow = _send_l4(
            state, s, version, proto, src, dst, port, sport, token, multicast, path.send_dev
        )
        run.listener = listener if proto == "udp" else None
        try:
            return _wait(run, tracer, budget)
        finally:
            with contextlib.suppress(OSError):  # close with a reset: no lingering flow
                run.sender.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            run.sender.close()
            if proto == "tcp":
                _drain_accepts(listener)

    try:
        icmp_type, icmp_code = icmp_type_code(dport, v6)
    except ValueError as exc:
        raise ProbeError(str(exc)) from None
    flow = Flow(
        version,
        src,
        dst,
        proto_num,
        sport=next(state.ports) & 0xFFFF,
        icmp_type=icmp_type,
        icmp_id=next(state.ids),
    )
    raw_recv = None
    if not flow.echo:
        raw_recv = state.raw_socket(r, version)
        _drain_from(raw_recv)
    sender = _icmp_sender(s, version, src)
    try:
        run = _Run(flow, token, sender, raw_recv=raw_recv)
        tracer.drain()
        _icmp_send(sender, icmp_message(flow, icmp_code, token), src, dst, version)
        return _wait(run, tracer, budget)
    finally:
        sender.close()


def _send_l4(
    state: _ProbeState,
    s: Zone,
    version: int,
    proto: str,
    src: str,
    dst: str,
    port: int,
    sport: int | None,
    token: bytes,
    multicast: bool,
    send_dev: str,
) -> tuple[_Run, Flow]:
    fam = socket.AF_INET if version == 4 else socket.AF_INET6
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    for _attempt in range(50):
        chosen = state.next_port(sport)
        sock = s.ns.socket(fam, kind)
        try:
            sock.bind((src, chosen))
            break
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and sport is None:
                continue
            raise ProbeError(f"cannot bind {src}:{chosen} in {s.name}: {exc}") from exc
    else:
        raise ProbeError(f"no free source port for {src} in {s.name}")
    sock.setblocking(False)
    flow = Flow(version, src, dst, PROTO_NUM[proto], sport=chosen, dport=port)
    run = _Run(flow, token, sock, multicast=multicast)
    state.topo.tracer.drain()
    if proto == "tcp":
        run.connecting = True
        try:
            sock.connect((dst, port))
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                run.verdict = "REJECT"
            else:
                sock.close()
                raise ProbeError(f"connect {src} -> {dst}:{port} failed: {exc}") from exc
        return run, flow
    if multicast:
        ifindex = s.ns.if_index(send_dev)
        if version == 4:
            sock.setsockopt(
                socket.IPPROTO_IP,
                socket.IP_MULTICAST_IF,
                struct.pack("=4s4si", b"\0" * 4, b"\0" * 4, ifindex),
            )
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    try:
        sock.connect((dst, port))
        sock.send(token)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            pass  # dropped (or rejected) by the sender's own output chain: let the trace tell
        elif exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
            run.verdict = "REJECT"
        else:
            sock.close()
            raise ProbeError(f"udp {src} -> {dst}:{port} failed: {exc}") from exc
    return run, flow


def _icmp_sender(zone: Zone, version: int, src: str) -> socket.socket:
    """A raw socket bound to the probe's source: it sends and sees the answers."""
    if version == 4:
        sock = zone.ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    else:
        sock = zone.ns.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        sock.bind((src, 0) if version == 4 else (src, 0, 0, 0))
    except OSError as exc:
        sock.close()
        raise ProbeError(f"cannot bind raw socket to {src} in {zone.name}: {exc}") from exc
    sock.setblocking(False)
    return sock


def _icmp_send(sock: socket.socket, message: bytes, src: str, dst: str, version: int) -> None:
    try:
        sock.sendto(message, (dst, 0) if version == 4 else (dst, 0, 0, 0))
    except OSError as exc:
        if exc.errno != errno.EPERM:
            raise ProbeError(f"icmp {src} -> {dst} failed: {exc}") from exc


def _wait(run: _Run, tracer: Tracer, budget: float) -> Verdict:
    tracker = DropTracker(run.flow)
    deadline = time.monotonic() + budget
    while run.verdict is None:
        readers, writers = run.sockets()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "DROP"
        waitable: list[Any] = [*readers, tracer]
        r, w, _ = select.select(waitable, writers, [], remaining)
        ready = set(r) | set(w)
        run.read_ready({s for s in ready if isinstance(s, socket.socket)})
        if run.verdict is not None:
            break
        if tracer in ready:
            for ev in tracer.read():
                tracker.feed(ev)
        if tracker.dropped_for_good:
            grace = MULTICAST_GRACE if run.multicast else 0.0
            readers, writers = run.sockets()
            r, w, _ = select.select(readers, writers, [], grace)
            run.read_ready(set(r) | set(w))
            return run.verdict or "DROP"
    return run.verdict
