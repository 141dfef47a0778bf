"""Issue 12's goals as one table of ratios, every baseline measured in the same run.

    .venv/bin/python benchmarks/bench_goals.py          # 1,000 guests + 100k; N to 3,000, B to 1M
    .venv/bin/python benchmarks/bench_goals.py --quick  # smaller trees, a minute or two

Needs root (throwaway network namespaces). Trees come from :mod:`benchmarks.gentree`.
Figures are medians over ``--repeat`` runs; only ratios carry across machines.

1. idle poll: the real daemon's CPU per poll with nothing changed / its full apply's CPU.
2. one guest's .fw edited: the daemon's CPU for the update / its full apply's CPU (also
   a cluster-wide alias edit, which must recompile every guest).
3. ``compile`` (whole process, output piped) / libnftables loading that same JSON into a
   fresh namespace (host table, natively; skeleton first), in wall time and peak RSS
   (``getrusage(RUSAGE_CHILDREN)`` of each process alone).
4. growth: compile CPU and peak RSS and the load's CPU for N guests (no blacklist) and
   for B blacklist entries (10 guests), as cost per unit; CLI start-up (``--help``,
   ``skeleton``) against a bare ``python -c pass``.
5. dispatch: guest chains reached through the verdict maps / all guest chains, and rules
   that jump to a guest chain (must be 0): one map lookup per packet whatever N.

No assertion: speed is tracked here, never as a timed test.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_idle import cpu, idle_polls
from benchmarks.gentree import ALIASES, NODE, make_tree
from proxmox_fw import log
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.pipeline import compile_dir
from proxmox_fw.service.daemon import Daemon, DaemonOptions, Outcome

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

# A child that runs a command (stdout to a file) and reports its wall time, CPU and peak
# RSS from its own RUSAGE_CHILDREN: one process measured alone.
_RUSAGE = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    t = time.perf_counter()
    rc = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime,
                  "rss_mb": ru.ru_maxrss / 1024}))
"""

# libnftables alone: the skeleton, then the JSON document, into the namespace it runs in.
_LOAD = """
import sys, nftables
nft = nftables.Nftables()
with open(sys.argv[1]) as f:
    skeleton = f.read()
with open(sys.argv[2]) as f:
    doc = f.read()
rc, _, err = nft.cmd(skeleton)
assert rc == 0, err
nft.set_json_output(True)  # libnftables reads JSON input only in JSON mode
rc, _, err = nft.cmd(doc)
sys.exit(rc)
"""


def measured(cmd: list[str], out: Path) -> dict[str, float]:
    res = subprocess.run([PY, "-c", _RUSAGE, str(out), *cmd], capture_output=True,
                         text=True, check=True, cwd=REPO)
    figures: dict[str, float] = json.loads(res.stdout)
    if figures["rc"] != 0:
        raise RuntimeError(f"{cmd[:4]}... failed with {figures['rc']}")
    return figures


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def repeat(n: int, fn: Callable[[], dict[str, float]]) -> dict[str, float]:
    return medians([fn() for _ in range(n)])


def cli(root: Path, *args: str) -> list[str]:
    return [PY, "-m", "cli.main", "--pve-dir", str(root), "--nodename", NODE, *args]


def compile_and_load(root: Path, work: Path, reps: int) -> dict[str, float]:
    """Goal 3 and 4: the compile process, and libnftables loading its host-table output."""
    skel = work / "skeleton.nft"
    skel.write_text(subprocess.run(cli(root, "skeleton"), capture_output=True, text=True,
                                   check=True, cwd=REPO).stdout)
    host_json, all_json = work / "host.json", work / "all.json"
    env_cmd = ["env", "PVE_LOG=error"]
    # `compile` leaves the guest table out where the kernel cannot load it (root: it
    # probes); --all-tables prints both.
    comp = repeat(reps, lambda: measured([*env_cmd, *cli(root, "compile")], host_json))
    comp_all = repeat(reps, lambda: measured(
        [*env_cmd, *cli(root, "compile", "--all-tables")], all_json))
    load = repeat(reps, lambda: measured(
        ["unshare", "--net", PY, "-c", _LOAD, str(skel), str(host_json)], work / "load.out"))
    return {
        "compile_wall": comp["wall"], "compile_cpu": comp["cpu"],
        "compile_rss_mb": comp["rss_mb"],
        "compile_all_wall": comp_all["wall"], "compile_all_cpu": comp_all["cpu"],
        "compile_all_rss_mb": comp_all["rss_mb"],
        "output_mb": all_json.stat().st_size / 1e6,
        "host_output_mb": host_json.stat().st_size / 1e6,
        "load_wall": load["wall"], "load_cpu": load["cpu"], "load_rss_mb": load["rss_mb"],
    }


