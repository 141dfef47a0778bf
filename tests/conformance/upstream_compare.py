"""Mechanical comparison of our ``compile`` output with upstream's, both tables.

Both sides are nft JSON command lists. Each is read into a per-table view (chains, sets,
map elements, ct helpers, rules) in which equivalent spellings coincide:

- set contents are compared as the address intervals they cover (``127.0.0.1/8`` equals
  ``127.0.0.0/8``, ``10.0.0.1/32`` equals ``10.0.0.1``);
- a rule is the *set* of its match conditions plus its statements in order, without
  ``counter``; a single-element set equals its element and ``in`` equals ``==``, while a
  JSON array (nft's bit-OR of flags) stays distinct; ICMP type names become numbers;
  ``meta l4proto``/``meta protocol``/``meta nfproto`` matches implied by a payload match of
  the same protocol are dropped (nft adds those dependencies itself);
- a ct helper's ``l3proto`` null means the table's family (nft's default).

What is left are :class:`Difference` values. The test lists the differences made on
purpose, each with its reason, and matches them exactly; see ``test_upstream_compare``.
Run ``python -m tests.conformance.upstream_compare`` for the full report.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxmox_fw.data.icmp import nft_icmp_type_name
from proxmox_fw.nft.skeleton import skeleton_table_text

Json = Any
Command = dict[str, Any]

CONFORMANCE: Path = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
TREE: Path = CONFORMANCE / "upstream-integration"
FAMILIES = ("inet", "bridge")
NOMATCH = "-nomatch"


# Equivalences applied before comparing, with why they hold; printed with the report.
NORMALIZATIONS: tuple[tuple[str, str], ...] = (
    ("set contents compared as covered address intervals",
     "nft stores intervals: host bits of a prefix, /32 vs a bare address, and how entries "
     "are split or merged do not change which packets match"),
    ("an ipset's set pair compared by what it matches: '@set' minus '@set-nomatch'",
     "rules use the two only together ('@set' and '!= @set-nomatch', or the ipfilter's two "
     "drops); ours carves the '!' entries out of the set where they decide (hash:net: the "
     "longest prefix wins) and lists them in the twin, upstream lists them as written"),
    ("rule matches compared as a set, statements in order",
     "all matches of a rule must hold; their order does not change what matches"),
    ("'counter' statements ignored",
     "our rules count packets for the operator (per-rule counters); a counter decides nothing"),
    ("'in' equals '==', a one-element set equals its element",
     "both are a lookup of the same value; a JSON array (nft's OR of flags) stays distinct, "
     "since '==' with it is an exact compare against the OR"),
    ("ICMP type names become numbers; 'ipv6-icmp' and l4proto numbers become nft names",
     "nft resolves the names to the same type numbers"),
    ("'meta l4proto/protocol/nfproto' matches implied by a payload match dropped",
     "nft adds exactly these dependencies for a payload match (icmp type, arp saddr ip, ...)"),
    ("ct helper 'l3proto' null equals the table's family",
     "nft and the kernel default an unset l3proto to the table family (inet: both)"),
    ("map elements compared as a multiset, chains and sets by name",
     "the command order inside a batch does not change the ruleset"),
)


# --- differences --------------------------------------------------------------------


@dataclass(frozen=True, order=True, slots=True)
class Difference:
    """One way our output differs from upstream's, in canonical (comparable) text."""

    family: str
    kind: str  # missing-rule, extra-rule, order, set-elements, ...
    where: str  # chain, set, map or ct helper name
    detail: str = ""

    def __str__(self) -> str:
        text = f"[{self.kind}] {self.family} {self.where}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True, slots=True)
class Deliberate:
    """A difference made on purpose, and why."""

    diff: Difference
    reason: str


@dataclass(slots=True)
class Explained:
    unexplained: list[Difference]
    explained: list[Deliberate]
    unused: list[Deliberate]  # listed but not found: the list is stale


