"""``check``'s warnings: what loads and compiles but is almost certainly not what the
operator meant. Pure: a :class:`PveConfig` in, diagnostics out.

Every warning is certain, never a heuristic guess: a rule is reported as shadowed only
when an earlier rule of the same chain with a verdict matches every packet it does
(:mod:`.coverage`), as never matching only when no address family fits all its
conditions. Rules the compiler skips (their error is reported already) are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from proxmox_fw.compile.ipsets import Entry, sdn_entries
from proxmox_fw.compile.refs import RefScope
from proxmox_fw.diagnostics import Diagnostic, Diagnostics, Severity
from proxmox_fw.model import (
    AliasRef,
    Direction,
    Family,
    Ipset,
    IpsetRef,
    PveConfig,
    Rule,
    Verdict,
    entry_family,
)
from proxmox_fw.tools.coverage import (
    Interval,
    RuleMatch,
    entry_interval,
    ip_network_text,
    part_family,
    proto_parts,
    rule_match,
)

_FAMILY_WORD = {Family.V4: "IPv4", Family.V6: "IPv6"}
_IPFILTER_RE = re.compile(r"ipfilter-net\d+")
# host.fw options whose values the Proxmox VE API refuses outside these bounds.
API_RANGES: dict[str, tuple[int, int | None]] = {
    "nf_conntrack_max": (32768, None),
    "nf_conntrack_tcp_timeout_established": (7875, None),
    "nf_conntrack_tcp_timeout_syn_recv": (30, 60),
}


@dataclass(frozen=True, slots=True)
class RuleList:
    """The rules of one file or security group, in order, and the scope they resolve in;
    each direction of it becomes one chain."""

    rules: list[Rule]
    scope: RefScope


@dataclass(slots=True)
class _Sets:
    """Each resolvable ipset's match entries by family (for 'empty' and 'family' checks)."""

    families: dict[str, set[Family]] = field(default_factory=dict)  # base → families

    def add(self, base: str, fams: Iterable[Family]) -> None:
        self.families.setdefault(base, set()).update(fams)


def lint_config(cfg: PveConfig, skipped: set[tuple[str, int]]) -> list[Diagnostic]:
    """The warnings for ``cfg``; ``skipped`` holds the ``(file, line)`` of objects the
    parser or compiler already reported as errors."""
    out = Diagnostics()
    sdn = sdn_entries(cfg.sdn, cfg.ipam)
    dc = RefScope(cfg.cluster, sdn_sets=frozenset(sdn))
    lists = list(_rule_lists(cfg, dc))
    sets = _set_families(cfg, dc, sdn)
    _unused(cfg, dc, lists, out)
    _nomatch(cfg, dc, out)
    for rl in lists:
        _shadowed(rl, skipped, out)
        for rule in rl.rules:
            if rule.enabled and rule.kind != "group" and _where(rule) not in skipped:
                _never_matches(rule, rl.scope, sets, out)
    _options(cfg, out)
    return list(out)


def _where(rule: Rule) -> tuple[str, int]:
    return rule.origin.file, rule.origin.line


def _guest_scopes(cfg: PveConfig, dc: RefScope) -> Iterator[tuple[int, RefScope]]:
    for vmid in sorted(cfg.guests):
        fw = cfg.guests[vmid].fw
        if fw.present:
            yield vmid, RefScope(cfg.cluster, fw, vmid, dc.sdn_sets)


def _rule_lists(cfg: PveConfig, dc: RefScope) -> Iterator[RuleList]:
    yield RuleList(cfg.cluster.rules, dc)
    yield RuleList(cfg.host.rules, dc)
    for group in cfg.cluster.groups.values():
        yield RuleList(group.rules, dc)
    for _vmid, scope in _guest_scopes(cfg, dc):
        assert scope.guest is not None
        yield RuleList(scope.guest.rules, scope)
    for name in sorted(cfg.vnets):
        yield RuleList(cfg.vnets[name].rules, dc)


# --- unused aliases, ipsets, groups ----------------------------------------------------


