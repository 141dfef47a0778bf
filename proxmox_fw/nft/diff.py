"""Desired vs last applied Ruleset → the nft commands that turn one into the other.

The daemon sends only what changed, so counters of untouched rules and the kernel-filled
sets (synflood) survive an update, and an unchanged ruleset costs no transaction at all.

Both rulesets are rendered with :func:`~proxmox_fw.nft.render.render_table_commands` and
the commands are grouped per object (chain, set, map, ct helper): an object changed iff
its rendered commands differ. That makes "changed" mean exactly "a full apply would put
something else in the kernel", with one renderer as the single source of truth.

Per object:

- chain: new → ``add chain`` + rules; changed → ``flush chain`` + rules; gone → ``delete
  chain`` (a skeleton chain is only flushed: skeleton rules may jump to it).
- set: new → ``add set`` + elements; elements changed → ``delete element`` /
  ``add element`` for the difference; gone → ``delete set`` (skeleton sets are flushed).
- map (always skeleton-declared): elements whose key is gone or whose verdict changed are
  deleted, new or changed ones added.
- ct helper: new → ``add``; gone → ``delete``.

Order inside the one transaction: declarations, chain flushes, element deletions,
element additions, rules, then deletions of chains, sets and helpers, so nothing is
deleted while a rule or map element still refers to it.

A table is replaced whole (``add``+``delete table``, skeleton, all commands, as
:func:`~proxmox_fw.nft.apply.build_transaction` does) when there is no previous state,
when it changes between enabled and disabled, or when a set's or ct helper's definition
changed (the kernel cannot alter a set's type or flags in place, and deleting it would
first need every rule referring to it gone).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from proxmox_fw.nft.objects import Json, Ruleset, Table
from proxmox_fw.nft.render import delete_table_commands, render_table_commands
from proxmox_fw.nft.skeleton import skeleton_commands, skeleton_table_text

Command = dict[str, Any]
ObjKey = tuple[str, str]  # ("chain" | "set" | "map" | "ct helper", name)


@dataclass(slots=True)
class DiffStats:
    """What an update changes, for the daemon's info log line."""

    chains_added: int = 0
    chains_removed: int = 0
    chains_changed: int = 0
    sets_added: int = 0
    sets_removed: int = 0
    sets_changed: int = 0
    elements_added: int = 0  # set and map elements
    elements_removed: int = 0
    helpers_changed: int = 0
    tables_replaced: list[str] = field(default_factory=list)
    tables_deleted: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Non-zero counters only, as log fields."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                out[f.name] = ",".join(value) if isinstance(value, list) else value
        return out


@dataclass(slots=True)
class UpdatePlan:
    """The commands of one update transaction (empty: the kernel is already in step)."""

    commands: list[Command] = field(default_factory=list)
    stats: DiffStats = field(default_factory=DiffStats)

    @property
    def empty(self) -> bool:
        return not self.commands

    def document(self) -> dict[str, list[Command]]:
        return {"nftables": self.commands}


