"""Compiled pieces of a table kept between compiles, for the daemon (issue 12 goal 2).

A piece (one guest's chains, sets and map entries; the sets of one cluster ipset) is a
pure function of the parsed models it reads. The daemon's parse cache hands out the same
model object for a file whose text did not change
(:class:`~proxmox_fw.config.loader.ParseCache`), so a piece whose models are the very same
objects as last time is the same piece: it is reused, with the diagnostics it gave, and
the renderer in turn reuses the rendering of its (identical) chain and set objects.
Small inputs that are rebuilt on every read (SDN, IPAM, compile options) are compared by
value instead. An edit of cluster.fw gives a new cluster object, so every piece that
reads it (every guest: aliases, ipsets, groups) is compiled again.

Reused objects are shared with the ruleset the daemon applied last: nobody may mutate a
compiled table after compile (rendering and diffing only read it).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from proxmox_fw.diagnostics import Diagnostic, Diagnostics
from proxmox_fw.nft.objects import Table


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a piece reads: ``same`` compared by identity (parsed models), ``equal`` by
    value (small models rebuilt on each read)."""

    same: tuple[object, ...]
    equal: tuple[object, ...] = ()

    def matches(self, other: Inputs) -> bool:
        return (len(self.same) == len(other.same)
                and all(a is b for a, b in zip(self.same, other.same, strict=True))
                and self.equal == other.equal)


@dataclass(slots=True)
class _Piece:
    inputs: Inputs
    table: Table  # a scratch table holding only what the piece made
    diagnostics: list[Diagnostic]


Build = Callable[[Table, Diagnostics], None]


class CompileMemo:
    """Pieces by key. ``enabled=False`` (one-shot compiles) keeps nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._pieces: dict[Hashable, _Piece] = {}
        self._used: set[Hashable] = set()
        self._counts = [0, 0]  # built, reused since the last sweep
        self.built = 0  # pieces compiled (not reused) by the last compile
        self.reused = 0  # and reused by it

    def piece(self, key: Hashable, inputs: Inputs, table: Table, diags: Diagnostics,
              build: Build) -> None:
        """Put into ``table`` what ``build`` adds to an empty table of the same kind
        (chains, sets, ct helpers; map elements are appended), reusing the last result
        for ``key`` (in a table of this family) when its inputs are the same."""
        key = (table.family, key)
        hit = self._pieces.get(key) if self.enabled else None
        if hit is not None and hit.inputs.matches(inputs):
            self._counts[1] += 1
        else:
            scratch, local = Table(table.family, table.name), Diagnostics()
            build(scratch, local)
            hit = _Piece(inputs, scratch, list(local))
            self._counts[0] += 1
            if self.enabled:
                self._pieces[key] = hit
        self._used.add(key)
        for d in hit.diagnostics:
            diags.add(d.file, d.line, d.message, d.severity)
        _merge(hit.table, table)

    def sweep(self) -> None:
        """End of a compile: drop the pieces it did not ask for (deleted guests,
        ipsets)."""
        for key in [k for k in self._pieces if k not in self._used]:
            del self._pieces[key]
        self._used.clear()
        (self.built, self.reused), self._counts = self._counts, [0, 0]


def _merge(piece: Table, table: Table) -> None:
    for name, chain in piece.chains.items():
        if name in table.chains:
            raise ValueError(f"compiled piece redefines chain {name}")
        table.chains[name] = chain
    table.sets.update(piece.sets)
    table.ct_helpers.update(piece.ct_helpers)
    for name, m in piece.maps.items():
        table.map(name).elements.extend(m.elements)
