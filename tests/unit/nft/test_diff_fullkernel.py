"""diff round trips with the guest table (runs inside the full-kernel VM).

The same check as test_diff_kernel.py, on edits that touch guests: their chains, the
vm-map elements dispatching to them, their ipfilter sets. One test, several edits, to
pay the slow TCG start once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from proxmox_fw.nft.diff import plan_update
from tests.unit.nft.test_diff_kernel import EXAMPLE, compiled, diff_then_list, full_listing

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]

GUEST_EDITS = {
    "guest rule added": ("firewall/100.fw", "OUT DROP -p tcp -dport 25",
                         "OUT DROP -p tcp -dport 25\nIN ACCEPT -p tcp -dport 8080"),
    "guest firewall off": ("firewall/200.fw", "enable: 1", "enable: 0"),
    "nic without firewall": ("nodes/pve1/qemu-server/100.conf",
                             "bridge=vmbr1,firewall=1", "bridge=vmbr1,firewall=0"),
    "guest gone": (".vmlist", '"200": { "node": "pve1"', '"200": { "node": "pve2"'),
    "ipset shared by both tables": ("firewall/cluster.fw", "192.0.2.0/25", "192.0.2.128/25"),
}


def test_guest_table_diffs_match_full_applies(tmp_path: Path) -> None:
    root_a = tmp_path / "a"
    shutil.copytree(EXAMPLE, root_a)
    a = compiled(root_a)
    assert a.guests.enabled, "this kernel must load the guest table"
    full_a = full_listing(a)
    for name, (rel, old, new) in GUEST_EDITS.items():
        root_b = tmp_path / name.replace(" ", "-")
        shutil.copytree(root_a, root_b)
        text = (root_b / rel).read_text()
        assert old in text, name
        (root_b / rel).write_text(text.replace(old, new, 1))
        b = compiled(root_b)
        plan = plan_update(a, b)
        assert not plan.empty, name
        assert not plan.stats.tables_replaced, name  # incremental, not a rebuild
        as_b, back_to_a = diff_then_list(a, b)
        assert as_b == full_listing(b), name
        assert back_to_a == full_a, name


def test_daemon_guest_edit_touches_only_that_guest_chain(tmp_path: Path) -> None:
    """Daemon.step with the real client in a namespace: a guest .fw edit flushes that
    guest's chain alone; every other rule of both tables keeps its kernel handle."""
    from proxmox_fw.nft.client import NftClient
    from proxmox_fw.nft.features import probe_features
    from proxmox_fw.nft.netns import NetnsWorker
    from proxmox_fw.service import Daemon, DaemonOptions, Outcome
    from tests.unit.service.daemonlib import NODE, edit, example_tree

    root = example_tree(tmp_path / "pve")
    opts = DaemonOptions(root, NODE, state_dir=tmp_path / "state", side_effects=False,
                         force_disable_flag=tmp_path / "flag")

    def handles(client: NftClient) -> dict[tuple[str, str], list[int]]:
        out: dict[tuple[str, str], list[int]] = {}
        for item in client.list_ruleset_json().output["nftables"]:
            if "rule" in item:
                rule = item["rule"]
                out.setdefault((rule["family"], rule["chain"]), []).append(rule["handle"])
        return out

    def body() -> tuple[dict[tuple[str, str], list[int]], dict[tuple[str, str], list[int]]]:
        client = NftClient()
        daemon = Daemon(opts, client, probe_features())
        assert daemon.step() is Outcome.APPLIED
        before = handles(client)
        fw = root / "firewall" / "100.fw"
        edit(fw, fw.read_text() + "IN ACCEPT -p tcp -dport 8080\n")
        assert daemon.step() is Outcome.APPLIED
        return before, handles(client)

    with NetnsWorker() as worker:
        before, after = worker.call(body)
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    assert changed == {("bridge", "guest-100-in")}
    assert len(after[("bridge", "guest-100-in")]) == len(before[("bridge", "guest-100-in")]) + 1