class RenderedTable:
    """One table rendered once: its commands, and the same commands grouped by object."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.commands = render_table_commands(table)
        self.groups = _groups(table, self.commands)


class RenderedRuleset:
    """A ruleset rendered once, for both its digest and diffs against it.

    Rendering merges interval elements (large ipsets make that the expensive part), so the
    daemon keeps the rendering of what it applied and renders each new ruleset once.
    """

    def __init__(self, rs: Ruleset) -> None:
        self.ruleset = rs
        self.tables = [RenderedTable(t) for t in rs.tables]
        self._digest: str | None = None

    def digest(self) -> str:
        """SHA-256 of the rendered commands (what a full apply sends after the skeleton)."""
        if self._digest is None:
            commands = [c for t in self.tables for c in t.commands]
            text = json.dumps(commands, sort_keys=True, separators=(",", ":"))
            self._digest = hashlib.sha256(text.encode()).hexdigest()
        return self._digest


def plan_update(
    old: Ruleset | RenderedRuleset | None, new: Ruleset | RenderedRuleset
) -> UpdatePlan:
    """Commands turning the kernel from ``old`` (None: unknown) into ``new``.

    Both are *loadable* rulesets (a table the kernel cannot load is disabled in them,
    see :func:`proxmox_fw.nft.apply.loadable_ruleset`). Raises SkeletonError when a table
    must be rebuilt and its skeleton cannot be loaded on this kernel.
    """
    before_all = _rendered(old) if old is not None else None
    after_all = _rendered(new)
    plan = UpdatePlan()
    stages: list[list[Command]] = [[] for _ in range(_STAGES)]
    for index, after in enumerate(after_all.tables):
        before = before_all.tables[index] if before_all is not None else None
        if before is None or not _diffable(before, after):
            plan.commands.extend(_replace_table(after, plan.stats))
            continue
        _diff_table(before, after, stages, plan.stats)
    for stage in stages:
        plan.commands.extend(stage)
    return plan


def _rendered(rs: Ruleset | RenderedRuleset) -> RenderedRuleset:
    return rs if isinstance(rs, RenderedRuleset) else RenderedRuleset(rs)


def _label(table: Table) -> str:
    return f"{table.family} {table.name}"


def _replace_table(rendered: RenderedTable, stats: DiffStats) -> list[Command]:
    table = rendered.table
    commands = delete_table_commands(table.family, table.name)
    if not table.enabled:
        stats.tables_deleted.append(_label(table))
        return commands
    stats.tables_replaced.append(_label(table))
    return [*commands, *skeleton_commands((table.family,)), *rendered.commands]


def _diffable(old: RenderedTable, new: RenderedTable) -> bool:
    """Whether ``new`` can be reached from ``old`` by editing objects in place."""
    if old.table.enabled != new.table.enabled:
        return False
    if not new.table.enabled:
        return True  # both absent: nothing to do
    for key, cmds in new.groups.items():
        kind, _ = key
        before = old.groups.get(key)
        if before is None:
            continue
        if kind == "set" and _definition(before) != _definition(cmds):
            return False
        if kind == "ct helper" and before != cmds:
            return False
    return True


# Stages of the incremental part, in transaction order.
_DECLARE, _FLUSH, _ELEM_DEL, _ELEM_ADD, _RULES, _DEL_CHAINS, _DEL_OBJECTS = range(7)
_STAGES = 7


def _diff_table(
    old: RenderedTable, new: RenderedTable, stages: list[list[Command]], stats: DiffStats
) -> None:
    if not new.table.enabled:
        return
    old_groups, new_groups = old.groups, new.groups
    skel = skeleton_names(new.table.family)
    for key, cmds in new_groups.items():
        before = old_groups.get(key)
        if before == cmds:
            continue
        kind = key[0]
        if kind == "chain":
            _chain_update(before, cmds, stages, stats)
        elif kind == "set":
            _set_update(before, cmds, stages, stats)
        elif kind == "map":
            _map_update(before, cmds, stages, stats)
        else:  # ct helper: new (a changed one made the table non-diffable)
            stages[_DECLARE].extend(cmds)
            stats.helpers_changed += 1
    for key, cmds in old_groups.items():
        if key not in new_groups:
            _remove(new.table, key, cmds, key[1] in skel, stages, stats)


def _chain_update(
    before: list[Command] | None, cmds: list[Command], stages: list[list[Command]],
    stats: DiffStats,
) -> None:
    rules = [c for c in cmds if _kind(c) == ("add", "rule")]
    if before is None:
        stages[_DECLARE].extend(c for c in cmds if _kind(c) == ("add", "chain"))
        stats.chains_added += 1
    else:
        stats.chains_changed += 1
    stages[_FLUSH].extend(c for c in cmds if _kind(c) == ("flush", "chain"))
    stages[_RULES].extend(rules)


def _set_update(
    before: list[Command] | None, cmds: list[Command], stages: list[list[Command]],
    stats: DiffStats,
) -> None:
    new_elems = _elements(cmds)
    if before is None:
        stages[_DECLARE].extend(c for c in cmds if _kind(c) == ("add", "set"))
        stats.sets_added += 1
        old_elems: dict[str, Json] = {}
    else:
        stats.sets_changed += 1
        old_elems = _elements(before)
    ref = _ref(cmds)
    removed = [e for k, e in old_elems.items() if k not in new_elems]
    added = [e for k, e in new_elems.items() if k not in old_elems]
    _stage_elements(ref, removed, added, stages, stats)


def _map_update(
    before: list[Command] | None, cmds: list[Command], stages: list[list[Command]],
    stats: DiffStats,
) -> None:
    new_elems = _map_elements(cmds)
    old_elems = _map_elements(before) if before is not None else {}
    if before is None:
        stages[_FLUSH].extend(c for c in cmds if _kind(c) == ("flush", "map"))
    ref = _ref(cmds)
    removed = [pair[0] for k, pair in old_elems.items() if new_elems.get(k) != pair]
    added = [list(pair) for k, pair in new_elems.items() if old_elems.get(k) != pair]
    _stage_elements(ref, removed, added, stages, stats)


def _stage_elements(
    ref: dict[str, Any], removed: list[Json], added: list[Json],
    stages: list[list[Command]], stats: DiffStats,
) -> None:
    """Element deletions go before additions, so a changed element is replaced."""
    if removed:
        stages[_ELEM_DEL].append({"delete": {"element": {**ref, "elem": removed}}})
    if added:
        stages[_ELEM_ADD].append({"add": {"element": {**ref, "elem": added}}})
    stats.elements_removed += len(removed)
    stats.elements_added += len(added)


def _remove(
    table: Table, key: ObjKey, cmds: list[Command], in_skeleton: bool,
    stages: list[list[Command]], stats: DiffStats,
) -> None:
    kind, name = key
    ref = {"family": table.family, "table": table.name, "name": name}
    if kind == "chain":
        stats.chains_removed += 1
        if in_skeleton:
            stages[_FLUSH].append({"flush": {"chain": ref}})
        else:
            stages[_DEL_CHAINS].append({"delete": {"chain": ref}})
    elif kind == "set":
        stats.sets_removed += 1
        stats.elements_removed += len(_elements(cmds))
        if in_skeleton:
            stages[_ELEM_DEL].append({"flush": {"set": ref}})
        else:
            stages[_DEL_OBJECTS].append({"delete": {"set": ref}})
    elif kind == "map":  # maps are skeleton objects: empty it
        stats.elements_removed += len(_map_elements(cmds))
        stages[_ELEM_DEL].append({"flush": {"map": ref}})
    else:
        stats.helpers_changed += 1
        stages[_DEL_OBJECTS].append({"delete": {"ct helper": ref}})


# --- grouping rendered commands by object ------------------------------------------------


def _kind(cmd: Command) -> tuple[str, str]:
    (verb, body), = cmd.items()
    (obj, _), = body.items()
    return verb, obj


def _groups(table: Table, commands: list[Command]) -> dict[ObjKey, list[Command]]:
    """The table's rendered commands, grouped by the object they build."""
    names_of_maps = set(table.maps)
    groups: dict[ObjKey, list[Command]] = {}
    for cmd in commands:
        verb, obj = _kind(cmd)
        body = cmd[verb][obj]
        if obj == "rule":
            key: ObjKey = ("chain", body["chain"])
        elif obj == "element":
            key = ("map" if body["name"] in names_of_maps else "set", body["name"])
        else:
            key = (obj, body["name"])
        groups.setdefault(key, []).append(cmd)
    return groups


