"""``proxmox-firewall counters``: which config rules match traffic, and which never do."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from proxmox_fw.service.state import DEFAULT_STATE_DIR

EXIT_OK = 0
EXIT_NO_TABLES = 1


def counters_cmd(
    ctx: typer.Context,
    vmid: Annotated[int | None, typer.Option(
        "--vmid", help="Only this guest's rules (its chains and its <vmid>.fw).")] = None,
    zero: Annotated[bool, typer.Option(
        "--zero", help="Print, then start counting from zero (a baseline in --state-dir).",
    )] = False,
    unused: Annotated[bool, typer.Option(
        "--unused", help="List only the rules that matched nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    state_dir: Annotated[Path, typer.Option(
        "--state-dir", help="Where the --zero baseline is kept.")] = DEFAULT_STATE_DIR,
) -> None:
    """Packets and bytes each config rule (file:line) matched, most hits first.

    Counted since the rule was applied (the service keeps the counters of rules an
    update does not touch) or since the last --zero.

    Exit codes: 0 counters shown; 1 no firewall table is loaded, or the --zero
    baseline could not be stored.
    """
    from proxmox_fw.nft.client import NftClient
    from proxmox_fw.tools.counters import collect_counters, format_counters

    try:
        report = collect_counters(NftClient(), state_dir, vmid=vmid, zero=zero)
    except OSError as exc:  # --zero: the state directory is not writable
        sys.stderr.write(f"counters: cannot keep the --zero baseline in {state_dir}: {exc}\n")
        raise typer.Exit(EXIT_NO_TABLES) from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(unused_only=unused), indent=2) + "\n")
    else:
        sys.stdout.write(format_counters(report, ctx.obj.pve_dir, unused_only=unused))
    raise typer.Exit(EXIT_OK if report.tables else EXIT_NO_TABLES)