def _unused(cfg: PveConfig, dc: RefScope, lists: list[RuleList], out: Diagnostics) -> None:
    used_aliases: set[tuple[str, int]] = set()
    used_sets: set[str] = set()
    used_groups: set[str] = set()

    def use_alias(ref: AliasRef, scope: RefScope) -> None:
        alias = scope.alias(ref)
        if alias is not None:
            used_aliases.add((alias.origin.file, alias.origin.line))

    for rl in lists:
        for rule in rl.rules:
            if rule.kind == "group" and rule.group:
                used_groups.add(rule.group.lower())
            for m in (rule.source, rule.dest):
                if isinstance(m, AliasRef):
                    use_alias(m, rl.scope)
                elif isinstance(m, IpsetRef):
                    resolved = rl.scope.ipset(m)
                    if resolved is not None:
                        used_sets.add(resolved.base)
    ipset_scopes: list[tuple[dict[str, Ipset], RefScope, str]] = [
        (cfg.cluster.ipsets, dc, "dc")]
    for vmid, scope in _guest_scopes(cfg, dc):
        assert scope.guest is not None
        ipset_scopes.append((scope.guest.ipsets, scope, f"guest-{vmid}"))
    for ipsets, scope, _ in ipset_scopes:
        for ipset in ipsets.values():
            for e in ipset.entries:
                if isinstance(e.address, AliasRef):
                    use_alias(e.address, scope)

    aliases = list(cfg.cluster.aliases.values())
    for _vmid, scope in _guest_scopes(cfg, dc):
        assert scope.guest is not None
        aliases += scope.guest.aliases.values()
    for alias in aliases:
        if alias.name == "local_network" and alias.origin.file == cfg.cluster.file:
            continue  # used by the firewall itself (admin guide §13.5.1)
        if (alias.origin.file, alias.origin.line) not in used_aliases:
            out.warning(alias.origin.file, alias.origin.line,
                        f"alias '{alias.name}' is not used by any rule or ipset")
    for ipsets, _scope, prefix in ipset_scopes:
        for key, ipset in ipsets.items():
            if prefix == "dc" and key in ("management", "blacklist"):
                continue  # used by the firewall itself (admin guide §13.6.1, §13.6.2)
            if prefix != "dc" and _IPFILTER_RE.fullmatch(key):
                continue  # the NIC's IP filter (admin guide §13.6.3)
            if f"{prefix}/{key}" not in used_sets:
                out.warning(ipset.origin.file, ipset.origin.line,
                            f"ipset '{ipset.name}' is not used by any rule")
    for key, group in cfg.cluster.groups.items():
        if key not in used_groups:
            out.warning(group.origin.file, group.origin.line,
                        f"security group '{group.name}' is not used by any rule")


# --- ipset contents --------------------------------------------------------------------


def _resolved(ipset: Ipset, scope: RefScope) -> Iterator[tuple[int, bool, Family, Interval, str]]:
    """(line, nomatch, family, interval, text) of each entry whose alias resolves."""
    for e in ipset.entries:
        addr = e.address
        if isinstance(addr, AliasRef):
            alias = scope.alias(addr)
            if alias is None:
                continue  # reported by the compiler
            fam, iv = entry_interval(alias.cidr)
            text = str(addr)
        else:
            fam, iv = entry_interval(addr)
            text = ip_network_text(addr)
        yield e.origin.line, e.nomatch, fam, iv, text


def _set_families(cfg: PveConfig, dc: RefScope, sdn: dict[str, list[Entry]]) -> _Sets:
    sets = _Sets()
    for key, ipset in cfg.cluster.ipsets.items():
        if key != "management":  # holds the local network too
            sets.add(f"dc/{key}", (f for _, neg, f, _, _ in _resolved(ipset, dc) if not neg))
    if "blacklist" not in cfg.cluster.ipsets:
        sets.add("dc/blacklist", ())
    for _vmid, scope in _guest_scopes(cfg, dc):
        assert scope.guest is not None
        for key, ipset in scope.guest.ipsets.items():
            if not _IPFILTER_RE.fullmatch(key):
                sets.add(f"guest-{scope.vmid}/{key}",
                         (f for _, neg, f, _, _ in _resolved(ipset, scope) if not neg))
    for key, entries in sdn.items():
        sets.add(f"sdn/{key}", (entry_family(e) for e, neg in entries if not neg))
    return sets


def _nomatch(cfg: PveConfig, dc: RefScope, out: Diagnostics) -> None:
    """A ``!`` entry matters only where it is the longest prefix and the next longer one
    around it is a match entry (the longest prefix decides, as in pve-firewall's
    ``hash:net`` sets): without a match entry around it, or inside another ``!`` entry,
    it takes out nothing."""
    scoped: list[tuple[Ipset, RefScope]] = [(s, dc) for s in cfg.cluster.ipsets.values()]
    for _vmid, scope in _guest_scopes(cfg, dc):
        assert scope.guest is not None
        scoped += [(s, scope) for s in scope.guest.ipsets.values()]
    for ipset, scope in scoped:
        if ipset.name.lower() == "management" or not any(e.nomatch for e in ipset.entries):
            continue  # (management: the local network joins it at compile time)
        entries = list(_resolved(ipset, scope))
        # (family, prefix length, network address) → (nomatch, line) of the first entry
        blocks: dict[tuple[Family, int, int], tuple[bool, int]] = {}
        for line, neg, fam, (lo, hi), _ in entries:
            blocks.setdefault((fam, _prefixlen(fam, lo, hi), lo), (neg, line))
        for line, neg, fam, (lo, hi), text in entries:
            if not neg or blocks[(fam, _prefixlen(fam, lo, hi), lo)] != (neg, line):
                continue  # a repeated network: the compiler warns about it
            outer = _enclosing(blocks, fam, lo, _prefixlen(fam, lo, hi))
            if outer is None:
                why = f"no entry of ipset '{ipset.name}' contains it"
            elif outer[0]:
                why = f"it lies inside the nomatch entry of line {outer[1]}"
            else:
                continue
            out.warning(ipset.origin.file, line, f"nomatch entry '{text}' changes nothing: {why}")


