"""``counters``: packets and bytes per config rule (file:line), read from the kernel.

Every verdict rule and chain policy the compiler emits carries a ``counter`` and its
config origin as the comment; one config line may become several nft rules (a macro, an
ipset of both families, a log rule), so counts are summed per origin. Counters live as
long as the rule: a full apply restarts them, the daemon's incremental updates keep
those of untouched chains.

``--zero`` cannot reset a rule's counter on the kernels this runs on (that needs
NFT_MSG_GETRULE_RESET, Linux 6.2, and nft 1.0.7), so it stores a baseline in the state
directory, keyed by table and rule handle; later readings subtract it. A rule replaced
since gets a new handle and counts from zero anyway.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.kernelstate import our_table_handles
from proxmox_fw.service.state import write_json_atomic
from proxmox_fw.tools.kernelrules import KernelRule, read_rules

BASELINE_FILE = "counters-zero.json"


@dataclass(slots=True)
class RuleCount:
    """One config rule (or policy): the sum over the nft rules it became."""

    origin: str
    packets: int = 0
    bytes: int = 0
    chains: list[str] = field(default_factory=list)  # "inet proxmox-firewall host-in"
    nft_rules: int = 0

    @property
    def file(self) -> str:
        path, sep, line = self.origin.rpartition(":")
        return path if sep and line.isdigit() else self.origin

    @property
    def line(self) -> int | None:
        _, sep, line = self.origin.rpartition(":")
        return int(line) if sep and line.isdigit() else None

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "file": self.file, "line": self.line,
                "packets": self.packets, "bytes": self.bytes, "chains": self.chains,
                "nft_rules": self.nft_rules}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Baseline:
    """Counter readings at the last ``--zero``: per table handle, rule handle → counts."""

    taken_at: float
    tables: dict[str, tuple[int, dict[int, tuple[int, int]]]]  # label → (table handle, ...)

    def offset(self, rule: KernelRule, handles: dict[str, int]) -> tuple[int, int]:
        label = f"{rule.family} {rule.table}"
        entry = self.tables.get(label)
        if entry is None or handles.get(label) != entry[0]:
            return 0, 0  # the table was re-created since: its counters restarted
        return entry[1].get(rule.handle, (0, 0))

    def to_json(self) -> dict[str, Any]:
        return {"taken_at": self.taken_at,
                "tables": {label: {"handle": h, "rules": {str(k): list(v) for k, v in r.items()}}
                           for label, (h, r) in self.tables.items()}}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> Baseline | None:
        try:
            tables = {
                str(label): (int(t["handle"]),
                             {int(k): (int(v[0]), int(v[1])) for k, v in t["rules"].items()})
                for label, t in data["tables"].items()
            }  # fmt: skip
            return cls(float(data["taken_at"]), tables)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            return None


def read_baseline(state_dir: Path) -> Baseline | None:
    try:
        return Baseline.from_json(json.loads((state_dir / BASELINE_FILE).read_text()))
    except (OSError, ValueError):
        return None


def write_baseline(state_dir: Path, baseline: Baseline) -> None:
    """Atomically replace the baseline file; raises OSError."""
    write_json_atomic(state_dir / BASELINE_FILE, baseline.to_json())


def take_baseline(rules: list[KernelRule], handles: dict[str, int], now: float) -> Baseline:
    tables: dict[str, tuple[int, dict[int, tuple[int, int]]]] = {}
    for rule in rules:
        label = f"{rule.family} {rule.table}"
        if rule.packets is None or label not in handles:
            continue
        entry = tables.setdefault(label, (handles[label], {}))
        entry[1][rule.handle] = (rule.packets, rule.bytes or 0)
    return Baseline(now, tables)


def belongs_to_guest(rule: KernelRule, vmid: int) -> bool:
    """The guest's own chains, or a rule written in its ``<vmid>.fw``."""
    if rule.chain in (f"guest-{vmid}-in", f"guest-{vmid}-out"):
        return True
    return (rule.origin or "").split(":", 1)[0] == f"firewall/{vmid}.fw"