def explain(diffs: Iterable[Difference], deliberate: Sequence[Deliberate]) -> Explained:
    """Split ``diffs`` into explained and unexplained; exact matches only."""
    by_diff = {d.diff: d for d in deliberate}
    found = set(diffs)
    return Explained(
        unexplained=sorted(d for d in found if d not in by_diff),
        explained=[d for d in deliberate if d.diff in found],
        unused=[d for d in deliberate if d.diff not in found],
    )


def format_report(result: Explained) -> str:
    lines = [f"== Normalizations: {len(NORMALIZATIONS)}"]
    lines += [f"  - {what}\n      why: {why}" for what, why in NORMALIZATIONS]
    for title, items in (
        ("UNEXPLAINED differences (bugs, or deliberate ones missing from the list)",
         [str(d) for d in result.unexplained]),
        ("Listed as deliberate but not found (stale entries)",
         [f"{d.diff}\n      reason: {d.reason}" for d in result.unused]),
        ("Deliberate differences",
         [f"{d.diff}\n      reason: {d.reason}" for d in result.explained]),
    ):
        lines.append(f"== {title}: {len(items)}")
        lines.extend(f"  - {item}" for item in items)
    return "\n".join(lines)


# --- one table, as the commands leave it --------------------------------------------


@dataclass(slots=True)
class SetView:
    type: str
    flags: tuple[str, ...]
    auto_merge: bool
    elements: list[Json] = field(default_factory=list)

    def props(self) -> str:
        return f"type {self.type} flags {','.join(self.flags)} auto-merge {self.auto_merge}"


@dataclass(slots=True)
class TableView:
    created_chains: set[str] = field(default_factory=set)
    flushed_chains: set[str] = field(default_factory=set)
    deleted_chains: list[str] = field(default_factory=list)
    gone_chains: set[str] = field(default_factory=set)  # deleted and not added back
    flushed_maps: set[str] = field(default_factory=set)
    sets: dict[str, SetView] = field(default_factory=dict)
    map_elements: dict[str, Counter[str]] = field(default_factory=dict)
    ct_helpers: dict[str, str] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)
    deleted: bool = False  # the table is deleted
    unknown: list[str] = field(default_factory=list)  # commands this reader cannot place

    def chains(self, skeleton: set[str]) -> set[str]:
        """Chains that exist once the commands ran on top of the skeleton."""
        return (self.created_chains | self.flushed_chains | skeleton) - self.gone_chains


def read_tables(commands: Iterable[Command]) -> dict[str, TableView]:
    """Per table family, the state the commands leave (what a compare needs of it)."""
    views = {family: TableView() for family in FAMILIES}
    for cmd in commands:
        ((verb, obj),) = cmd.items()
        ((kind, body),) = obj.items()
        view = views.setdefault(body.get("family", "?"), TableView())
        _read(view, verb, kind, body)
    return views


def _read(view: TableView, verb: str, kind: str, body: dict[str, Any]) -> None:
    name = body.get("name", "")
    if (verb, kind) == ("add", "chain"):
        view.created_chains.add(name)
        view.gone_chains.discard(name)
    elif (verb, kind) == ("flush", "chain"):
        view.flushed_chains.add(name)
        view.gone_chains.discard(name)
    elif (verb, kind) == ("delete", "chain"):
        view.deleted_chains.append(name)
        view.gone_chains.add(name)
    elif (verb, kind) == ("flush", "map"):
        view.flushed_maps.add(name)
    elif (verb, kind) == ("add", "set"):
        view.sets[name] = SetView(str(body.get("type")), tuple(body.get("flags", ())),
                                  bool(body.get("auto-merge", False)))
    elif (verb, kind) == ("flush", "set"):
        pass  # a set is compared by its final contents
    elif (verb, kind) == ("add", "element"):
        _read_elements(view, name, body["elem"])
    elif (verb, kind) == ("add", "ct helper"):
        l3 = body.get("l3proto") or body["family"]  # unset: the table's family
        view.ct_helpers[name] = f"type {body['type']} protocol {body['protocol']} l3proto {l3}"
    elif (verb, kind) == ("add", "rule"):
        view.rules.setdefault(body["chain"], []).append(rule_text(body["expr"]))
    elif verb == "delete" and kind == "table":
        view.deleted = True
    elif (verb, kind) == ("add", "table"):
        pass
    else:
        view.unknown.append(f"{verb} {kind} {json.dumps(body, sort_keys=True)}")


