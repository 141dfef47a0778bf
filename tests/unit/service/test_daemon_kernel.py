"""The daemon's watch on the kernel, in-process against the real kernel of a throwaway
namespace: idle polls send libnftables nothing at all (not even a listing), also when
other programs' flagged tables are there and their transactions move the generation; a
hand edit of our table is still seen and repaired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.kernelstate import OUR_TABLES, TABLE_F_DORMANT, read_snapshot
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.service.daemon import Daemon, DaemonOptions, Outcome
from tests.unit.nft.nft_testlib import TableMaker, add_foreign_tables
from tests.unit.service.daemonlib import HOST_FW, NODE, age_tree, edit, example_tree, write_tree

pytestmark = pytest.mark.netns
HOST, GUESTS = "inet proxmox-firewall", "bridge proxmox-firewall-guests"


class RecordingClient(NftClient):
    """A real client that notes every command it hands to libnftables."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []
        real = self._nft.cmd

        def cmd(text: str) -> Any:
            self.sent.append(text)
            return real(text)

        self._nft.cmd = cmd  # type: ignore[method-assign]


@dataclass(frozen=True)
class Scenario:
    tree: Path
    family: str  # where the foreign tables of each poll go
    edited: str  # a file of the tree the configuration edit appends ``line`` to
    line: str
    hand_edit: str  # nft text that edits one of our tables behind the daemon's back


def watch_scenario(sc: Scenario, tmp_path: Path, check: Callable[[], None]) -> None:
    """In a fresh namespace next to flagged foreign tables: idle polls and polls after
    others' transactions send libnftables nothing; a configuration edit is incremental
    and becomes the baseline; a hand edit is repaired by one full re-apply."""
    opts = DaemonOptions(sc.tree, NODE, state_dir=tmp_path / "state",
                         force_disable_flag=tmp_path / "flag", side_effects=False)

    def step_sends(outcome: Outcome, client: RecordingClient, daemon: Daemon) -> list[str]:
        assert daemon.step() is outcome
        sent, client.sent = client.sent, []
        return sent

    def body() -> None:
        maker = TableMaker()
        try:
            assert add_foreign_tables(maker)
            client = RecordingClient()
            daemon = Daemon(opts, client, probe_features())
            assert len(step_sends(Outcome.APPLIED, client, daemon)) == 1  # the transaction
            check()
            for n in range(10):
                assert maker.create(sc.family, f"busy{n}", TABLE_F_DORMANT if n % 2 else 0) == 0
                assert step_sends(Outcome.IDLE, client, daemon) == []
            # Our own incremental update is the new baseline: others' transactions after
            # it find our tables as we left them.
            edit(sc.tree / sc.edited, (sc.tree / sc.edited).read_text() + sc.line + "\n")
            age_tree(sc.tree)  # settled: read once, not again in case it was half-written
            (update,) = step_sends(Outcome.APPLIED, client, daemon)
            assert '"delete": {"table"' not in update
            assert maker.create(sc.family, "busy-after", 0) == 0
            assert step_sends(Outcome.IDLE, client, daemon) == []
            # A hand edit among them is still seen: one full re-apply, then idle again.
            edited = NftClient().run_text(sc.hand_edit)
            assert edited.ok, edited.error
            (repair,) = step_sends(Outcome.APPLIED, client, daemon)
            assert '"delete": {"table"' in repair
            assert step_sends(Outcome.IDLE, client, daemon) == []
        finally:
            maker.close()

    run_in_new_netns(body)


def test_idle_polls_send_libnftables_nothing_next_to_flagged_tables(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "pve")
    watch_scenario(Scenario(tree, "inet", HOST_FW, "IN ACCEPT -p tcp -dport 9100",
                            f"flush chain {HOST} host-in"), tmp_path, lambda: None)


@pytest.mark.fullkernel
def test_guest_table_watch_in_the_full_kernel(tmp_path: Path) -> None:
    """The same with the guest table (bridge family, verdict maps, many chains), in the
    full-kernel VM."""
    tree = example_tree(tmp_path / "pve")

    def both_tables_loaded() -> None:
        shapes = read_snapshot(OUR_TABLES).shapes
        assert sorted(shapes) == [GUESTS, HOST]
        assert shapes[GUESTS].chains > 5 and shapes[GUESTS].rules > 10

    watch_scenario(Scenario(tree, "bridge", "firewall/100.fw", "IN ACCEPT -p tcp -dport 8080",
                            f"flush chain {GUESTS} guest-100-in"), tmp_path, both_tables_loaded)