def _edit_guest(root: Path, vmid: int, port: int) -> None:
    fw = root / f"firewall/{vmid}.fw"
    fw.write_text(fw.read_text() + f"IN ACCEPT -p tcp -dport {port}\n")


def daemon_figures(root: Path, state_dir: Path, polls: int, reps: int) -> dict[str, float]:
    """Goals 1 and 2, inside a throwaway namespace: the real daemon's own CPU."""
    opts = DaemonOptions(pve_dir=root, nodename=NODE, interval=1.0, state_dir=state_dir,
                         force_disable_flag=state_dir / "no-such-flag", side_effects=False)
    daemon = Daemon(opts, NftClient(), probe_features())
    full = []
    for _ in range(max(reps, 1)):
        spent, outcome = cpu(lambda: daemon.step(full=True))
        assert outcome is Outcome.APPLIED, outcome
        full.append(spent)
    idle = idle_polls(daemon, polls)
    edits = []
    for n in range(reps):
        _edit_guest(root, 1001 + n, 40000 + n)
        spent, outcome = cpu(daemon.step)
        # UNCHANGED where the kernel cannot load the guest table (it is left out).
        assert outcome in (Outcome.APPLIED, Outcome.UNCHANGED), outcome
        edits.append(spent)
    unchanged = []
    for n in range(reps):  # a write that changes no byte of the ruleset
        fw = root / f"firewall/{1001 + n}.fw"
        fw.write_text(fw.read_text() + "# a comment\n")
        spent, outcome = cpu(daemon.step)
        assert outcome is Outcome.UNCHANGED, outcome
        unchanged.append(spent)
    cluster = root / "firewall/cluster.fw"
    text = cluster.read_text()
    cluster.write_text(re.sub(r"^alias1 \S+", "alias1 10.201.0.0/16", text, flags=re.M))
    alias_edit, outcome = cpu(daemon.step)
    assert outcome is Outcome.APPLIED, outcome
    daemon.shutdown()
    return {"full_apply_cpu": statistics.median(full), "idle_poll_cpu": statistics.median(idle),
            "guest_edit_cpu": statistics.median(edits),
            "unchanged_write_cpu": statistics.median(unchanged),
            "alias_edit_cpu": alias_edit}


def dispatch(root: Path) -> dict[str, float]:
    """Goal 5 on the compiled guest table."""
    table = compile_dir(root, NODE).ruleset.guests
    chains = {n for n in table.chains if re.fullmatch(r"guest-\d+-(in|out)", n)}
    mapped = {next(iter(v.values()))["target"]
              for m in ("vm-map-in", "vm-map-out") for _, v in table.maps[m].elements}
    direct = sum(1 for c in table.chains.values() for r in c.rules
                 if re.search(r'"target": "guest-\d+-(in|out)"', json.dumps(r.expr)))
    return {"guest_chains": len(chains), "via_maps": len(chains & mapped),
            "direct_jumps": direct}


def startup(reps: int) -> dict[str, float]:
    def wall(cmd: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, cwd=REPO)
        return time.perf_counter() - start

    out = {}
    for name, cmd in (("python", [PY, "-c", "pass"]), ("help", [PY, "-m", "cli.main", "--help"]),
                      ("skeleton", [PY, "-m", "cli.main", "skeleton"])):
        out[name] = statistics.median(wall(cmd) for _ in range(reps))
    return out


def tree(tmp: Path, name: str, guests: int, blacklist: int) -> Path:
    root = tmp / name / "pve"
    if root.exists():  # the same point on both growth axes
        return root
    make_tree(root, guests, blacklist)
    old = time.time() - 3600  # settled files: the daemon re-reads a fresh file
    for path in [root, *root.rglob("*")]:
        os.utime(path, (old, old))
    return root


def growth(tmp: Path, points: list[tuple[int, int]], reps: int) -> list[dict[str, Any]]:
    rows = []
    for guests, blacklist in points:
        root = tree(tmp, f"g{guests}-b{blacklist}", guests, blacklist)
        work = root.parent
        r = compile_and_load(root, work, reps)
        rows.append({"guests": guests, "blacklist": blacklist, **r})
    return rows


