"""nftables trace events read straight from netlink, so a DROP is known in milliseconds.

A separate table per family (inet and bridge) sets ``meta nftrace`` at a priority lower
than anything a ruleset under test uses, so the ruleset itself is unchanged. The kernel
then reports every verdict a traced packet meets on the NFNLGRP_NFTRACE group of the
namespace; :class:`Tracer` reads those messages (no ``nft monitor`` subprocess, no cached
rule text) and also watches the ruleset-change group, so it notices when an apply removed
its tables and reinstalls them before the next probe.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field
from typing import Literal

from tests.harness.netns import NetNs

TRACE_TABLE = "pfwt-trace"
TRACE_PRIORITY = -2000

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33  # not exported by Python's socket module
NFNLGRP_NFTABLES = 7
NFNLGRP_NFTRACE = 9
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_DELTABLE = 2
NFT_MSG_DELCHAIN = 5
NFT_MSG_DELRULE = 8
NFT_MSG_TRACE = 17
NLMSG_ERROR = 2
NLMSG_OVERRUN = 4

# enum nft_trace_attributes
_A_TABLE, _A_CHAIN, _A_HANDLE, _A_TYPE, _A_VERDICT, _A_ID = 1, 2, 3, 4, 5, 6
_A_NETWORK, _A_TRANSPORT, _A_IIF, _A_OIF, _A_NFPROTO, _A_POLICY = 8, 9, 10, 12, 15, 16
_VERDICT_CODE = 1

TRACETYPE_POLICY, TRACETYPE_RETURN, TRACETYPE_RULE = 1, 2, 3
NF_DROP, NF_ACCEPT = 0, 1

ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})
ICMPV6_ERRORS = frozenset({1, 2, 3, 4})
ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}


def trace_ruleset(table: str = TRACE_TABLE, priority: int = TRACE_PRIORITY) -> str:
    """nft text that (re)creates the tracing tables: one transaction, idempotent."""
    parts = []
    for family in ("inet", "bridge"):
        parts.append(
            f"table {family} {table} {{}}\n"
            f"delete table {family} {table}\n"
            f"table {family} {table} {{\n"
            f"  chain pre {{ type filter hook prerouting priority {priority}; "
            f"meta nftrace set 1; }}\n"
            f"  chain out {{ type filter hook output priority {priority}; "
            f"meta nftrace set 1; }}\n"
            f"}}\n"
        )
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Packet:
    """What a trace event shows of a packet (enough to tie it to one probe's flow)."""

    version: int
    src: str
    dst: str
    proto: int  # IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6)
    sport: int | None = None  # tcp/udp
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None  # echo id, or the first 16 bits after the header
    inner_proto: int | None = None  # protocol quoted by an ICMP error, when visible

    @property
    def is_icmp_error(self) -> bool:
        if self.proto == 1:
            return self.icmp_type in ICMP_ERRORS
        if self.proto == 58:
            return self.icmp_type in ICMPV6_ERRORS
        return False


@dataclass(frozen=True, slots=True)
class TraceEvent:
    trace_id: int
    family: int  # nfgen family of the table (1 inet, 7 bridge, ...)
    table: str
    chain: str
    type: int
    verdict: int | None  # NF_DROP, NF_ACCEPT or a negative nft verdict (jump, return ...)
    policy: int | None
    packet: Packet | None  # only on the first event of each chain walk
    iif: int | None = None
    oif: int | None = None
    rule_handle: int | None = None

    @property
    def dropped(self) -> bool:
        """The packet ended here (a drop, or a reject: both are NF_DROP to the kernel)."""
        if self.type == TRACETYPE_POLICY:
            return self.policy == NF_DROP
        return self.type == TRACETYPE_RULE and self.verdict == NF_DROP

    def describe(self) -> str:
        """One line for a failure message: where the packet went and what it met."""
        family = _FAMILIES.get(self.family, str(self.family))
        where = f"{family} {self.table} {self.chain}"
        if self.type == TRACETYPE_POLICY:
            return f"{where} policy {_VERDICTS.get(self.policy or 0, self.policy)}"
        if self.type == TRACETYPE_RETURN:
            return f"{where} return"
        verdict = _VERDICTS.get(self.verdict, self.verdict) if self.verdict is not None else "?"
        return f"{where} rule handle {self.rule_handle}: {verdict}"


_FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
_VERDICTS = {0: "drop", 1: "accept", -1: "continue", -2: "break", -3: "jump", -4: "goto",
             -5: "return"}  # fmt: skip


def nl_attrs(data: bytes, start: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = start
    while pos + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, pos)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[pos + 4 : pos + length]
        pos += (length + 3) & ~3
    return out


def be32(raw: bytes | None) -> int | None:
    return None if raw is None or len(raw) < 4 else int.from_bytes(raw[:4], "big")


def be64(raw: bytes | None) -> int | None:
    return None if raw is None or len(raw) < 8 else int.from_bytes(raw[:8], "big")


def _signed_verdict(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    code = be32(nl_attrs(raw, 0, len(raw)).get(_VERDICT_CODE))
    if code is None:
        return None
    if code >= 1 << 31:  # NFT_CONTINUE, NFT_JUMP, ... are negative
        return code - (1 << 32)
    return code & 0xFF  # NF_DROP may carry an errno in the upper bits


def parse_packet(network: bytes | None, transport: bytes | None) -> Packet | None:
    """Decode the (truncated) headers a trace event carries."""
    if not network:
        return None
    version = network[0] >> 4
    inner: bytes = b""
    if version == 4 and len(network) >= 20:
        ihl = (network[0] & 0x0F) * 4
        proto = network[9]
        src = str(ipaddress.IPv4Address(network[12:16]))
        dst = str(ipaddress.IPv4Address(network[16:20]))
        l4 = transport if transport else network[ihl:]
    elif version == 6 and len(network) >= 40:
        proto = network[6]
        src = str(ipaddress.IPv6Address(network[8:24]))
        dst = str(ipaddress.IPv6Address(network[24:40]))
        l4 = transport if transport else network[40:]
    else:
        return None
    if proto in (6, 17) and len(l4) >= 4:
        sport, dport = struct.unpack_from("!HH", l4, 0)
        return Packet(version, src, dst, proto, sport=sport, dport=dport)
    if proto in (1, 58) and len(l4) >= 2:
        icmp_id = struct.unpack_from("!H", l4, 4)[0] if len(l4) >= 6 else None
        inner = l4[8:]
        inner_proto: int | None = None
        if version == 4 and len(inner) >= 10 and inner[0] >> 4 == 4:
            inner_proto = inner[9]
        elif version == 6 and len(inner) >= 7 and inner[0] >> 4 == 6:
            inner_proto = inner[6]
        return Packet(
            version,
            src,
            dst,
            proto,
            icmp_type=l4[0],
            icmp_code=l4[1],
            icmp_id=icmp_id,
            inner_proto=inner_proto,
        )
    return Packet(version, src, dst, proto)


class Tracer:
    """Trace tables plus a netlink listener in the namespace where the firewall runs."""

    def __init__(self, ns: NetNs, table: str = TRACE_TABLE, priority: int = TRACE_PRIORITY):
        self.ns = ns
        self.table = table
        self.priority = priority
        self.sock = ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        self.sock.bind((0, 0))
        for group in (NFNLGRP_NFTRACE, NFNLGRP_NFTABLES):
            self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        self.sock.setblocking(False)
        self._installed = False
        self.installs = 0  # how often the tables were (re)created
        self.lost = False  # set when the kernel dropped messages (ENOBUFS)

    def fileno(self) -> int:
        return self.sock.fileno()

    def install(self) -> None:
        self.ns.nft(trace_ruleset(self.table, self.priority))
        self.drain()  # our own delete+create notifications are queued by now
        self._installed = True
        self.installs += 1

    def ensure(self) -> None:
        """Reinstall the trace tables if a ruleset change since the last look removed them."""
        self.drain()
        if not self._installed:
            self.install()

    def drain(self) -> None:
        """Discard queued events (and notice ruleset changes that touched our tables)."""
        self.read()

    def read(self) -> list[TraceEvent]:
        """Every queued trace event, without blocking."""
        events: list[TraceEvent] = []
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return events
            except OSError as exc:  # ENOBUFS: we fell behind; the tables may be gone too
                if exc.errno == 105:
                    self.lost = True
                    self._installed = False
                    continue
                raise
            self._parse(data, events)

    def _parse(self, data: bytes, events: list[TraceEvent]) -> None:
        pos = 0
        while pos + 16 <= len(data):
            length, mtype = struct.unpack_from("=IH", data, pos)
            if length < 16:
                return
            end = pos + length
            subsys, msg = mtype >> 8, mtype & 0xFF
            if subsys == NFNL_SUBSYS_NFTABLES and length >= 20:
                family = data[pos + 16]
                attrs = nl_attrs(data, pos + 20, end)
                if msg == NFT_MSG_TRACE:
                    events.append(self._event(family, attrs))
                elif msg in (NFT_MSG_DELTABLE, NFT_MSG_DELCHAIN, NFT_MSG_DELRULE) and (
                    # the table name is attribute 1 for all three messages
                    attrs.get(1, b"").rstrip(b"\0").decode(errors="replace") == self.table
                ):
                    self._installed = False
            pos += (length + 3) & ~3

    @staticmethod
    def _event(family: int, attrs: dict[int, bytes]) -> TraceEvent:
        return TraceEvent(
            trace_id=be32(attrs.get(_A_ID)) or 0,
            family=family,
            table=attrs.get(_A_TABLE, b"").rstrip(b"\0").decode(errors="replace"),
            chain=attrs.get(_A_CHAIN, b"").rstrip(b"\0").decode(errors="replace"),
            type=be32(attrs.get(_A_TYPE)) or 0,
            verdict=_signed_verdict(attrs.get(_A_VERDICT)),
            policy=be32(attrs.get(_A_POLICY)),
            packet=parse_packet(attrs.get(_A_NETWORK), attrs.get(_A_TRANSPORT)),
            iif=be32(attrs.get(_A_IIF)),
            oif=be32(attrs.get(_A_OIF)),
            rule_handle=be64(attrs.get(_A_HANDLE)),
        )

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True, slots=True)
class Flow:
    """One probe's packets, as the trace shows them."""

    version: int
    src: str
    dst: str
    proto: int
    sport: int = 0
    dport: int = 0
    icmp_type: int = 0
    icmp_id: int = 0

    @property
    def echo(self) -> bool:
        return self.proto in (1, 58) and self.icmp_type == ECHO_REQUEST[self.version]

    def direction(self, p: Packet) -> Literal["away", "toward"] | None:
        if p.version != self.version:
            return None
        if p.proto == self.proto:
            if p.src == self.src and p.dst == self.dst and self._forward(p):
                return "away"
            if p.src == self.dst and p.dst == self.src and self._reverse(p):
                return "toward"
        if p.dst == self.src and p.is_icmp_error and p.inner_proto in (None, self.proto):
            return "toward"
        return None

    def _forward(self, p: Packet) -> bool:
        if self.proto in (6, 17):
            return p.sport == self.sport and p.dport == self.dport
        if self.echo:
            return p.icmp_type == self.icmp_type and p.icmp_id == self.icmp_id
        return p.icmp_type == self.icmp_type

    def _reverse(self, p: Packet) -> bool:
        if self.proto in (6, 17):
            return p.sport == self.dport and p.dport == self.sport
        if self.echo:
            return p.icmp_type == ECHO_REPLY[self.version] and p.icmp_id == self.icmp_id
        return False


@dataclass(slots=True)
class DropTracker:
    """Feeds trace events of one flow; says when the flow is dropped for good."""

    flow: Flow
    _current: dict[int, Packet] = field(default_factory=dict)
    _toward: set[tuple[int, Packet]] = field(default_factory=set)
    _dropped: set[tuple[int, Packet]] = field(default_factory=set)
    events: list[TraceEvent] = field(default_factory=list)  # the flow's, outside trace tables
    seen: int = 0  # events that belonged to the flow

    def feed(self, ev: TraceEvent) -> None:
        if ev.packet is not None:
            self._current[ev.trace_id] = ev.packet
        pkt = self._current.get(ev.trace_id)
        if pkt is None:
            return
        way = self.flow.direction(pkt)
        if way is None:
            return
        self.seen += 1
        if ev.table != TRACE_TABLE:
            self.events.append(ev)
        key = (ev.trace_id, pkt)
        if way == "toward":
            self._toward.add(key)
        if ev.dropped:
            self._dropped.add(key)

    @property
    def dropped_for_good(self) -> bool:
        return bool(self._dropped) and self._toward <= self._dropped
