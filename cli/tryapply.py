"""``proxmox-firewall try-apply`` and ``confirm``: apply with an automatic roll-back."""

from __future__ import annotations

import os
import select
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from proxmox_fw.service.state import DEFAULT_STATE_DIR

EXIT_KEPT = 0
EXIT_NOT_APPLIED = 1
EXIT_USAGE = 2  # typer's own
EXIT_ROLLED_BACK = 4

_STATE_HELP = "The daemon's state directory (it honours a pending try-apply)."


def _ask(deadline: float) -> str | None:
    """The operator's answer at the terminal, or None when the time is up / no answer."""
    sys.stdout.write(f"Keep the new ruleset? Type 'yes' within {deadline - time.time():.0f} s, "
                     "anything else rolls back: ")
    sys.stdout.flush()
    left = deadline - time.time()
    if left <= 0:
        return None
    ready, _, _ = select.select([sys.stdin], [], [], left)
    if not ready:
        return None
    line = sys.stdin.readline()
    return line.strip().lower() if line else None


def try_apply_cmd(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=1.0, help="Seconds to confirm before the roll-back.")] = 30.0,
    prompt: Annotated[bool, typer.Option(
        "--prompt/--no-prompt",
        help="Ask at the terminal (default when stdin is one); else confirm with `confirm`.",
    )] = True,
    state_dir: Annotated[Path, typer.Option("--state-dir", help=_STATE_HELP)] = DEFAULT_STATE_DIR,
) -> None:
    """Apply the configuration, and put the previous ruleset back unless confirmed within
    --timeout seconds: at the prompt, or with `proxmox-firewall confirm` (e.g. from a new
    SSH session, if the new rules cut this one off).

    The roll-back runs in a detached process: it happens even when this terminal or SSH
    session dies. The service (`start`) leaves the kernel alone while a try is pending,
    and does not re-apply a rolled-back configuration until it changes.

    A try-apply while another is pending continues it (the first saved ruleset stays
    the way back): with the service running, run one before editing the files, so the
    service does not apply the edits by itself, then another to try them.

    Exit codes: 0 applied, and confirmed (or waiting for `confirm` without a prompt);
    1 not applied (the kernel is unchanged), or the roll-back failed; 2 usage error;
    4 rolled back.
    """
    from cli.apply import EXIT_FAILED, apply_config
    from cli.main import _compile
    from proxmox_fw.nft.apply import loadable_ruleset
    from proxmox_fw.nft.client import NftClient
    from proxmox_fw.nft.features import probe_features
    from proxmox_fw.service.state import ruleset_hash
    from proxmox_fw.tools import tryapply

    result = _compile(ctx.obj)
    client = NftClient()
    digest = ruleset_hash(loadable_ruleset(result.ruleset, probe_features())[0])
    try:
        pending, continued = tryapply.begin(client, state_dir, digest, timeout)
    except OSError as exc:
        sys.stderr.write(f"try-apply: not applied: {exc}\n")
        raise typer.Exit(EXIT_NOT_APPLIED) from None
    if apply_config(result, client) == EXIT_FAILED:
        tryapply.abandon(state_dir, continued)
        raise typer.Exit(EXIT_NOT_APPLIED)
    if continued:
        sys.stdout.write("continuing the pending try-apply: its saved ruleset is the way back\n")
    else:
        tryapply.start_watcher(state_dir, pending)
    until = time.strftime("%H:%M:%S", time.localtime(pending.deadline))
    if not (prompt and os.isatty(sys.stdin.fileno())):
        sys.stdout.write(f"applied; run `proxmox-firewall confirm` by {until} "
                         "or the previous ruleset comes back\n")
        raise typer.Exit(EXIT_KEPT)
    sys.stdout.write(f"applied; the previous ruleset comes back at {until} unless confirmed\n")
    try:
        answer = _ask(pending.deadline)
    except KeyboardInterrupt:
        answer = None
    if answer in ("y", "yes"):
        found = tryapply.confirm(state_dir)
        if found is not None and found.state == tryapply.PENDING:
            sys.stdout.write("confirmed: the new ruleset stays\n")
            raise typer.Exit(EXIT_KEPT)
        sys.stdout.write("too late: the previous ruleset was already put back\n")
        raise typer.Exit(EXIT_ROLLED_BACK)
    outcome = tryapply.roll_back_now(client, state_dir)
    if not outcome.ok and "no try-apply is pending" not in outcome.error:
        sys.stderr.write(f"try-apply: roll-back failed: {outcome.error}\n")
        raise typer.Exit(EXIT_NOT_APPLIED)
    sys.stdout.write(("\n" if answer is None else "") + "rolled back to the previous ruleset\n")
    raise typer.Exit(EXIT_ROLLED_BACK)


def confirm_cmd(
    state_dir: Annotated[Path, typer.Option("--state-dir", help=_STATE_HELP)] = DEFAULT_STATE_DIR,
) -> None:
    """Keep the ruleset of a pending try-apply (cancels its roll-back).

    Exit codes: 0 confirmed; 1 nothing to confirm (no try-apply, or it was already
    rolled back).
    """
    from proxmox_fw.tools import tryapply

    found = tryapply.confirm(state_dir)
    if found is None:
        sys.stderr.write("confirm: no try-apply is pending\n")
        raise typer.Exit(1)
    if found.state != tryapply.PENDING:
        sys.stderr.write("confirm: too late, the previous ruleset was already put back\n")
        raise typer.Exit(1)
    sys.stdout.write("confirmed: the new ruleset stays\n")
