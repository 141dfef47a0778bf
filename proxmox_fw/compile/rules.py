"""One config rule → nft rules.

A rule may become several nft rules: one per macro entry and one per address family an
ipset reference spans. Combinations whose families contradict each other are left out;
a rule left with none is reported and skipped, never widened.

A broken rule never opens anything (issue 10): an ACCEPT rule that cannot be compiled is
skipped (it accepts nothing). A DROP or REJECT rule whose reference cannot be resolved
(alias, ipset, interface, macro) is compiled *without* the broken condition, so it blocks
at least everything it was meant to; a GROUP rule naming a missing security group drops
everything that reaches it. Management access is accepted before any user rule (the
skeleton's ``default-in``), so it survives either way.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from proxmox_fw.compile.loglevel import log_statements
from proxmox_fw.compile.macros import MacroPart, macro_parts
from proxmox_fw.compile.refs import RefScope
from proxmox_fw.diagnostics import Diagnostics, RuleError
from proxmox_fw.model import (
    AddressMatch,
    AliasRef,
    Direction,
    Family,
    IcmpType,
    IpList,
    IpRange,
    LogLevel,
    LogRateLimit,
    PortRange,
    Protocol,
    Rule,
    Verdict,
    entry_family,
    family_of,
)
from proxmox_fw.nft import expr as x
from proxmox_fw.nft.objects import Json
from proxmox_fw.nft.objects import Rule as NftRule

Alt = tuple[Family | None, list[Json]]  # (family the matches pin, or None; matches)


@dataclass(slots=True)
class RuleTarget:
    """Where a rule lands and how its table spells things."""

    chain: str
    direction: Direction
    scope: RefScope
    ratelimit: LogRateLimit
    vmid: int = 0
    # Interface key for ``-i``: host IN/FORWARD → iifname, host OUT → oifname;
    # guest IN → oifname (traffic leaves the bridge port towards the guest), OUT → iifname.
    iface_key: str = "iifname"
    # Maps a config interface name to a kernel name (netN → tap100i0, altname → name).
    iface_map: Callable[[str], str | None] = lambda name: name
    reject: Callable[[], Json] = field(default=lambda: x.jump("do-reject"))
    # None: plain accept; a guest with ``ips: 1`` hands accepted traffic to NFQUEUE instead.
    accept: Callable[[], Json] | None = None
    groups: frozenset[str] = frozenset()
    group_chain: Callable[[str, Direction], str] = field(
        default=lambda name, d: f"group-{name}-{d.value}"
    )


def verdict_stmt(verdict: Verdict, tgt: RuleTarget) -> Json:
    if verdict is Verdict.ACCEPT:
        return tgt.accept() if tgt.accept else x.accept()
    if verdict is Verdict.DROP:
        return x.drop()
    return tgt.reject()


def compile_rule(rule: Rule, tgt: RuleTarget, diags: Diagnostics) -> list[NftRule]:
    """All nft rules for ``rule`` in ``tgt``; errors become one diagnostic each."""
    if not rule.enabled:
        return []
    try:
        return _compile(rule, tgt)
    except RuleError as err:
        where = (rule.origin.file, rule.origin.line)
        if rule.kind != "group" and rule.action is Verdict.ACCEPT:
            diags.error(*where, f"rule skipped: {err}")
            return []
        try:
            closed = _compile(rule, tgt, fail_closed=True)
        except RuleError:  # what is left contradicts itself: it matches nothing
            diags.error(*where, f"rule skipped: {err}")
            return []
        diags.error(*where, f"{err}; {_FAIL_CLOSED[rule.kind == 'group']}")
        return closed


_FAIL_CLOSED = {
    False: "the rule applies without that condition until it is fixed (fail-closed: it "
           "blocks more, never less)",
    True: "everything this rule reaches is dropped until it is fixed (fail-closed)",
}


def _compile(rule: Rule, tgt: RuleTarget, fail_closed: bool = False) -> list[NftRule]:
    """``fail_closed``: an unresolvable condition matches anything (and a missing group
    drops everything), instead of raising."""
    origin = str(rule.origin)
    # A GROUP applies in every direction; any other rule only in its own, and is checked
    # (its interface resolved) only there, so one bad rule gives one diagnostic.
    if rule.kind != "group" and rule.direction is not tgt.direction:
        return []
    head: list[Json] = []
    if rule.iface:
        name = tgt.iface_map(rule.iface)
        if name is not None:
            head.append(x.match(x.meta(tgt.iface_key), name))
        elif not fail_closed:
            raise RuleError(f"interface '{rule.iface}' does not exist here")

    if rule.kind == "group":
        group = (rule.group or "").lower()
        if group not in tgt.groups and fail_closed:
            return [NftRule([*head, x.counter(), x.drop()], origin)]
        if group not in tgt.groups:
            raise RuleError(f"security group '{rule.group}' is not defined")
        return [NftRule([*head, x.jump(tgt.group_chain(group, tgt.direction))], origin)]

    assert rule.action is not None
    alternatives = _combine(
        [
            _proto_alts(rule, fail_closed),
            _addr_alts(rule.source, "saddr", tgt.scope, fail_closed),
            _addr_alts(rule.dest, "daddr", tgt.scope, fail_closed),
        ]
    )
    if not alternatives:
        raise RuleError("its address families contradict each other, it can match nothing")

    verdict = verdict_stmt(rule.action, tgt)
    level = rule.log or LogLevel.NOLOG
    out: list[NftRule] = []
    for matches in alternatives:
        body = head + matches
        logs = log_statements(tgt.ratelimit, tgt.vmid, level, tgt.chain, rule.action)
        if logs:
            out.append(NftRule(body + logs, origin))
        out.append(NftRule([*body, x.counter(), verdict], origin))
    return out


def _combine(parts: Sequence[list[Alt]]) -> list[list[Json]]:
    """Cartesian product of the alternatives, keeping combinations of one family."""
    result: list[list[Json]] = []
    for combo in itertools.product(*parts):
        fams = {f for f, _ in combo if f is not None}
        if len(fams) > 1:
            continue
        result.append([m for _, ms in combo for m in ms])
    return result


# --- protocol, ports, ICMP -----------------------------------------------------------


def _proto_alts(rule: Rule, fail_closed: bool = False) -> list[Alt]:
    if rule.macro:
        parts = macro_parts(rule.macro)
        if parts is None and fail_closed:
            return [(None, [])]
        if parts is None:
            raise RuleError(f"unknown macro '{rule.macro}'")
        return [_part_alt(p, rule) for p in parts]
    if rule.proto is None:
        return [(None, [])]
    return [_part_alt(MacroPart(rule.proto, rule.dport, rule.sport, rule.icmp_type), rule)]


def _part_alt(part: MacroPart, rule: Rule) -> Alt:
    """Matches of one protocol part; the rule's own ports fill in what a macro leaves open."""
    dport = part.dport if part.dport is not None else rule.dport
    sport = part.sport if part.sport is not None else rule.sport
    icmp = part.icmp_type if part.icmp_type is not None else rule.icmp_type
    return _proto_matches(part.proto, dport, sport, icmp)


