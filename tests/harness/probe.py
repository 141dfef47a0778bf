"""Real packets between zones, and the verdict the sender sees: ACCEPT, DROP or REJECT.

- TCP: a completed handshake is ACCEPT; a reset or an ICMP error is REJECT.
- UDP: ACCEPT when the listener reads the probe's token; an ICMP error is REJECT.
- ICMP/ICMPv6 echo request: ACCEPT when the echo reply comes back; other ICMP types are
  one-way, so ACCEPT is the receiver's raw socket seeing the probe; an ICMP error quoting
  the probe is REJECT.
- DROP is "nothing comes back". It is decided from the nftables trace of the host
  namespace (:mod:`tests.harness.nftrace`): once a packet of the probe's flow met a drop
  verdict and every packet heading back to the sender was dropped too, waiting longer
  cannot change the outcome. A timeout remains only as a fallback.

A reject is NF_DROP to the kernel as well, but its reset/ICMP error is sent (and traced)
before the rejecting rule's own verdict event, so a rejected probe always shows a packet
heading back that was not dropped, and the sender's socket is left to report it.

Every probe uses a fresh source port (or ICMP id), so conntrack never mistakes it for an
earlier one; addresses, routes and listeners come from :mod:`tests.harness.endpoints`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Literal

from tests.harness.endpoints import (
    Path,
    ProbeError,
    ProbeState,
    path_between,
    state_of,
)
from tests.harness.nftrace import (
    ECHO_REPLY,
    ICMP_ERRORS,
    ICMPV6_ERRORS,
    DropTracker,
    Flow,
    Tracer,
)
from tests.harness.packets import (
    DEFAULT_DPORT,
    PROTO_NUM,
    icmp_message,
    icmp_type_code,
    icmp_view,
    quotes,
)
from tests.harness.timing import FALLBACK_TIMEOUT, MULTICAST_GRACE, TIME_SCALE
from tests.harness.topology import Topology, Zone

__all__ = [
    "DEFAULT_DEST",
    "DEFAULT_HOST",
    "DEFAULT_SOURCE",
    "TIME_SCALE",
    "ProbeError",
    "Verdict",
    "last_trace",
    "probe",
    "probe_stats",
]

Verdict = Literal["ACCEPT", "DROP", "REJECT"]

DEFAULT_SOURCE = {4: "100.100.1.2", 6: "fd00:100:100:1::2"}
DEFAULT_DEST = {4: "100.200.3.4", 6: "fd00:100:200:3::4"}
DEFAULT_HOST = {4: "172.16.1.2", 6: "fd00:16:1::2"}


def probe_stats(topo: Topology) -> tuple[int, int]:
    """(probes sent, DROPs decided by the fallback timeout) on this topology."""
    state = topo.probe_state
    return (state.probes, state.fallbacks) if isinstance(state, ProbeState) else (0, 0)


def last_trace(topo: Topology) -> list[str]:
    """What the last probe's packets met in the host's chains, for a failure message.

    Only events read before the verdict was known are there (an ACCEPT or REJECT is
    decided by the sockets, possibly before the trace of every packet was read).
    """
    state = topo.probe_state
    if not isinstance(state, ProbeState):
        return []
    return [ev.describe() for ev in state.last_trace]


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
    s, r = topo.zone(src_zone), topo.zone(dst_zone)
    version, src, dst = _addresses(s, r, proto, source, dest, multicast, v6)
    state = state_of(topo)
    path = path_between(topo, s, r)
    if multicast and path.routed is not None:
        raise ProbeError("multicast between different bridges is not routed")
    state.prepare(s, r, src, dst, path, multicast)
    tracer = topo.tracer
    tracer.ensure()
    budget = FALLBACK_TIMEOUT if timeout is None else timeout
    token = os.urandom(12)
    if proto in ("tcp", "udp"):
        port = int(dport) if dport is not None else DEFAULT_DPORT
        return _probe_l4(state, s, r, path, version, proto, src, dst, port, sport, token,
                         multicast, budget)  # fmt: skip
    try:
        icmp_type, icmp_code = icmp_type_code(dport, version == 6)
    except ValueError as exc:
        raise ProbeError(str(exc)) from None
    flow = Flow(version, src, dst, PROTO_NUM[proto], sport=next(state.ports) & 0xFFFF,
                icmp_type=icmp_type, icmp_id=next(state.ids))  # fmt: skip
    return _probe_icmp(state, s, r, flow, icmp_code, token, budget)


def _addresses(
    s: Zone, r: Zone, proto: str, source: str | None, dest: str | None, multicast: bool,
    v6: bool,
) -> tuple[int, str, str]:  # fmt: skip
    """IP version, source and destination of a probe, defaults applied and checked."""
    given = [ipaddress.ip_address(a) for a in (source, dest) if a is not None]
    version = 6 if v6 or proto == "icmpv6" or any(a.version == 6 for a in given) else 4
    if proto == "icmp" and version == 6:
        raise ProbeError("icmp over IPv6: use proto icmpv6")
    src = str(ipaddress.ip_address(source)) if source else (
        DEFAULT_HOST[version] if s.is_host else DEFAULT_SOURCE[version])  # fmt: skip
    dst = str(ipaddress.ip_address(dest)) if dest else (
        DEFAULT_HOST[version] if r.is_host else DEFAULT_DEST[version])  # fmt: skip
    if any(ipaddress.ip_address(a).version != version for a in (src, dst)):
        raise ProbeError(f"{src} -> {dst} mixes address families")
    if src == dst:
        raise ProbeError("source and destination address are the same")
    is_group = ipaddress.ip_address(dst).is_multicast
    if is_group and not multicast:
        raise ProbeError(f"{dst} is a multicast address: a unicast packet to it cannot exist")
    if multicast and not is_group:
        raise ProbeError(f"multicast probe to non-multicast address {dst}")
    if multicast and proto != "udp":
        raise ProbeError("multicast probes are udp only")
    if r.owns(src) or (not multicast and s.owns(dst)):
        raise ProbeError(f"{src} -> {dst}: an own address of the other end would stay local")
    return version, src, dst


def _probe_l4(
    state: ProbeState, s: Zone, r: Zone, path: Path, version: int, proto: str, src: str,
    dst: str, port: int, sport: int | None, token: bytes, multicast: bool, budget: float,
) -> Verdict:  # fmt: skip
    listener = state.listener(r, version, proto, port)
    if multicast:
        state.join(r, listener, dst, path.recv_dev)
    if proto == "tcp":
        _drain_accepts(listener)
    else:
        _drain(listener)
    run = _send_l4(state, s, version, proto, src, dst, port, sport, token, multicast, path.send_dev)
    run.listener = listener if proto == "udp" else None
    try:
        return _wait(state, run, state.topo.tracer, budget)
    finally:
        with contextlib.suppress(OSError):  # close with a reset: no lingering flow
            run.sender.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        run.sender.close()
        if proto == "tcp":
            _drain_accepts(listener)


def _probe_icmp(
    state: ProbeState, s: Zone, r: Zone, flow: Flow, code: int, token: bytes, budget: float
) -> Verdict:
    raw_recv = None
    if not flow.echo:  # one-way: the receiver's raw socket tells delivery
        raw_recv = state.raw_socket(r, flow.version)
        _drain_from(raw_recv)
    sender = _icmp_sender(s, flow.version, flow.src)
    try:
        run = _Run(flow, token, sender, raw_recv=raw_recv)
        state.topo.tracer.drain()
        _icmp_send(sender, icmp_message(flow, code, token), flow.src, flow.dst, flow.version)
        return _wait(state, run, state.topo.tracer, budget)
    finally:
        sender.close()


def _send_l4(
    state: ProbeState,
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
) -> _Run:
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
        return run
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
    return run


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


def _wait(state: ProbeState, run: _Run, tracer: Tracer, budget: float) -> Verdict:
    """Wait for the sockets to tell ACCEPT/REJECT, or the trace to tell DROP."""
    state.probes += 1
    tracker = DropTracker(run.flow)
    state.last_trace = tracker.events
    deadline = time.monotonic() + budget
    while run.verdict is None:
        readers, writers = run.sockets()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            state.fallbacks += 1
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
    for ev in tracer.read():  # what is already queued, for last_trace()
        tracker.feed(ev)
    return run.verdict
