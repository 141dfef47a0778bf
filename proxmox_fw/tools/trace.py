"""``trace``: the path of matching packets through the firewall, rule by rule, each rule
with the config line it came from (admin guide §13.13.3, without the hand work).

A short-lived tracing table per family (inet and bridge) sets ``meta nftrace`` at a
priority lower than any other chain, only for packets that match the operator's filters;
the firewall's own tables are never touched. A normal exit, Ctrl-C, SIGTERM and SIGHUP
delete them. Their name carries the pid, so the next ``trace`` deletes the tables of one
that was killed outright (nftables' ``owner`` flag would do that in the kernel, but
libnftables 1.0.6 prints that flag as garbage in JSON listings, which would break every
JSON reader of the ruleset while a trace runs). The kernel's trace events are read over netlink
(:mod:`proxmox_fw.nft.trace`); rule handles are looked up in a listing of the firewall's
tables taken at the start and again whenever the ruleset generation moves.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import nftables

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.kernelstate import KernelStateError, NftNetlink
from proxmox_fw.nft.trace import (
    NF_ACCEPT,
    TRACETYPE_POLICY,
    TRACETYPE_RETURN,
    TRACETYPE_RULE,
    Packet,
    TraceEvent,
    TraceReader,
    open_trace_socket,
)
from proxmox_fw.tools.kernelrules import KernelRule, RuleKey, read_rules

TABLE_PREFIX = "proxmox-firewall-trace"
PRIORITY = -2000  # below raw (-300) and conntrack (-200): every other chain comes later
IDLE_FLUSH = 0.25  # seconds without events after which a packet's path is complete
PORT_PROTOCOLS = ("tcp", "udp", "sctp", "dccp", "udplite")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@+-]{1,15}\*?$")
_PROTO = re.compile(r"^(?:[a-z][a-z0-9-]*|\d{1,3})$")


class FilterError(ValueError):
    """The filter options contradict each other or are not valid."""


class SetupError(RuntimeError):
    """The tracing tables could not be installed (not root, or the kernel refused)."""


@dataclass(frozen=True, slots=True)
class TraceFilter:
    proto: str | None = None
    source: str | None = None
    dest: str | None = None
    dport: int | None = None
    vmid: int | None = None
    iface: str | None = None

    def _version(self) -> int | None:
        versions: set[int] = set()
        for what, addr in (("--source", self.source), ("--dest", self.dest)):
            if addr is None:
                continue
            try:
                versions.add(ipaddress.ip_network(addr, strict=False).version)
            except ValueError as exc:
                raise FilterError(f"{what} {addr}: not an IP address or network") from exc
        if len(versions) > 1:
            raise FilterError("--source and --dest are of different IP versions")
        return versions.pop() if versions else None

    def matches(self) -> str:
        """The nft match expressions shared by every tracing rule; raises FilterError."""
        parts: list[str] = []
        version = self._version()
        proto = self.proto.lower() if self.proto else None
        if proto is not None:
            if not _PROTO.match(proto):
                raise FilterError(f"--proto {self.proto}: not a protocol name or number")
            if proto == "icmp" and version == 6:
                raise FilterError("--proto icmp is IPv4; use icmpv6 with IPv6 addresses")
            if proto in ("icmpv6", "ipv6-icmp") and version == 4:
                raise FilterError("--proto icmpv6 is IPv6; use icmp with IPv4 addresses")
            parts.append(f"meta l4proto {proto}")
        ip = "ip6" if version == 6 else "ip"
        if self.source is not None:
            parts.append(f"{ip} saddr {self.source}")
        if self.dest is not None:
            parts.append(f"{ip} daddr {self.dest}")
        if self.dport is not None:
            if not 0 <= self.dport <= 65535:
                raise FilterError(f"--dport {self.dport}: not a port")
            if proto is None:
                parts.append("meta l4proto { " + ", ".join(PORT_PROTOCOLS) + " }")
            elif proto not in PORT_PROTOCOLS:
                raise FilterError(f"--dport needs a protocol with ports, not {proto}")
            parts.append(f"th dport {self.dport}")
        return " ".join(parts)

    def interfaces(self) -> list[str]:
        """Interface name patterns (a guest's tap/veth devices, or --iface); [] for all."""
        names: list[str] = []
        if self.vmid is not None:
            if self.vmid < 0:
                raise FilterError(f"--vmid {self.vmid}: not a guest id")
            names += [f"tap{self.vmid}i*", f"veth{self.vmid}i*"]
        if self.iface is not None:
            if not _IFNAME.match(self.iface):
                raise FilterError(f"--iface {self.iface}: not an interface name")
            names.append(self.iface)
        return names


def tracing_tables(name: str, filt: TraceFilter) -> str:
    """nft text of the tracing tables: prerouting and output (and postrouting, for
    packets leaving by a filtered interface) set ``meta nftrace`` on what matches."""
    matches = filt.matches()
    ifaces = filt.interfaces()

    def rules(direction: str) -> str:
        heads = [f'{direction}name "{i}"' for i in ifaces] or [""]
        return "".join("    " + " ".join(p for p in (head, matches, "meta nftrace set 1") if p)
                       + "\n" for head in heads)  # fmt: skip

    chains = [("pre", "prerouting", "iif"), ("out", "output", "oif")]
    if ifaces:
        chains.append(("post", "postrouting", "oif"))
    text = ""
    for family in ("inet", "bridge"):
        text += f"table {family} {name} {{\n"
        for chain, hook, direction in chains:
            text += (f"  chain {chain} {{\n    type filter hook {hook} priority {PRIORITY};"
                     f" policy accept;\n{rules(direction)}  }}\n")  # fmt: skip
        text += "}\n"
    return text


def session_table() -> str:
    """This process's tracing table name (one per process: traces may run side by side)."""
    return f"{TABLE_PREFIX}-{os.getpid()}"


def _orphans() -> list[str]:
    """``family name`` of tracing tables whose process is gone (asked over netlink, not
    through libnftables' ``list tables``, which other programs' flagged tables upset)."""
    try:
        with NftNetlink() as nl:
            tables = nl.tables()
    except KernelStateError:
        return []
    found: list[str] = []
    for table in tables:
        if table.name.startswith(TABLE_PREFIX + "-"):
            pid = table.name.rsplit("-", 1)[1]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                found.append(table.label)
    return found


class TracingTables:
    """This process's tracing tables; :meth:`remove` deletes them (safe to call twice).
    Creating them first deletes those a killed trace left."""

    def __init__(self, filt: TraceFilter) -> None:
        self.name = session_table()
        self._ctx: nftables.Nftables | None = nftables.Nftables()
        for orphan in _orphans():
            self._ctx.cmd(f"delete table {orphan}")
        rc, _, err = self._ctx.cmd(tracing_tables(self.name, filt))
        if rc != 0:
            self._ctx = None
            first = next((ln for ln in err.splitlines() if ln.startswith("Error:")), err)
            if "syntax error" in err or "Could not resolve" in err:
                # e.g. a protocol name nft does not know
                raise FilterError(f"nft does not accept the filters: {first.strip()}")
            raise SetupError(err.strip() or "nft refused the tracing tables")

    def remove(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            for family in ("inet", "bridge"):
                ctx.cmd(f"delete table {family} {self.name}")


@dataclass(slots=True)
class Step:
    """One trace event, with the rule it names looked up."""

    event: TraceEvent
    rule: KernelRule | None

    @property
    def kind(self) -> str:
        return {TRACETYPE_POLICY: "policy", TRACETYPE_RETURN: "return",
                TRACETYPE_RULE: "rule"}.get(self.event.type, str(self.event.type))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        ev = self.event
        return {"family": ev.family_name, "table": ev.table, "chain": ev.chain,
                "type": self.kind, "handle": ev.rule_handle, "verdict": ev.verdict_name,
                "rule": self.rule.text if self.rule else None,
                "origin": self.rule.origin if self.rule else None}  # fmt: skip


@dataclass(slots=True)
class TracedPacket:
    trace_id: int
    steps: list[Step] = field(default_factory=list)
    packet: Packet | None = None
    iif: str | None = None
    oif: str | None = None
    last_seen: float = 0.0
    ours: bool = False  # it matched a rule of this session's tracing tables

    @property
    def decision(self) -> Step | None:
        """The drop that ended it; else the first rule that accepted it; else the last
        policy accept (tracing tables left out)."""
        for step in self.steps:
            if step.event.dropped:
                return step
        for step in self.steps:
            if step.event.type == TRACETYPE_RULE and step.event.verdict == NF_ACCEPT:
                return step
        policies = [s for s in self.steps if s.event.type == TRACETYPE_POLICY]
        return policies[-1] if policies else None

    @property
    def verdict(self) -> str:
        decision = self.decision
        if decision is None:
            return "none"
        return "drop" if decision.event.dropped else "accept"

    def to_json(self) -> dict[str, Any]:
        decision = self.decision
        return {"trace_id": f"{self.trace_id:08x}",
                "packet": self.packet.to_json() if self.packet else None,
                "iif": self.iif, "oif": self.oif, "verdict": self.verdict,
                "decided_by": decision.to_json() if decision else None,
                "path": [s.to_json() for s in self.steps]}  # fmt: skip


class RuleBook:
    """Rule handle → rule of the firewall tables; listed again when the ruleset moved."""

    def __init__(self, client: NftClient) -> None:
        self.client = client
        self._rules: dict[RuleKey, KernelRule] = {}
        self.stale = True

    def lookup(self, ev: TraceEvent) -> KernelRule | None:
        if ev.type != TRACETYPE_RULE or ev.rule_handle is None:
            return None
        if self.stale:
            self._rules.update({r.key: r for r in read_rules(self.client, with_text=True)})
            self.stale = False
        return self._rules.get((ev.family_name, ev.table, ev.rule_handle))


def _ifname(index: int | None) -> str | None:
    if not index:
        return None
    try:
        return socket.if_indextoname(index)
    except OSError:
        return str(index)


class _Stop(Exception):
    """A signal asked the trace to end."""


@contextlib.contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGTERM, SIGHUP (the terminal went away) and SIGINT end the trace like its end."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop(signum)

    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only (a caller running the trace in a thread)
        return

    previous = {sig: signal.signal(sig, stop)
                for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}  # fmt: skip
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True, slots=True)
class TraceSummary:
    packets: int
    interrupted: bool
    lost: bool  # the kernel dropped trace messages (too much traffic matched)


class _Collector:
    """Gathers events per packet (trace id); a packet is complete once no event came
    for IDLE_FLUSH seconds, and is emitted if it matched this session's filters."""

    def __init__(self, table: str, book: RuleBook, emit: Callable[[TracedPacket], None],
                 count: int | None) -> None:  # fmt: skip
        self.table, self.book, self.emit, self.count = table, book, emit, count
        self.pending: dict[int, TracedPacket] = {}
        self.alias: dict[int, int] = {}  # trace id -> the id of the packet it continues
        self.emitted = 0

    @property
    def done(self) -> bool:
        return self.count is not None and self.emitted >= self.count

    def _packet_of(self, ev: TraceEvent) -> TracedPacket:
        """The packet an event belongs to. The kernel's trace id hashes the input
        interface too, so a frame bridged on a port and then seen by the IP stack gets a
        new id: a new id showing the same headers as a pending packet is that packet."""
        tid = self.alias.get(ev.trace_id, ev.trace_id)
        tp = self.pending.get(tid)
        if tp is not None:
            return tp
        if ev.packet is not None:
            for twin in self.pending.values():
                if twin.packet == ev.packet:
                    self.alias[ev.trace_id] = twin.trace_id
                    return twin
        tp = self.pending[ev.trace_id] = TracedPacket(ev.trace_id)
        return tp

    def add(self, ev: TraceEvent, now: float) -> None:
        tp = self._packet_of(ev)
        tp.last_seen = now
        tp.packet = tp.packet or ev.packet
        tp.iif = tp.iif or _ifname(ev.iif)
        tp.oif = tp.oif or _ifname(ev.oif)
        is_rule = ev.type == TRACETYPE_RULE and ev.rule_handle is not None
        if ev.table == self.table:
            tp.ours = tp.ours or is_rule  # a policy event alone: the filter did not match
        elif not ev.table.startswith(TABLE_PREFIX) and (is_rule or ev.type != TRACETYPE_RULE):
            # (a rule event without handle is the end of a chain's rules: noise)
            tp.steps.append(Step(ev, self.book.lookup(ev)))

    def flush(self, now: float, force: bool = False) -> None:
        for tid in sorted(self.pending, key=lambda t: self.pending[t].last_seen):
            tp = self.pending[tid]
            if not force and now - tp.last_seen < IDLE_FLUSH:
                continue
            del self.pending[tid]
            self.alias = {k: v for k, v in self.alias.items() if v != tid}
            if tp.ours and not self.done:
                self.emit(tp)
                self.emitted += 1


def run_trace(filt: TraceFilter, emit: Callable[[TracedPacket], None], *,
              count: int | None = None, timeout: float | None = None,
              ready: Callable[[], None] | None = None) -> TraceSummary:  # fmt: skip
    """Trace until ``count`` packets were emitted, ``timeout`` seconds passed or a signal
    came; the tracing tables are gone when this returns or raises. ``ready`` is called
    once tracing is live. Raises FilterError or SetupError before tracing starts."""
    filt.matches()
    filt.interfaces()
    book = RuleBook(NftClient())
    reader = TraceReader(open_trace_socket())
    tables: TracingTables | None = None
    interrupted = False
    deadline = None if timeout is None else time.monotonic() + timeout
    collector = _Collector(session_table(), book, emit, count)
    try:
        with _signals_stop():
            tables = TracingTables(filt)
            if ready is not None:
                ready()
            while not collector.done:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wait = IDLE_FLUSH if deadline is None else min(IDLE_FLUSH, deadline - now)
                select.select([reader], [], [], max(wait, 0.0))
                events = reader.read()
                if reader.take_changes()[0]:
                    book.stale = True
                now = time.monotonic()
                for ev in events:
                    collector.add(ev, now)
                collector.flush(now)
    except _Stop:
        interrupted = True
    finally:
        if tables is not None:
            tables.remove()
        reader.close()
    collector.flush(time.monotonic(), force=True)
    return TraceSummary(collector.emitted, interrupted, reader.lost)


def _origin_text(origin: str | None, pve_dir: Path) -> str:
    """A config path under ``pve_dir``, or a built-in tag such as ``default`` as is."""
    if not origin:
        return ""
    return str(pve_dir / origin) if "/" in origin else origin


def format_packet(tp: TracedPacket, pve_dir: Path) -> str:
    """A packet's path for the terminal: one line per chain step, rules with their
    config line, then the verdict and what decided it."""
    head = tp.packet.describe() if tp.packet else "packet"
    ifs = "".join(f" {k} {v}" for k, v in (("in", tp.iif), ("out", tp.oif)) if v)
    lines = [f"trace {tp.trace_id:08x}: {head}{ifs}"]
    for step in tp.steps:
        ev = step.event
        where = f"{ev.family_name} {ev.table} {ev.chain}"
        if step.kind == "rule":
            what = step.rule.text if step.rule and step.rule.text else f"handle {ev.rule_handle}"
            origin = _origin_text(step.rule.origin if step.rule else None, pve_dir)
            lines.append(f"  {where}: {what} -> {ev.verdict_name}"
                         + (f"  [{origin}]" if origin else ""))  # fmt: skip
        elif step.kind == "policy":
            lines.append(f"  {where}: policy {ev.verdict_name}")
        else:
            lines.append(f"  {where}: return")
    decision = tp.decision
    by = ""
    if decision is not None:
        ev = decision.event
        origin = _origin_text(decision.rule.origin if decision.rule else None, pve_dir)
        by = f" by {ev.family_name} {ev.table} {ev.chain} " + (
            "policy" if decision.kind == "policy" else f"rule {ev.rule_handle}")
        by += f"  [{origin}]" if origin else ""
    lines.append(f"  => {tp.verdict.upper()}{by}")
    return "\n".join(lines) + "\n"
