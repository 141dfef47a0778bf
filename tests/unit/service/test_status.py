"""collect_status: its verdict and exit code from state file, tables and configuration.

The kernel side is a fake answering which of our tables exist (all status asks it); the
configuration is compiled for real, as the daemon compiles it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from proxmox_fw.config.loader import load_config
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.nft.apply import loadable_ruleset
from proxmox_fw.nft.features import KernelFeatures
from proxmox_fw.pipeline import compile_node, host_facts
from proxmox_fw.service.state import (
    ACTIVE,
    DISABLED,
    FORCE_DISABLED,
    STOPPED,
    ServiceState,
    process_start_ticks,
    ruleset_hash,
    write_state,
)
from proxmox_fw.service.status import StatusReport, collect_status, format_status
from proxmox_fw.system.localnet import LocalNet
from tests.unit.service.daemonlib import HOST_FW, NODE, REPO, FakeClient, edit, write_tree

HOST = "inet proxmox-firewall"
GUESTS = "bridge proxmox-firewall-guests"
NO_GUESTS = KernelFeatures(bridge_conntrack=False, bridge_reject=False, bridge_meta=False)


def digest(tree: Path, features: KernelFeatures = NO_GUESTS) -> str:
    diags = Diagnostics()
    cfg = load_config(DirectorySource(tree), NODE, diags)
    facts = host_facts(cfg, detect_local=lambda: LocalNet(NODE))
    rs, _ = loadable_ruleset(compile_node(cfg, facts, diags).ruleset, features)
    return ruleset_hash(rs)


def state(state_name: str = ACTIVE, **kwargs: object) -> ServiceState:
    return ServiceState(pid=os.getpid(), pid_start=process_start_ticks(os.getpid()),
                        state=state_name, started_at=1.0, **kwargs)  # type: ignore[arg-type]


def status(tree: Path, run: Path, tables: list[str],
           features: KernelFeatures = NO_GUESTS) -> StatusReport:
    client = FakeClient()
    client.tables = {label: n for n, label in enumerate(tables, start=1)}
    return collect_status(tree, NODE, run, run / "flag", client, features)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "pve")


def test_running_in_sync(tree: Path, tmp_path: Path) -> None:
    write_state(tmp_path, state(ruleset_hash=digest(tree), last_apply_at=100.0))
    report = status(tree, tmp_path, [HOST])
    assert report.exit_code == 0, report.problems
    assert report.running and report.in_sync and report.config_enabled
    assert report.tables_expected == [HOST]
    text = format_status(report, now=160.0)
    assert "in sync:    yes" in text and "(60s ago)" in text


def test_not_running(tree: Path, tmp_path: Path) -> None:
    assert status(tree, tmp_path, [HOST]).exit_code == 1  # no state file at all
    write_state(tmp_path, state(STOPPED, ruleset_hash=None))
    report = status(tree, tmp_path, [])
    assert report.exit_code == 1
    assert "the proxmox-firewall service is not running" in report.problems


def test_tables_missing(tree: Path, tmp_path: Path) -> None:
    write_state(tmp_path, state(ruleset_hash=digest(tree)))
    report = status(tree, tmp_path, [])
    assert report.exit_code == 1
    assert report.problems == [f"missing tables: {HOST}"]


def test_out_of_sync_after_an_edit(tree: Path, tmp_path: Path) -> None:
    write_state(tmp_path, state(ruleset_hash=digest(tree)))
    edit(tree / HOST_FW, (tree / HOST_FW).read_text() + "IN ACCEPT -p tcp -dport 9100\n")
    report = status(tree, tmp_path, [HOST])
    assert report.exit_code == 3
    assert report.problems == ["the kernel is not in step with the configuration"]


def test_failed_update_is_out_of_sync(tree: Path, tmp_path: Path) -> None:
    write_state(tmp_path, state(ruleset_hash=digest(tree), last_error="the kernel refused"))
    report = status(tree, tmp_path, [HOST])
    assert report.exit_code == 3
    assert report.problems == ["last update failed: the kernel refused"]


def test_partial_when_the_guest_table_cannot_load(tmp_path: Path) -> None:
    tree = tmp_path / "pve"
    shutil.copytree(REPO / "examples" / "pve", tree)
    (tree / "firewall" / "cluster.fw").write_text(
        (tree / "firewall" / "cluster.fw").read_text().replace(
            "[ALIASES]\n", "[ALIASES]\n\nlocal_network 172.16.1.0/24\n"))
    write_state(tmp_path, state(ruleset_hash=digest(tree)))
    report = status(tree, tmp_path, [HOST])
    assert report.exit_code == 3
    assert report.in_sync
    assert report.missing_features
    # with a kernel that can: both tables are expected, one missing is partial
    full = KernelFeatures()
    write_state(tmp_path, state(ruleset_hash=digest(tree, full)))
    report = status(tree, tmp_path, [HOST], features=full)
    assert report.exit_code == 3
    assert report.problems == [f"partial: missing {GUESTS}"]


def test_disabled_by_config_without_tables_is_fine(tree: Path, tmp_path: Path) -> None:
    edit(tree / HOST_FW, (tree / HOST_FW).read_text().replace("nftables: 1", "nftables: 0"))
    write_state(tmp_path, state(DISABLED, ruleset_hash=digest(tree)))
    report = status(tree, tmp_path, [])
    assert report.exit_code == 0, report.problems
    assert not report.config_enabled
    leftover = status(tree, tmp_path, [HOST])
    assert leftover.exit_code == 3
    assert leftover.problems == [
        f"tables loaded that the configuration does not want: {HOST}"]


def test_force_disabled(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "flag").touch()
    write_state(tmp_path, state(FORCE_DISABLED, ruleset_hash=None))
    report = status(tree, tmp_path, [])
    assert report.exit_code == 0, report.problems
    assert report.force_disabled
    assert "disabled by the force-disable flag" in format_status(report)
    assert status(tree, tmp_path, [HOST]).exit_code == 3
