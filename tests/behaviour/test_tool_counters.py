"""``proxmox-firewall counters`` against the kernel: a probe's hit is counted on the
config line of the rule that accepted it, and only there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.behaviour.hostlib import Firewall, Pkt, cluster_fw, host_fw
from tests.behaviour.toolcli import host_line, run_cli

pytestmark = pytest.mark.netns




def counters(fw: Firewall, state: Path, *args: str) -> dict[str, dict[str, object]]:
    proc = run_cli(fw.topo.host.ns, fw.tree, "counters", "--json", "--state-dir", str(state),
                   *args)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {r["origin"]: r for r in json.loads(proc.stdout)["rules"]}


def test_counters_count_the_rule_a_probe_matched(fw: Firewall, tmp_path: Path) -> None:
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw("""\
        IN ACCEPT -p tcp -dport 3001
        IN ACCEPT -p tcp -dport 3002
    """))  # fmt: skip
    hit, idle = host_line(fw.tree, "3001"), host_line(fw.tree, "3002")
    state = tmp_path / "state"
    before = counters(fw, state)
    assert before[hit]["packets"] == 0 and before[idle]["packets"] == 0

    fw.check({Pkt("tcp", 3001): "ACCEPT"})
    after = counters(fw, state)
    assert after[hit]["packets"] >= 1  # the SYN (later packets are accepted by conntrack)
    assert after[hit]["bytes"] >= 40
    assert after[idle]["packets"] == 0
    assert after[hit]["chains"] == ["inet proxmox-firewall host-in"]
    hits = [int(str(r["packets"])) for r in after.values()]
    assert hits == sorted(hits, reverse=True)  # most hits first
    unused = counters(fw, state, "--unused")
    assert idle in unused and hit not in unused

    # --zero: this reading still shows the hit, the next one starts from nothing
    assert counters(fw, state, "--zero")[hit]["packets"] >= 1
    assert counters(fw, state)[hit]["packets"] == 0
    fw.check({Pkt("tcp", 3001, sport=41000): "ACCEPT"})
    assert counters(fw, state)[hit]["packets"] >= 1


def test_counters_human_output_and_vmid_filter(fw: Firewall, tmp_path: Path) -> None:
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw("IN ACCEPT -p tcp -dport 3001\n"))
    fw.check({Pkt("tcp", 3001): "ACCEPT"})
    line = host_line(fw.tree, "3001")
    proc = run_cli(fw.topo.host.ns, fw.tree, "counters", "--state-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[2].split()
    assert int(first[0]) >= 1 and first[2] == str(fw.tree / line) and first[3] == "(host-in)"
    # no guest rule is loaded: a guest filter finds nothing
    assert counters(fw, tmp_path, "--vmid", "100") == {}


def test_counters_zero_needs_a_writable_state_dir(fw: Firewall, tmp_path: Path) -> None:
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw("IN ACCEPT -p tcp -dport 3001\n"))
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    proc = run_cli(fw.topo.host.ns, fw.tree, "counters", "--zero", "--state-dir",
                   str(blocker / "state"))  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"cannot keep the --zero baseline in {blocker / 'state'}" in proc.stderr
