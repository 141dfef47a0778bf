"""Crafted packets sent as raw Ethernet frames, and where the host's firewall left them.

Sockets cannot send what the firewall's protections are about: a TCP segment with
SYN+FIN or no flags at all, a lone FIN, a SYN from source port 0, a packet whose source is
a broadcast address, IGMP, a burst of SYNs from one address. :func:`inject` builds such a
packet, writes it onto a zone's interface through an ``AF_PACKET`` socket (no routing,
no conntrack, no firewall on the sending side) and reads the nftables trace of the host
namespace until the packet met a final verdict in the firewall's input (or forward)
path. The :class:`Outcome` says ACCEPT or DROP and which chain and rule decided it, so a
test can tell "dropped by ``block-smurfs``" from "dropped by the policy".
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tests.harness.endpoints import ProbeError, path_between, state_of
from tests.harness.nftrace import (
    NF_ACCEPT,
    NF_DROP,
    TRACE_TABLE,
    TRACETYPE_POLICY,
    TRACETYPE_RULE,
    Flow,
    Packet,
    TraceEvent,
)
from tests.harness.packets import checksum
from tests.harness.timing import FALLBACK_TIMEOUT
from tests.harness.topology import Topology, Zone

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
INET_FAMILY = 1  # nfgen family of the inet table in trace events
# Base chains whose accept policy is not a decision: the packet goes on to `input`.
_PASS_THROUGH = frozenset({"host-bridge-input", "host-bridge-output"})

RawVerdict = Literal["ACCEPT", "DROP"]
Match = Callable[[Packet], bool]


# -- packet building -----------------------------------------------------------------


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, proto, length)
    return s.packed + d.packed + struct.pack("!IxxxB", length, proto)


def tcp(src: str, dst: str, sport: int, dport: int, flags: int, *, seq: int = 1000,
        ack: int = 0, payload: bytes = b"") -> bytes:  # fmt: skip
    """A TCP segment with a correct checksum (any flag combination)."""
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    seg = head + payload
    csum = checksum(_pseudo(src, dst, 6, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x") -> bytes:
    length = 8 + len(payload)
    dgram = struct.pack("!HHHH", sport, dport, length, 0) + payload
    csum = checksum(_pseudo(src, dst, 17, length) + dgram) or 0xFFFF
    return dgram[:6] + struct.pack("!H", csum) + dgram[8:]


def igmp_report(group: str) -> bytes:
    """An IGMPv2 membership report for ``group``."""
    msg = struct.pack("!BBH4s", 0x16, 0, 0, ipaddress.IPv4Address(group).packed)
    return msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]


def ip_packet(src: str, dst: str, proto: int, l4: bytes, *, ttl: int = 64) -> bytes:
    """An IPv4 or IPv6 header (by the addresses' family) in front of ``l4``."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version != d.version:
        raise ProbeError(f"{src} -> {dst} mixes address families")
    if s.version == 4:
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0x1234, 0x4000, ttl, proto,
                           0, s.packed, d.packed)  # fmt: skip
        head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
        return head + l4
    return struct.pack("!IHBB", 6 << 28, len(l4), proto, ttl) + s.packed + d.packed + l4


def ether(dst_mac: str, src_mac: str, packet: bytes) -> bytes:
    ethertype = ETH_P_IP if packet[0] >> 4 == 4 else ETH_P_IPV6
    return _mac(dst_mac) + _mac(src_mac) + struct.pack("!H", ethertype) + packet


def _mac(text: str) -> bytes:
    return bytes(int(b, 16) for b in text.split(":"))


# -- sending and judging ----------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """Where the host's firewall left one injected packet."""

    verdict: RawVerdict | None  # None: no decision was traced before the deadline
    chain: str | None = None  # the chain of the deciding rule (or the base chain's policy)
    handle: int | None = None  # the deciding rule's handle (None for a policy)
    events: list[TraceEvent] = field(default_factory=list)

    def describe(self) -> str:
        trail = "; ".join(ev.describe() for ev in self.events)
        return f"{self.verdict} in {self.chain} (handle {self.handle}) [{trail}]"