_BITS = {Family.V4: 32, Family.V6: 128}


def _prefixlen(fam: Family, lo: int, hi: int) -> int:
    return _BITS[fam] - (hi - lo + 1).bit_length() + 1


def _enclosing(blocks: dict[tuple[Family, int, int], tuple[bool, int]], fam: Family, lo: int,
               plen: int) -> tuple[bool, int] | None:  # fmt: skip
    """The entry of the longest prefix strictly containing the block ``lo``/``plen``."""
    bits = _BITS[fam]
    for p in range(plen - 1, -1, -1):
        net = lo & ~((1 << (bits - p)) - 1)
        hit = blocks.get((fam, p, net))
        if hit is not None:
            return hit
    return None


# --- rules -----------------------------------------------------------------------------


def _shadowed(rl: RuleList, skipped: set[tuple[str, int]], out: Diagnostics) -> None:
    """Per direction (one chain each): a rule whose every packet an earlier rule with a
    verdict takes first never decides anything."""
    earlier: dict[Direction, list[tuple[Rule, RuleMatch]]] = {d: [] for d in Direction}
    for rule in rl.rules:
        if not rule.enabled or rule.kind == "group" or _where(rule) in skipped:
            continue
        assert rule.direction is not None
        m = rule_match(rule, rl.scope)
        if m is None:
            continue
        for prev, pm in earlier[rule.direction]:
            if pm.covers(m):
                if m.covers(pm):
                    msg = (f"rule never matches: the rule on line {prev.origin.line} matches "
                           "the same packets and comes first")
                else:
                    msg = (f"rule never matches: the rule on line {prev.origin.line} "
                           f"({prev.action}) matches every packet it does and comes first")
                out.warning(rule.origin.file, rule.origin.line, msg)
                break
        earlier[rule.direction].append((rule, m))


def _never_matches(rule: Rule, scope: RefScope, sets: _Sets, out: Diagnostics) -> None:
    """A rule using an ipset with no entry of any family it could match."""
    parts = proto_parts(rule)
    if parts is None:
        return
    fams: set[Family] = set()
    for p in parts:
        pf = part_family(p)
        fams |= {pf} if pf is not None else {Family.V4, Family.V6}
    for m in (rule.source, rule.dest):
        if isinstance(m, AliasRef):
            alias = scope.alias(m)
            if alias is not None:
                fams &= {entry_interval(alias.cidr)[0]}
        elif m is not None and not isinstance(m, IpsetRef):
            fams &= {m.family}
    for m in (rule.source, rule.dest):
        if not isinstance(m, IpsetRef):
            continue
        resolved = scope.ipset(m)
        have = sets.families.get(resolved.base) if resolved is not None else None
        if have is None:
            continue  # unknown contents (management) or unresolved (an error already)
        if not have:
            out.warning(rule.origin.file, rule.origin.line,
                        f"rule can never match: ipset '{m}' is empty")
            return
        if fams and not fams & have:
            need = " or ".join(_FAMILY_WORD[f] for f in sorted(fams))
            out.warning(rule.origin.file, rule.origin.line,
                        f"rule can never match: ipset '{m}' has no {need} entries")
            return
        fams &= have


# --- options ---------------------------------------------------------------------------


def _options(cfg: PveConfig, out: Diagnostics) -> None:
    cluster = cfg.cluster
    if cluster.options.policy_in is Verdict.ACCEPT:
        out.warning(cluster.file, cluster.option_lines.get("policy_in"),
                    "policy_in: ACCEPT lets every packet that no rule drops reach the host "
                    "(admin guide §13.8.1)")
    host = cfg.host
    for key, (lo, hi) in API_RANGES.items():
        value = getattr(host.options, key)
        if value is None or (value >= lo and (hi is None or value <= hi)):
            continue
        bound = f"{lo} or more" if hi is None else f"{lo} to {hi}"
        out.warning(host.file, host.option_lines.get(key),
                    f"{key}: {value} is outside what the Proxmox VE API accepts ({bound})")
    # FORWARD REJECT and a vnet's policy_forward: REJECT are said by the parser at their
    # line (parse/pve_refusals.py), for every command.


def errors_at(diags: Iterable[Diagnostic]) -> set[tuple[str, int]]:
    """Where errors were reported: those objects were skipped."""
    return {(d.file, d.line) for d in diags if d.severity is Severity.ERROR and d.line is not None}
