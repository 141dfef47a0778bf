"""Diagnostics: problems found in the configuration, collected as values.

One bad line costs one line: parsers and the compiler append a Diagnostic and go on,
so the rest of the configuration still applies. The same list feeds the warnings on
stderr, ``check`` and the daemon's log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # the object was skipped
    WARNING = "warning"  # the object was kept, possibly with a default
    INFO = "info"


class RuleError(ValueError):
    """Why one rule is dropped, by the parser or the compiler; ``str(err)`` is the message
    of its diagnostic, which the catcher reports at the rule's file and line."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    line: int | None
    severity: Severity
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.severity}: {self.message}"


@dataclass(slots=True)
class Diagnostics:
    """An append-only list of diagnostics shared along the pipeline."""

    items: list[Diagnostic] = field(default_factory=list)
    _seen: set[Diagnostic] = field(default_factory=set, repr=False)

    def add(
        self, file: str, line: int | None, message: str, severity: Severity = Severity.ERROR
    ) -> None:
        # The same rule is compiled for several chains; say each problem once.
        d = Diagnostic(file, line, severity, message)
        if d not in self._seen:
            self._seen.add(d)
            self.items.append(d)

    def error(self, file: str, line: int | None, message: str) -> None:
        self.add(file, line, message, Severity.ERROR)

    def warning(self, file: str, line: int | None, message: str) -> None:
        self.add(file, line, message, Severity.WARNING)

    def extend(self, other: Diagnostics) -> None:
        for d in other.items:
            self.add(d.file, d.line, d.message, d.severity)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
