"""Render a desired Ruleset as nft JSON commands (the output of ``compile``).

The commands apply on top of a loaded skeleton (``skeleton | nft -f -`` then
``compile | nft -j -f -``), so they follow upstream's shape: skeleton chains are flushed
and refilled, chains the compiler creates are added and flushed, sets are added, flushed
and refilled, maps the skeleton declares are flushed and refilled, and a disabled table
is deleted. Pure: the same Ruleset always gives the same commands.

Order inside a table: sets and ct helpers first (rules reference them), then every chain
(rules may jump to chains created later, map elements jump to chains), then map
elements, then rules.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from proxmox_fw.nft.objects import Chain, CtHelper, Json, Map, Rule, Ruleset, Set, Table

Command = dict[str, Any]

# nft refuses longer rule comments (NFTNL_UDATA_COMMENT_MAXLEN).
COMMENT_MAX_BYTES = 128


def render_document(rs: Ruleset) -> dict[str, list[Command]]:
    return {"nftables": render_commands(rs)}


def render_commands(rs: Ruleset) -> list[Command]:
    commands: list[Command] = []
    for table in rs.tables:
        commands.extend(render_table_commands(table))
    return commands


def render_table_commands(table: Table) -> list[Command]:
    if not table.enabled:
        return delete_table_commands(table.family, table.name)
    commands: list[Command] = []
    for s in table.sets.values():
        commands.extend(_set_commands(table, s))
    for helper in table.ct_helpers.values():
        commands.append({"add": {"ct helper": _ct_helper(table, helper)}})
    for chain in table.chains.values():
        ref = _chain_ref(table, chain.name)
        if not chain.in_skeleton:
            commands.append({"add": {"chain": dict(ref)}})
        commands.append({"flush": {"chain": dict(ref)}})
    for m in table.maps.values():
        commands.extend(_map_commands(table, m))
    for chain in table.chains.values():
        commands.extend(_rule_command(table, chain, rule) for rule in chain.rules)
    return commands


def delete_table_commands(family: str, name: str) -> list[Command]:
    """Delete a table whether or not it exists: ``add`` first makes ``delete`` safe."""
    ref = {"family": family, "name": name}
    return [{"add": {"table": dict(ref)}}, {"delete": {"table": dict(ref)}}]


def _base(table: Table) -> dict[str, Any]:
    return {"family": table.family, "table": table.name}


def _chain_ref(table: Table, name: str) -> dict[str, Any]:
    return {**_base(table), "name": name}


def set_type_json(type_: str) -> Json:
    """``"ifname . ether_addr"`` is a concatenation: a list in JSON."""
    parts = [p.strip() for p in type_.split(".")]
    return parts[0] if len(parts) == 1 else parts


def _set_commands(table: Table, s: Set) -> list[Command]:
    body: dict[str, Any] = {**_chain_ref(table, s.name), "type": set_type_json(s.type)}
    if s.flags:
        body["flags"] = list(s.flags)
    if s.auto_merge:
        body["auto-merge"] = True
    if s.comment:
        body["comment"] = s.comment
    commands: list[Command] = [
        {"add": {"set": body}},
        {"flush": {"set": _chain_ref(table, s.name)}},
    ]
    if s.elements:
        elements = s.elements
        if s.auto_merge and "interval" in s.flags:
            elements = merge_overlapping(elements)
        commands.append({"add": {"element": {**_chain_ref(table, s.name), "elem": elements}}})
    return commands


def _map_commands(table: Table, m: Map) -> list[Command]:
    commands: list[Command] = [{"flush": {"map": _chain_ref(table, m.name)}}]
    if m.elements:
        elem = [[key, verdict] for key, verdict in m.elements]
        commands.append({"add": {"element": {**_chain_ref(table, m.name), "elem": elem}}})
    return commands


def _ct_helper(table: Table, helper: CtHelper) -> dict[str, Any]:
    return {
        **_chain_ref(table, helper.name),
        "type": helper.type,
        "protocol": helper.protocol,
        "l3proto": helper.l3proto,
    }


def _rule_command(table: Table, chain: Chain, rule: Rule) -> Command:
    body: dict[str, Any] = {**_base(table), "chain": chain.name, "expr": rule.expr}
    if rule.origin:
        body["comment"] = truncate_comment(rule.origin)
    return {"add": {"rule": body}}


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
