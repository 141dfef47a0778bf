"""Macro entries as protocol parts the rule compiler can expand."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from proxmox_fw.model import IcmpType, PortRange, Protocol


@dataclass(frozen=True, slots=True)
class MacroPart:
    proto: Protocol
    dport: list[PortRange] | None = None
    sport: list[PortRange] | None = None
    icmp_type: IcmpType | None = None


@cache
def _table() -> dict[str, tuple[MacroPart, ...]]:
    from proxmox_fw.data import macros  # the data module owns the macro table and its parsing

    out: dict[str, tuple[MacroPart, ...]] = {}
    for name, macro in macros().items():
        out[name.lower()] = tuple(
            MacroPart(e.proto, e.dport, e.sport, e.icmp_type) for e in macro.entries
        )
    return out


def macro_parts(name: str) -> tuple[MacroPart, ...] | None:
    """The entries of a macro (case-insensitive name), or None if there is no such macro."""
    return _table().get(name.lower())
