"""Sums up the pve-sim counts of ``test_pvesim_full.py`` in the terminal summary.

That test runs inside the full-kernel VM, whose prints never reach this terminal; each of
its reports carries the suite's counts as a user property, replayed here with the report.
"""

from __future__ import annotations

import json

import pytest

COUNTS_PROPERTY = "pvesim-full"  # the user property test_pvesim_full.py records

_counts: dict[str, dict[str, int]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == COUNTS_PROPERTY:
            data = json.loads(str(value))
            suite = str(data.pop("suite"))
            _counts[suite] = {k: int(v) for k, v in data.items()}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _counts:
        return
    total = {
        k: sum(c[k] for c in _counts.values()) for k in ("cases", "run", "inapplicable", "passed")
    }
    terminalreporter.write_sep(
        "-",
        f"pve-sim in the full kernel: {len(_counts)} suites, {total['cases']} expanded "
        f"cases, {total['run']} run ({total['passed']} passed), "
        f"{total['inapplicable']} inapplicable",
    )
