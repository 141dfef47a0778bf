"""Conntrack helper definitions (admin guide §13.10.1) in the shape the compiler uses."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True, slots=True)
class HelperDef:
    name: str
    proto: str  # "tcp" | "udp"
    port: int
    v4: bool
    v6: bool


@cache
def helper_defs() -> dict[str, HelperDef]:
    from proxmox_fw.data import ct_helpers  # the data module owns the table
    from proxmox_fw.model import Family

    return {
        h.name: HelperDef(h.name, h.proto, h.dport, Family.V4 in h.families,
                          Family.V6 in h.families)
        for h in ct_helpers().values()
    }
