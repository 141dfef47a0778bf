"""The firewall macros (``SSH(ACCEPT)``...): typed entries loaded from ``macros.json``.

Each entry becomes its own match when a rule uses the macro, so entries are kept apart
rather than merged. The JSON writes ports in rule syntax (``"135,445"``, ``"67:68"``)
and ICMP types by name, so it reads like the rules it stands for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from pydantic import Field

from proxmox_fw.data.icmp import icmp_type_by_name
from proxmox_fw.data.protocols import lookup_protocol
from proxmox_fw.model.common import Model
from proxmox_fw.model.rule import IcmpType, PortRange, Protocol


class MacroEntry(Model):
    """One protocol/port combination of a macro."""

    proto: Protocol
    dport: list[PortRange] | None = None
    sport: list[PortRange] | None = None
    icmp_type: IcmpType | None = None


class Macro(Model):
    name: str  # canonical spelling, e.g. "SPICEproxy"
    description: str
    entries: list[MacroEntry] = Field(min_length=1)


def _ports(text: str) -> list[PortRange]:
    ranges = []
    for item in text.split(","):
        lo, _, hi = item.partition(":")
        ranges.append(PortRange(lo=int(lo), hi=int(hi or lo)))
    return ranges


def _entry(raw: Mapping[str, Any]) -> MacroEntry:
    proto = lookup_protocol(str(raw["proto"]))
    if proto is None:
        raise ValueError(f"unknown protocol {raw['proto']!r}")
    protocol = Protocol(name=proto[0], number=proto[1])
    icmp_type = None
    if "icmp-type" in raw:
        v6 = protocol.number == 58
        found = icmp_type_by_name(raw["icmp-type"], v6)
        if found is None:
            raise ValueError(f"unknown icmp type {raw['icmp-type']!r}")
        icmp_type = IcmpType(v6=v6, type=found[0], code=found[1])
    return MacroEntry(
        proto=protocol,
        dport=_ports(raw["dport"]) if "dport" in raw else None,
        sport=_ports(raw["sport"]) if "sport" in raw else None,
        icmp_type=icmp_type,
    )


@cache
def load_macros() -> Mapping[str, Macro]:
    """All macros keyed by canonical name, in file order."""
    text = resources.files("proxmox_fw.data").joinpath("macros.json").read_text("utf-8")
    raw: dict[str, dict[str, Any]] = json.loads(text)
    table = {
        name: Macro(
            name=name,
            description=spec["description"],
            entries=[_entry(e) for e in spec["entries"]],
        )
        for name, spec in raw.items()
    }
    return MappingProxyType(table)


@cache
def _by_folded_name() -> Mapping[str, Macro]:
    return MappingProxyType({name.lower(): m for name, m in load_macros().items()})


def find_macro(name: str) -> Macro | None:
    """Look a macro up ignoring case (as the PVE API does); None if there is none."""
    return _by_folded_name().get(name.lower())
