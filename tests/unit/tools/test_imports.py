"""Each tool module imports on its own (the daemon imports tryapply, which imports
service.state, whose package imports the daemon: a cycle only a fresh interpreter sees)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["proxmox_fw.tools.tryapply", "proxmox_fw.tools.counters",
                                    "proxmox_fw.tools.trace", "proxmox_fw.tools.kernelrules"])
def test_imports_first(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
