"""``try-apply`` and ``confirm`` against the kernel, as the operator runs them (the CLI
in a named namespace, with a throwaway /var/lib): the previous ruleset comes back
byte-identical (``nft list ruleset``) after the timeout and after the terminal is
killed, stays replaced when confirmed, and the daemon neither applies edits while a try
is pending nor re-applies a rolled-back configuration."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from proxmox_fw.service.state import process_start_ticks
from proxmox_fw.tools.tryapply import PENDING_FILE, ROLLED_BACK, SAVED_FILE, read_pending
from tests.harness.netns import NetNs
from tests.unit.service.daemonlib import CLI, HOST_FW, NODE, DaemonProcess, edit, eventually

pytestmark = pytest.mark.netns

# apply writes /var/lib/pve-firewall/log_nf_conntrack: give every run its own /var/lib
_PRIVATE_VAR_LIB = 'mount -t tmpfs pfwt-var-lib /var/lib || exit 99; exec "$@"'


def ruleset(ns: NetNs) -> str:
    return subprocess.run(["ip", "netns", "exec", ns.name, "nft", "list", "ruleset"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def append_host_rule(tree: Path, line: str) -> None:
    edit(tree / HOST_FW, (tree / HOST_FW).read_text() + line + "\n")


@dataclass
class Operator:
    """Runs the CLI in ``ns``; kills every roll-back watcher it started when done."""

    ns: NetNs
    tree: Path
    state: Path
    watchers: dict[int, int | None] = field(default_factory=dict)  # pid -> start time

    def argv(self, *args: str) -> list[str]:
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _PRIVATE_VAR_LIB,
                "sh", "ip", "netns", "exec", self.ns.name, str(CLI), "--pve-dir",
                str(self.tree), "--nodename", NODE, *args]  # fmt: skip

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``apply``, or ``try-apply``/``confirm`` with this operator's state directory."""
        if args[0] != "apply":
            args = (*args, "--state-dir", str(self.state))
        proc = subprocess.run(self.argv(*args),
                              capture_output=True, text=True, check=False,
                              timeout=60)  # fmt: skip
        assert proc.returncode != 99, proc.stderr
        self.note_watcher()
        return proc

    def note_watcher(self) -> None:
        pending = read_pending(self.state)
        if pending is not None and pending.watcher_pid is not None:
            self.watchers[pending.watcher_pid] = pending.watcher_start

    def rolled_back(self) -> bool:
        pending = read_pending(self.state)
        return pending is not None and pending.state == ROLLED_BACK

    def cleanup(self) -> None:
        """Kill watchers still running (checked by start time: never a recycled pid)."""
        for pid, start in self.watchers.items():
            if process_start_ticks(pid) == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def quiet(pair: tuple[NetNs, NetNs]) -> None:
    """No IPv6 on the link: router solicitations and MLD reports would move rule
    counters between the test's listing and try-apply's, and the listings compare
    counters too."""
    for ns in pair:
        for key in ("all", "default", "h0" if ns is pair[0] else "p0"):
            ns.sysctl(f"net/ipv6/conf/{key}/disable_ipv6", 1)


@pytest.fixture
def operator(netns_pair: tuple[NetNs, NetNs], pve_tree: Path,
             tmp_path: Path) -> Iterator[Operator]:  # fmt: skip
    op = Operator(netns_pair[0], pve_tree, tmp_path / "state")
    quiet(netns_pair)
    try:
        yield op
    finally:
        op.cleanup()


def test_rolls_back_to_the_identical_ruleset_after_the_timeout(operator: Operator) -> None:
    op = operator
    assert op.run("apply").returncode == 0
    before = ruleset(op.ns)
    append_host_rule(op.tree, "IN ACCEPT -p tcp -dport 9100")
    tried = op.run("try-apply", "--timeout", "4")
    assert tried.returncode == 0, tried.stderr
    assert "run `proxmox-firewall confirm` by" in tried.stdout
    assert "tcp dport 9100" in ruleset(op.ns)
    eventually(op.rolled_back, "the roll-back at the deadline")
    assert ruleset(op.ns) == before
    late = op.run("confirm")
    assert late.returncode == 1 and "too late" in late.stderr
    assert not (op.state / SAVED_FILE).exists()


