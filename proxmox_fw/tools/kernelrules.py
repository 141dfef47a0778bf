"""The firewall's rules as the kernel holds them, each with the config origin the compiler
wrote into its comment (``firewall/cluster.fw:12``) and its counter.

One terse JSON listing per table (no set elements, so a 100k-entry blacklist costs
nothing); rules are keyed by (family, table, handle), which is how trace events name
them. The nft text of each rule is added on request (``trace`` prints it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from proxmox_fw.nft.client import NftClient, listing_items
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, HOST_TABLE, INET

OUR_TABLES: tuple[tuple[str, str], ...] = ((INET, HOST_TABLE), (BRIDGE, GUEST_TABLE))

RuleKey = tuple[str, str, int]  # (family, table, handle)

_HANDLE = re.compile(r"\s+# handle (\d+)$")
_COUNTER = re.compile(r"\s*\bcounter packets \d+ bytes \d+")
_COMMENT = re.compile(r'\s*\bcomment "(?:[^"\\]|\\.)*"')


@dataclass(frozen=True, slots=True)
class KernelRule:
    family: str
    table: str
    chain: str
    handle: int
    origin: str | None  # the rule comment: "firewall/cluster.fw:12", "default", ...
    packets: int | None  # the rule's counter; None: the rule has none
    bytes: int | None
    text: str = ""  # nft's text of the rule without counter and comment ("" unless asked)

    @property
    def key(self) -> RuleKey:
        return (self.family, self.table, self.handle)

    @property
    def config_line(self) -> tuple[str, int] | None:
        """(file, line) when the origin names a config line."""
        if self.origin is None:
            return None
        path, sep, line = self.origin.rpartition(":")
        if sep and line.isdigit() and path:
            return path, int(line)
        return None


def _counter(expr: list[Any]) -> tuple[int, int] | None:
    packets = nbytes = 0
    found = False
    for stmt in expr:
        if isinstance(stmt, dict) and isinstance(stmt.get("counter"), dict):
            found = True
            packets += int(stmt["counter"].get("packets", 0))
            nbytes += int(stmt["counter"].get("bytes", 0))
    return (packets, nbytes) if found else None


def rules_of_listing(listing: Any) -> list[KernelRule]:
    """The rules of a JSON listing, in listing order."""
    out: list[KernelRule] = []
    for item in listing_items(listing):
        rule = item.get("rule")
        if not isinstance(rule, dict):
            continue
        counter = _counter(rule.get("expr") or [])
        out.append(KernelRule(
            family=str(rule.get("family")), table=str(rule.get("table")),
            chain=str(rule.get("chain")), handle=int(rule.get("handle", 0)),
            origin=rule.get("comment"),
            packets=counter[0] if counter else None, bytes=counter[1] if counter else None,
        ))  # fmt: skip
    return out


def rule_texts(text: str) -> dict[int, str]:
    """handle → rule text (counter and comment taken out) from ``nft -t -a list table``."""
    out: dict[int, str] = {}
    in_chain = False
    for raw in text.splitlines():
        line = raw.strip()
        m = _HANDLE.search(line)
        if m is None:
            in_chain = in_chain and line != "}"
            continue
        body = line[: m.start()].rstrip()
        if body.endswith("{"):  # a block (table, chain, set, map, ct helper): rules never are
            in_chain = body.startswith("chain ")
            continue
        if in_chain:
            out[int(m.group(1))] = _COMMENT.sub("", _COUNTER.sub("", body)).strip()
    return out


def read_rules(client: NftClient, *, with_text: bool = False,
               tables: tuple[tuple[str, str], ...] = OUR_TABLES) -> list[KernelRule]:  # fmt: skip
    """Every rule of ``tables`` present in the kernel (a missing table has none)."""
    out: list[KernelRule] = []
    for family, name in tables:
        listing = client.list_table_terse(family, name)
        if not listing.ok:
            continue
        rules = rules_of_listing(listing.output)
        if with_text:
            text = client.list_table_text(family, name)
            texts = rule_texts(str(text.output)) if text.ok else {}
            rules = [KernelRule(r.family, r.table, r.chain, r.handle, r.origin, r.packets,
                                r.bytes, texts.get(r.handle, "")) for r in rules]  # fmt: skip
        out.extend(rules)
    return out


def table_present(client: NftClient, family: str, name: str) -> bool:
    return client.list_table_terse(family, name).ok