def _read_elements(view: TableView, name: str, elems: list[Json]) -> None:
    if elems and all(isinstance(e, list) and len(e) == 2 for e in elems):
        counter = view.map_elements.setdefault(name, Counter())
        counter.update(f"{expr_text(k)} : {stmt_text(v)}" for k, v in elems)
    elif name in view.sets:
        view.sets[name].elements.extend(elems)
    else:
        view.unknown.append(f"add element {name}: no such set or map")


# --- canonical text of expressions and statements -----------------------------------

_L4_NAMES = {"ipv6-icmp": "icmpv6", "1": "icmp", "6": "tcp", "17": "udp", "58": "icmpv6",
             "132": "sctp", "33": "dccp", "136": "udplite"}
_ICMP_NUMBERS = {
    v6: {nft_icmp_type_name(t, v6): str(t) for t in range(256) if nft_icmp_type_name(t, v6)}
    for v6 in (False, True)
}
_L4_PAYLOADS = {"tcp", "udp", "sctp", "dccp", "udplite", "icmp", "icmpv6"}
_L3_OF_PAYLOAD = {"ip": ("ip", "ipv4"), "icmp": ("ip", "ipv4"), "ip6": ("ip6", "ipv6"),
                  "icmpv6": ("ip6", "ipv6"), "arp": ("arp", None)}


def _address(text: str) -> str:
    """An address or CIDR in canonical form (network, no /32 or /128); else unchanged."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return text
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def expr_text(e: Json, left: str = "") -> str:
    """Canonical text of an expression; ``left`` is the matched key, for value names."""
    if isinstance(e, bool) or e is None:
        return json.dumps(e)
    if isinstance(e, int):
        return str(e)
    if isinstance(e, str):
        return _value_text(e, left)
    if isinstance(e, list):  # a JSON array: nft ORs the flags
        return "[" + ", ".join(sorted(expr_text(i, left) for i in e)) + "]"
    ((key, val),) = e.items()
    if key == "meta":
        return f"meta {val['key']}"
    if key == "payload":
        return f"{val['protocol']} {val['field']}"
    if key == "ct":
        fam = f"[{val['family']}]" if "family" in val else ""
        return f"ct {val['key']}{fam}"
    if key == "prefix":
        return _address(f"{val['addr']}/{val['len']}")
    if key == "range":
        return "-".join(expr_text(v, left) for v in val)
    if key == "set":
        items = sorted({expr_text(i, left) for i in val})
        return items[0] if len(items) == 1 else "{" + ", ".join(items) + "}"
    if key == "concat":
        return " . ".join(expr_text(p) for p in val)
    return json.dumps(e, sort_keys=True)


def _value_text(value: str, left: str) -> str:
    if value.startswith("@"):
        return value
    if left in ("icmp type", "icmpv6 type"):
        return _ICMP_NUMBERS[left == "icmpv6 type"].get(value, value)
    if left == "meta l4proto":
        return _L4_NAMES.get(value, value)
    return _address(value)


def _match_parts(m: dict[str, Any]) -> tuple[str, str, str]:
    left = expr_text(m["left"])
    op = "==" if m["op"] in ("==", "in") else m["op"]
    right = m["right"]
    if left == "meta l4proto" and isinstance(right, int):
        right = str(right)
    return left, op, expr_text(right, left)


def stmt_text(s: Json) -> str:
    ((key, val),) = s.items()
    if key in ("accept", "drop", "return", "continue"):
        return str(key)
    if key in ("jump", "goto"):
        return f"{key} {val['target']}"
    if key == "log":
        extra = "".join(f" {k} {v}" for k, v in sorted(val.items()) if k != "prefix")
        return f"log prefix {json.dumps(val.get('prefix', ''))}{extra}"
    if key == "limit":
        over = "over " if val.get("inv") else ""
        return f"limit rate {over}{val['rate']}/{val.get('per', 'second')} burst {val.get('burst')}"
    if key == "mangle":
        return f"{expr_text(val['key'])} set {expr_text(val['value'])}"
    if key == "ct helper":
        return f'ct helper set "{val}"'
    if key == "set":
        inner = val.get("stmt", [])
        stmts = (" ".join(stmt_text(i) for i in inner) if isinstance(inner, list)
                 else f"stmt-as-object({stmt_text(inner)})")
        return f"{val['op']} {val['set']} {{ {expr_text(val['elem'])} {stmts} }}"
    if key == "queue":
        flags = ",".join(sorted(val.get("flags", [])))
        return f"queue num {expr_text(val['num'])}" + (f" flags {flags}" if flags else "")
    return json.dumps(s, sort_keys=True)


def rule_text(expr: list[Json]) -> str:
    """A rule as the sorted set of its matches, then its statements in order."""
    matches = [_match_parts(s["match"]) for s in expr if "match" in s]
    stmts = [stmt_text(s) for s in expr if "match" not in s and "counter" not in s]
    kept = _without_dependencies(matches)
    return " ".join([*sorted({f"{lft} {op} {r}" for lft, op, r in kept}), *stmts])


def _without_dependencies(matches: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Drop protocol matches that a payload match of the same protocol implies."""
    payloads = {left.split(" ")[0] for left, _, _ in matches
                if not left.startswith(("meta ", "ct ", "@"))}
    implied: set[tuple[str, str, str]] = set()
    for proto in payloads:
        if proto in _L4_PAYLOADS:
            implied.add(("meta l4proto", "==", proto))
        if proto in _L3_OF_PAYLOAD:
            eth, nf = _L3_OF_PAYLOAD[proto]
            implied.add(("meta protocol", "==", eth))
            if nf:
                implied.add(("meta nfproto", "==", nf))
    return [m for m in matches if m not in implied]


