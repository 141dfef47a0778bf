"""The state file: atomic round trip, liveness of the writer, the ruleset digest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from proxmox_fw.nft.objects import Ruleset
from proxmox_fw.service.state import (
    ACTIVE,
    STOPPED,
    ServiceState,
    is_running,
    process_start_ticks,
    read_state,
    ruleset_hash,
    state_path,
    write_state,
)


def me() -> ServiceState:
    return ServiceState(pid=os.getpid(), pid_start=process_start_ticks(os.getpid()),
                        state=ACTIVE, started_at=1.0, ruleset_hash="abc",
                        applied_tables=["inet proxmox-firewall"])


def test_round_trip_and_no_temp_files_left(tmp_path: Path) -> None:
    write_state(tmp_path / "run", me())
    assert read_state(tmp_path / "run") == me()
    assert os.listdir(tmp_path / "run") == ["state.json"]


def test_unreadable_or_foreign_state_is_none(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    state_path(tmp_path).write_text("{half")
    assert read_state(tmp_path) is None
    state_path(tmp_path).write_text('{"pid": "x"}')
    assert read_state(tmp_path) is None
    state_path(tmp_path).write_text('{"pid": 1, "pid_start": null, "future_field": 1}')
    state = read_state(tmp_path)
    assert state is not None and state.pid == 1


def test_running_means_alive_same_process_not_stopped() -> None:
    assert is_running(me())
    stopped = me()
    stopped.state = STOPPED
    assert not is_running(stopped)
    recycled = me()
    recycled.pid_start = (recycled.pid_start or 0) + 1  # same pid, another process
    assert not is_running(recycled)
    child = subprocess.Popen(["true"])
    child.wait()
    gone = me()
    gone.pid, gone.pid_start = child.pid, None
    assert not is_running(gone)


def test_ruleset_hash_follows_content() -> None:
    a, b = Ruleset(), Ruleset()
    assert ruleset_hash(a) == ruleset_hash(b)
    b.host.chain("host-in", in_skeleton=True).add([{"accept": None}], "nodes/pve1/host.fw:3")
    assert ruleset_hash(a) != ruleset_hash(b)
