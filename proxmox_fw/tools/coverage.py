"""What packets a config rule matches, as plain values that can be compared: does one
rule match every packet another one does?

Used by ``check`` to find shadowed rules. Only certain answers count: :func:`covers`
says True only when every packet the second rule matches is matched by the first (each
of the rule's conditions is a superset, so their conjunction is); anything it cannot
decide (two different ipsets, say) is False. Addresses are compared as integer
intervals after alias resolution; ipsets only by identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxmox_fw.compile.macros import MacroPart, macro_parts
from proxmox_fw.compile.refs import RefScope
from proxmox_fw.model import (
    AddressMatch,
    AliasRef,
    Cidr,
    Family,
    IcmpType,
    IpEntry,
    IpList,
    IpRange,
    PortRange,
    Rule,
    family_of,
)

Interval = tuple[int, int]  # inclusive


def entry_interval(entry: IpEntry | Cidr) -> tuple[Family, Interval]:
    """An address, network or range as its family and inclusive integer interval."""
    if isinstance(entry, IpRange):
        return entry.family, (int(entry.start), int(entry.end))
    net = entry.network
    return family_of(entry), (int(net.network_address), int(net.broadcast_address))


def inside(inner: list[Interval], outer: list[Interval]) -> bool:
    """Every interval of ``inner`` lies within the union of ``outer``."""
    merged: list[Interval] = []
    for lo, hi in sorted(outer):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return all(any(m_lo <= lo and hi <= m_hi for m_lo, m_hi in merged) for lo, hi in inner)


@dataclass(frozen=True, slots=True)
class Addresses:
    """One address condition: literal intervals of one family, or an ipset by name."""

    family: Family | None = None
    intervals: tuple[Interval, ...] = ()
    ipset: str | None = None  # the resolved set's base name ("dc/x", "guest-100/x")

    def covers(self, other: Addresses) -> bool:
        if self.ipset is not None:
            return self.ipset == other.ipset
        return (other.ipset is None and self.family is other.family
                and inside(list(other.intervals), list(self.intervals)))  # fmt: skip


def addresses(m: AddressMatch, scope: RefScope) -> Addresses | None:
    """The condition ``m`` stands for in ``scope``; None when a reference does not resolve
    (the compiler reports and skips such a rule)."""
    if isinstance(m, IpList):
        return Addresses(m.family, tuple(entry_interval(e)[1] for e in m.entries))
    if isinstance(m, AliasRef):
        alias = scope.alias(m)
        if alias is None:
            return None
        fam, iv = entry_interval(alias.cidr)
        return Addresses(fam, (iv,))
    resolved = scope.ipset(m)
    return None if resolved is None else Addresses(ipset=resolved.base)


@dataclass(frozen=True, slots=True)
class ProtoPart:
    """One protocol alternative: protocol number (None: any), ports, ICMP type."""

    proto: int | None
    dport: tuple[Interval, ...] | None = None
    sport: tuple[Interval, ...] | None = None
    icmp: tuple[int | None, int | None] | None = None  # (type, code); None or (None, _): any

    def covers(self, other: ProtoPart) -> bool:
        if self.proto is None:
            return True
        if self.proto != other.proto:
            return False
        return (_ports_cover(self.dport, other.dport) and _ports_cover(self.sport, other.sport)
                and _icmp_covers(self.icmp, other.icmp))  # fmt: skip


def _ports_cover(a: tuple[Interval, ...] | None, b: tuple[Interval, ...] | None) -> bool:
    if a is None:
        return True
    return b is not None and inside(list(b), list(a))


def _icmp_covers(a: tuple[int | None, int | None] | None,
                 b: tuple[int | None, int | None] | None) -> bool:  # fmt: skip
    if a is None or a[0] is None:
        return True
    if b is None or b[0] != a[0]:
        return False
    return a[1] is None or a[1] == b[1]


def _ports(ports: list[PortRange] | None) -> tuple[Interval, ...] | None:
    return None if ports is None else tuple((p.lo, p.hi) for p in ports)


def _icmp(icmp: IcmpType | None) -> tuple[int | None, int | None] | None:
    return None if icmp is None else (icmp.type, icmp.code)


def proto_parts(rule: Rule) -> tuple[ProtoPart, ...] | None:
    """The protocol alternatives of a rule, filled in as the compiler does (a macro's
    entries take the rule's ports where they leave them open); None: unknown macro."""
    if rule.macro:
        parts = macro_parts(rule.macro)
        if parts is None:
            return None
    elif rule.proto is None:
        return (ProtoPart(None),)
    else:
        parts = (MacroPart(rule.proto, rule.dport, rule.sport, rule.icmp_type),)
    return tuple(
        ProtoPart(
            p.proto.number,
            _ports(p.dport if p.dport is not None else rule.dport),
            _ports(p.sport if p.sport is not None else rule.sport),
            _icmp(p.icmp_type if p.icmp_type is not None else rule.icmp_type)
            if p.proto.is_icmp else None,
        )
        for p in parts
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """Everything a (non-GROUP) rule matches on, resolved in its scope."""

    iface: str | None
    source: Addresses | None
    dest: Addresses | None
    parts: tuple[ProtoPart, ...]

    def covers(self, other: RuleMatch) -> bool:
        """Every packet ``other`` matches, this matches too (certain, never a guess)."""
        if self.iface is not None and self.iface != other.iface:
            return False
        for mine, theirs in ((self.source, other.source), (self.dest, other.dest)):
            if mine is not None and (theirs is None or not mine.covers(theirs)):
                return False
        return all(any(p.covers(q) for p in self.parts) for q in other.parts)


def rule_match(rule: Rule, scope: RefScope) -> RuleMatch | None:
    """None for GROUP rules and rules whose references or macro do not resolve."""
    if rule.kind == "group":
        return None
    parts = proto_parts(rule)
    if parts is None:
        return None
    ends: list[Addresses | None] = []
    for m in (rule.source, rule.dest):
        if m is None:
            ends.append(None)
            continue
        a = addresses(m, scope)
        if a is None:
            return None
        ends.append(a)
    return RuleMatch(rule.iface, ends[0], ends[1], parts)


def part_family(part: ProtoPart) -> Family | None:
    """The family an ICMP protocol pins (icmp → IPv4, ipv6-icmp → IPv6)."""
    return {1: Family.V4, 58: Family.V6}.get(part.proto) if part.proto is not None else None


def ip_network_text(entry: IpEntry | Cidr) -> str:
    """An entry as written in config (a range as ``a-b``)."""
    if isinstance(entry, IpRange):
        return f"{entry.start}-{entry.end}"
    return str(entry) if entry.network.prefixlen != entry.max_prefixlen else str(entry.ip)

