"""``proxmox-firewall check``: every problem of the configuration, before applying it."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer


def check_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the problems as JSON.")] = False,
    kernel: Annotated[bool | None, typer.Option(
        "--kernel/--no-kernel", show_default="as root",
        help="Also let the kernel check the compiled ruleset (check mode, in a throwaway "
             "network namespace; needs root).",
    )] = None,
) -> None:
    """Report every problem of the configuration as file:line: severity: message.

    Errors are what compile and apply would skip; warnings what loads but is suspicious
    (unused aliases, ipsets and groups, shadowed rules, rules that can never match,
    nomatch entries that change nothing, an open host policy, values the Proxmox VE API
    refuses). As root the compiled ruleset also goes through the kernel in check mode,
    in a throwaway network namespace: nothing is applied.

    Exit codes: 0 no problem; 1 warnings only; 2 errors.
    """
    from proxmox_fw.tools.check import KERNEL, run_check

    g = ctx.obj
    report = run_check(g.pve_dir, g.nodename, kernel=kernel)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        for p in report.problems:
            where = p.file if p.file == KERNEL else str(g.pve_dir / p.file)
            where += f":{p.line}" if p.line is not None else ""
            sys.stdout.write(f"{where}: {p.severity}: {p.message}\n")
        if not report.kernel_checked:
            sys.stderr.write("note: not checked with the kernel (needs root)\n")
    raise typer.Exit(report.exit_code)
