"""Idle-poll benchmark: the daemon's CPU per poll when nothing changed, as a ratio to
the CPU of a full apply, measured in one run (issue 12, goal 1).

    .venv/bin/python benchmarks/bench_idle.py [--guests 1000] [--blacklist 100000]
                                              [--small-guests 10] [--polls 20]

Three trees: ``small`` (``--small-guests``, no blacklist), ``guests`` (``--guests``, no
blacklist) and ``large`` (``--guests`` and ``--blacklist``). For each, inside a throwaway
network namespace: a daemon (the real :class:`~proxmox_fw.service.daemon.Daemon`, no side
effects) applies the tree once (the full apply's CPU), then polls ``--polls`` times with
nothing changed; then another program commits a transaction (a table of its own) before
each of a few more polls, so the daemon checks its own tables for hand edits. CPU is the
process's own (``time.process_time``: user and system, all threads), which is the daemon
alone here.

Also printed: what the daemon's kernel questions cost when asked through libnftables
(``list tables``: the idle poll before the netlink reader; a terse listing of our
tables: the hand-edit check before it) next to the netlink reader's answers.

The idle poll must not depend on the blacklist (``large`` against ``guests``) and cost at
most 1% of the large tree's full apply; what grows with the guests is one ``stat`` of each
watched file (a guest's .fw and .conf), which polling /etc/pve cannot avoid. No
assertion: speed is tracked here, never as a timed test. On a kernel without the bridge
features only the host table (with the blacklist) is loaded; the guests still cost their
compile.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gentree import NODE, make_tree
from proxmox_fw import log
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.kernelstate import read_generation, read_snapshot, read_tables
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, HOST_TABLE, INET
from proxmox_fw.service.daemon import Daemon, DaemonOptions, Outcome

OURS = ((INET, HOST_TABLE), (BRIDGE, GUEST_TABLE))


def cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def cpu_each(fn: Callable[[], Any], times: int) -> list[float]:
    return [cpu(fn)[0] for _ in range(times)]


def idle_polls(daemon: Daemon, polls: int) -> list[float]:
    """CPU of each of ``polls`` polls with nothing changed, after an apply."""
    daemon.step()  # the first poll after an apply may take its baseline
    idle = []
    for _ in range(polls):
        spent, outcome = cpu(daemon.step)
        assert outcome is Outcome.IDLE, outcome
        idle.append(spent)
    return idle


def measure(root: Path, polls: int, state_dir: Path) -> dict[str, float]:
    client = NftClient()
    opts = DaemonOptions(pve_dir=root, nodename=NODE, interval=1.0, state_dir=state_dir,
                         force_disable_flag=state_dir / "no-such-flag", side_effects=False)
    daemon = Daemon(opts, client, probe_features())
    out: dict[str, float] = {}
    out["full_apply"], outcome = cpu(lambda: daemon.step(full=True))
    assert outcome is Outcome.APPLIED, outcome
    out["idle_poll"] = statistics.median(idle_polls(daemon, polls))
    foreign = []
    for n in range(5):  # someone else's transaction before each poll
        other = client.run_text(f"add table ip other{n}")
        assert other.ok, other.error
        spent, outcome = cpu(daemon.step)
        assert outcome is Outcome.IDLE, outcome
        foreign.append(spent)
    out["poll_after_foreign_tx"] = statistics.median(foreign)

    # The kernel questions one by one, through libnftables and through netlink.
    list_tables = {"nftables": [{"list": {"tables": None}}]}
    out["libnft_list_tables"] = statistics.median(
        cpu_each(lambda: client.run_json(list_tables), 3))
    out["libnft_terse_host_table"] = statistics.median(
        cpu_each(lambda: client.list_table_terse(INET, HOST_TABLE), 3))
    out["netlink_generation"] = statistics.median(cpu_each(read_generation, 50))
    out["netlink_our_tables"] = statistics.median(cpu_each(lambda: read_tables(OURS), 50))
    out["netlink_snapshot"] = statistics.median(cpu_each(lambda: read_snapshot(OURS), 3))
    shapes = read_snapshot(OURS).shapes
    out["rules_in_kernel"] = sum(s.rules for s in shapes.values())
    daemon.shutdown()
    return out


def run(guests: int, blacklist: int, polls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pve"
        make_tree(root, guests, blacklist)
        old = time.time() - 3600  # settled files: the daemon reads a fresh file twice
        for path in [root, *root.rglob("*")]:
            os.utime(path, (old, old))
        state_dir = Path(tmp) / "run"
        state_dir.mkdir()
        return run_in_new_netns(measure, root, polls, state_dir)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--guests", type=int, default=1000)
    ap.add_argument("--blacklist", type=int, default=100_000)
    ap.add_argument("--small-guests", type=int, default=10)  # no blacklist
    ap.add_argument("--polls", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()
    log.setup(logging.ERROR)
    trees = {"small": (args.small_guests, 0), "guests": (args.guests, 0),
             "large": (args.guests, args.blacklist)}
    r = {name: run(guests, blacklist, args.polls) for name, (guests, blacklist) in trees.items()}
    print("CPU seconds (median) per tree: "
          + "; ".join(f"{name}: {g} guests, {b} blacklist entries"
                      for name, (g, b) in trees.items()))
    print(f"  {'':>26}" + "".join(f" {name:>10}" for name in trees))
    for key in r["large"]:
        print(f"  {key:>26}" + "".join(f" {r[name][key]:10.5f}" for name in trees))
    large, guests, small = r["large"], r["guests"], r["small"]
    print("ratios:")
    print(f"  idle poll / full apply (large)          : "
          f"{large['idle_poll'] / large['full_apply']:9.6f}   (goal <= 0.01)")
    print(f"  idle poll large / idle poll guests      : "
          f"{large['idle_poll'] / guests['idle_poll']:9.3f}   (the blacklist: goal ~ 1)")
    print(f"  idle poll large / idle poll small       : "
          f"{large['idle_poll'] / small['idle_poll']:9.3f}   (guests: two stats each)")
    print(f"  poll after a foreign tx / full apply    : "
          f"{large['poll_after_foreign_tx'] / large['full_apply']:9.6f}")
    print(f"  netlink snapshot / libnft terse listing : "
          f"{large['netlink_snapshot'] / large['libnft_terse_host_table']:9.4f}")
    print(f"  netlink tables / libnft list tables     : "
          f"{large['netlink_our_tables'] / large['libnft_list_tables']:9.6f}")
    if args.json:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
