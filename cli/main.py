"""The ``proxmox-firewall`` command line. Thin: parse arguments, call the library, print."""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.check import check_cmd
from cli.counters import counters_cmd
from cli.diff import diff_cmd
from cli.log import log_cmd
from cli.logger import logger as logger_command
from cli.simulate import simulate_cmd
from cli.trace import trace_cmd
from cli.tryapply import confirm_cmd, try_apply_cmd
from proxmox_fw import log
from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.service.state import DEFAULT_STATE_DIR, FORCE_DISABLE_FLAG
from proxmox_fw.system.gcpause import paused_gc

if TYPE_CHECKING:
    from proxmox_fw.compile import CompileResult
    from proxmox_fw.nft.objects import Command

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Proxmox VE nftables firewall: compile /etc/pve firewall config to nftables.",
)



@dataclass
class Globals:
    pve_dir: Path
    nodename: str


def default_nodename() -> str:
    return socket.gethostname().split(".", 1)[0]


@app.callback()
def main_options(
    ctx: typer.Context,
    pve_dir: Annotated[Path, typer.Option(
        "--pve-dir", envvar="PROXMOX_FW_PVE_DIR",
        help="Root of the Proxmox VE configuration tree.",
    )] = Path("/etc/pve"),
    nodename: Annotated[str | None, typer.Option(
        "--nodename", envvar="PROXMOX_FW_NODENAME",
        help="This node's name (default: the short hostname).", show_default=False,
    )] = None,
) -> None:
    log.setup()
    ctx.obj = Globals(pve_dir, nodename or default_nodename())


def report(diags: Diagnostics, pve_dir: Path) -> None:
    """Config diagnostics as warnings on stderr, each naming the file and line."""
    logger = log.get()
    for d in diags:
        where = str(pve_dir / d.file) + (f":{d.line}" if d.line is not None else "")
        if d.severity is Severity.INFO:
            logger.info(d.message, where=where)
        else:
            logger.warning(d.message, where=where)


def _compile(g: Globals, *, honor_nftables_switch: bool = True) -> CompileResult:
    from proxmox_fw.pipeline import compile_node, host_facts, load_node

    diags = Diagnostics()
    cfg = load_node(g.pve_dir, g.nodename, diags)
    facts = host_facts(cfg, honor_nftables_switch=honor_nftables_switch)
    result = compile_node(cfg, facts, diags)
    for w in facts.warnings:
        log.get().warning(w)
    report(result.diagnostics, g.pve_dir)
    return result


def _guest_table_unloadable() -> bool:
    """Whether this kernel cannot load the guest table (a warning names what it lacks).

    Probing needs a throwaway network namespace, so without root nothing is left out.
    """
    if os.geteuid() != 0:
        return False
    from proxmox_fw.nft.features import probe_features

    missing = probe_features().missing_for_guests()
    if missing:
        log.get().warning("guest table left out: this kernel lacks " + ", ".join(missing)
                          + " (use --all-tables to print it anyway)")
    return bool(missing)


@app.command("compile")
def compile_cmd(
    ctx: typer.Context,
    all_tables: Annotated[bool, typer.Option(
        "--all-tables",
        help="Print the guest table even if this kernel cannot load it.",
    )] = False,
    indent: Annotated[bool | None, typer.Option(
        "--indent/--compact",
        help="Indented JSON (default on a terminal) or one compact line (default when "
        "piped: indenting runs Python's slow JSON encoder over every element).",
        show_default=False,
    )] = None,
) -> None:
    """Print the nftables JSON commands for the configuration (apply after `skeleton`).

    Like `apply`, it leaves out the guest table when this kernel lacks the bridge features
    it needs (a warning names them), so the output always loads here.
    """
    from proxmox_fw.nft.render import render_commands, render_table_commands

    # `nftables: 1` in host.fw picks which service runs the firewall; it does not change
    # what the configuration means, so compile shows the ruleset either way.
    result = _compile(ctx.obj, honor_nftables_switch=False)
    rs = result.ruleset
    with paused_gc():
        commands = render_commands(rs)
    if not all_tables and rs.guests.enabled and _guest_table_unloadable():
        commands = render_table_commands(rs.host)
    if indent is None:
        indent = sys.stdout.isatty()
    write_commands(commands, indent=indent)


def write_commands(commands: list[Command], *, indent: bool) -> None:
    """``{"nftables": commands}`` on stdout. Compact output is encoded one command at a
    time by json's C encoder (``indent`` and ``iterencode`` both fall back to the
    pure-Python one), so no second copy of a document that can be 100 MB is built."""
    if indent:
        sys.stdout.write(json.dumps({"nftables": commands}, indent=2) + "\n")
        return
    out = sys.stdout
    out.write('{"nftables":[')
    for i, command in enumerate(commands):
        if i:
            out.write(",")
        out.write(json.dumps(command, separators=(",", ":")))
    out.write("]}\n")


