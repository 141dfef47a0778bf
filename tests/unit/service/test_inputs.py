"""Change detection and last-good fallbacks of the daemon's inputs (no kernel)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from proxmox_fw.config.loader import IPAM_FILES, VMLIST
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.service.inputs import RACY_NS, InputWatcher, LastGoodSource, LocalNetWatcher
from proxmox_fw.service.signals import SignalWaiter
from proxmox_fw.system.localnet import IfAddress
from tests.unit.service.daemonlib import HOST_FW, NODE, OLD, age_tree, edit, write_tree


class NoNetlink:
    def list_addresses(self) -> list[IfAddress]:
        raise AssertionError("local network detection must not run with a local_network alias")

    def default_route_ifnames(self) -> list[str]:
        raise AssertionError("local network detection must not run with a local_network alias")


def watcher(root: Path, clock_ns: int | None = None) -> InputWatcher:
    def fixed() -> int:
        assert clock_ns is not None
        return clock_ns

    return InputWatcher(DirectorySource(root), NODE, LocalNetWatcher(NODE, NoNetlink()),
                        clock_ns=time.time_ns if clock_ns is None else fixed)


def test_stable_tree_is_read_once(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "pve")
    w = watcher(tree)
    assert w.changed()
    w.read()
    assert not w.changed()
    edit(tree / HOST_FW, "[OPTIONS]\nenable: 1\nnftables: 1\n")
    assert w.changed()
    assert w.why_changed() == [HOST_FW]


def test_new_watched_file_is_a_change(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "pve")
    w = watcher(tree)
    w.read()
    (tree / "firewall" / "100.fw").write_text("[OPTIONS]\nenable: 1\n")  # no guest 100 yet
    assert not w.changed()
    edit(tree / VMLIST, '{"ids": {"100": {"node": "pve1", "type": "qemu"}}}')
    assert w.changed()
    w.read()
    age_tree(tree)
    w.read()
    assert not w.changed()
    os.unlink(tree / "firewall" / "100.fw")
    assert w.changed()


def test_recently_modified_files_are_read_again(tmp_path: Path) -> None:
    """A stamp within RACY_NS of the read may hide a later write with the same stamp."""
    tree = write_tree(tmp_path / "pve")
    mtime_ns = (tree / HOST_FW).stat().st_mtime_ns
    w = watcher(tree, clock_ns=mtime_ns + RACY_NS // 2)
    w.read()
    assert w.changed()  # racy: read again
    assert w.why_changed() == ["files modified just before the last read (read again)"]
    w2 = watcher(tree, clock_ns=int(OLD * 1e9) + 3 * RACY_NS)
    w2.read()
    assert not w2.changed()


def test_last_good_source(tmp_path: Path) -> None:
    root = tmp_path / "pve"
    (root / "sdn").mkdir(parents=True)
    ipam = IPAM_FILES[0]
    src = LastGoodSource(DirectorySource(root))
    assert src.read(ipam) is None  # missing: nothing to fall back to, nothing reported
    (root / ipam).write_text('{"zones": {}}')
    assert src.read(ipam) == '{"zones": {}}'
    (root / ipam).write_text("garbage")
    diags = Diagnostics()
    assert src.read(ipam, diags) == '{"zones": {}}'
    assert [d.message for d in diags] == [
        "file is not a valid JSON object (half-written?): using its last good content"]
    (root / ipam).unlink()
    (root / ipam).mkdir()  # exists but cannot be read
    diags = Diagnostics()
    assert src.read(ipam, diags) == '{"zones": {}}'
    assert "cannot be read" in diags.items[0].message
    (root / ipam).rmdir()
    assert src.read(ipam) is None  # gone for real: the fallback is forgotten
    (root / ipam).mkdir()
    diags = Diagnostics()
    assert src.read(ipam, diags) is None  # unreadable and no last good: the error passes
    assert "cannot read file" in diags.items[0].message


def test_signal_waiter_wakes_at_once_and_keeps_pending_signals() -> None:
    with SignalWaiter([signal.SIGHUP, signal.SIGUSR1]) as waiter:
        assert waiter.wait(0) == []
        os.kill(os.getpid(), signal.SIGUSR1)
        assert waiter.pending() == [signal.SIGUSR1]
        assert waiter.pending() == [signal.SIGUSR1]  # peeking does not consume
        os.kill(os.getpid(), signal.SIGHUP)
        assert waiter.wait(60) == [signal.SIGUSR1, signal.SIGHUP]  # returns at once
        assert waiter.wait(0) == []
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