def _ref(cmds: list[Command]) -> dict[str, Any]:
    verb, obj = _kind(cmds[0])
    body = cmds[0][verb][obj]
    return {"family": body["family"], "table": body["table"], "name": body["name"]}


def _definition(cmds: list[Command]) -> list[Command]:
    return [c for c in cmds if _kind(c) == ("add", "set")]


def _canon(value: Json) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _elements(cmds: list[Command]) -> dict[str, Json]:
    """Set elements by canonical text, in rendered order."""
    out: dict[str, Json] = {}
    for c in cmds:
        if _kind(c) == ("add", "element"):
            for elem in c["add"]["element"]["elem"]:
                out.setdefault(_canon(elem), elem)
    return out


def _map_elements(cmds: list[Command]) -> dict[str, tuple[Json, Json]]:
    """Map elements as key text → (key, verdict)."""
    out: dict[str, tuple[Json, Json]] = {}
    for c in cmds:
        if _kind(c) == ("add", "element"):
            for key, verdict in c["add"]["element"]["elem"]:
                out[_canon(key)] = (key, verdict)
    return out


# --- what the skeleton declares ------------------------------------------------------------

_DECL = re.compile(r"^\s*(?:add\s+chain\s+\S+\s+\S+\s+|(?:chain|set|map)\s+)([^\s{;]+)", re.M)


@functools.cache
def skeleton_names(family: str) -> frozenset[str]:
    """Chains, sets and maps the skeleton declares for one table: never deleted, because
    skeleton rules may refer to them; only emptied."""
    return frozenset(_DECL.findall(skeleton_table_text(family)))
