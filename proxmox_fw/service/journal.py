"""Daemon logging: journald's native protocol under systemd, plain lines on stderr otherwise.

Upstream's ``start`` logs to the journal. Writing the native datagram format ourselves
(``KEY=value`` lines; a value with a newline as ``KEY\\n<u64 le length><bytes>\\n``, see
systemd's "Native Journal Protocol") keeps priorities and structured fields without a
libsystemd binding. The journal is used when systemd says we run under it: stderr is the
journal stream named by ``JOURNAL_STREAM``, or ``INVOCATION_ID`` is set, and the socket
exists. ``PVE_LOG`` sets the level either way (see :mod:`proxmox_fw.log`).
"""

from __future__ import annotations

import os
import re
import socket
import struct
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from proxmox_fw import log

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "proxmox-firewall"

# structlog level name → syslog priority
PRIORITIES = {
    "critical": 2, "exception": 3, "error": 3, "warning": 4, "warn": 4,
    "info": 6, "debug": 7, "trace": 7,
}
_LEVEL_NAMES = {"2": "CRITICAL", "3": "ERROR", "4": "WARNING", "6": "INFO", "7": "DEBUG"}
_FIELD_NAME = re.compile(r"[^A-Z0-9_]")
_MAX_MESSAGE = 32 * 1024  # datagrams have a size limit; a longer message is cut


def journal_wanted(
    env: Mapping[str, str] | None = None,
    socket_path: str = JOURNAL_SOCKET,
    stderr: TextIO | None = None,
) -> bool:
    """Whether systemd runs us with the journal at hand (see module docstring)."""
    env = os.environ if env is None else env
    if not os.path.exists(socket_path):
        return False
    stream = env.get("JOURNAL_STREAM", "")
    if stream:
        try:
            dev, ino = (int(part) for part in stream.split(":", 1))
            st = os.fstat((stderr or sys.stderr).fileno())
        except (ValueError, OSError):
            pass
        else:
            if (st.st_dev, st.st_ino) == (dev, ino):
                return True
    return bool(env.get("INVOCATION_ID"))


def encode_fields(fields: Mapping[str, str]) -> bytes:
    """One journal datagram."""
    out = bytearray()
    for name, value in fields.items():
        data = value.encode("utf-8", errors="replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


def field_name(key: str) -> str:
    """A structlog key as a journal field name (uppercase, ``[A-Z0-9_]``, no leading _)."""
    name = _FIELD_NAME.sub("_", key.upper()).lstrip("_") or "FIELD"
    return f"PFW_{name}" if name[0].isdigit() else name


def message_of(event: MutableMapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The human message (event, ``where``, then key=value pairs) and the extra fields."""
    msg = str(event.pop("event", ""))
    where = event.pop("where", None)
    event.pop("level", None)
    event.pop("timestamp", None)
    extra = {k: str(v) for k, v in event.items()}
    text = f"{where}: {msg}" if where else msg
    if extra:
        text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
    return text, extra


class JournalLogger:
    """A structlog logger sending each event as one datagram (stderr if that fails)."""

    def __init__(self, socket_path: str = JOURNAL_SOCKET, fallback: TextIO | None = None):
        self._path = socket_path
        self._fallback = fallback
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)

    def send(self, fields: Mapping[str, str]) -> None:
        data = encode_fields(fields)
        try:
            self._sock.sendto(data, self._path)
        except OSError:
            stream = self._fallback or sys.stderr
            level = _LEVEL_NAMES.get(fields.get("PRIORITY", ""), "INFO")
            stream.write(f"{level}: {fields.get('MESSAGE', '')}\n")
            stream.flush()

    def _log(self, fields: Mapping[str, str]) -> None:
        """Every level: the final processor passes ``fields=`` (priority included)."""
        self.send(fields)

    msg = info = debug = warning = warn = error = err = critical = exception = fatal = _log
    failure = trace = _log


def _journal_processor(_: Any, method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    level = str(event.get("level", method)).lower()
    text, extra = message_of(event)
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "…"
    fields = {
        "MESSAGE": text,
        "PRIORITY": str(PRIORITIES.get(level, 6)),
        "SYSLOG_IDENTIFIER": IDENTIFIER,
    }
    for key, value in extra.items():
        name = field_name(key)
        if name not in fields:
            fields[name] = value
    return {"fields": fields}


def setup_daemon_logging(
    level: int | None = None,
    *,
    env: Mapping[str, str] | None = None,
    socket_path: str = JOURNAL_SOCKET,
) -> str:
    """Configure structlog for ``start``; returns ``"journal"`` or ``"stderr"``."""
    level = log.level_from_env(dict(env) if env is not None else None) if level is None else level
    if not journal_wanted(env, socket_path):
        log.setup(level)
        return "stderr"
    logger = JournalLogger(socket_path)
    structlog.configure(
        processors=[structlog.processors.add_log_level, _journal_processor],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_args: logger,
        cache_logger_on_first_use=False,
    )
    return "journal"
