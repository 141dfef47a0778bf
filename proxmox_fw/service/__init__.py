"""The ``start`` daemon and ``status``: see :mod:`.daemon` for the loop, :mod:`.inputs`
for change detection, :mod:`.signals` for the wake-up on signals, :mod:`.status`.

The daemon's names are imported on first use: the CLI reads the small :mod:`.state`
module for every command, and must not pay for the compiler to print ``--help``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxmox_fw.service.daemon import Daemon, DaemonOptions, Outcome, run

__all__ = ["Daemon", "DaemonOptions", "Outcome", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("proxmox_fw.service.daemon"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
