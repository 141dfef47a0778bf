"""``simulate`` against the packet tests: every host-side pve-sim case the conformance
suite runs on this kernel gets the same verdict from ``simulate``, which builds its own
node, applies the suite's configuration and sends the packet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxmox_fw.tools.simulate import Request, simulate
from tests.harness import pvesim

ROOT = Path(__file__).resolve().parents[3]
INAPPLICABLE = pvesim.load_inapplicable()
CASES = [c for c in pvesim.all_cases() if pvesim.host_side(c) and c.id not in INAPPLICABLE]


def test_the_cases_are_there() -> None:
    assert len(CASES) >= 40


@pytest.mark.netns
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_agrees_with_the_packet_test(case: pvesim.Case) -> None:
    assert not case.multicast and not case.v6
    req = Request(case.src_zone, case.dst_zone, case.proto, case.source, case.dest,
                  case.sport, case.dport if isinstance(case.dport, int) else None)
    outcome = simulate(case.pve_dir, "pve1", req)
    assert outcome.verdict == case.action, (case, outcome.seen)
    assert outcome.packets, "the packet was traced"


@pytest.mark.netns
def test_cli_names_the_deciding_rule(tmp_path: Path) -> None:
    (tmp_path / "firewall").mkdir()
    (tmp_path / "firewall" / "cluster.fw").write_text(
        "[OPTIONS]\nenable: 1\n\n[RULES]\nIN REJECT -p tcp -dport 22\n")
    (tmp_path / ".vmlist").write_text('{"version": 1, "ids": {}}\n')
    res = subprocess.run([sys.executable, "-m", "cli.main", "--pve-dir", str(tmp_path),
                          "--nodename", "pve1", "simulate", "--from", "outside", "--to", "host",
                          "--dport", "22"], capture_output=True, text=True, cwd=ROOT,
                         check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:3] == [
        "packet: outside 100.100.1.2 -> host 172.16.1.2 tcp dport 22",
        "verdict: REJECT (TCP reset)",
        f"decided by: {tmp_path}/firewall/cluster.fw:5 (inet proxmox-firewall cluster-in)"]
    assert ("  inet proxmox-firewall cluster-in: tcp dport 22 jump do-reject -> jump  "
            f"[{tmp_path}/firewall/cluster.fw:5]") in lines


@pytest.mark.netns
def test_guest_zones_are_refused_not_guessed(tmp_path: Path) -> None:
    (tmp_path / "firewall").mkdir()
    (tmp_path / "firewall" / "cluster.fw").write_text("[OPTIONS]\nenable: 1\n")
    res = subprocess.run([sys.executable, "-m", "cli.main", "--pve-dir", str(tmp_path),
                          "--nodename", "pve1", "simulate", "--from", "outside", "--to",
                          "vm100"], capture_output=True, text=True, cwd=ROOT,
                         check=False)  # fmt: skip
    assert res.returncode == 3
    assert "zone 'vm100': guest zones are not simulated yet" in res.stderr