def _exponent(rows: list[dict[str, Any]], axis: str, key: str) -> float:
    """Growth exponent between the two largest points (1.0: linear)."""
    import math

    a, b = rows[-2], rows[-1]
    return math.log(b[key] / a[key]) / math.log(b[axis] / a[axis])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller trees (a minute or two)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--polls", type=int, default=10)
    ap.add_argument("--json", type=Path, help="also write every figure here")
    ap.add_argument("--no-growth", action="store_true", help="goals 1-3 and 5 only")
    args = ap.parse_args()
    log.setup(logging.ERROR)
    if args.quick:
        n_main, b_main = 300, 10_000
        n_axis, b_axis = [10, 100, 300], [0, 10_000, 30_000]
    else:
        n_main, b_main = 1000, 100_000
        n_axis, b_axis = [10, 100, 1000, 3000], [0, 10_000, 100_000, 1_000_000]
    reps = args.repeat
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        main_root = tree(tmp, "main", n_main, b_main)
        figures["startup"] = startup(max(reps, 5))
        figures["dispatch"] = dispatch(main_root)
        figures["compile"] = compile_and_load(main_root, main_root.parent, reps)
        state = tmp / "state"
        state.mkdir()
        figures["daemon"] = run_in_new_netns(daemon_figures, main_root, state, args.polls,
                                             reps)
        if not args.no_growth:
            figures["growth_guests"] = growth(tmp, [(n, 0) for n in n_axis], 1)
            figures["growth_blacklist"] = growth(tmp, [(10, b) for b in b_axis], 1)
    report(figures, n_main, b_main, reps)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


def report(f: dict[str, Any], guests: int, blacklist: int, reps: int) -> None:
    c, d, s, x = f["compile"], f["daemon"], f["startup"], f["dispatch"]
    full = d["full_apply_cpu"]
    print(f"Tree: {guests} guests (gentree), {blacklist} blacklist entries; medians of "
          f"{reps} runs; {os.cpu_count()} CPUs")
    print("| goal | measure | value | baseline | ratio | target |")
    print("|---|---|---|---|---|---|")

    def row(goal: str, what: str, value: str, base: str, ratio: float, target: str) -> None:
        print(f"| {goal} | {what} | {value} | {base} | {ratio:.4g} | {target} |")

    row("1", "idle poll CPU / full apply CPU", f"{d['idle_poll_cpu'] * 1e3:.2f} ms",
        f"{full:.2f} s", d["idle_poll_cpu"] / full, "<= 0.01")
    row("2", "one guest edited: update CPU / full apply CPU",
        f"{d['guest_edit_cpu']:.3f} s", f"{full:.2f} s", d["guest_edit_cpu"] / full, "<= 0.05")
    row("2", "a write that changes nothing / full apply CPU",
        f"{d['unchanged_write_cpu']:.3f} s", f"{full:.2f} s", d["unchanged_write_cpu"] / full,
        "(no transaction)")
    row("2", f"alias used by ~1/{ALIASES} of rules edited / full apply CPU",
        f"{d['alias_edit_cpu']:.3f} s", f"{full:.2f} s", d["alias_edit_cpu"] / full,
        "(recompiles all guests)")
    row("3", "compile wall / libnftables load wall (host table)",
        f"{c['compile_wall']:.2f} s", f"{c['load_wall']:.2f} s",
        c["compile_wall"] / c["load_wall"], "<= 1.0")
    row("3", "compile CPU / libnftables load CPU", f"{c['compile_cpu']:.2f} s",
        f"{c['load_cpu']:.2f} s", c["compile_cpu"] / c["load_cpu"], "<= 1.0")
    row("3", "compile peak RSS / libnftables load peak RSS", f"{c['compile_rss_mb']:.0f} MB",
        f"{c['load_rss_mb']:.0f} MB", c["compile_rss_mb"] / c["load_rss_mb"], "<= 1.0")
    row("3", "compile --all-tables wall / load wall", f"{c['compile_all_wall']:.2f} s "
        f"({c['output_mb']:.1f} MB out)", f"{c['load_wall']:.2f} s",
        c["compile_all_wall"] / c["load_wall"], "(guest table not loadable here)")
    row("3", "compile --all-tables peak RSS / load peak RSS",
        f"{c['compile_all_rss_mb']:.0f} MB", f"{c['load_rss_mb']:.0f} MB",
        c["compile_all_rss_mb"] / c["load_rss_mb"], "<= 1.0")
    for axis, key, label in (("growth_guests", "guests", "N"),
                             ("growth_blacklist", "blacklist", "B")):
        rows = f.get(axis)
        if not rows:
            continue
        for metric in ("compile_cpu", "compile_rss_mb", "load_cpu"):
            points = ", ".join(f"{r[key]}: {r[metric]:.3g}" for r in rows)
            row("4", f"{metric} over {label} ({points})", "", "",
                _exponent(rows, key, metric), "<= 1.0 (exponent, last two points)")
    for name in ("help", "skeleton"):
        row("4", f"CLI start-up `{name}` wall", f"{s[name]:.3f} s",
            f"{s['python']:.3f} s (python -c pass)", s[name] / s["python"], "< 0.3 s")
    row("5", "guest chains reached through vm-map-in/out", f"{x['via_maps']}",
        f"{x['guest_chains']} guest chains", x["via_maps"] / max(x["guest_chains"], 1), "1.0")
    row("5", "rules jumping to a guest chain directly", f"{x['direct_jumps']}", "", 0.0, "0")


if __name__ == "__main__":
    sys.exit(main())
