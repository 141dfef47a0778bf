"""Fault injection on the daemon process (issue 10): SIGKILL at random moments of its
updates, and files rewritten in place (not atomically) while it polls. Whatever the
moment, the kernel holds a complete ruleset -- after a SIGKILL the previous one or the
new one -- and the next start recovers. Bounded: a fixed number of iterations with a
fixed seed, so a failure replays."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness.netns import NetNs
from tests.unit.service.daemonlib import (
    HOST_FW,
    HOST_TEXT,
    DaemonProcess,
    edit,
    eventually,
    list_table,
    normalized,
    rules,
)

pytestmark = pytest.mark.netns

Start = Callable[..., DaemonProcess]
KILLS = 10  # iterations of "edit, kill at a random moment, check, restart"
SEED = 10


def host_text(ports: list[int]) -> str:
    return HOST_TEXT + "".join(f"IN ACCEPT -p tcp -dport {p}\n" for p in ports)


def host_ports(items: list[dict[str, Any]]) -> list[int]:
    out = []
    for rule in rules(items, "host-in"):
        for e in rule["expr"]:
            match = e.get("match", {})
            if match.get("left", {}).get("payload", {}).get("field") == "dport":
                out.append(match["right"])
    return out


def _no_counts(node: Any) -> Any:
    """Counter values left out (stray packets of the veth, e.g. IPv6 autoconf, move them)."""
    if isinstance(node, dict):
        return {k: None if k == "counter" else _no_counts(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_no_counts(v) for v in node]
    return node


def without_host_in(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The table but host-in, the only chain the edits touch."""
    shape = _no_counts(normalized(items))
    shape["rules"] = {c: r for c, r in shape.get("rules", {}).items() if c != "host-in"}
    return shape


def applied_ports(host: NetNs, ports: list[int]) -> bool:
    items = list_table(host)
    return items is not None and host_ports(items) == [22, 8006, *ports]


def test_sigkill_at_random_moments_of_updates_leaves_old_or_new_and_restart_recovers(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    rnd = random.Random(SEED)
    ports: list[int] = []
    daemon = start_daemon(host, pve_tree, interval=0.05)
    daemon.wait_applied()
    baseline = list_table(host)
    assert baseline is not None
    rest = without_host_in(baseline)
    outcomes = {"old": 0, "new": 0}
    for n in range(KILLS):
        old = [22, 8006, *ports]
        ports = [*ports, 9100 + n]
        edit(pve_tree / HOST_FW, host_text(ports))
        time.sleep(rnd.uniform(0.0, 0.3))  # the poll is every 50 ms: reads, compile, commit
        daemon.proc.kill()
        daemon.proc.wait()
        items = list_table(host)
        assert items is not None, f"iteration {n}: no host table after SIGKILL"
        assert without_host_in(items) == rest, f"iteration {n}: incomplete ruleset"
        now = host_ports(items)
        assert now in (old, [22, 8006, *ports]), f"iteration {n}: {now}"
        outcomes["old" if now == old else "new"] += 1
        daemon = start_daemon(host, pve_tree, interval=0.05)
        eventually(lambda want=ports: applied_ports(host, want), f"restart {n} to recover")
        assert daemon.proc.poll() is None
    assert sum(outcomes.values()) == KILLS


def rewrite_in_place(path: Path, text: str, pause: float) -> None:
    """Rewrite ``path`` in place as a careless editor would: truncate, then write the
    new text in two halves with a pause in between (a reader may see every stage)."""
    data = text.encode()
    with open(path, "r+b") as f:
        f.truncate(0)
        f.flush()
        time.sleep(pause)
        f.write(data[: len(data) // 2])
        f.flush()
        time.sleep(pause)
        f.write(data[len(data) // 2:])


def test_in_place_rewrites_during_polls_never_leave_the_kernel_without_a_full_ruleset(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    rnd = random.Random(SEED)
    daemon = start_daemon(host, pve_tree, interval=0.05)
    daemon.wait_applied()
    baseline = list_table(host)
    assert baseline is not None
    rest = without_host_in(baseline)
    versions = [[9100 + n] for n in range(8)]
    allowed = {22, 8006} | {p for v in versions for p in v}
    stop = threading.Event()
    samples: list[list[dict[str, Any]] | None] = []

    def sample() -> None:
        while not stop.is_set():
            samples.append(list_table(host))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for ports in versions:
            rewrite_in_place(pve_tree / HOST_FW, host_text(ports), rnd.uniform(0.0, 0.1))
            time.sleep(rnd.uniform(0.0, 0.1))
        last = [22, 8006, *versions[-1]]
        eventually(lambda: applied_ports(host, versions[-1]), "the last version")
    finally:
        stop.set()
        sampler.join()
    assert samples
    for items in samples:
        assert items is not None, "the host table was gone during the rewrites"
        assert without_host_in(items) == rest  # every other chain whole
        # Only ports of some version. Not "previous or new" exactly: a file caught
        # half-written is applied until the next poll reads it whole (README, Reliability).
        assert set(host_ports(items)) <= allowed
    assert daemon.proc.poll() is None
    final = list_table(host)
    assert final is not None and host_ports(final) == last