def _proto_matches(
    proto: Protocol,
    dport: list[PortRange] | None,
    sport: list[PortRange] | None,
    icmp: IcmpType | None,
) -> Alt:
    family: Family | None = None
    if proto.number == 1:
        family = Family.V4
    elif proto.number == 58:
        family = Family.V6
    if proto.is_icmp and icmp is not None and icmp.type is not None:
        p = "icmpv6" if proto.number == 58 else "icmp"
        ms = [x.match(x.payload(p, "type"), icmp.type)]
        if icmp.code is not None:
            ms.append(x.match(x.payload(p, "code"), icmp.code))
        return family, ms
    l4: Json = _l4name(proto)
    ms = [x.match(x.meta("l4proto"), l4)]
    if sport:
        ms.append(x.match(x.payload("th", "sport"), _ports(sport)))
    if dport:
        ms.append(x.match(x.payload("th", "dport"), _ports(dport)))
    return family, ms


_L4_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp", 132: "sctp", 33: "dccp",
             136: "udplite"}


def _l4name(proto: Protocol) -> Json:
    return _L4_NAMES.get(proto.number, proto.number)


def _ports(ports: list[PortRange]) -> Json:
    items: list[Json] = [p.lo if p.lo == p.hi else x.range_(p.lo, p.hi) for p in ports]
    return items[0] if len(items) == 1 else x.set_literal(items)


# --- addresses -----------------------------------------------------------------------


def _addr_alts(m: AddressMatch | None, field_: str, scope: RefScope,
               fail_closed: bool = False) -> list[Alt]:
    if m is None or (fail_closed and _unresolved(m, scope)):
        return [(None, [])]
    if isinstance(m, IpList):
        fam = m.family
        return [(fam, [x.match(x.payload(fam.value, field_), _iplist(m))])]
    if isinstance(m, AliasRef):
        alias = scope.alias(m)
        if alias is None:
            raise RuleError(f"no such alias '{m}'")
        fam = family_of(alias.cidr)
        return [(fam, [x.match(x.payload(fam.value, field_), x.network(alias.cidr))])]
    resolved = scope.ipset(m)
    if resolved is None:
        raise RuleError(scope.ipset_problem(m) or f"no such ipset '{m}'")
    alts: list[Alt] = []
    for fam in (Family.V4, Family.V6):
        v6 = fam is Family.V6
        left = x.payload(fam.value, field_)
        alts.append((fam, [
            x.match(left, x.set_ref(resolved.name(v6))),
            x.match(left, x.set_ref(resolved.name(v6, nomatch=True)), "!="),
        ]))
    return alts


def _unresolved(m: AddressMatch, scope: RefScope) -> bool:
    if isinstance(m, IpList):
        return False
    if isinstance(m, AliasRef):
        return scope.alias(m) is None
    return scope.ipset(m) is None


def _iplist(m: IpList) -> Json:
    items: list[Json] = []
    for e in m.entries:
        if isinstance(e, IpRange):
            items.append(x.range_(str(e.start), str(e.end)))
        else:
            items.append(x.network(e))
    assert all(entry_family(e) is m.family for e in m.entries)
    return items[0] if len(items) == 1 else x.set_literal(items)