# --- set contents as intervals -------------------------------------------------------

_Interval = tuple[int, int, int]  # version, low, high


def _interval(e: Json) -> _Interval:
    if isinstance(e, dict) and "range" in e:
        lo, hi = (ipaddress.ip_address(v) for v in e["range"])
        return lo.version, int(lo), int(hi)
    text = f"{e['prefix']['addr']}/{e['prefix']['len']}" if isinstance(e, dict) else str(e)
    net = ipaddress.ip_network(text, strict=False)
    return net.version, int(net.network_address), int(net.broadcast_address)


def _merged(elements: Iterable[Json]) -> list[_Interval]:
    merged: list[list[int]] = []
    for version, lo, hi in sorted(_interval(e) for e in elements):
        if merged and merged[-1][0] == version and lo <= merged[-1][2] + 1:
            merged[-1][2] = max(merged[-1][2], hi)
        else:
            merged.append([version, lo, hi])
    return [(v, lo, hi) for v, lo, hi in merged]


def _minus(keep: list[_Interval], drop: list[_Interval]) -> list[_Interval]:
    """The addresses of ``keep`` not in ``drop`` (both merged and sorted)."""
    out: list[_Interval] = []
    for version, lo, hi in keep:
        for v, d_lo, d_hi in drop:
            if v != version or d_hi < lo or d_lo > hi:
                continue
            if d_lo > lo:
                out.append((version, lo, d_lo - 1))
            lo = d_hi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((version, lo, hi))
    return out


def covered(elements: Iterable[Json], minus: Iterable[Json] = ()) -> list[str]:
    """The addresses a set covers (without those of ``minus``), merged, as CIDRs or
    ranges."""
    out: list[str] = []
    for version, lo, hi in _minus(_merged(elements), _merged(minus)):
        first, last = ipaddress.ip_address(lo), ipaddress.ip_address(hi)
        if version == 6:
            first, last = ipaddress.IPv6Address(lo), ipaddress.IPv6Address(hi)
        nets = list(ipaddress.summarize_address_range(first, last))
        out.append(_address(str(nets[0])) if len(nets) == 1 else f"{first}-{last}")
    return out


# --- the comparison ------------------------------------------------------------------


