"""The ``start`` daemon and ``status``: see :mod:`.daemon` for the loop, :mod:`.inputs`
for change detection, :mod:`.signals` for the wake-up on signals, :mod:`.status`."""

from proxmox_fw.service.daemon import Daemon, DaemonOptions, Outcome, run

__all__ = ["Daemon", "DaemonOptions", "Outcome", "run"]
