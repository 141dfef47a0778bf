"""Telling a damaged file from one that means something.

A ``.fw`` file of random bytes parses into defaults: for cluster.fw that reads as
``enable: 0`` and would remove the whole firewall. A file whose content yields no valid
section header and no valid line is therefore unusable: every parser counts its lines
in a :class:`LineTally` (outside the diagnostics, so a parser's own tests see only what
a line costs), and the loader treats an unusable file like one that cannot be read (the
kernel, or the daemon's last good copy, keeps what the file said before). Only a file
that really says ``enable: 0`` disables anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from proxmox_fw.diagnostics import Diagnostics, Severity

UNUSABLE: Final = "nothing in this file can be used (damaged or half-written?)"


@dataclass(slots=True)
class LineTally:
    """What a parser made of a file's content lines (blank and ``#`` lines not counted)."""

    lines: int = 0
    good: int = 0  # valid section headers and lines taken without an error

    def count(self, good: bool) -> None:
        self.lines += 1
        self.good += good

    def why_unusable(self) -> str | None:
        """None for a usable file: one with a valid section header or line, or with no
        content at all. A valid header with only bad lines below it is usable (a broken
        rule costs that rule); the daemon's settle check covers a file cut short."""
        if self.lines and not self.good:
            return f"none of its {self.lines} content line(s) is a valid section header or line"
        return None


def new_errors(diags: Diagnostics, since: int) -> bool:
    """Whether an error was added after the first ``since`` diagnostics."""
    return any(d.severity is Severity.ERROR for d in diags.items[since:])
