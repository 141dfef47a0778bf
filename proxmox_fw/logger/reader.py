"""Reading the firewall log back, the way the Proxmox VE API does (admin guide §13.9).

The web UI's Firewall → Log shows what the API's log endpoints return, and those read
the file like this: a guest's lines are those that start with ``<vmid> ``; a time window
compares the time in the line's fields 4 and 5 (``dd/Mon/YYYY:HH:MM:SS +zzzz``), a line
without one counting as the epoch; without a window only the current file is read, with
one the rotated ``<file>.N`` and ``<file>.N.gz`` are read too, oldest first. ``follow``
keeps reading the file across a rotation.
"""

from __future__ import annotations

import gzip
import os
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, Literal

from proxmox_fw.logger.format import MONTHS

DEFAULT_LOG_FILE: Final = Path("/var/log/pve-firewall.log")

_STAMP_RE: Final = re.compile(r"(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2})")
_ZONE_RE: Final = re.compile(r"([+-])(\d{2})(\d{2})")
# Fields that only a packet line has; the text before the first of them is what the
# log prefix left after the chain (the policy, e.g. "ACCEPT: ").
_PACKET_START: Final = re.compile(r"(?:^| )(?:IN|OUT|PHYSIN|PHYSOUT|MAC|SRC)=")
# pvefw-logger prints a few numbers without a trailing blank ("LEN=36mark=100",
# "SEGMENTS=2PROTO=..."): a digit followed by a key starts a new field.
_GLUED: Final = re.compile(r"(?<=\d)(?=[A-Za-z]+=)")
_CT_EVENT: Final = re.compile(r"\s*\[([A-Z_]+)\]")
_INT: Final = re.compile(r"-?\d+")

Kind = Literal["packet", "status", "conntrack", "other"]


class LogReadError(Exception):
    """The log file cannot be read; the message names it."""


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of the log, split into the fields the web UI and parsers rely on."""

    text: str
    kind: Kind
    vmid: int | None = None
    loglevel: int | None = None
    chain: str | None = None
    time: datetime | None = None
    policy: str | None = None  # what the log prefix said after the chain, e.g. "ACCEPT"
    fields: dict[str, str] = field(default_factory=dict)  # up to PROTO=, and mark=
    l4: dict[str, str] = field(default_factory=dict)  # after PROTO=: ports, types, ARP op
    flags: list[str] = field(default_factory=list)  # bare words: DF, SYN, ACK, REQUEST...
    message: str | None = None  # status and conntrack lines: their text
    event: str | None = None  # conntrack lines: NEW, UPDATE, DESTROY

    def epoch(self) -> float:
        """The line's time for --since/--until; a line without one counts as 0, as in
        the API (Perl's undef)."""
        return self.time.timestamp() if self.time is not None else 0.0

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.kind,
            "vmid": self.vmid,
            "loglevel": self.loglevel,
            "chain": self.chain,
            "time": self.time.isoformat() if self.time is not None else None,
        }
        if self.kind == "packet":
            doc.update(policy=self.policy, fields=self.fields, l4=self.l4, flags=self.flags)
        else:
            doc["message"] = self.message
        if self.event is not None:
            doc["event"] = self.event
        doc["line"] = self.text
        return doc


def parse_log_time(stamp: str, zone: str) -> datetime | None:
    """``04/Dec/2026:15:34:52`` and ``+0100`` (strftime in the C locale) → aware time."""
    m = _STAMP_RE.fullmatch(stamp)
    z = _ZONE_RE.fullmatch(zone)
    if m is None or z is None or m.group(2) not in MONTHS:
        return None
    offset = timedelta(hours=int(z.group(2)), minutes=int(z.group(3)))
    tz = timezone(-offset if z.group(1) == "-" else offset)
    day, _, year, hour, minute, second = m.groups()
    try:
        return datetime(int(year), MONTHS.index(m.group(2)) + 1, int(day), int(hour),
                        int(minute), int(second), tzinfo=tz)
    except ValueError:
        return None


def parse_line(text: str) -> LogLine:
    words = text.split(" ", 5)
    # The logger prints the vmid as a signed 32-bit number, as pvefw-logger does.
    if len(words) >= 5 and _INT.fullmatch(words[0]) and words[1].isdigit() and words[2]:
        stamp = parse_log_time(words[3], words[4])
        if stamp is not None:
            rest = words[5] if len(words) > 5 else ""
            return _headed(text, int(words[0]), int(words[1]), words[2], stamp, rest)
    ct = _CT_EVENT.match(text)
    if ct is not None:
        return LogLine(text, "conntrack", message=text.strip(), event=ct.group(1))
    return LogLine(text, "other", message=text)


def _headed(text: str, vmid: int, level: int, chain: str, stamp: datetime,
            rest: str) -> LogLine:
    m = _PACKET_START.search(rest)
    if m is None and chain == "-":
        return LogLine(text, "status", vmid, level, chain, stamp, message=rest)
    cut = m.start() if m is not None else len(rest)
    prefix, packet = rest[:cut], rest[cut:]
    fields: dict[str, str] = {}
    l4: dict[str, str] = {}
    flags: list[str] = []
    into = fields
    for token in packet.split():
        for part in _GLUED.split(token) if token.count("=") > 1 else (token,):
            key, eq, value = part.partition("=")
            if not eq:
                flags.append(part)
            elif key == "mark":
                fields[key] = value
            else:
                into.setdefault(key, value)
                if key == "PROTO":
                    into = l4
    return LogLine(text, "packet", vmid, level, chain, stamp, _policy(prefix), fields, l4,
                   flags)


