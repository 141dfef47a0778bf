"""Static data tables: macros, ICMP type names, conntrack helpers, protocols, services.

The loaders are cached, return read-only mappings and are safe to call from anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

from proxmox_fw.data.ct_helper import CtHelper, load_ct_helpers
from proxmox_fw.data.icmp import ICMP_TYPES, ICMPV6_TYPES, icmp_type_by_name, nft_icmp_type_name
from proxmox_fw.data.macro import Macro, MacroEntry, find_macro, load_macros
from proxmox_fw.data.protocols import PORT_PROTOCOLS, lookup_protocol, protocol_name
from proxmox_fw.data.services import port_by_name


def macros() -> Mapping[str, Macro]:
    """Every macro, keyed by its canonical name; use :func:`find_macro` to ignore case."""
    return load_macros()


def ct_helpers() -> Mapping[str, CtHelper]:
    """The conntrack helpers ``nf_conntrack_helpers`` may name, keyed by name."""
    return load_ct_helpers()


def find_ct_helper(name: str) -> CtHelper | None:
    return load_ct_helpers().get(name.lower())


__all__ = [
    "ICMPV6_TYPES",
    "ICMP_TYPES",
    "PORT_PROTOCOLS",
    "CtHelper",
    "Macro",
    "MacroEntry",
    "ct_helpers",
    "find_ct_helper",
    "find_macro",
    "icmp_type_by_name",
    "lookup_protocol",
    "macros",
    "nft_icmp_type_name",
    "port_by_name",
    "protocol_name",
]