@app.command()
def skeleton(
    all_tables: Annotated[bool, typer.Option(
        "--all-tables", help="Print the guest table even if this kernel cannot load it.",
    )] = False,
) -> None:
    """Print the bundled base ruleset (input for `nft -f -`).

    One `nft -f` is all or nothing, so where this kernel cannot load the guest table it is
    left out (a warning names the missing features) and the host table still loads.
    """
    from proxmox_fw.nft.skeleton import skeleton_table_text, skeleton_text

    text = skeleton_text()
    if not all_tables and _guest_table_unloadable():
        text = skeleton_table_text("inet")
    sys.stdout.write(text)


_SIDE_EFFECTS_HELP = ("Write the conntrack sysctls and /var/lib/pve-firewall/log_nf_conntrack "
                      "(--no-side-effects: the ruleset only, e.g. in a test namespace).")


@app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    side_effects: Annotated[bool, typer.Option(
        "--side-effects/--no-side-effects", help=_SIDE_EFFECTS_HELP)] = True,
) -> None:
    """Load skeleton and compiled rules into the kernel in one transaction."""
    from cli.apply import apply_config

    code = apply_config(_compile(ctx.obj), side_effects=side_effects)
    raise typer.Exit(code)


@app.command()
def localnet(ctx: typer.Context) -> None:
    """Show the detected local network and the management ipset (admin guide §13.5.1)."""
    from cli.localnet import localnet_report

    g: Globals = ctx.obj
    sys.stdout.write(localnet_report(g.pve_dir, g.nodename))


_STATE_DIR_HELP = "Where the daemon keeps its state file (state.json)."
_FLAG_HELP = "While this file exists the firewall tables are removed (upstream's switch)."


@app.command()
def start(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(
        "--interval", min=0.05, help="Seconds between checks for changed inputs.",
    )] = 5.0,
    state_dir: Annotated[Path, typer.Option(
        "--state-dir", help=_STATE_DIR_HELP)] = DEFAULT_STATE_DIR,
    force_disable_flag: Annotated[Path, typer.Option(
        "--force-disable-flag", help=_FLAG_HELP)] = FORCE_DISABLE_FLAG,
    side_effects: Annotated[bool, typer.Option(
        "--side-effects/--no-side-effects", help=_SIDE_EFFECTS_HELP)] = True,
) -> None:
    """Run the firewall daemon in the foreground (the proxmox-firewall service).

    Applies the configuration, then checks the inputs every --interval
    seconds and sends the kernel only what changed (nothing when nothing
    changed). SIGHUP forces a full re-read and re-apply; SIGTERM and SIGINT
    remove both firewall tables and exit. Logs to the journal under systemd,
    else to stderr; PVE_LOG sets the level (info shows every update).

    Exit codes: 0 stopped by a signal; 1 the tables could not be removed.
    """
    from proxmox_fw.nft.client import NftClient
    from proxmox_fw.nft.features import KernelFeatures, probe_features
    from proxmox_fw.service import DaemonOptions, run
    from proxmox_fw.service.journal import setup_daemon_logging

    g: Globals = ctx.obj
    setup_daemon_logging()
    try:
        features = probe_features()
    except OSError as exc:
        log.get().error(f"cannot probe kernel features ({exc}); assuming a full kernel")
        features = KernelFeatures()
    opts = DaemonOptions(g.pve_dir, g.nodename, interval, state_dir, force_disable_flag,
                         side_effects)
    raise typer.Exit(run(opts, NftClient(), features))


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    state_dir: Annotated[Path, typer.Option(
        "--state-dir", help=_STATE_DIR_HELP)] = DEFAULT_STATE_DIR,
    force_disable_flag: Annotated[Path, typer.Option(
        "--force-disable-flag", help=_FLAG_HELP)] = FORCE_DISABLE_FLAG,
) -> None:
    """Show whether the firewall is enabled, running, loaded and up to date.

    Exit codes:

    0: the service runs and the kernel is in step with the configuration
    (or the firewall is disabled and no table is loaded).

    1: the service is not running, or the firewall is enabled but its
    tables are missing.

    3: the service runs but the kernel is out of step (a change not yet
    applied, a failed update, unreadable files) or the ruleset is partial
    (a table left out, e.g. the guest table on a kernel without bridge
    conntrack/reject/meta).
    """
    from proxmox_fw.nft.features import KernelFeatures, probe_features
    from proxmox_fw.nft.kernelstate import NetlinkReader
    from proxmox_fw.service.status import collect_status, format_status

    g: Globals = ctx.obj
    try:
        features = probe_features()
    except OSError:
        features = KernelFeatures()
    report = collect_status(g.pve_dir, g.nodename, state_dir, force_disable_flag,
                            NetlinkReader(), features)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(format_status(report))
    raise typer.Exit(report.exit_code)


app.command("check")(check_cmd)
app.command("counters")(counters_cmd)
app.command("diff")(diff_cmd)
app.command("simulate")(simulate_cmd)
app.command("trace")(trace_cmd)
app.command("logger")(logger_command)
app.command("try-apply")(try_apply_cmd)
app.command("confirm")(confirm_cmd)
app.command("log")(log_cmd)


def main() -> None:
    # Allow `proxmox-firewall` to be run with `PVE_LOG` only; typer handles the rest.
    os.environ.setdefault("PVE_LOG", "warn")
    app()


if __name__ == "__main__":
    main()
