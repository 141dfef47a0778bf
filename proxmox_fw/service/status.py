"""``proxmox-firewall status``: is the firewall configured, running, loaded and current?

It asks nobody: the daemon's state file says whether it runs and which ruleset it last
committed (a hash), the kernel says over netlink which of our tables exist (never through
libnftables' ``list tables``, which other programs' tables can crash), and the
configuration is compiled
now, exactly as the daemon compiles it, to tell whether the kernel is in step with it.

Exit codes (also in the command's help):

- 0: the daemon runs and the kernel is in step with the configuration (or the firewall is
  disabled by the configuration or the flag file and no table is loaded);
- 1: the daemon does not run, or the firewall is enabled but its tables are missing;
- 3: the daemon runs but is out of step (the configuration changed and was not applied,
  the last update failed, files are unreadable) or the ruleset is partial (one table
  missing, e.g. the guest table on a kernel without bridge conntrack/reject/meta).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.nft.apply import loadable_ruleset
from proxmox_fw.nft.features import KernelFeatures
from proxmox_fw.nft.kernelstate import OUR_TABLES, KernelReader
from proxmox_fw.pipeline import compile_node, firewall_enabled, host_facts, load_node
from proxmox_fw.service.state import FORCE_DISABLED, is_running, read_state, ruleset_hash

EXIT_OK = 0
EXIT_NOT_RUNNING = 1  # or: enabled, but the tables are missing
EXIT_OUT_OF_SYNC = 3  # or: partial

TABLES = tuple(f"{family} {name}" for family, name in OUR_TABLES)


@dataclass(slots=True)
class StatusReport:
    config_enabled: bool  # cluster enable and host nftables
    config_detail: str
    force_disabled: bool  # the flag file exists
    running: bool
    pid: int | None = None
    service_state: str | None = None  # as the daemon wrote it
    tables_present: dict[str, bool] | None = None  # None: the kernel could not be asked
    tables_expected: list[str] = field(default_factory=list)
    missing_features: list[str] = field(default_factory=list)
    last_apply_at: float | None = None
    last_error: str | None = None
    unreadable: list[str] = field(default_factory=list)
    in_sync: bool = False  # the kernel holds what the configuration compiles to now
    problems: list[str] = field(default_factory=list)
    exit_code: int = EXIT_NOT_RUNNING

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def collect_status(
    pve_dir: Path,
    nodename: str,
    state_dir: Path,
    flag: Path,
    kernel: KernelReader,
    features: KernelFeatures,
) -> StatusReport:
    diags = Diagnostics()
    cfg = load_node(pve_dir, nodename, diags)
    result = compile_node(cfg, host_facts(cfg), diags)
    loadable, missing = loadable_ruleset(result.ruleset, features)
    flagged = flag.exists()
    report = StatusReport(
        config_enabled=firewall_enabled(cfg),
        config_detail=f"cluster enable: {int(cfg.cluster.options.enable)}, "
                      f"host nftables: {int(cfg.host.options.nftables)}",
        force_disabled=flagged,
        running=False,
        unreadable=list(cfg.unreadable),
    )
    state = read_state(state_dir)
    if state is not None:
        report.running = is_running(state)
        report.pid = state.pid if report.running else None
        report.service_state = state.state
        report.last_apply_at = state.last_apply_at
        report.last_error = state.last_error
        report.unreadable = sorted({*report.unreadable, *state.unreadable})
    if not flagged:
        report.tables_expected = [f"{t.family} {t.name}" for t in loadable.tables if t.enabled]
        report.missing_features = missing
    present = kernel.present(OUR_TABLES)
    if present is not None:
        report.tables_present = {label: label in present for label in TABLES}
    if flagged:
        report.in_sync = state is not None and state.state == FORCE_DISABLED and not present
    else:
        report.in_sync = state is not None and state.ruleset_hash == ruleset_hash(loadable)
    _judge(report)
    return report


def _judge(report: StatusReport) -> None:
    """Fill in ``problems`` and the exit code (see the module docstring)."""
    problems = report.problems
    fatal = False
    if not report.running:
        problems.append("the proxmox-firewall service is not running")
        fatal = True
    present = report.tables_present
    if present is None:
        problems.append("cannot list the nftables tables")
        fatal = True
    else:
        absent = [t for t in report.tables_expected if not present.get(t)]
        if absent and len(absent) == len(report.tables_expected):
            problems.append("missing tables: " + ", ".join(absent))
            fatal = True
        elif absent:
            problems.append("partial: missing " + ", ".join(absent))
        extra = [t for t, here in present.items() if here and t not in report.tables_expected]
        if extra:
            problems.append("tables loaded that the configuration does not want: "
                            + ", ".join(extra))
    if report.missing_features:
        problems.append("guest table left out: this kernel lacks "
                        + ", ".join(report.missing_features))
    if report.last_error:
        problems.append(f"last update failed: {report.last_error}")
    if report.unreadable:
        problems.append("unreadable files: " + ", ".join(report.unreadable))
    if report.running and not report.in_sync:
        problems.append("the kernel is not in step with the configuration")
    if fatal:
        report.exit_code = EXIT_NOT_RUNNING
    elif problems:
        report.exit_code = EXIT_OUT_OF_SYNC
    else:
        report.exit_code = EXIT_OK


def format_status(report: StatusReport, now: float | None = None) -> str:
    """The human-readable report."""
    now = time.time() if now is None else now
    if report.force_disabled:
        config = "disabled by the force-disable flag"
    else:
        config = "enabled" if report.config_enabled else "disabled"
    lines = [f"firewall:   {config} ({report.config_detail})"]
    if report.running:
        lines.append(f"service:    running (pid {report.pid}, {report.service_state})")
    else:
        lines.append("service:    not running")
    if report.tables_present is None:
        lines.append("tables:     unknown (cannot list nftables tables)")
    else:
        for label, here in report.tables_present.items():
            lines.append(f"table:      {label}: {'present' if here else 'absent'}")
    if report.last_apply_at is not None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.last_apply_at))
        lines.append(f"last apply: {stamp} ({now - report.last_apply_at:.0f}s ago)")
    else:
        lines.append("last apply: never")
    lines.append(f"in sync:    {'yes' if report.in_sync else 'no'}")
    lines.extend(f"problem:    {p}" for p in report.problems)
    return "\n".join(lines) + "\n"
