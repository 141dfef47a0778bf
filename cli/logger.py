"""``proxmox-firewall logger``: the firewall log daemon (pvefw-logger's successor)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from proxmox_fw.compile.sysctl import LOG_NF_CONNTRACK
from proxmox_fw.logger.daemon import DEFAULT_LOG_FILE, DEFAULT_RUN_DIR, QUEUE_SIZE


def logger(
    log_file: Annotated[Path, typer.Option(
        "--log-file", help="The firewall log (read by the API and `proxmox-firewall log`).",
    )] = DEFAULT_LOG_FILE,
    group: Annotated[int, typer.Option("--group", min=0, max=65535,
                                       help="The NFLOG group the firewall logs to.")] = 0,
    run_dir: Annotated[Path, typer.Option(
        "--run-dir", help="Where lock/pvefw-logger.lck and pvefw-logger.pid live.",
    )] = DEFAULT_RUN_DIR,
    queue_size: Annotated[int, typer.Option(
        "--queue-size", min=2, help="Lines that may wait for the disk before new ones are "
        "skipped (and counted).",
    )] = QUEUE_SIZE,
    conntrack_flag: Annotated[Path, typer.Option(
        "--conntrack-flag", help="Switch file written by the rule daemon from host.fw "
        "log_nf_conntrack; checked every second.",
    )] = Path(LOG_NF_CONNTRACK),
    conntrack: Annotated[bool, typer.Option(
        "--conntrack", help="Log conntrack NEW/DESTROY events whatever the switch says.",
    )] = False,
    lock_timeout: Annotated[float, typer.Option(
        "--lock-timeout", min=0, help="Seconds to wait for another logger to let go.",
    )] = 10.0,
) -> None:
    """Write the firewall log (admin guide §13.9) until SIGTERM/SIGINT.

    Reads NFLOG group 0 (and conntrack events with log_nf_conntrack: 1) in the current
    network namespace and appends one line per packet to the log file in pvefw-logger's
    format. SIGHUP reopens the file (after logrotate moved it). PVE_LOG sets the level of
    its own diagnostics (journal under systemd, else stderr).

    Exit codes: 0 stopped by a signal; 1 could not start (lock held, file or socket) or
    could not write.
    """
    from proxmox_fw.logger.daemon import LoggerOptions, run
    from proxmox_fw.service.journal import setup_daemon_logging

    setup_daemon_logging()
    opts = LoggerOptions(log_file, group, run_dir, queue_size, conntrack_flag, conntrack,
                         lock_timeout)
    raise typer.Exit(run(opts))
