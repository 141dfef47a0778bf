"""An ipset with an unusable ``!`` entry never widens a rule (issue 10, item 6).

Skipping the entry while the ipset is used would let an ACCEPT rule cover the range the
operator excluded. Such an ipset is treated like a missing one by the rules that use it:
an ACCEPT is skipped, a DROP/REJECT fails closed (applies without the ipset condition).
The ``management`` ipset is exempt: management access must survive.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxmox_fw.diagnostics import Severity
from tests.unit.compile.conftest import Compile
from tests.unit.parse.helpers import parse_file

BROKEN_ENTRIES = ["!10.1.0.0/166", "!10.1.0.0/33", "!nosuchalias", "!10.1.0.0-10.1.0.9",
                  "!+other", "!10.1.0.0 10.2.0.0", "!fd00::/200"]


def cluster(entry: str, rules: str, name: str = "s") -> str:
    return (f"[OPTIONS]\nenable: 1\n\n[IPSET {name}]\n10.0.0.0/8\n{entry}\n\n"
            f"[RULES]\n{rules}\n")


def rules_of(res: Any) -> list[str]:
    return [str(r.expr) for r in res.ruleset.host.chains["cluster-in"].rules]


@pytest.mark.parametrize("entry", [e for e in BROKEN_ENTRIES if e != "!nosuchalias"])
def test_the_parser_records_the_unusable_entry(entry: str) -> None:
    fw, diags = parse_file("cluster", cluster(entry, ""))
    assert fw.ipsets["s"].unusable_nomatch == [6]
    (err,) = [d for d in diags if d.severity is Severity.ERROR]
    assert err.line == 6 and "unusable in ACCEPT rules" in err.message


@pytest.mark.parametrize("entry", BROKEN_ENTRIES)
def test_an_accept_rule_using_it_is_skipped(entry: str, compile_texts: Compile) -> None:
    res = compile_texts(cluster(entry, "IN ACCEPT -source +s -p tcp -dport 22"))
    assert not any("'dport'" in r and "22" in r for r in rules_of(res))
    assert any(d.line == 9 and "unusable '!' entry" in d.message and "skipped" in d.message
               for d in res.diagnostics), [str(d) for d in res.diagnostics]


@pytest.mark.parametrize("entry", BROKEN_ENTRIES)
def test_a_drop_rule_using_it_fails_closed(entry: str, compile_texts: Compile) -> None:
    res = compile_texts(cluster(entry, "IN DROP -source +s -p tcp -dport 22"))
    (rule,) = [r for r in rules_of(res) if "22" in r and "drop" in r]
    assert "v4-dc/s" not in rule  # blocks tcp/22 from everyone, not only the set
    assert any(d.line == 9 and "fail-closed" in d.message for d in res.diagnostics)


def test_a_usable_ipset_is_used_as_before(compile_texts: Compile) -> None:
    res = compile_texts(cluster("!10.1.0.0/16", "IN ACCEPT -source +s -p tcp -dport 22"))
    assert any("v4-dc/s" in r for r in rules_of(res))
    assert not [d for d in res.diagnostics if d.severity is Severity.ERROR]


def test_management_stays_usable(compile_texts: Compile) -> None:
    res = compile_texts(cluster("!10.1.0.0/166", "IN ACCEPT -source +management -p tcp "
                                "-dport 9000", name="management"))
    assert any("v4-dc/management" in r and "9000" in r for r in rules_of(res))