def _policy(prefix: str) -> str | None:
    """``ACCEPT: `` → ``ACCEPT``; an unparsed prefix (``:100:6:<long chain>: DROP: ``)
    gives its last part."""
    text = prefix.strip().removesuffix(":").strip()
    return text.rsplit(": ", 1)[-1] or None


# --- which files, in which order --------------------------------------------------------


def log_files(path: Path, rotated: bool) -> list[Path]:
    """The current file, preceded (oldest first) by ``<name>.N`` and ``<name>.N.gz``."""
    if not rotated:
        return [path]
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)(\.gz)?")
    found: list[tuple[int, int, Path]] = []
    try:
        entries = list(path.parent.iterdir())
    except OSError as exc:
        raise LogReadError(f"cannot list {path.parent}: {exc.strerror}") from exc
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is not None:
            found.append((-int(m.group(1)), 0 if m.group(2) else 1, entry))
    return [p for _, _, p in sorted(found)] + [path]


def read_lines(files: Iterable[Path], warn: Callable[[str], None]) -> Iterator[str]:
    """Every line of ``files`` in order, without the newline.

    A rotated file that vanished meanwhile is skipped, as in the API; one that cannot be
    read (or a damaged .gz) is reported through ``warn`` and the rest is still read. The
    last (current) file missing is an error.
    """
    names = list(files)
    for i, path in enumerate(names):
        try:
            yield from _lines_of(path)
        except FileNotFoundError as exc:
            if i == len(names) - 1:
                raise LogReadError(f"cannot read {path}: {exc.strerror}") from exc
        except (OSError, EOFError, zlib.error) as exc:
            warn(f"{path}: cannot be read completely: {exc}")


def _lines_of(path: Path) -> Iterator[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        for raw in fh:
            yield raw.decode("utf-8", "surrogateescape").rstrip("\n")


# --- filters ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    vmid: int | None = None
    since: float | None = None  # epoch seconds
    until: float | None = None

    @property
    def windowed(self) -> bool:
        return self.since is not None or self.until is not None

    def matches(self, text: str) -> LogLine | None:
        if self.vmid is not None and not text.startswith(f"{self.vmid} "):
            return None
        line = parse_line(text)
        if self.windowed:
            t = line.epoch()
            if self.since is not None and t < self.since:
                return None
            if self.until is not None and t > self.until:
                return None
        return line


def select(lines: Iterable[str], query: Query) -> Iterator[LogLine]:
    for text in lines:
        line = query.matches(text)
        if line is not None:
            yield line


# --- following the file ------------------------------------------------------------------


class _Open:
    """One open generation of the log file and the partial line read from it."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        st = os.fstat(self.fh.fileno())
        self.ident = (st.st_dev, st.st_ino)
        self.partial = b""

    def size(self) -> int:
        return os.fstat(self.fh.fileno()).st_size

    def read(self) -> list[str]:
        if self.size() < self.fh.tell():  # truncated in place (copytruncate)
            self.fh.seek(0)
        data = self.partial + self.fh.read()
        *complete, self.partial = data.split(b"\n")
        return [c.decode("utf-8", "surrogateescape") for c in complete]

    def close(self) -> list[str]:
        """The rest of the file, its last unterminated line included."""
        lines = self.read()
        if self.partial:
            lines.append(self.partial.decode("utf-8", "surrogateescape"))
        self.fh.close()
        return lines


def follow(path: Path, *, from_end: bool, poll: float = 0.2,
           stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
    """Lines appended to ``path``, across rotations, until ``stop()`` says so.

    After a rotation (the name now leads to another inode) the old file is still read
    until the new one gets its first byte: the logger writes to the old file until it
    reopens it (SIGHUP), and those lines come first. A missing file is waited for.
    """
    chain: list[_Open] = []
    try:
        skip_existing = from_end  # only what the file held when following began
        while not stop():
            ident = _ident(path)
            if ident is not None and all(o.ident != ident for o in chain):
                try:
                    opened: _Open | None = _Open(path)
                except FileNotFoundError:
                    opened = None
                if opened is not None:
                    if skip_existing:
                        opened.fh.seek(0, os.SEEK_END)
                    chain.append(opened)
            skip_existing = False
            got = False
            while len(chain) > 1 and any(o.size() > 0 for o in chain[1:]):
                tail = chain.pop(0).close()
                got = got or bool(tail)
                yield from tail
            if chain:
                lines = chain[0].read()
                got = got or bool(lines)
                yield from lines
            if not got:
                time.sleep(poll)
    finally:
        for o in chain:
            o.fh.close()


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


# --- --since / --until arguments ---------------------------------------------------------

_RELATIVE: Final = re.compile(r"-(\d+)([smhd])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_arg(text: str, now: float | None = None) -> float:
    """A --since/--until value → epoch seconds.

    Accepts epoch seconds (as the API's ``since``/``until``), an ISO 8601 date or time
    (``2026-12-04``, ``2026-12-04 15:30``, with or without an offset; without one it is
    local time, like the log's own times), ``-<n>s|m|h|d`` back from now, ``now``,
    ``today`` and ``yesterday`` (local midnight).
    """
    value = text.strip()
    current = time.time() if now is None else now
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    rel = _RELATIVE.fullmatch(value)
    if rel is not None:
        return current - int(rel.group(1)) * _UNITS[rel.group(2)]
    if value in ("now", "today", "yesterday"):
        if value == "now":
            return current
        midnight = datetime.fromtimestamp(current).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
        if value == "yesterday":
            midnight -= timedelta(days=1)
        return midnight.timestamp()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"'{text}' is not a time: use epoch seconds, an ISO date/time "
            "(2026-12-04 15:30), -30m/-2h/-1d, now, today or yesterday") from None
    return parsed.timestamp()  # naive: local time
