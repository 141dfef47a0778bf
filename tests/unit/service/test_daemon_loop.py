"""Loop control of Daemon.step with a fake kernel client and a fake clock.

The fake only records what would be sent and answers the daemon's kernel questions
(generation, our tables' handles) from it: it decides nothing about nftables itself (the
kernel tests do that). What is tested here is the daemon's decisions: when to read, when
to send, what to keep after a failure, when to retry.
The skeleton commands of a full apply are listed in a throwaway namespace (needs root).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from proxmox_fw.pipeline import compile_node
from proxmox_fw.service import Daemon, DaemonOptions, Outcome, run
from proxmox_fw.service import daemon as daemon_module
from proxmox_fw.service.inputs import LocalNetWatcher
from proxmox_fw.service.state import read_state
from tests.unit.service.daemonlib import (
    HOST_FW,
    NO_GUEST_FEATURES,
    NODE,
    Clock,
    FakeClient,
    age_tree,
    edit,
    write_tree,
)

pytestmark = pytest.mark.netns


def is_full(transaction: list[dict[str, Any]]) -> bool:
    return {"delete": {"table": {"family": "inet", "name": "proxmox-firewall"}}} in transaction


def flushed_chains(transaction: list[dict[str, Any]]) -> list[str]:
    return [c["flush"]["chain"]["name"] for c in transaction if "chain" in c.get("flush", {})]


class FakeNetlink:
    def __init__(self, addresses: list[tuple[str, Any]]) -> None:
        self.addresses = addresses
        self.calls = 0

    def list_addresses(self) -> list[tuple[str, Any]]:
        self.calls += 1
        return list(self.addresses)

    def default_route_ifnames(self) -> list[str]:
        return ["eth0"]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Daemon, FakeClient, Clock, Path]]:
    tree = write_tree(tmp_path / "pve")
    client, clock = FakeClient(), Clock()
    opts = DaemonOptions(tree, NODE, interval=0.1, state_dir=tmp_path / "state",
                         force_disable_flag=tmp_path / "flag", side_effects=False)
    daemon = Daemon(opts, client, NO_GUEST_FEATURES, clock=clock, kernel=client)
    yield daemon, client, clock, tree


def test_first_step_applies_in_full_then_idles(env: Any) -> None:
    daemon, client, _clock, _tree = env
    assert daemon.step() is Outcome.APPLIED
    (tx,) = client.take()
    assert is_full(tx)
    for _ in range(5):
        assert daemon.step() is Outcome.IDLE
    assert client.take() == []
    state = read_state(daemon.opts.state_dir)
    assert state is not None and state.state == "active"
    assert state.ruleset_hash == daemon.applied_hash


def test_idle_polls_ask_only_the_generation_and_send_no_command(env: Any) -> None:
    """What an idle poll costs does not depend on the ruleset: one netlink question, no
    libnftables command (the fake records every ``run_json``)."""
    daemon, client, _clock, _tree = env
    daemon.step()
    client.take()
    client.questions.clear()
    for _ in range(10):
        assert daemon.step() is Outcome.IDLE
    assert client.take() == []
    assert client.questions == ["generation"] * 10
    # Another program's transaction: our tables are read once, then polls idle again.
    client.generation_id += 1
    client.questions.clear()
    for _ in range(3):
        assert daemon.step() is Outcome.IDLE
    assert client.take() == []
    assert client.questions == ["generation", "snapshot", "generation", "generation"]


def test_edit_sends_only_the_changed_chain(env: Any) -> None:
    daemon, client, _clock, tree = env
    daemon.step()
    client.take()
    edit(tree / HOST_FW, (tree / HOST_FW).read_text() + "IN ACCEPT -p tcp -dport 9100\n")
    assert daemon.step() is Outcome.APPLIED
    (tx,) = client.take()
    assert not is_full(tx)
    assert flushed_chains(tx) == ["host-in"]


def test_touch_without_change_reads_but_sends_nothing(env: Any) -> None:
    daemon, client, _clock, tree = env
    daemon.step()
    client.take()
    edit(tree / HOST_FW, (tree / HOST_FW).read_text())  # new inode and mtime, same text
    assert daemon.step() is Outcome.UNCHANGED
    assert client.take() == []


def test_refused_transaction_keeps_last_good_and_backs_off(env: Any) -> None:
    daemon, client, clock, tree = env
    daemon.step()
    client.take()
    good = daemon.applied_hash
    client.refuse = True
    edit(tree / HOST_FW, (tree / HOST_FW).read_text() + "IN ACCEPT -p tcp -dport 9100\n")
    assert daemon.step() is Outcome.FAILED
    incremental, full = client.take()  # the diff, then one full attempt
    assert not is_full(incremental) and is_full(full)
    assert daemon.applied_hash == good
    state = read_state(daemon.opts.state_dir)
    assert state is not None and "Operation not supported" in (state.last_error or "")
    # the same ruleset is not sent again before the back-off: no tight loop
    for _ in range(5):
        assert daemon.step() in (Outcome.IDLE, Outcome.WAITING)
    assert client.take() == []
    clock.now += 1.5  # past the first back-off (1 s)
    assert daemon.step() is Outcome.FAILED
    assert len(client.take()) == 2
    clock.now += 1.5  # the back-off doubled: not due yet
    assert daemon.step() in (Outcome.IDLE, Outcome.WAITING)
    assert client.take() == []
    # a new change is tried at once, and a success clears the failure
    client.refuse = False
    edit(tree / HOST_FW, (tree / HOST_FW).read_text() + "IN ACCEPT -p tcp -dport 9200\n")
    assert daemon.step() is Outcome.APPLIED
    assert daemon.applied_hash != good
    state = read_state(daemon.opts.state_dir)
    assert state is not None and state.last_error is None


def test_unreadable_file_at_start_applies_nothing_until_readable(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "pve")
    host_fw = tree / HOST_FW
    text = host_fw.read_text()
    host_fw.unlink()
    host_fw.mkdir()  # exists, but reading it fails (root reads any mode bits)
    client = FakeClient()
    opts = DaemonOptions(tree, NODE, interval=0.1, state_dir=tmp_path / "state",
                         force_disable_flag=tmp_path / "flag", side_effects=False)
    daemon = Daemon(opts, client, NO_GUEST_FEATURES, clock=Clock(), kernel=client)
    with structlog.testing.capture_logs() as logs:
        assert daemon.step() is Outcome.KEPT
    assert client.take() == []
    assert any("cannot read" in e["event"] and HOST_FW in e["event"] for e in logs)
    host_fw.rmdir()
    host_fw.write_text(text)
    assert daemon.step() is Outcome.APPLIED


def test_unreadable_file_later_uses_its_last_good_content(env: Any) -> None:
    daemon, client, _clock, tree = env
    daemon.step()
    client.take()
    (tree / HOST_FW).unlink()
    (tree / HOST_FW).mkdir()
    with structlog.testing.capture_logs() as logs:
        assert daemon.step() is Outcome.UNCHANGED  # rules from the last good host.fw
    assert client.take() == []
    assert any("last good content" in e["event"] for e in logs)


def test_diagnostics_are_logged_once_per_change(env: Any) -> None:
    daemon, _client, _clock, tree = env
    broken = (tree / HOST_FW).read_text() + "IN BOGUS -p tcp\n"
    with structlog.testing.capture_logs() as logs:
        edit(tree / HOST_FW, broken)
        daemon.step()
        for _ in range(3):  # racy re-reads of the fresh file, then idle polls
            daemon.step()
        age_tree(tree)
        daemon.step()
    bogus = [e for e in logs if "BOGUS" in str(e) and e["log_level"] == "warning"]
    assert len(bogus) == 1, logs


def test_force_disable_flag_removes_once_and_restores(env: Any) -> None:
    daemon, client, _clock, _tree = env
    daemon.step()
    client.take()
    daemon.opts.force_disable_flag.touch()
    assert daemon.step() is Outcome.REMOVED
    assert client.tables == {}
    assert daemon.step() is Outcome.FORCE_DISABLED
    assert client.take() == [  # one delete per table, nothing while the flag stays
        [{"add": {"table": {"family": "inet", "name": "proxmox-firewall"}}},
         {"delete": {"table": {"family": "inet", "name": "proxmox-firewall"}}}],
        [{"add": {"table": {"family": "bridge", "name": "proxmox-firewall-guests"}}},
         {"delete": {"table": {"family": "bridge", "name": "proxmox-firewall-guests"}}}],
    ]
    daemon.opts.force_disable_flag.unlink()
    assert daemon.step() is Outcome.APPLIED
    (tx,) = client.take()
    assert is_full(tx)


def test_config_disable_removes_tables(env: Any) -> None:
    daemon, client, _clock, tree = env
    daemon.step()
    client.take()
    edit(tree / HOST_FW, (tree / HOST_FW).read_text().replace("nftables: 1", "nftables: 0"))
    assert daemon.step() is Outcome.SETTLING  # just written: maybe still being written
    assert client.take() == [] and client.tables
    age_tree(tree)  # unchanged since: the next poll reads it again and acts
    assert daemon.step() is Outcome.REMOVED
    assert client.tables == {}
    state = read_state(daemon.opts.state_dir)
    assert state is not None and state.state == "disabled"


def test_lost_tables_trigger_a_full_apply(env: Any) -> None:
    daemon, client, _clock, _tree = env
    daemon.step()
    client.take()
    client.flush_ruleset()  # someone else
    assert daemon.step() is Outcome.APPLIED
    (tx,) = client.take()
    assert is_full(tx)
    assert daemon.step() is Outcome.IDLE


def test_sighup_step_reapplies_in_full(env: Any) -> None:
    daemon, client, _clock, _tree = env
    daemon.step()
    client.take()
    assert daemon.step(full=True) is Outcome.APPLIED
    (tx,) = client.take()
    assert is_full(tx)


def test_vmlist_garbage_keeps_the_last_good_guest_list(tmp_path: Path) -> None:
    root = tmp_path / "pve"
    shutil.copytree(Path(__file__).resolve().parents[3] / "examples" / "pve", root)
    age_tree(root)
    client = FakeClient()
    daemon = Daemon(
        DaemonOptions(root, NODE, state_dir=tmp_path / "state", side_effects=False,
                      force_disable_flag=tmp_path / "flag"),
        client, NO_GUEST_FEATURES, clock=Clock(), kernel=client,
    )
    first = daemon.inputs.read().config
    assert set(first.guests) == {100, 200}
    edit(root / ".vmlist", '{"version": 8, "ids": {"100": {"node": "pve1", "ty')  # cut off
    snapshot = daemon.inputs.read()
    assert set(snapshot.config.guests) == {100, 200}
    assert any("last good content" in d.message for d in snapshot.diagnostics)


def test_local_network_is_detected_again_only_when_addresses_change(tmp_path: Path) -> None:
    cluster = "[OPTIONS]\n\nenable: 1\n"  # no local_network alias: detection matters
    tree = write_tree(tmp_path / "pve", cluster=cluster)
    netlink = FakeNetlink([("eth0", ipaddress.ip_interface("10.1.2.3/24"))])
    answer = [ipaddress.ip_address("10.1.2.3")]
    resolved: list[str] = []

    def resolver(name: str) -> list[Any]:
        resolved.append(name)
        return list(answer)

    client = FakeClient()
    daemon = Daemon(
        DaemonOptions(tree, NODE, state_dir=tmp_path / "state", side_effects=False,
                      force_disable_flag=tmp_path / "flag"),
        client, NO_GUEST_FEATURES, clock=Clock(), kernel=client,
        localnet=LocalNetWatcher(NODE, netlink, resolver, hosts_file=str(tmp_path / "hosts")),
    )

    def management(tx: list[dict[str, Any]]) -> list[Any]:
        return [e for c in tx if c.get("add", {}).get("element", {}).get("name")
                == "v4-dc/management" for e in c["add"]["element"]["elem"]]

    assert daemon.step() is Outcome.APPLIED
    assert management(client.take()[0]) == [{"prefix": {"addr": "10.1.2.0", "len": 24}}]
    for _ in range(3):
        assert daemon.step() is Outcome.IDLE
    assert resolved == [NODE]  # addresses unchanged: detected once
    netlink.addresses = [("eth0", ipaddress.ip_interface("10.9.0.3/16"))]
    answer[:] = [ipaddress.ip_address("10.9.0.3")]
    assert daemon.step() is Outcome.APPLIED
    (tx,) = client.take()
    assert not is_full(tx)
    assert management(tx) == [{"prefix": {"addr": "10.9.0.0", "len": 16}}]
    assert resolved == [NODE, NODE]


def test_run_survives_a_crashing_step_and_stops_on_sigterm(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, client, _clock, _tree = env
    calls = {"n": 0}

    def flaky(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("compiler bug")
        return compile_node(*args)

    monkeypatch.setattr(daemon_module, "compile_node", flaky)

    def stop_when_applied() -> None:
        while not client.tables:
            threading.Event().wait(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_applied, daemon=True).start()
    with structlog.testing.capture_logs() as logs:
        code = run(daemon.opts, client, NO_GUEST_FEATURES, kernel=client)
    assert code == 0
    assert any("compiler bug" in e["event"] for e in logs)
    assert calls["n"] >= 2  # retried after the back-off
    assert client.tables == {}  # removed at exit
    state = read_state(daemon.opts.state_dir)
    assert state is not None and state.state == "stopped"


def test_a_crashing_step_is_retried_after_the_back_off_only(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, client, clock, _tree = env
    calls = {"n": 0}

    def broken(*args: Any) -> Any:
        calls["n"] += 1
        raise RuntimeError("compiler bug")

    monkeypatch.setattr(daemon_module, "compile_node", broken)
    with pytest.raises(RuntimeError):
        daemon.step()
    daemon.note_exception(RuntimeError("compiler bug"))
    for _ in range(5):
        assert daemon.step() is Outcome.WAITING
    assert calls["n"] == 1
    clock.now += 1.5
    with pytest.raises(RuntimeError):
        daemon.step()
    assert calls["n"] == 2
    assert client.take() == []


def test_unreadable_guest_config_at_start_applies_the_rest_and_retries(tmp_path: Path) -> None:
    vmlist = '{"ids": {"100": {"node": "pve1", "type": "qemu"}}}'
    tree = write_tree(tmp_path / "pve", vmlist=vmlist)
    (tree / "firewall" / "100.fw").write_text("[OPTIONS]\nenable: 1\n")
    conf = tree / "nodes" / NODE / "qemu-server" / "100.conf"
    conf.mkdir(parents=True)  # exists, cannot be read
    age_tree(tree)
    client, clock = FakeClient(), Clock()
    opts = DaemonOptions(tree, NODE, interval=0.1, state_dir=tmp_path / "state",
                         force_disable_flag=tmp_path / "flag", side_effects=False)
    daemon = Daemon(opts, client, NO_GUEST_FEATURES, clock=clock, kernel=client)
    assert daemon.step() is Outcome.APPLIED  # the host table: better than no firewall
    assert list(client.tables) == ["inet proxmox-firewall"]
    state = read_state(opts.state_dir)
    assert state is not None and state.unreadable == ["nodes/pve1/qemu-server/100.conf"]
    assert daemon.step() is Outcome.WAITING
    conf.rmdir()
    conf.write_text("net0: virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1\n")
    age_tree(tree)  # same stamps as before: only the retry notices
    clock.now += 1.5
    assert daemon.step() is Outcome.UNCHANGED  # the guest table cannot load here anyway
    state = read_state(opts.state_dir)
    assert state is not None and state.unreadable == [] and state.last_error is None


def test_edits_still_apply_while_a_never_read_file_stays_unreadable(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "pve", vmlist='{"ids": {"100": {"node": "pve1", '
                                               '"type": "qemu"}}}')
    (tree / "nodes" / NODE / "qemu-server" / "100.conf").mkdir(parents=True)
    age_tree(tree)
    client = FakeClient()
    opts = DaemonOptions(tree, NODE, interval=0.1, state_dir=tmp_path / "state",
                         force_disable_flag=tmp_path / "flag", side_effects=False)
    daemon = Daemon(opts, client, NO_GUEST_FEATURES, clock=Clock(), kernel=client)
    assert daemon.step() is Outcome.APPLIED
    client.take()
    edit(tree / HOST_FW, (tree / HOST_FW).read_text() + "IN ACCEPT -p tcp -dport 9100\n")
    assert daemon.step() is Outcome.APPLIED
    (tx,) = client.take()
    assert flushed_chains(tx) == ["host-in"]
