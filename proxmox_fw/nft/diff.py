"""The one transaction builder: desired vs last applied Ruleset → the nft commands that
turn one into the other, in one transaction. A full replacement is the case "nothing
applied before" (``plan_update(None, new)``), used by ``apply`` and by the daemon alike.

The daemon sends only what changed, so counters of untouched rules and the kernel-filled
sets (synflood) survive an update, and an unchanged ruleset costs no transaction at all.

Both rulesets are rendered into objects (:class:`~proxmox_fw.nft.render.RenderedObject`:
chain, set, map, ct helper); an object changed iff it differs, i.e. iff a full apply
would put something else in the kernel, with one renderer as the single source of truth.

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

A table is replaced whole (``add``+``delete table``, skeleton, every object declared and
filled, nothing flushed: the table is new) when there is no previous state, when it
changes between enabled and disabled, or when a set's or ct helper's definition changed
(the kernel cannot alter a set's type or flags in place, and deleting it would first need
every rule referring to it gone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from proxmox_fw.nft.objects import Command, Json, Ruleset, Table
from proxmox_fw.nft.render import (
    RenderedObject,
    RenderedRuleset,
    RenderedTable,
    delete_table_commands,
)
from proxmox_fw.nft.skeleton import skeleton_commands, skeleton_names


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
    """The full replacement of one table (the guest table is left out, i.e. disabled,
    where the kernel cannot load it: see :func:`~proxmox_fw.nft.apply.loadable_ruleset`)."""
    table = rendered.table
    commands = delete_table_commands(table.family, table.name)
    if not table.enabled:
        stats.tables_deleted.append(_label(table))
        return commands
    stats.tables_replaced.append(_label(table))
    return [*commands, *skeleton_commands((table.family,)), *rendered.fresh_commands()]


def _diffable(old: RenderedTable, new: RenderedTable) -> bool:
    """Whether ``new`` can be reached from ``old`` by editing objects in place."""
    if old.table.enabled != new.table.enabled:
        return False
    if not new.table.enabled:
        return True  # both absent: nothing to do
    for key, obj in new.objects.items():
        before = old.objects.get(key)
        if before is None:
            continue
        if obj.kind in ("set", "ct helper") and before.definition != obj.definition:
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
    skel = skeleton_names(new.table.family)
    for key, obj in new.objects.items():
        before = old.objects.get(key)
        if obj.same(before):
            continue
        if obj.kind == "chain":
            _chain_update(before, obj, stages, stats)
        elif obj.kind == "set":
            _set_update(before, obj, stages, stats)
        elif obj.kind == "map":
            _map_update(before, obj, stages, stats)
        else:  # ct helper: new (a changed one made the table non-diffable)
            stages[_DECLARE].extend(obj.add())
            stats.helpers_changed += 1
    for key, obj in old.objects.items():
        if key not in new.objects:
            _remove(obj, key[1] in skel, stages, stats)


def _chain_update(
    before: RenderedObject | None, obj: RenderedObject, stages: list[list[Command]],
    stats: DiffStats,
) -> None:
    if before is None:
        stages[_DECLARE].extend(obj.add())
        stats.chains_added += 1
    else:
        stats.chains_changed += 1
    stages[_FLUSH].extend(obj.flush())
    stages[_RULES].extend(obj.fill())


def _set_update(
    before: RenderedObject | None, obj: RenderedObject, stages: list[list[Command]],
    stats: DiffStats,
) -> None:
    new_elems = _elements(obj.content)
    if before is None:
        stages[_DECLARE].extend(obj.add())
        stats.sets_added += 1
        old_elems: dict[str, Json] = {}
    else:
        stats.sets_changed += 1
        old_elems = _elements(before.content)
    removed = [e for k, e in old_elems.items() if k not in new_elems]
    added = [e for k, e in new_elems.items() if k not in old_elems]
    _stage_elements(obj, removed, added, stages, stats)


def _map_update(
    before: RenderedObject | None, obj: RenderedObject, stages: list[list[Command]],
    stats: DiffStats,
) -> None:
    new_elems = _map_elements(obj.content)
    old_elems = _map_elements(before.content) if before is not None else {}
    if before is None:
        stages[_FLUSH].extend(obj.flush())
    removed = [pair[0] for k, pair in old_elems.items() if new_elems.get(k) != pair]
    added = [list(pair) for k, pair in new_elems.items() if old_elems.get(k) != pair]
    _stage_elements(obj, removed, added, stages, stats)


def _stage_elements(
    obj: RenderedObject, removed: list[Json], added: list[Json],
    stages: list[list[Command]], stats: DiffStats,
) -> None:
    """Element deletions go before additions, so a changed element is replaced."""
    if removed:
        stages[_ELEM_DEL].extend(obj.delete_elements(removed))
    if added:
        stages[_ELEM_ADD].extend(obj.add_elements(added))
    stats.elements_removed += len(removed)
    stats.elements_added += len(added)


def _remove(
    obj: RenderedObject, in_skeleton: bool, stages: list[list[Command]], stats: DiffStats,
) -> None:
    if obj.kind == "chain":
        stats.chains_removed += 1
        if in_skeleton:
            stages[_FLUSH].extend(obj.flush())
        else:
            stages[_DEL_CHAINS].extend(obj.delete())
    elif obj.kind == "set":
        stats.sets_removed += 1
        stats.elements_removed += len(_elements(obj.content))
        if in_skeleton:
            stages[_ELEM_DEL].extend(obj.flush())
        else:
            stages[_DEL_OBJECTS].extend(obj.delete())
    elif obj.kind == "map":  # maps are skeleton objects: empty it
        stats.elements_removed += len(_map_elements(obj.content))
        stages[_ELEM_DEL].extend(obj.flush())
    else:
        stats.helpers_changed += 1
        stages[_DEL_OBJECTS].extend(obj.delete())


def _canon(value: Json) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _elements(elems: list[Json]) -> dict[str, Json]:
    """Set elements by canonical text, in rendered order."""
    out: dict[str, Json] = {}
    for elem in elems:
        out.setdefault(_canon(elem), elem)
    return out


def _map_elements(pairs: list[Json]) -> dict[str, tuple[Json, Json]]:
    """Map elements as key text → (key, verdict)."""
    return {_canon(key): (key, verdict) for key, verdict in pairs}
