"""Compilation: config models → desired ruleset. Pure functions, no I/O.

The names below are imported on first use, so that reading a small module of this
package (``sysctl``, ``loglevel``) does not load the whole compiler: the CLI's start-up
(``--help``, ``skeleton``) must stay fast (issue 12 goal 4).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxmox_fw.compile.compiler import CompileResult, compile_config
    from proxmox_fw.compile.context import CompileOptions
    from proxmox_fw.compile.host import firewall_active
    from proxmox_fw.compile.memo import CompileMemo

__all__ = ["CompileMemo", "CompileOptions", "CompileResult", "compile_config", "firewall_active"]

_HOMES = {
    "CompileMemo": "proxmox_fw.compile.memo",
    "CompileOptions": "proxmox_fw.compile.context",
    "CompileResult": "proxmox_fw.compile.compiler",
    "compile_config": "proxmox_fw.compile.compiler",
    "firewall_active": "proxmox_fw.compile.host",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
