"""structlog set-up: one line per event on stderr, level from ``PVE_LOG``.

``PVE_LOG`` takes error, warn, info, debug or trace (trace = debug with more detail), as
upstream; anything else falls back to warn.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG - 5,
    "off": logging.CRITICAL + 10,
}


def level_from_env(env: dict[str, str] | None = None) -> int:
    value = (env if env is not None else os.environ).get("PVE_LOG", "warn").strip().lower()
    return LEVELS.get(value, logging.WARNING)


def _render(_: Any, method: str, event: MutableMapping[str, Any]) -> str:
    msg = event.pop("event", "")
    where = event.pop("where", None)
    level = event.pop("level", method).upper()
    extra = " ".join(f"{k}={v}" for k, v in event.items() if k != "timestamp")
    head = f"{level}: {where}: {msg}" if where else f"{level}: {msg}"
    return f"{head} {extra}".rstrip()


def setup(level: int | None = None, stream: TextIO | None = None) -> None:
    structlog.configure(
        processors=[structlog.processors.add_log_level, _render],
        wrapper_class=structlog.make_filtering_bound_logger(
            level if level is not None else level_from_env()
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str = "proxmox-firewall") -> Any:
    return structlog.get_logger(name)
