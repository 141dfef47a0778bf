"""Our two tables as libnftables lists them, in a form two listings can be compared in.

``diff`` compares the kernel with the configuration by listing both the same way: the
live tables, and the compiled ruleset loaded into a throwaway network namespace (the
same transaction ``apply`` sends). Both sides then went through the kernel and back, so
nothing has to be re-derived here (``typeof`` comes back as ``type``, prefixes and
ranges merged, macros expanded, names quoted the same way on both sides). What is left to
take out is what differs between two loads of the same ruleset: handles, counter
values, the elements of dynamic sets (filled by traffic), and element order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from proxmox_fw.nft.client import NftClient, listing_items
from proxmox_fw.tools.kernelrules import OUR_TABLES, rule_texts

ObjKey = tuple[str, str]  # (kind, name): ("chain", "cluster-in"), ("set", "v4-dc/x")


@dataclass(frozen=True, slots=True)
class ListedRule:
    origin: str | None  # the rule comment: the config file:line (or "default", ...)
    text: str  # nft's text, without counter and comment
    canon: str  # what is compared: the expressions, counter values left out


@dataclass(slots=True)
class ListedObject:
    """A chain, set, map or stateful object of one table."""

    kind: str
    name: str
    decl: str  # its declaration (hook, policy, type, flags, ...), canonical JSON
    rules: list[ListedRule] = field(default_factory=list)
    elements: dict[str, str] = field(default_factory=dict)  # canonical → display text


@dataclass(slots=True)
class ListedTable:
    family: str
    name: str
    objects: dict[ObjKey, ListedObject] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.family} {self.name}"


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _without_counts(value: Any) -> Any:
    """Counter statements and objects without their packets and bytes."""
    if isinstance(value, dict):
        return {k: (None if k == "counter" else _without_counts(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_counts(v) for v in value]
    return value


def element_text(elem: Any) -> str:
    """One set or map element as nft writes it."""
    if isinstance(elem, list) and len(elem) == 2:  # a map element: key, value
        return f"{element_text(elem[0])} : {element_text(elem[1])}"
    if isinstance(elem, dict):
        if "elem" in elem:
            return element_text(elem["elem"].get("val"))
        if "prefix" in elem:
            return f"{elem['prefix']['addr']}/{elem['prefix']['len']}"
        if "range" in elem:
            return "-".join(element_text(v) for v in elem["range"])
        if "concat" in elem:
            return " . ".join(element_text(v) for v in elem["concat"])
        for verdict in ("jump", "goto"):
            if verdict in elem:
                return f"{verdict} {elem[verdict]['target']}"
        if len(elem) == 1:
            return str(next(iter(elem)))  # {"accept": null}
    return str(elem)


def parse_listing(listing: Any, text: str) -> ListedTable | None:
    """One table from its JSON listing and its terse text listing with handles (for the
    rules' text); None when the listing holds no table."""
    texts = rule_texts(text)
    table: ListedTable | None = None
    for item in listing_items(listing):
        kind, body = next(iter(item.items()))
        if not isinstance(body, dict):
            continue
        if kind == "table":
            table = ListedTable(str(body["family"]), str(body["name"]))
            continue
        if table is None:
            continue
        if kind == "rule":
            chain = table.objects.get(("chain", str(body.get("chain"))))
            if chain is not None:
                expr = body.get("expr") or []
                chain.rules.append(ListedRule(body.get("comment"),
                                              texts.get(int(body.get("handle", 0)), ""),
                                              _canon(_without_counts(expr))))  # fmt: skip
            continue
        decl = {k: v for k, v in body.items() if k not in ("handle", "elem", "family", "table")}
        obj = ListedObject(kind, str(body.get("name")), _canon(_without_counts(decl)))
        if "dynamic" not in (body.get("flags") or []):  # filled by traffic, not by apply
            for elem in body.get("elem") or []:
                obj.elements[_canon(_without_counts(elem))] = element_text(elem)
        table.objects[(kind, obj.name)] = obj
    return table


def read_tables(client: NftClient) -> dict[str, ListedTable]:
    """Our tables present where ``client`` talks, by label (``"inet proxmox-firewall"``)."""
    out: dict[str, ListedTable] = {}
    for family, name in OUR_TABLES:
        listing = client.list_table_json(family, name)
        if not listing.ok:
            continue  # not there
        text = client.list_table_text(family, name)
        table = parse_listing(listing.output, str(text.output) if text.ok else "")
        if table is not None:
            out[table.label] = table
    return out
