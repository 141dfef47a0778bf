"""Scale benchmark: ratios against baselines measured in the same run.

    .venv/bin/python benchmarks/bench_scale.py [--guests 1000] [--blacklist 100000]

Generates a pve tree with N guests (each with a firewall, ipfilter and a group) and a
blacklist of M entries (hosts, overlapping networks and ``!`` exceptions), then measures
inside a throwaway network namespace:

- load+compile, against libnftables loading the resulting host table (the baseline: the
  kernel-side cost any implementation pays);
- a daemon update after one guest's .fw changed (incremental transaction), against a full
  re-apply of everything (what upstream does every 5 s);
- an idle poll (fingerprints only), against that full re-apply.

Only ratios are meaningful across machines; absolute seconds are printed for context.
No assertion: speed is tracked here, never as a timed test.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxmox_fw.compile import CompileResult
from proxmox_fw.config.loader import watched_paths
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.nft.apply import loadable_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.diff import plan_update
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.nft.render import RenderedRuleset
from proxmox_fw.pipeline import compile_dir
from proxmox_fw.system.gcpause import paused_gc

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _blacklist_entry(rnd: random.Random) -> str:
    """Mostly hosts, some networks and ``!`` exceptions, overlapping at random (the set
    arithmetic of nomatch entries must stay O(n log n))."""
    addr = ".".join(str(rnd.randint(lo, hi)) for lo, hi in ((1, 223), (0, 255), (0, 255), (0, 255)))
    kind = rnd.random()
    if kind < 0.7:
        return addr
    if kind < 0.9:
        return f"{addr}/{rnd.randint(16, 28)}"
    return f"! {addr}/{rnd.randint(20, 32)}"


def make_tree(root: Path, guests: int, blacklist: int) -> None:
    rnd = random.Random(1)
    (root / "firewall").mkdir(parents=True)
    (root / "nodes/pve1/qemu-server").mkdir(parents=True)
    entries = "\n".join(_blacklist_entry(rnd) for _ in range(blacklist))
    (root / "firewall/cluster.fw").write_text(
        f"[OPTIONS]\nenable: 1\n[IPSET blacklist]\n{entries}\n[RULES]\nIN SSH(ACCEPT)\n"
        "[group web]\nIN HTTP(ACCEPT)\nIN HTTPS(ACCEPT)\n")
    (root / "nodes/pve1/host.fw").write_text("[OPTIONS]\nnftables: 1\n")
    ids = {}
    for i in range(guests):
        vmid = 1000 + i
        ids[str(vmid)] = {"node": "pve1", "type": "qemu", "version": 1}
        mac = f"BC:24:11:{i // 256:02X}:{i % 256:02X}:01"
        (root / f"nodes/pve1/qemu-server/{vmid}.conf").write_text(
            f"net0: virtio={mac},bridge=vmbr0,firewall=1\n")
        (root / f"firewall/{vmid}.fw").write_text(
            "[OPTIONS]\nenable: 1\nipfilter: 1\n[RULES]\nGROUP web -i net0\n"
            "IN SSH(ACCEPT) -source 10.0.0.0/8\n")
    (root / ".vmlist").write_text(json.dumps({"version": 1, "ids": ids}))


def compile_tree(root: Path) -> CompileResult:
    return compile_dir(root, "pve1")


def bench(root: Path, guests: int) -> dict[str, float]:
    features = probe_features()
    client = NftClient()
    out: dict[str, float] = {}

    out["compile"], result = timed(lambda: compile_tree(root))
    assert result.config is not None
    cfg = result.config
    rs, _ = loadable_ruleset(result.ruleset, features)
    tx = plan_update(None, rs)  # what `apply` and the daemon's first apply send
    out["full_apply"], res = timed(lambda: client.run_json(tx.document()))
    assert res.ok, res.error
    # Baseline: the same host-table document, loaded again by libnftables alone.
    out["nft_load"], res = timed(lambda: client.run_json(tx.document()))
    assert res.ok, res.error
    applied = RenderedRuleset(rs)
    applied.digest()

    source = DirectorySource(root)
    paths = watched_paths(cfg)
    out["idle_poll"], _ = timed(lambda: source.fingerprint(paths))

    if guests:
        (root / "firewall/1000.fw").write_text(
            "[OPTIONS]\nenable: 1\n[RULES]\nIN SSH(ACCEPT) -source 10.1.0.0/16\n")

    def update() -> None:  # as the daemon's step does it
        new = compile_tree(root)
        new_rs, _ = loadable_ruleset(new.ruleset, features)
        with paused_gc():
            plan = plan_update(applied, RenderedRuleset(new_rs))
        if not plan.empty:
            r = client.run_json(plan.document())
            assert r.ok, r.error

    out["incremental_update"], _ = timed(update)
    out["full_cycle"] = out["compile"] + out["full_apply"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--guests", type=int, default=1000)
    ap.add_argument("--blacklist", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pve"
        make_tree(root, args.guests, args.blacklist)
        r = run_in_new_netns(bench, root, args.guests)
    print(f"{args.guests} guests, {args.blacklist} blacklist entries")
    for key, value in r.items():
        print(f"  {key:>20}: {value:8.3f} s")
    print("ratios:")
    print(f"  compile / nft_load (baseline)          : {r['compile'] / r['nft_load']:6.2f}")
    incr = r["incremental_update"] / r["full_cycle"]
    print(f"  incremental update / full re-apply     : {incr:6.3f}")
    print(f"  idle poll / full re-apply              : {r['idle_poll'] / r['full_cycle']:8.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
