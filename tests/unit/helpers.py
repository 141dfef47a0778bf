"""Assertions on diagnostics shared by the input tests."""

from __future__ import annotations

from pathlib import Path

from proxmox_fw.diagnostics import Diagnostic, Diagnostics, Severity

# ../shared/conformance from the project root (read in place, never copied)
CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"


def only(diags: Diagnostics, severity: Severity | None = None) -> Diagnostic:
    """The single diagnostic (of ``severity``, if given); fails if there are others."""
    items = [d for d in diags if severity is None or d.severity == severity]
    assert len(items) == 1, [str(d) for d in diags]
    return items[0]


def errors(diags: Diagnostics) -> list[str]:
    return [str(d) for d in diags if d.severity == Severity.ERROR]
