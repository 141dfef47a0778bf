"""The daemon never removes the firewall because of readable garbage (issue 10, item 3).

Fake kernel client (it records transactions and the tables they leave), real files. A
cluster.fw or host.fw of random bytes, a BOM, or a file caught at any point of an
in-place rewrite must leave both tables in place; only a file that says ``enable: 0``
(or ``nftables: 0``) and stays so removes them.
"""

from __future__ import annotations

import codecs
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from proxmox_fw.service import Daemon, DaemonOptions, Outcome
from tests.unit.service.daemonlib import (
    CLUSTER_FW,
    CLUSTER_TEXT,
    HOST_FW,
    HOST_TEXT,
    NO_GUEST_FEATURES,
    NODE,
    Clock,
    FakeClient,
    age_tree,
    edit,
    write_tree,
)

pytestmark = pytest.mark.netns
HOST_TABLE = "inet proxmox-firewall"
GARBAGE = [random.Random(seed).randbytes(37 * seed + 1) for seed in range(1, 9)] + [
    b"\0" * 512, "[OPTIONS]\nenable: 1\n".encode("utf-16"), b"\xff\xfe\xfd\n\n\x00",
]


def make(tmp_path: Path, **files: str) -> tuple[Daemon, FakeClient, Path]:
    tree = write_tree(tmp_path / "pve", **files)
    client = FakeClient()
    opts = DaemonOptions(tree, NODE, interval=0.1, state_dir=tmp_path / "state",
                         force_disable_flag=tmp_path / "flag", side_effects=False)
    return Daemon(opts, client, NO_GUEST_FEATURES, clock=Clock(), kernel=client), client, tree


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Daemon, FakeClient, Path]]:
    daemon, client, tree = make(tmp_path)
    assert daemon.step() is Outcome.APPLIED
    client.take()
    yield daemon, client, tree


@pytest.mark.parametrize("rel", [CLUSTER_FW, HOST_FW])
@pytest.mark.parametrize("index", range(len(GARBAGE)))
def test_garbage_keeps_the_last_good_content(running: Any, rel: str, index: int) -> None:
    daemon, client, tree = running
    good = daemon.applied_hash
    (tree / rel).write_bytes(GARBAGE[index])
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):  # fresh, then racy re-reads: never a removal
            assert daemon.step() in (Outcome.UNCHANGED, Outcome.IDLE)
        age_tree(tree)
        assert daemon.step() in (Outcome.UNCHANGED, Outcome.IDLE)
    assert client.take() == [] and HOST_TABLE in client.tables
    assert daemon.applied_hash == good
    assert any("last good content" in e["event"] and e.get("where", "").endswith(rel)
               for e in logs), logs


@pytest.mark.parametrize("rel", [CLUSTER_FW, HOST_FW])
def test_garbage_at_start_applies_nothing(tmp_path: Path, rel: str) -> None:
    daemon, client, tree = make(tmp_path)
    (tree / rel).write_bytes(GARBAGE[0])
    age_tree(tree)
    assert daemon.step() is Outcome.KEPT
    assert client.take() == [] and client.tables == {}
    edit(tree / rel, CLUSTER_TEXT if rel == CLUSTER_FW else HOST_TEXT)
    assert daemon.step() is Outcome.APPLIED


def test_a_bom_before_options_keeps_the_firewall_on(tmp_path: Path) -> None:
    bom = codecs.BOM_UTF8.decode()
    daemon, client, _tree = make(tmp_path, cluster=bom + CLUSTER_TEXT, host=bom + HOST_TEXT)
    assert daemon.step() is Outcome.APPLIED
    assert HOST_TABLE in client.tables


def test_a_real_disable_waits_for_the_files_to_settle(running: Any) -> None:
    daemon, client, tree = running
    edit(tree / CLUSTER_FW, CLUSTER_TEXT.replace("enable: 1", "enable: 0"))
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert daemon.step() is Outcome.SETTLING
    assert client.take() == [] and HOST_TABLE in client.tables
    assert any("changed just now" in e["event"] for e in logs)
    age_tree(tree)
    assert daemon.step() is Outcome.REMOVED
    assert client.tables == {}


def test_a_burst_of_in_place_rewrites_never_removes_the_firewall(running: Any) -> None:
    """cluster.fw rewritten in place (truncate, then write), read at every length."""
    daemon, client, tree = running
    data = CLUSTER_TEXT.encode()
    seen: set[Outcome] = set()
    for cut in range(len(data) + 1):
        with open(tree / CLUSTER_FW, "r+b") as fh:  # same inode, as `echo >` or an editor
            fh.truncate(0)
            fh.write(data[:cut])
        seen.add(daemon.step())
        assert HOST_TABLE in client.tables, f"tables removed at {data[:cut]!r}"
    assert Outcome.REMOVED not in seen
    assert Outcome.SETTLING in seen  # the cuts that read as "firewall off"
    age_tree(tree)
    daemon.step()
    assert HOST_TABLE in client.tables
    assert daemon.step() is Outcome.IDLE