def skeleton_chains(family: str) -> set[str]:
    """Chains our bundled skeleton declares for ``family``'s table."""
    text = skeleton_table_text(family)
    names = set(re.findall(r"^\s*chain (\S+) \{", text, re.MULTILINE))
    names |= set(re.findall(r"^add chain \S+ \S+ (\S+)", text, re.MULTILINE))
    return names


def compare(
    upstream: Sequence[Command],
    ours: Sequence[Command],
    our_skeleton: dict[str, set[str]] | None = None,
) -> list[Difference]:
    """Every difference between the two command lists, table by table."""
    up_views, our_views = read_tables(upstream), read_tables(ours)
    diffs: list[Difference] = []
    for family in sorted(set(up_views) | set(our_views)):
        skel = (our_skeleton or {}).get(family, set())
        diffs += _compare_table(family, up_views.get(family, TableView()),
                                our_views.get(family, TableView()), skel)
    return sorted(set(diffs))


def _compare_table(fam: str, up: TableView, ours: TableView, skel: set[str]) -> list[Difference]:
    diffs: list[Difference] = []
    if up.deleted != ours.deleted:
        diffs.append(Difference(fam, "table-deleted", "table",
                                f"upstream {up.deleted}, ours {ours.deleted}"))
    diffs += [Difference(fam, "unreadable-command", "-", u) for u in up.unknown + ours.unknown]
    diffs += _compare_chains(fam, up, ours, skel)
    diffs += _compare_sets(fam, up, ours)
    diffs += _compare_maps(fam, up, ours)
    diffs += _compare_helpers(fam, up, ours)
    for chain in sorted(set(up.rules) | set(ours.rules)):
        diffs += _compare_rules(fam, chain, up.rules.get(chain, []), ours.rules.get(chain, []))
    return diffs


def _compare_chains(fam: str, up: TableView, ours: TableView, skel: set[str]) -> list[Difference]:
    up_del, our_del = Counter(up.deleted_chains), Counter(ours.deleted_chains)
    diffs = [Difference(fam, "delete-chain", n) for n in sorted((up_del - our_del).elements())]
    diffs += [Difference(fam, "extra-delete-chain", n)
              for n in sorted((our_del - up_del).elements())]
    our_chains = ours.chains(skel)
    up_chains = up.created_chains | up.flushed_chains
    diffs += [Difference(fam, "missing-chain", c) for c in up_chains - our_chains]
    diffs += [Difference(fam, "extra-chain", c)
              for c in (ours.created_chains | ours.flushed_chains) - up_chains]
    refilled = ours.flushed_chains | ours.created_chains
    diffs += [Difference(fam, "not-flushed", c) for c in up.flushed_chains - refilled]
    diffs += [Difference(fam, "map-not-flushed", m) for m in up.flushed_maps - ours.flushed_maps]
    diffs += [Difference(fam, "rules-in-unknown-chain", c) for c in set(ours.rules) - our_chains]
    targets = [(chain, t) for chain, rules in ours.rules.items() for r in rules
               for t in re.findall(r"\b(?:jump|goto) (\S+)", r)]
    targets += [(m, t) for m, els in ours.map_elements.items() for e in els
                for t in re.findall(r"\b(?:jump|goto) (\S+)", e)]
    diffs += [Difference(fam, "dangling-jump", where, target)
              for where, target in targets if target not in our_chains]
    return diffs


def _compare_sets(fam: str, up: TableView, ours: TableView) -> list[Difference]:
    diffs: list[Difference] = []
    for name in sorted(set(up.sets) | set(ours.sets)):
        a, b = up.sets.get(name), ours.sets.get(name)
        if a is None:
            diffs.append(Difference(fam, "extra-set", name))
            continue
        if b is None:
            diffs.append(Difference(fam, "missing-set", name))
            continue
        if a.props() != b.props():
            diffs.append(Difference(fam, "set-properties", name,
                                    f"upstream {a.props()}; ours {b.props()}"))
        if name.endswith(NOMATCH) and name.removesuffix(NOMATCH) in up.sets:
            continue  # compared with its set, below
        twin_a, twin_b = up.sets.get(name + NOMATCH), ours.sets.get(name + NOMATCH)
        ca = covered(a.elements, twin_a.elements if twin_a else ())
        cb = covered(b.elements, twin_b.elements if twin_b else ())
        if ca != cb:
            only_up = [x for x in ca if x not in cb]
            only_ours = [x for x in cb if x not in ca]
            diffs.append(Difference(fam, "set-elements", name,
                                    f"only upstream {only_up}; only ours {only_ours}"))
    return diffs


