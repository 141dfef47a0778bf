"""``apply --no-side-effects`` and the demo leave the machine alone (issue 10, item 9).

Every run happens in a private mount and network namespace with a fresh tmpfs on
``/var/lib``, so even the runs that do write (the control case) change nothing outside.
Which conntrack sysctls a namespace has of its own was measured on this kernel:
``nf_conntrack_tcp_timeout_*`` are per namespace; ``nf_conntrack_max`` is global and
read-only outside the initial namespace (``apply`` warns there and goes on).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CLI = ROOT / ".venv" / "bin" / "proxmox-firewall"
TIMEOUT = Path("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established")

pytestmark = pytest.mark.netns

HOST_FW = """\
[OPTIONS]
nftables: 1
log_nf_conntrack: 1
nf_conntrack_tcp_timeout_established: 7777
nf_conntrack_max: 300000
"""


def _isolated(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` in fresh mount + network namespaces, /var/lib a fresh tmpfs."""
    wrapped = ("set -e; mkdir -p /run/netns; mount -t tmpfs pfw-test /run/netns; "
               f"mount -t tmpfs pfw-test /var/lib; {script}")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "--net",
                           "sh", "-c", wrapped], capture_output=True, text=True, check=False,
                          cwd=ROOT, timeout=300)


def _apply(tmp_path: Path, *flags: str) -> dict[str, str]:
    pve = tmp_path / "pve"
    (pve / "firewall").mkdir(parents=True)
    (pve / "nodes" / "pve1").mkdir(parents=True)
    (pve / "firewall" / "cluster.fw").write_text("[OPTIONS]\nenable: 1\n")
    (pve / "nodes" / "pve1" / "host.fw").write_text(HOST_FW)
    cmd = shlex.join([str(CLI), "--pve-dir", str(pve), "--nodename", "pve1", "apply", *flags])
    res = _isolated(f"""{cmd} 2>/dev/null || true
        printf '{{"timeout": "%s", "flag": "%s"}}' "$(cat {TIMEOUT})" \\
            "$(cat /var/lib/pve-firewall/log_nf_conntrack 2>/dev/null || echo absent)" """)
    assert res.returncode == 0, res.stderr
    out: dict[str, str] = json.loads(res.stdout)
    return out


def test_no_side_effects_writes_nothing(tmp_path: Path) -> None:
    before = TIMEOUT.read_text()
    assert _apply(tmp_path, "--no-side-effects") == {"timeout": "432000", "flag": "absent"}
    assert TIMEOUT.read_text() == before


def test_side_effects_are_written_by_default(tmp_path: Path) -> None:
    """The control: the same run without the option does write (inside the sandbox)."""
    before = TIMEOUT.read_text()
    assert _apply(tmp_path) == {"timeout": "7777", "flag": "1"}
    assert TIMEOUT.read_text() == before  # a namespace's own value, not the machine's


def test_the_demo_touches_no_host_file() -> None:
    res = _isolated(".venv/bin/python examples/demo.py; ls -A /var/lib")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "--no-side-effects" in res.stdout
    assert res.stdout.rstrip().endswith("probes as expected"), res.stdout  # ls: nothing
