"""nftables trace events read straight from netlink, so a DROP is known in milliseconds.

A separate table per family (inet and bridge) sets ``meta nftrace`` at a priority lower
than anything a ruleset under test uses, so the ruleset itself is unchanged. The kernel
then reports every verdict a traced packet meets on the NFNLGRP_NFTRACE group of the
namespace; :class:`Tracer` reads those messages (no ``nft monitor`` subprocess, no cached
rule text) and also watches the ruleset-change group, so it notices when an apply removed
its tables and reinstalls them before the next probe.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Literal

from proxmox_fw.nft.trace import (
    ICMP_ERRORS,
    ICMPV6_ERRORS,
    NETLINK_NETFILTER,
    NF_ACCEPT,
    NF_DROP,
    TRACETYPE_POLICY,
    TRACETYPE_RETURN,
    TRACETYPE_RULE,
    Packet,
    TraceEvent,
    TraceReader,
    be32,
    nl_attrs,
    parse_packet,
    signed_verdict,
    subscribe,
)
from tests.harness.netns import NetNs

__all__ = [
    "ECHO_REPLY", "ECHO_REQUEST", "ICMPV6_ERRORS", "ICMP_ERRORS", "NF_ACCEPT", "NF_DROP",
    "TRACETYPE_POLICY", "TRACETYPE_RETURN", "TRACETYPE_RULE", "TRACE_PRIORITY", "TRACE_TABLE",
    "DropTracker", "Flow", "Packet", "TraceEvent", "Tracer", "be32", "nl_attrs",
    "parse_packet", "signed_verdict", "trace_ruleset",
]  # fmt: skip

TRACE_TABLE = "pfwt-trace"
TRACE_PRIORITY = -2000

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


class Tracer:
    """Trace tables plus a netlink listener in the namespace where the firewall runs."""

    def __init__(self, ns: NetNs, table: str = TRACE_TABLE, priority: int = TRACE_PRIORITY):
        self.ns = ns
        self.table = table
        self.priority = priority
        self.sock = ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        subscribe(self.sock)
        self.reader = TraceReader(self.sock)
        self._installed = False
        self.installs = 0  # how often the tables were (re)created

    @property
    def lost(self) -> bool:
        """The kernel dropped messages (ENOBUFS)."""
        return self.reader.lost

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
        events = self.reader.read()
        _, deleted = self.reader.take_changes()
        if self.table in deleted or "*" in deleted:
            self._installed = False
        return events

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
