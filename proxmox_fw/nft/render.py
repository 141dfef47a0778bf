"""Render a desired Ruleset as nft JSON commands (the output of ``compile``).

Rendering gives each object of a table (set, ct helper, chain, map) as a
:class:`RenderedObject`: its declaration and its content (rules or elements), with verbs
(``add``, ``flush``, ``fill``, ``delete``) that turn it into commands, like knftables'
``tx.Add/Flush/Delete``. ``compile`` and the daemon's diff both start from these objects;
nobody takes rendered JSON apart again.

The commands of :meth:`RenderedTable.commands` apply on top of a loaded skeleton
(``skeleton | nft -f -`` then ``compile | nft -j -f -``), so they follow upstream's shape:
skeleton chains are flushed and refilled, chains the compiler creates are added and
flushed, sets are added, flushed and refilled, maps the skeleton declares are flushed and
refilled, and a disabled table is deleted. Pure: the same Ruleset always gives the same
commands.

Order inside a table: sets and ct helpers first (rules reference them), then every chain
(rules may jump to chains created later, map elements jump to chains), then map
elements, then rules.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from proxmox_fw.nft.objects import (
    Chain,
    Command,
    CtHelper,
    Json,
    Map,
    Rule,
    Ruleset,
    Set,
    Table,
)

# nft refuses longer rule comments (NFTNL_UDATA_COMMENT_MAXLEN).
COMMENT_MAX_BYTES = 128

ObjKey = tuple[str, str]  # ("chain" | "set" | "map" | "ct helper", name)


@dataclass(slots=True)
class RenderedObject:
    """One object of a table as the kernel will hold it.

    Equal objects mean a full apply would put the same thing in the kernel, which is how
    the daemon's diff decides what changed.
    """

    kind: str  # "set" | "ct helper" | "chain" | "map"
    ref: dict[str, Any]  # {"family", "table", "name"}
    # Body of ``add <kind>``; None: the skeleton declares it (skeleton chains, maps).
    definition: dict[str, Any] | None
    # chain: rule bodies; set: elements; map: [key, verdict] pairs; ct helper: nothing.
    content: list[Json] = field(default_factory=list)
    # The compiled object it renders: a later rendering of the very same object reuses
    # this one (see proxmox_fw.compile.memo).
    source: object = field(default=None, compare=False, repr=False)
    _digest: str | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> ObjKey:
        return (self.kind, self.ref["name"])

    @property
    def digest(self) -> str:
        """SHA-256 of what it puts in the kernel, computed once: the diff compares
        objects by it."""
        if self._digest is None:
            text = json.dumps([self.kind, self.ref, self.definition, self.content],
                              sort_keys=True, separators=(",", ":"))
            self._digest = hashlib.sha256(text.encode()).hexdigest()
        return self._digest

    def same(self, other: RenderedObject | None) -> bool:
        return other is not None and (other is self or other.digest == self.digest)

    def add(self) -> list[Command]:
        """The declaration (nothing for what the skeleton declares)."""
        return [] if self.definition is None else [{"add": {self.kind: self.definition}}]

    def flush(self) -> list[Command]:
        """Empty it (a ct helper has nothing to flush)."""
        return [] if self.kind == "ct helper" else [{"flush": {self.kind: dict(self.ref)}}]

    def fill(self) -> list[Command]:
        """Its rules or elements."""
        if self.kind == "chain":
            return [{"add": {"rule": body}} for body in self.content]
        if self.kind in ("set", "map") and self.content:
            return self.add_elements(self.content)
        return []

    def add_elements(self, elements: list[Json]) -> list[Command]:
        return [{"add": {"element": {**self.ref, "elem": elements}}}]

    def delete_elements(self, elements: list[Json]) -> list[Command]:
        return [{"delete": {"element": {**self.ref, "elem": elements}}}]

    def delete(self) -> list[Command]:
        return [{"delete": {self.kind: dict(self.ref)}}]


class RenderedTable:
    """One table rendered once: its objects by key, in rendering order.

    With ``previous`` (the rendering of an earlier compile of the same table), an object
    compiled into the very same model object as then is not rendered again.
    """

    def __init__(self, table: Table, previous: RenderedTable | None = None) -> None:
        self.table = table
        self.objects: dict[ObjKey, RenderedObject] = {}
        if table.enabled:
            old = previous.objects if previous is not None else {}
            for obj in _objects(table, old):
                self.objects[obj.key] = obj

    def commands(self) -> list[Command]:
        """What ``compile`` prints: on top of a loaded skeleton (flush, then refill)."""
        return self._commands(flush=True)

    def fresh_commands(self) -> list[Command]:
        """The same, into a table the same transaction has just re-created from the
        skeleton: nothing to flush (libnftables spends seconds on a flush of a set the
        same batch fills with 100k elements)."""
        return self._commands(flush=False)

    def _commands(self, *, flush: bool) -> list[Command]:
        if not self.table.enabled:
            return delete_table_commands(self.table.family, self.table.name)
        objs = self.objects.values()
        chains = [o for o in objs if o.kind == "chain"]
        out: list[Command] = []
        for o in objs:
            if o.kind in ("set", "ct helper"):
                out += o.add()
                out += o.flush() if flush else []
                out += o.fill()
        for o in chains:
            out += o.add()
            out += o.flush() if flush else []
        for o in objs:
            if o.kind == "map":
                out += o.flush() if flush else []
                out += o.fill()
        for o in chains:
            out += o.fill()
        return out


def render_table(table: Table) -> RenderedTable:
    return RenderedTable(table)


class RenderedRuleset:
    """A ruleset rendered once, for both its digest and diffs against it.

    Rendering merges interval elements (large ipsets make that the expensive part), so the
    daemon keeps the rendering of what it applied, renders each new ruleset once and
    passes the last one as ``previous``: objects that are the same compiled objects as
    then keep their rendering and digest.
    """

    tables: list[RenderedTable]

    def __init__(self, rs: Ruleset, previous: RenderedRuleset | None = None) -> None:
        self.ruleset = rs
        before: list[RenderedTable] = previous.tables if previous is not None else []
        self.tables = [
            RenderedTable(t, before[i] if i < len(before) else None)
            for i, t in enumerate(rs.tables)
        ]
        self._digest: str | None = None

    def digest(self) -> str:
        """SHA-256 over each table's state and its objects' digests, in rendering order:
        equal iff the rendered commands (what `compile` prints) are equal."""
        if self._digest is None:
            h = hashlib.sha256()
            for t in self.tables:
                table = t.table
                h.update(f"{table.family} {table.name} {table.enabled}\n".encode())
                for obj in t.objects.values():
                    h.update(f"{obj.digest}\n".encode())
            self._digest = h.hexdigest()
        return self._digest


def render_document(rs: Ruleset) -> dict[str, list[Command]]:
    return {"nftables": render_commands(rs)}


def render_commands(rs: Ruleset) -> list[Command]:
    commands: list[Command] = []
    for table in rs.tables:
        commands.extend(render_table_commands(table))
    return commands


def render_table_commands(table: Table) -> list[Command]:
    return RenderedTable(table).commands()


def delete_table_commands(family: str, name: str) -> list[Command]:
    """Delete a table whether or not it exists: ``add`` first makes ``delete`` safe."""
    ref = {"family": family, "name": name}
    return [{"add": {"table": dict(ref)}}, {"delete": {"table": dict(ref)}}]


def _objects(table: Table, old: dict[ObjKey, RenderedObject]) -> Iterator[RenderedObject]:
    """Sets, ct helpers, chains, maps: the order their commands are rendered in. An
    object of ``old`` rendered from the same model object is reused."""

    def reused(kind: str, name: str, source: object) -> RenderedObject | None:
        hit = old.get((kind, name))
        return hit if hit is not None and hit.source is source else None

    for s in table.sets.values():
        yield reused("set", s.name, s) or _set_object(table, s)
    for helper in table.ct_helpers.values():
        yield reused("ct helper", helper.name, helper) or RenderedObject(
            "ct helper", _chain_ref(table, helper.name), _ct_helper(table, helper),
            source=helper)
    for chain in table.chains.values():
        hit = reused("chain", chain.name, chain)
        if hit is not None:
            yield hit
            continue
        ref = _chain_ref(table, chain.name)
        definition = None if chain.in_skeleton else dict(ref)
        rules = [_rule_body(table, chain, rule) for rule in chain.rules]
        yield RenderedObject("chain", ref, definition, rules, source=chain)
    for m in table.maps.values():
        yield _map_object(table, m)


def _base(table: Table) -> dict[str, Any]:
    return {"family": table.family, "table": table.name}


def _chain_ref(table: Table, name: str) -> dict[str, Any]:
    return {**_base(table), "name": name}


def set_type_json(type_: str) -> Json:
    """``"ifname . ether_addr"`` is a concatenation: a list in JSON."""
    parts = [p.strip() for p in type_.split(".")]
    return parts[0] if len(parts) == 1 else parts


def _set_object(table: Table, s: Set) -> RenderedObject:
    body: dict[str, Any] = {**_chain_ref(table, s.name), "type": set_type_json(s.type)}
    if s.flags:
        body["flags"] = list(s.flags)
    if s.auto_merge:
        body["auto-merge"] = True
    if s.comment:
        body["comment"] = s.comment
    elements = s.elements
    if elements and s.auto_merge and "interval" in s.flags:
        elements = merge_overlapping(elements)
    return RenderedObject("set", _chain_ref(table, s.name), body, elements, source=s)


def _map_object(table: Table, m: Map) -> RenderedObject:
    elem = [[key, verdict] for key, verdict in m.elements]
    return RenderedObject("map", _chain_ref(table, m.name), None, elem)


def _ct_helper(table: Table, helper: CtHelper) -> dict[str, Any]:
    return {
        **_chain_ref(table, helper.name),
        "type": helper.type,
        "protocol": helper.protocol,
        "l3proto": helper.l3proto,
    }


def _rule_body(table: Table, chain: Chain, rule: Rule) -> dict[str, Any]:
    body: dict[str, Any] = {**_base(table), "chain": chain.name, "expr": rule.expr}
    if rule.origin:
        body["comment"] = truncate_comment(rule.origin)
    return body


def truncate_comment(text: str) -> str:
    raw = text.encode()
    if len(raw) <= COMMENT_MAX_BYTES:
        return text
    return raw[:COMMENT_MAX_BYTES].decode(errors="ignore")


# --- interval merging ------------------------------------------------------------------
# nft 1.0.6 ignores "auto-merge" in JSON input and rejects overlapping intervals in one
# set ("conflicting intervals specified"), while ipsets may overlap (a host inside a
# listed network). Overlapping address elements are therefore merged here; sets without
# overlaps are left exactly as the compiler built them.

_Interval = tuple[int, int, int]  # (low, high, version)


def _addr_int(text: str) -> tuple[int, int]:
    """(integer value, IP version) of an address; inet_pton is ~20x faster than ipaddress,
    which matters for 100k-entry blacklists."""
    if ":" in text:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big"), 6
    return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"), 4


def _prefix_interval(addr: str, length: int) -> _Interval | None:
    value, version = _addr_int(addr)
    bits = 32 if version == 4 else 128
    if not 0 <= length <= bits:
        return None
    host = (1 << (bits - length)) - 1
    lo = value & ~host
    return lo, lo | host, version


def _element_interval(elem: Json) -> _Interval | None:
    try:
        if isinstance(elem, str):
            addr, _, length = elem.partition("/")
            value, version = _addr_int(addr)
            if not length:
                return value, value, version
            return _prefix_interval(addr, int(length))
        if isinstance(elem, dict) and isinstance(elem.get("prefix"), dict):
            p = elem["prefix"]
            return _prefix_interval(str(p["addr"]), int(p["len"]))
        if isinstance(elem, dict) and isinstance(elem.get("range"), list):
            lo_s, hi_s = elem["range"]
            (lo, v1), (hi, v2) = _addr_int(str(lo_s)), _addr_int(str(hi_s))
            if v1 != v2 or lo > hi:
                return None
            return lo, hi, v1
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return None


def _interval_json(lo: int, hi: int, version: int) -> Json:
    """One aligned power-of-two block is a prefix (or an address); anything else a range."""
    bits = 32 if version == 4 else 128
    first, last = ipaddress.ip_address(lo), ipaddress.ip_address(hi)
    if version == 6:
        first, last = ipaddress.IPv6Address(lo), ipaddress.IPv6Address(hi)
    span = hi - lo + 1
    if span & (span - 1) == 0 and lo % span == 0:
        length = bits - (span.bit_length() - 1)
        if length == bits:
            return str(first)
        return {"prefix": {"addr": str(first), "len": length}}
    return {"range": [str(first), str(last)]}


def merge_overlapping(elements: list[Json]) -> list[Json]:
    """Merge overlapping address elements; anything unparseable leaves the list as is.

    One sort and one pass: a group of overlapping elements becomes the element that
    already covers the whole group if there is one, else a prefix or range spanning it,
    placed where the group's first element was.
    """
    keyed: list[tuple[int, int, int, int]] = []  # (version, lo, hi, index)
    for i, elem in enumerate(elements):
        iv = _element_interval(elem)
        if iv is None:
            return elements
        keyed.append((iv[2], iv[0], iv[1], i))
    keyed.sort()
    merged: list[tuple[int, Json]] = []  # (first index, element)
    n_groups = 0
    cur: list[int] | None = None  # [version, lo, hi, first index, covering index or -1]
    for version, lo, hi, i in keyed:
        if cur is not None and cur[0] == version and lo <= cur[2]:
            if hi > cur[2]:
                cur[2] = hi
                cur[4] = i if lo == cur[1] else -1
            elif lo == cur[1] and hi == cur[2] and (cur[4] < 0 or i < cur[4]):
                cur[4] = i
            cur[3] = min(cur[3], i)
            continue
        if cur is not None:
            merged.append(_group_element(cur, elements))
        n_groups += 1
        cur = [version, lo, hi, i, i]
    if cur is not None:
        merged.append(_group_element(cur, elements))
    if n_groups == len(elements):
        return elements
    merged.sort(key=lambda pair: pair[0])
    return [elem for _, elem in merged]


def _group_element(cur: list[int], elements: list[Json]) -> tuple[int, Json]:
    version, lo, hi, first, covering = cur
    if covering >= 0:
        return first, elements[covering]
    return first, _interval_json(lo, hi, version)