def test_keeps_the_new_ruleset_when_confirmed(operator: Operator) -> None:
    op = operator
    assert op.run("apply").returncode == 0
    before = ruleset(op.ns)
    append_host_rule(op.tree, "IN ACCEPT -p tcp -dport 9100")
    assert op.run("try-apply", "--timeout", "6").returncode == 0
    tried = ruleset(op.ns)
    assert tried != before
    pending = read_pending(op.state)
    assert pending is not None and pending.watcher_pid is not None
    confirmed = op.run("confirm")
    assert confirmed.returncode == 0 and "confirmed" in confirmed.stdout
    # the watcher ends without touching anything; nothing happens at the deadline
    eventually(lambda: not os.path.exists(f"/proc/{pending.watcher_pid}"), "the watcher's end")
    time.sleep(max(pending.deadline - time.time(), 0) + 1)
    assert ruleset(op.ns) == tried
    assert not (op.state / PENDING_FILE).exists() and not (op.state / SAVED_FILE).exists()
    again = op.run("confirm")
    assert again.returncode == 1 and "no try-apply is pending" in again.stderr


@contextlib.contextmanager
def on_a_terminal(argv: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``argv`` in a session of its own on a new pty, as an SSH login's shell would be;
    yields the process and the pty's master side; the process is gone afterwards."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)  # fmt: skip
    os.close(slave)
    try:
        read_until(master, "Keep the new ruleset?")
        yield proc, master
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_until(fd: int, text: str, timeout: float = 30) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        assert ready, f"no {text!r} in {seen!r}"
        seen += os.read(fd, 4096)
    return seen.decode(errors="replace")


def test_rolls_back_when_its_terminal_is_killed(operator: Operator) -> None:
    op = operator
    assert op.run("apply").returncode == 0
    before = ruleset(op.ns)
    append_host_rule(op.tree, "IN ACCEPT -p tcp -dport 9100")
    with on_a_terminal(op.argv("try-apply", "--timeout", "5", "--state-dir",
                               str(op.state))) as (proc, _master):  # fmt: skip
        op.note_watcher()
        assert "tcp dport 9100" in ruleset(op.ns)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole session goes, nothing answers
        proc.wait(10)
    eventually(op.rolled_back, "the detached watcher's roll-back")
    assert ruleset(op.ns) == before


def test_answer_at_the_prompt(operator: Operator) -> None:
    op = operator
    assert op.run("apply").returncode == 0
    before = ruleset(op.ns)
    append_host_rule(op.tree, "IN ACCEPT -p tcp -dport 9100")
    for answer, code, want in ((b"no\n", 4, before), (b"yes\n", 0, None)):
        with on_a_terminal(op.argv("try-apply", "--timeout", "30", "--state-dir",
                                   str(op.state))) as (proc, master):  # fmt: skip
            op.note_watcher()
            tried = ruleset(op.ns)
            os.write(master, answer)
            assert proc.wait(30) == code
        assert ruleset(op.ns) == (want if want is not None else tried)
    assert not (op.state / PENDING_FILE).exists()


Start = Callable[..., DaemonProcess]


def test_the_daemon_holds_and_does_not_fight_the_roll_back(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    quiet(netns_pair)
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    op = Operator(host, pve_tree, daemon.state_dir)
    try:
        before = ruleset(host)
        # a first try before editing holds the daemon: the edit is not applied behind it
        hold = op.run("try-apply", "--timeout", "60")
        assert hold.returncode == 0, hold.stderr
        eventually(lambda: "try-apply waits for confirmation" in daemon.log(), "the hold")
        append_host_rule(pve_tree, "IN ACCEPT -p tcp -dport 9100")
        time.sleep(1.5)  # seven polls
        assert ruleset(host) == before
        # the second try applies the edit, with the first saved ruleset as the way back
        tried = op.run("try-apply", "--timeout", "3")
        assert tried.returncode == 0 and "continuing the pending try-apply" in tried.stdout
        assert "tcp dport 9100" in ruleset(host)
        eventually(op.rolled_back, "the roll-back")
        assert ruleset(host) == before
        eventually(lambda: "rolled back by try-apply" in daemon.log(), "the daemon's notice")
        time.sleep(1.5)
        assert ruleset(host) == before  # not re-applied
        # a new edit ends the hold: the daemon applies the configuration as it is now
        append_host_rule(pve_tree, "IN ACCEPT -p tcp -dport 9200")
        eventually(lambda: "tcp dport 9200" in ruleset(host), "the daemon's apply")
        assert "tcp dport 9100" in ruleset(host)
        assert not (daemon.state_dir / PENDING_FILE).exists()
        assert daemon.proc.poll() is None, daemon.log()
    finally:
        op.cleanup()
