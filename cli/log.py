"""``log``: the firewall log as the web UI shows it (admin guide §13.9), on the command line."""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from proxmox_fw import log
from proxmox_fw.logger.reader import (
    DEFAULT_LOG_FILE,
    LogLine,
    LogReadError,
    Query,
    follow,
    log_files,
    parse_time_arg,
    read_lines,
    select,
)

EXIT_UNREADABLE = 1
EXIT_USAGE = 2


def log_cmd(
    vmid: Annotated[int | None, typer.Option(
        "--vmid", min=0, help="Only this guest's lines (0: the host's and the logger's own).",
        show_default=False)] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only lines at or after TIME (epoch seconds, ISO date/time, -2h, "
        "today...). Rotated files are read too.", show_default=False)] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Only lines at or before TIME. Rotated files are read too.",
        show_default=False)] = None,
    follow_: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing lines as they are written, across rotation "
        "(from the end of the file, or from --since).")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per line with the parsed fields.")] = False,
    start: Annotated[int, typer.Option(
        "--start", min=0, help="Skip the first N matching lines (the API's 'start').")] = 0,
    limit: Annotated[int, typer.Option(
        "--limit", min=0, help="Print at most N lines; 0: all (the API's 'limit').")] = 0,
    file: Annotated[Path, typer.Option(
        "--file", help="The log file; its rotated copies are FILE.N and FILE.N.gz.",
    )] = DEFAULT_LOG_FILE,
) -> None:
    """Print the firewall log (what Firewall → Log shows in the web UI).

    Reads the file the way the Proxmox VE API does: --vmid keeps the lines that start
    with that VMID; --since/--until compare the time in each line (fields 4 and 5) and
    read the rotated files too, oldest first; without them only the current file is
    read.

    Exit codes: 0 printed; 1 the log file cannot be read; 2 usage error.
    """
    try:
        query = Query(vmid, _time(since, "--since"), _time(until, "--until"))
    except ValueError as exc:
        log.get().error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    if follow_ and until is not None:
        log.get().error("--follow and --until cannot be combined")
        raise typer.Exit(EXIT_USAGE)
    lines = select(_texts(file, query, follow_), query)
    if start or limit:
        lines = itertools.islice(lines, start, start + limit if limit else None)
    try:
        for line in lines:
            _write(line, as_json, flush=follow_)
    except LogReadError as exc:
        log.get().error(str(exc))
        raise typer.Exit(EXIT_UNREADABLE) from None
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # e.g. | head: the reader is gone, nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _time(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_time_arg(value)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None


def _texts(file: Path, query: Query, following: bool) -> Iterator[str]:
    warn = log.get().warning
    if not following:
        yield from read_lines(log_files(file, query.windowed), warn)
        return
    if query.windowed:
        yield from read_lines(log_files(file, True)[:-1], warn)
    yield from follow(file, from_end=not query.windowed)


def _write(line: LogLine, as_json: bool, *, flush: bool) -> None:
    out = sys.stdout.buffer
    if as_json:
        doc = json.dumps(line.to_json(), ensure_ascii=False)
        out.write(doc.encode("utf-8", "replace") + b"\n")
    else:
        out.write(line.text.encode("utf-8", "surrogateescape") + b"\n")
    if flush:
        out.flush()
