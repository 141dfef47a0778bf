"""Run the operator tools as the operator does: ``ip netns exec <host> proxmox-firewall``,
as a subprocess inside the test's host namespace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.behaviour.hostlib import NODE
from tests.harness.netns import NetNs

CLI = Path(sys.executable).parent / "proxmox-firewall"


def cli_argv(ns: NetNs, tree: Path, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns.name, str(CLI), "--pve-dir", str(tree),
            "--nodename", NODE, *args]  # fmt: skip


def run_cli(ns: NetNs, tree: Path, *args: str,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(cli_argv(ns, tree, *args), capture_output=True, text=True,
                          check=False, timeout=timeout)  # fmt: skip


def host_line(tree: Path, text: str) -> str:
    """``nodes/<node>/host.fw:<line>`` of the one host.fw line under ``tree`` holding
    ``text``: the origin the compiler writes into the rule's comment."""
    host_fw = f"nodes/{NODE}/host.fw"
    lines = (tree / host_fw).read_text().splitlines()
    (number,) = [i for i, line in enumerate(lines, start=1) if text in line]
    return f"{host_fw}:{number}"
