"""``proxmox-firewall diff``: what an apply would change in the kernel."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

EXIT_SAME = 0
EXIT_DIFFERENT = 1
EXIT_FAILED = 2


def diff_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
) -> None:
    """Compare the ruleset the configuration compiles to with the kernel's tables.

    Prints what an apply would add, remove or change, per table, chain, set and element;
    rules are shown with the config file:line they come from. The configuration is
    loaded into a throwaway network namespace for the comparison: nothing is applied.
    Needs root.

    Exit codes: 0 no difference; 1 differences; 2 no comparison possible (not root,
    unreadable configuration, or the kernel refuses the compiled ruleset).
    """
    from cli.main import _compile
    from proxmox_fw import log
    from proxmox_fw.tools.kerneldiff import DiffError, diff_ruleset, format_diff

    logger = log.get()
    if os.geteuid() != 0:
        logger.error("diff needs root: it reads the kernel's ruleset")
        raise typer.Exit(EXIT_FAILED)
    result = _compile(ctx.obj)
    unreadable = result.config.unreadable if result.config else []
    if unreadable:
        logger.error("apply would keep the previous ruleset: cannot read or use "
                     + ", ".join(unreadable))
        raise typer.Exit(EXIT_FAILED)
    try:
        report = diff_ruleset(result.ruleset)
    except DiffError as exc:
        logger.error(str(exc))
        raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(format_diff(report, ctx.obj.pve_dir))
    raise typer.Exit(EXIT_DIFFERENT if report.changes else EXIT_SAME)
