"""The daemon's watch on the kernel, in-process against the real kernel of a throwaway
namespace: idle polls send libnftables nothing at all (not even a listing), also when
other programs' flagged tables are there and their transactions move the generation; a
hand edit of our table is still seen and repaired.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.kernelstate import TABLE_F_DORMANT
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.service.daemon import Daemon, DaemonOptions, Outcome
from tests.unit.nft.nft_testlib import TableMaker, add_foreign_tables
from tests.unit.service.daemonlib import NODE, write_tree

pytestmark = pytest.mark.netns


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
