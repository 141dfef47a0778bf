"""``check``: every problem of the configuration, before anything is applied.

Three sources, one list of :class:`Diagnostic`: what the parsers and the compiler report
(errors: the object is skipped), :mod:`.lint`'s warnings (suspicious but loaded), and,
as root, the kernel's own verdict on the compiled ruleset. The kernel check runs the
same transaction ``apply`` would send through libnftables' check mode (the kernel
validates the batch and aborts it) inside a throwaway network namespace, so the live
ruleset is never touched; a refused batch is narrowed down to the rules the kernel
refuses, each reported at its config file:line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxmox_fw.diagnostics import Diagnostic, Diagnostics, Severity
from proxmox_fw.nft.apply import loadable_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.diff import plan_update
from proxmox_fw.nft.features import KernelFeatures, probe_features
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.nft.objects import Ruleset
from proxmox_fw.nft.salvage import checker, refused_rules, rule_origin
from proxmox_fw.nft.skeleton import SkeletonError
from proxmox_fw.pipeline import compile_node, host_facts, load_node
from proxmox_fw.tools.lint import errors_at, lint_config

KERNEL = "kernel"  # the "file" of problems that belong to no config line

EXIT_CLEAN = 0
EXIT_WARNINGS = 1
EXIT_ERRORS = 2

Command = dict[str, Any]


@dataclass(slots=True)
class CheckReport:
    problems: list[Diagnostic] = field(default_factory=list)
    kernel_checked: bool = False

    @property
    def exit_code(self) -> int:
        severities = {p.severity for p in self.problems}
        if Severity.ERROR in severities:
            return EXIT_ERRORS
        return EXIT_WARNINGS if Severity.WARNING in severities else EXIT_CLEAN

    def to_json(self) -> dict[str, Any]:
        return {"problems": [{"file": p.file, "line": p.line, "severity": str(p.severity),
                              "message": p.message} for p in self.problems],
                "kernel_checked": self.kernel_checked}  # fmt: skip


def _order(d: Diagnostic) -> tuple[bool, str, int]:
    return d.file == KERNEL, d.file, d.line or 0


def run_check(pve_dir: Path, nodename: str, *, kernel: bool | None = None) -> CheckReport:
    """Check the configuration of ``nodename``; ``kernel`` None: check with the kernel
    when running as root (creating a network namespace needs it)."""
    diags = Diagnostics()
    cfg = load_node(pve_dir, nodename, diags)
    # Like `compile`: the configuration is checked whichever service host.fw picks.
    facts = host_facts(cfg, honor_nftables_switch=False)
    for w in facts.warnings:
        diags.warning(cfg.cluster.file, None, w)
    result = compile_node(cfg, facts, diags)
    for d in lint_config(cfg, errors_at(diags)):
        diags.add(d.file, d.line, d.message, d.severity)
    report = CheckReport(sorted(diags, key=_order))
    if kernel if kernel is not None else os.geteuid() == 0:
        try:
            report.problems += kernel_problems(result.ruleset)
            report.kernel_checked = True
        except OSError as exc:
            report.problems.append(Diagnostic(KERNEL, None, Severity.ERROR,
                                              f"cannot check with the kernel: {exc}"))
    return report


def kernel_problems(rs: Ruleset, features: KernelFeatures | None = None) -> list[Diagnostic]:
    """What this kernel would refuse of ``rs`` (needs root: a throwaway namespace)."""
    feats = features if features is not None else probe_features()
    out = Diagnostics()
    loadable, missing = loadable_ruleset(rs, feats)
    if missing:
        out.warning(KERNEL, None, "the guest table cannot be loaded on this kernel, which lacks "
                    + ", ".join(missing)
                    + "; apply loads the host table alone and exits 3")  # fmt: skip
    try:
        commands = plan_update(None, loadable).commands
    except SkeletonError as exc:
        out.error(KERNEL, None, f"the skeleton does not load: {exc}")
        return list(out)
    for where, message in run_in_new_netns(_refused, commands):
        if where is None:
            out.error(KERNEL, None, f"the kernel refuses the ruleset: {message}")
        else:
            file, _, line = where.rpartition(":")
            out.error(file, int(line), f"the kernel refuses this rule: {message}")
    return list(out)


def _refused(commands: list[Command]) -> list[tuple[str | None, str]]:
    """In a fresh namespace: nothing if the kernel takes ``commands``; else each refused
    rule as (its origin ``file:line``, the error), or (None, error) when what fails is not
    a single rule."""
    client = NftClient()
    check = checker(client)
    found = refused_rules(commands, check)
    if found is None:
        return [(None, check(commands) or "refused")]
    return [(rule_origin(commands[i]), err) for i, err in found]