def _compare_maps(fam: str, up: TableView, ours: TableView) -> list[Difference]:
    diffs: list[Difference] = []
    for name in sorted(set(up.map_elements) | set(ours.map_elements)):
        a = up.map_elements.get(name, Counter())
        b = ours.map_elements.get(name, Counter())
        diffs += [Difference(fam, "missing-map-element", name, e) for e in sorted(a - b)]
        diffs += [Difference(fam, "extra-map-element", name, e) for e in sorted(b - a)]
    return diffs


def _compare_helpers(fam: str, up: TableView, ours: TableView) -> list[Difference]:
    diffs: list[Difference] = []
    for name in sorted(set(up.ct_helpers) | set(ours.ct_helpers)):
        a, b = up.ct_helpers.get(name), ours.ct_helpers.get(name)
        if a != b:
            kind = ("missing-ct-helper" if b is None else
                    "extra-ct-helper" if a is None else "ct-helper-differs")
            diffs.append(Difference(fam, kind, name, f"upstream {a}; ours {b}"))
    return diffs


def _compare_rules(fam: str, chain: str, up: list[str], ours: list[str]) -> list[Difference]:
    a, b = Counter(up), Counter(ours)
    diffs = [Difference(fam, "missing-rule", chain, r) for r in sorted((a - b).elements())]
    diffs += [Difference(fam, "extra-rule", chain, r) for r in sorted((b - a).elements())]
    moved = _moved(up, ours, a & b)
    if moved:
        diffs.append(Difference(fam, "order", chain, "moved: " + " | ".join(moved)))
    return diffs


def _moved(up: list[str], ours: list[str], common: Counter[str]) -> list[str]:
    """Rules present on both sides whose relative order differs (outside the longest
    common subsequence), sorted."""
    u, o = _keep(up, common), _keep(ours, common)
    if u == o:
        return []
    lcs = [[0] * (len(o) + 1) for _ in range(len(u) + 1)]
    for i in range(len(u) - 1, -1, -1):
        for j in range(len(o) - 1, -1, -1):
            lcs[i][j] = (lcs[i + 1][j + 1] + 1 if u[i] == o[j]
                         else max(lcs[i + 1][j], lcs[i][j + 1]))
    kept: Counter[str] = Counter()
    i = j = 0
    while i < len(u) and j < len(o):
        if u[i] == o[j]:
            kept[u[i]] += 1
            i, j = i + 1, j + 1
        elif lcs[i + 1][j] >= lcs[i][j + 1]:
            i += 1
        else:
            j += 1
    return sorted((Counter(u) - kept).elements())


def _keep(rules: list[str], common: Counter[str]) -> list[str]:
    left = Counter(common)
    out = []
    for r in rules:
        if left[r] > 0:
            left[r] -= 1
            out.append(r)
    return out


# --- the upstream integration fixture ------------------------------------------------


def upstream_commands() -> list[Command]:
    doc = json.loads((TREE / "expected.json").read_text())
    return list(doc["nftables"] if isinstance(doc, dict) else doc)


def our_commands() -> list[Command]:
    from proxmox_fw.nft.render import render_commands
    from proxmox_fw.pipeline import compile_dir

    return render_commands(compile_dir(TREE / "pve", "pve1").ruleset)


def compare_fixture() -> list[Difference]:
    skel = {family: skeleton_chains(family) for family in FAMILIES}
    return compare(upstream_commands(), our_commands(), skel)


def main() -> None:
    """Print the full report; the package module is used so that its classes are the ones
    the test's list of deliberate differences is built from."""
    from tests.conformance import test_upstream_compare as listed
    from tests.conformance import upstream_compare as mod

    print(mod.format_report(mod.explain(mod.compare_fixture(), listed.DELIBERATE)))


if __name__ == "__main__":
    main()