def _deciding(ev: TraceEvent) -> RawVerdict | None:
    if ev.family != INET_FAMILY or ev.table == TRACE_TABLE or ev.chain in _PASS_THROUGH:
        return None
    if ev.type == TRACETYPE_POLICY:
        return "DROP" if ev.policy == NF_DROP else "ACCEPT"
    if ev.type == TRACETYPE_RULE and ev.verdict in (NF_DROP, NF_ACCEPT):
        return "DROP" if ev.verdict == NF_DROP else "ACCEPT"
    return None


class Injector:
    """Raw frames onto one zone's interface; the host's trace tells their fate."""

    def __init__(self, topo: Topology, zone: str) -> None:
        self.topo = topo
        self.zone: Zone = topo.zone(zone)
        if self.zone.is_host or self.zone.ifname is None or self.zone.mac is None:
            raise ProbeError("inject from a port zone, not from the host")
        self.sock = self.zone.ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.sock.bind((self.zone.ifname, 0))
        topo.on_destroy(self.sock.close)

    def prepare(self, src: str, dst: str) -> None:
        """Give ``src`` to the sender and routes/neighbours back to it, as a probe does,
        so the host's answers (a SYN-ACK, a reset) have somewhere to go."""
        host = self.topo.host
        path = path_between(self.topo, self.zone, host)
        state_of(self.topo).prepare(self.zone, host, src, dst, path, False)

    def send(self, packet: bytes, *, dst_mac: str | None = None) -> None:
        """Write ``packet`` (an IP packet) as one frame to the bridge (or ``dst_mac``)."""
        assert self.zone.bridge is not None and self.zone.mac is not None
        mac = dst_mac or self.topo.bridges[self.zone.bridge].mac
        self.sock.send(ether(mac, self.zone.mac, packet))

    def inject(self, packet: bytes, match: Flow | Match, *, dst_mac: str | None = None,
               timeout: float = FALLBACK_TIMEOUT) -> Outcome:  # fmt: skip
        """Send ``packet`` and wait for the first final verdict a packet of ``match`` (a
        flow, or a predicate on traced packets) met."""
        tracer = self.topo.tracer
        tracer.ensure()
        tracer.drain()
        self.send(packet, dst_mac=dst_mac)
        return wait_decision(self.topo, match, timeout)


def wait_decision(topo: Topology, match: Flow | Match,
                  timeout: float = FALLBACK_TIMEOUT) -> Outcome:  # fmt: skip
    """The first accept/drop (rule or base-chain policy) a packet of ``match`` met in the
    host's firewall (for a flow: going away from its sender); other packets are ignored."""
    wanted = flow_match(match) if isinstance(match, Flow) else match
    tracer = topo.tracer
    current: dict[int, Packet] = {}
    out = Outcome(None)
    deadline = time.monotonic() + timeout
    while True:
        for ev in tracer.read():
            if ev.packet is not None:
                current[ev.trace_id] = ev.packet
            pkt = current.get(ev.trace_id)
            if pkt is None or not wanted(pkt):
                continue
            if ev.table != TRACE_TABLE:
                out.events.append(ev)
            verdict = _deciding(ev)
            if verdict is not None:
                out.verdict, out.chain = verdict, ev.chain
                out.handle = ev.rule_handle if ev.type == TRACETYPE_RULE else None
                return out
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return out
        select.select([tracer], [], [], remaining)


def flow_match(flow: Flow) -> Match:
    """The packets of ``flow`` going away from its sender."""
    return lambda p: flow.direction(p) == "away"


def tcp_flow(src: str, dst: str, sport: int, dport: int) -> Flow:
    return Flow(ipaddress.ip_address(src).version, src, dst, 6, sport=sport, dport=dport)


def udp_flow(src: str, dst: str, sport: int, dport: int) -> Flow:
    return Flow(ipaddress.ip_address(src).version, src, dst, 17, sport=sport, dport=dport)