def count_rules(rules: list[KernelRule], *, baseline: Baseline | None = None,
                handles: dict[str, int] | None = None,
                vmid: int | None = None) -> list[RuleCount]:  # fmt: skip
    """Counts per origin, most packets first (then by origin); only counted rules with an
    origin take part."""
    by_origin: dict[str, RuleCount] = {}
    for rule in rules:
        if rule.packets is None or not rule.origin:
            continue
        if vmid is not None and not belongs_to_guest(rule, vmid):
            continue
        packets, nbytes = rule.packets, rule.bytes or 0
        if baseline is not None:
            base_p, base_b = baseline.offset(rule, handles or {})
            packets, nbytes = max(packets - base_p, 0), max(nbytes - base_b, 0)
        entry = by_origin.setdefault(rule.origin, RuleCount(rule.origin))
        entry.packets += packets
        entry.bytes += nbytes
        entry.nft_rules += 1
        chain = f"{rule.family} {rule.table} {rule.chain}"
        if chain not in entry.chains:
            entry.chains.append(chain)
    return sorted(by_origin.values(), key=lambda c: (-c.packets, -c.bytes, _order(c.origin)))


def _order(origin: str) -> tuple[str, int]:
    path, sep, line = origin.rpartition(":")
    if sep and line.isdigit():
        return path, int(line)
    return origin, 0


@dataclass(frozen=True, slots=True)
class CountersReport:
    counts: list[RuleCount]
    tables: list[str]  # the firewall tables found in the kernel
    since: float | None  # the --zero baseline in use (wall clock), None: since the apply
    zeroed: bool  # this call took a new baseline

    def to_json(self, *, unused_only: bool = False) -> dict[str, Any]:
        counts = [c for c in self.counts if c.packets == 0] if unused_only else self.counts
        return {"tables": self.tables, "since_zero": self.since, "zeroed": self.zeroed,
                "rules": [c.to_json() for c in counts]}  # fmt: skip


def collect_counters(client: NftClient, state_dir: Path, *, vmid: int | None = None,
                     zero: bool = False) -> CountersReport:  # fmt: skip
    """Read the counters (minus the last baseline); with ``zero`` store a new baseline."""
    handles = our_table_handles() or {}
    rules = read_rules(client)
    baseline = read_baseline(state_dir)
    counts = count_rules(rules, baseline=baseline, handles=handles, vmid=vmid)
    since = baseline.taken_at if baseline is not None and any(
        label in baseline.tables and baseline.tables[label][0] == h for label, h in handles.items()
    ) else None
    if zero:
        write_baseline(state_dir, take_baseline(rules, handles, time.time()))
    return CountersReport(counts, sorted(handles), since, zero)


def format_counters(report: CountersReport, pve_dir: Path, *, unused_only: bool = False) -> str:
    """A table for the terminal: hits first; paths under the config directory."""
    lines: list[str] = []
    if not report.tables:
        return "no firewall tables loaded: nothing to count\n"
    since = ("since --zero at " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.since))
             if report.since is not None else "since the rules were applied")
    counts = report.counts
    if unused_only:
        counts = [c for c in counts if c.packets == 0]
        lines.append(f"{len(counts)} rules not hit {since}:")
    else:
        lines.append(f"packets and bytes per rule {since}:")
    lines.append(f"{'packets':>10} {'bytes':>12}  rule")
    for c in counts:
        where = str(pve_dir / c.origin) if "/" in c.origin else c.origin
        chains = ", ".join(ch.split(" ", 2)[2] for ch in c.chains)
        lines.append(f"{c.packets:>10} {c.bytes:>12}  {where}  ({chains})")
    if report.zeroed:
        lines.append("counters zeroed: the next reading starts from here")
    return "\n".join(lines) + "\n"
