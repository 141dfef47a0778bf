"""Helpers shared by the .fw parser tests (a uniquely named module, not conftest, so it
cannot clash with helpers of other test directories)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxmox_fw.diagnostics import Diagnostic, Diagnostics, Severity
from proxmox_fw.model import (
    ClusterOptions,
    GuestOptions,
    HostOptions,
    Origin,
    Rule,
    VnetOptions,
)
from proxmox_fw.parse import (
    RuleScope,
    parse_cluster_fw,
    parse_guest_fw,
    parse_host_fw,
    parse_rule,
    parse_vnet_fw,
)

NOW = 1_700_000_000.0  # pinned clock for "enable: <timestamp>"

FILES = {
    "cluster": "firewall/cluster.fw",
    "host": "nodes/pve1/host.fw",
    "guest": "firewall/100.fw",
    "vnet": "sdn/firewall/vnet0.fw",
}

DEFAULTS: dict[str, Any] = {
    "cluster": ClusterOptions(),
    "host": HostOptions(),
    "guest": GuestOptions(),
    "vnet": VnetOptions(),
}


def messages(diags: Diagnostics) -> list[tuple[int | None, str, str]]:
    return [(d.line, d.severity.value, d.message) for d in diags]


def errors(diags: Diagnostics) -> list[Diagnostic]:
    return [d for d in diags if d.severity is Severity.ERROR]


def warnings(diags: Diagnostics) -> list[Diagnostic]:
    return [d for d in diags if d.severity is Severity.WARNING]


def parse_file(kind: str, text: str) -> tuple[Any, Diagnostics]:
    """Parse ``text`` as a file of ``kind``; returns the model and its diagnostics."""
    diags = Diagnostics()
    file = FILES[kind]
    parsers: dict[str, Callable[[], Any]] = {
        "cluster": lambda: parse_cluster_fw(text, file, diags, now=NOW),
        "host": lambda: parse_host_fw(text, file, diags),
        "guest": lambda: parse_guest_fw(text, file, diags),
        "vnet": lambda: parse_vnet_fw(text, file, "vnet0", diags),
    }
    return parsers[kind](), diags


def rule_of(line: str, scope: RuleScope = "cluster") -> tuple[Rule | None, Diagnostics]:
    diags = Diagnostics()
    return parse_rule(line, Origin(file="firewall/cluster.fw", line=7), scope, diags), diags


def ok_rule(line: str, scope: RuleScope = "cluster") -> Rule:
    """Parse a rule that must be valid; fail the test with the diagnostics otherwise."""
    rule, diags = rule_of(line, scope)
    assert rule is not None, [str(d) for d in diags]
    assert len(diags) == 0, [str(d) for d in diags]
    return rule


def bad_rule(line: str, scope: RuleScope = "cluster") -> str:
    """Parse a rule that must be rejected; return its one error message."""
    rule, diags = rule_of(line, scope)
    assert rule is None
    errs = errors(diags)
    assert len(errs) == 1, [str(d) for d in diags]
    assert (errs[0].file, errs[0].line) == ("firewall/cluster.fw", 7)
    return errs[0].message

