"""Builders for nft JSON expressions and statements (libnftables' JSON schema).

One small function per construct so the compiler reads like the ruleset it builds and the
JSON shape lives in one place.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

from proxmox_fw.nft.objects import Json

# --- expressions -----------------------------------------------------------------------


def meta(key: str) -> Json:
    return {"meta": {"key": key}}


def payload(protocol: str, field: str) -> Json:
    return {"payload": {"protocol": protocol, "field": field}}


def ct(key: str, family: str | None = None) -> Json:
    body: dict[str, Any] = {"key": key}
    if family:
        body["family"] = family
    return {"ct": body}


def set_literal(items: Sequence[Json]) -> Json:
    return {"set": list(items)}


def prefix(addr: str, length: int) -> Json:
    return {"prefix": {"addr": addr, "len": length}}


def range_(lo: Json, hi: Json) -> Json:
    return {"range": [lo, hi]}


def concat(*parts: Json) -> Json:
    return {"concat": list(parts)}


def set_ref(name: str) -> str:
    return "@" + name


def network(value: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> Json:
    """A CIDR as nft wants it: host bits cleared, full-length prefixes as plain addresses."""
    net = value.network
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return prefix(str(net.network_address), net.prefixlen)


def interval(lo: int, hi: int, v6: bool) -> Json:
    """An inclusive address interval as an element: one aligned block is an address or a
    prefix, anything else a range. inet_ntop: large ipsets make ipaddress too slow here."""
    bits, af = (128, socket.AF_INET6) if v6 else (32, socket.AF_INET)
    first = socket.inet_ntop(af, lo.to_bytes(bits // 8, "big"))
    span = hi - lo + 1
    if span & (span - 1) == 0 and lo % span == 0:
        length = bits - (span.bit_length() - 1)
        return first if length == bits else prefix(first, length)
    return range_(first, socket.inet_ntop(af, hi.to_bytes(bits // 8, "big")))


# --- statements ------------------------------------------------------------------------


def match(left: Json, right: Json, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def accept() -> Json:
    return {"accept": None}


def drop() -> Json:
    return {"drop": None}


def return_() -> Json:
    return {"return": None}


def jump(target: str) -> Json:
    return {"jump": {"target": target}}


def goto(target: str) -> Json:
    return {"goto": {"target": target}}


def counter() -> Json:
    return {"counter": None}


def log(prefix_text: str, group: int = 0) -> Json:
    return {"log": {"prefix": prefix_text, "group": group}}


def limit(rate: int, per: str, burst: int, *, inverse: bool = False) -> Json:
    body: dict[str, Any] = {"rate": rate, "per": per, "burst": burst}
    if inverse:
        body["inv"] = True
    return {"limit": body}


def ct_helper_set(name: str) -> Json:
    return {"ct helper": name}


def mangle(key: Json, value: Json) -> Json:
    return {"mangle": {"key": key, "value": value}}


def set_update(set_name: str, elem: Json, stmts: Sequence[Json]) -> Json:
    """``update @set { elem <stmts> }``; ``stmt`` must be a list (upstream emits an object,
    which nft 1.0.6 silently drops)."""
    return {"set": {"op": "update", "elem": elem, "set": set_ref(set_name), "stmt": list(stmts)}}


def queue(num_from: int, num_to: int, *, bypass: bool = True, fanout: bool = False) -> Json:
    body: dict[str, Any] = {"num": num_from if num_from == num_to else range_(num_from, num_to)}
    flags = [f for f, on in (("bypass", bypass), ("fanout", fanout)) if on]
    if flags:
        body["flags"] = flags
    return {"queue": body}
