"""The daemon's watch on the kernel, in-process against the real kernel of a throwaway
namespace: idle polls send libnftables nothing at all (not even a listing), also when
other programs' flagged tables are there and their transactions move the generation; a
hand edit of our table is still seen and repaired.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.kernelstate import OUR_TABLES, TABLE_F_DORMANT, read_snapshot
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.service.daemon import Daemon, DaemonOptions, Outcome
from tests.unit.nft.nft_testlib import TableMaker, add_foreign_tables
from tests.unit.nft.test_diff_kernel import EXAMPLE
from tests.unit.service.daemonlib import HOST_FW, NODE, age_tree, edit, write_tree

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


def test_idle_polls_send_libnftables_nothing_next_to_flagged_tables(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "pve")
    opts = DaemonOptions(tree, NODE, state_dir=tmp_path / "state",
                         force_disable_flag=tmp_path / "flag", side_effects=False)

    def body() -> None:
        maker = TableMaker()
        try:
            assert add_foreign_tables(maker)
            client = RecordingClient()
            daemon = Daemon(opts, client, probe_features())
            assert daemon.step() is Outcome.APPLIED
            assert len(client.sent) == 1  # the transaction
            client.sent.clear()
            for n in range(10):
                assert daemon.step() is Outcome.IDLE
                assert maker.create("inet", f"busy{n}", TABLE_F_DORMANT) == 0  # moves it
            assert daemon.step() is Outcome.IDLE
            assert client.sent == []
            # Our own incremental update is the new baseline: others' transactions after
            # it find our tables as we left them.
            edit(tree / HOST_FW, (tree / HOST_FW).read_text() + "IN ACCEPT -p tcp -dport 9100\n")
            age_tree(tree)  # settled: read once, not again in case it was half-written
            assert daemon.step() is Outcome.APPLIED
            assert len(client.sent) == 1 and '"delete": {"table"' not in client.sent[0]
            client.sent.clear()
            assert maker.create("inet", "busy-after", 0) == 0
            assert daemon.step() is Outcome.IDLE
            assert client.sent == []
            # A hand edit among them is still seen: one full re-apply, then idle again.
            edited = NftClient().run_text("flush chain inet proxmox-firewall host-in")
            assert edited.ok, edited.error
            assert daemon.step() is Outcome.APPLIED
            assert len(client.sent) == 1 and '"delete": {"table"' in client.sent[0]
            client.sent.clear()
            assert daemon.step() is Outcome.IDLE
            assert client.sent == []
        finally:
            maker.close()

    run_in_new_netns(body)


@pytest.mark.fullkernel
def test_guest_table_watch_in_the_full_kernel(tmp_path: Path) -> None:
    """The same with the guest table (bridge family, verdict maps, many chains), in the
    full-kernel VM: idle and foreign transactions send nothing, a guest edit is
    incremental and becomes the baseline, a hand edit of a guest chain is repaired."""
    root = tmp_path / "pve"
    shutil.copytree(EXAMPLE, root)
    cluster = root / "firewall" / "cluster.fw"
    cluster.write_text(cluster.read_text().replace(
        "[ALIASES]\n", "[ALIASES]\n\nlocal_network 172.16.1.0/24\n"))
    age_tree(root)
    opts = DaemonOptions(root, NODE, state_dir=tmp_path / "state", side_effects=False,
                         force_disable_flag=tmp_path / "flag")

    def body() -> None:
        maker = TableMaker()
        try:
            assert add_foreign_tables(maker)
            client = RecordingClient()
            daemon = Daemon(opts, client, probe_features())
            assert daemon.step() is Outcome.APPLIED
            shapes = read_snapshot(OUR_TABLES).shapes
            assert sorted(shapes) == [GUESTS, HOST]
            assert shapes[GUESTS].chains > 5 and shapes[GUESTS].rules > 10
            client.sent.clear()
            for n in range(5):
                assert maker.create("bridge", f"busy{n}", TABLE_F_DORMANT) == 0
                assert daemon.step() is Outcome.IDLE
            assert client.sent == []
            fw = root / "firewall" / "100.fw"
            edit(fw, fw.read_text() + "IN ACCEPT -p tcp -dport 8080\n")
            age_tree(root)
            assert daemon.step() is Outcome.APPLIED
            assert len(client.sent) == 1 and '"delete": {"table"' not in client.sent[0]
            client.sent.clear()
            assert maker.create("bridge", "busy-after", 0) == 0
            assert daemon.step() is Outcome.IDLE
            assert client.sent == []
            edited = NftClient().run_text(f"flush chain {GUESTS} guest-100-in")
            assert edited.ok, edited.error
            assert daemon.step() is Outcome.APPLIED
            assert len(client.sent) == 1 and '"delete": {"table"' in client.sent[0]
        finally:
            maker.close()

    run_in_new_netns(body)
