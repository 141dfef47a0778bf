"""``diff``: what an apply would change in the kernel, per table, chain, set and element,
with each rule named by the config file:line it came from.

The configuration is compiled through the pipeline (as ``apply`` does) and loaded into a
throwaway network namespace with the transaction ``apply`` would send; both that and
the live tables are then listed the same way (:mod:`.listing`) and compared object by
object. Rules are compared in order (what moved, appeared or went away), set and map
elements as sets.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxmox_fw.nft.apply import loadable_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.diff import plan_update
from proxmox_fw.nft.features import KernelFeatures, probe_features
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.nft.objects import Ruleset
from proxmox_fw.tools.listing import ListedObject, ListedRule, ListedTable, read_tables


class DiffError(RuntimeError):
    """The compiled ruleset could not be loaded for comparison (the kernel refused it)."""


@dataclass(slots=True)
class Change:
    """One table or object that an apply would add, remove or change."""

    kind: str  # "table", "chain", "set", "map", ...
    table: str  # "inet proxmox-firewall"
    name: str
    change: str  # "added", "removed", "changed"
    declaration: bool = False  # its declaration (hook, policy, type, flags) changes
    rules_added: list[ListedRule] = field(default_factory=list)
    rules_removed: list[ListedRule] = field(default_factory=list)
    elements_added: list[str] = field(default_factory=list)
    elements_removed: list[str] = field(default_factory=list)
    objects: int = 0  # of a table added or removed: how many chains, sets, ... it holds

    def to_json(self) -> dict[str, Any]:
        def rules(rs: list[ListedRule]) -> list[dict[str, Any]]:
            return [{"origin": r.origin, "rule": r.text} for r in rs]

        return {"kind": self.kind, "table": self.table, "name": self.name,
                "change": self.change, "declaration": self.declaration,
                "rules_added": rules(self.rules_added),
                "rules_removed": rules(self.rules_removed),
                "elements_added": self.elements_added,
                "elements_removed": self.elements_removed}  # fmt: skip


@dataclass(slots=True)
class DiffReport:
    changes: list[Change]
    missing_features: list[str]  # why the guest table is left out on this kernel

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes],
                "missing_features": self.missing_features}  # fmt: skip


def _desired(commands: list[dict[str, Any]]) -> dict[str, ListedTable]:
    client = NftClient()
    result = client.run_json({"nftables": commands})
    if not result.ok:
        raise DiffError(f"the kernel refuses the compiled ruleset: {result.error.strip()}")
    return read_tables(client)


def desired_tables(rs: Ruleset, features: KernelFeatures) -> tuple[dict[str, ListedTable],
                                                                   list[str]]:  # fmt: skip
    """``rs`` as the kernel would list it after an apply (loaded in a throwaway
    namespace), and the features whose lack leaves the guest table out."""
    loadable, missing = loadable_ruleset(rs, features)
    commands = plan_update(None, loadable).commands
    return run_in_new_netns(_desired, commands), missing


def diff_ruleset(rs: Ruleset, client: NftClient | None = None,
                 features: KernelFeatures | None = None) -> DiffReport:  # fmt: skip
    """The kernel (where ``client`` talks, default: here) against ``rs``."""
    want, missing = desired_tables(rs, features if features is not None else probe_features())
    have = read_tables(client or NftClient())
    return DiffReport(compare(have, want), missing)


def compare(have: dict[str, ListedTable], want: dict[str, ListedTable]) -> list[Change]:
    changes: list[Change] = []
    for label in [*want, *(t for t in have if t not in want)]:
        old, new = have.get(label), want.get(label)
        if old is None or new is None:
            table = new or old
            assert table is not None
            changes.append(Change("table", label, table.name,
                                  "added" if old is None else "removed",
                                  objects=len(table.objects)))  # fmt: skip
            continue
        keys = [*new.objects, *(k for k in old.objects if k not in new.objects)]
        for key in keys:
            change = _object_change(label, old.objects.get(key), new.objects.get(key))
            if change is not None:
                changes.append(change)
    return changes


def _object_change(label: str, old: ListedObject | None,
                   new: ListedObject | None) -> Change | None:  # fmt: skip
    obj = new or old
    assert obj is not None
    if old is None or new is None:
        c = Change(obj.kind, label, obj.name, "added" if old is None else "removed")
        rules = list(obj.rules)
        elements = sorted(obj.elements.values())
        if old is None:
            c.rules_added, c.elements_added = rules, elements
        else:
            c.rules_removed, c.elements_removed = rules, elements
        return c
    c = Change(obj.kind, label, obj.name, "changed", declaration=old.decl != new.decl)
    matcher = difflib.SequenceMatcher(None, [r.canon for r in old.rules],
                                      [r.canon for r in new.rules], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            c.rules_removed += old.rules[i1:i2]
            c.rules_added += new.rules[j1:j2]
    c.elements_added = sorted(v for k, v in new.elements.items() if k not in old.elements)
    c.elements_removed = sorted(v for k, v in old.elements.items() if k not in new.elements)
    if not (c.declaration or c.rules_added or c.rules_removed or c.elements_added
            or c.elements_removed):  # fmt: skip
        return None
    return c


def _origin(origin: str | None, pve_dir: Path) -> str:
    """A config origin under ``pve_dir``; a built-in tag (``default``) as it is."""
    if not origin:
        return "-"
    path, sep, line = origin.rpartition(":")
    return str(pve_dir / origin) if sep and line.isdigit() and "/" in path else origin


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def format_diff(report: DiffReport, pve_dir: Path) -> str:
    """For the terminal: one line per object, then its rules (``-``/``+`` with their
    config line) and elements."""
    lines: list[str] = []
    if report.missing_features:
        lines.append("note: the guest table is left out, this kernel lacks "
                     + ", ".join(report.missing_features))  # fmt: skip
    for c in report.changes:
        if c.kind == "table":
            verb = "create" if c.change == "added" else "delete"
            lines.append(f"table {c.table}: apply would {verb} it "
                         f"({_count(c.objects, 'object')})")  # fmt: skip
            continue
        what: list[str] = []
        if c.change == "changed":
            if c.declaration:
                what.append("declaration changed")
            if c.rules_added or c.rules_removed:
                what.append(f"{_count(len(c.rules_added), 'rule')} added, "
                            f"{len(c.rules_removed)} removed")  # fmt: skip
            if c.elements_added or c.elements_removed:
                what.append(f"{_count(len(c.elements_added), 'element')} added, "
                            f"{len(c.elements_removed)} removed")  # fmt: skip
        else:
            what.append(c.change)
        lines.append(f"{c.kind} {c.table} {c.name}: " + "; ".join(what))
        for sign, rules in (("-", c.rules_removed), ("+", c.rules_added)):
            lines += [f"  {sign} {_origin(r.origin, pve_dir)}: {r.text}" for r in rules]
        for sign, elems in (("-", c.elements_removed), ("+", c.elements_added)):
            lines += [f"  {sign} {e}" for e in elems]
    if not report.changes:
        lines.append("no difference: the kernel holds what the configuration compiles to")
    return "\n".join(lines) + "\n"
