"""A broken rule never opens anything (issue 10, item 6), with real packets.

A DROP or REJECT rule whose alias or ipset does not exist blocks what it
covered (without the broken condition) instead of being skipped, so a later ACCEPT for
the same port does not open it to the sources the operator meant to block. A GROUP rule
naming a missing group drops everything that reaches it. A broken ACCEPT rule is
skipped. Management access is accepted before any user rule and survives.
"""

from __future__ import annotations

import pytest

from tests.behaviour.hostlib import Firewall, Pkt, cluster_fw, host_fw

pytestmark = pytest.mark.netns

HOST_DROP, REJECT = "DROP@host-in", "REJECT"  # (a REJECT's trace ends in its reply)
MGMT = "ACCEPT@accept-management"


def tcp(port: int, source: str = "100.100.5.1") -> Pkt:
    return Pkt("tcp", port, source=source)


def test_broken_drop_and_reject_rules_block_what_they_covered(fw: Firewall) -> None:
    done = fw.apply(
        cluster_fw("policy_in: ACCEPT\n"),
        host_fw("""\
            IN DROP -source +nosuch -p tcp -dport 1001
            IN REJECT -source nosuchalias -p tcp -dport 1002
            IN DROP -dest +dc/nosuch -p tcp -dport 1003
            IN DROP -source +nosuch -dest 100.100.0.0/16 -p tcp -dport 1005
            IN ACCEPT -p tcp -dport 1001:1006
        """),
        allow_diagnostics=True,
    )
    assert sum("fail-closed" in d for d in done.diagnostics) == 4, done.diagnostics
    fw.check({
        tcp(1001): HOST_DROP, tcp(1001, "100.100.99.9"): HOST_DROP,
        tcp(1002): REJECT,
        tcp(1003): HOST_DROP,
        tcp(1006): "ACCEPT@host-in",  # other ports: untouched
        tcp(22, "172.16.1.5"): MGMT,  # management survives
    })  # fmt: skip


def test_a_missing_group_drops_everything_it_reaches(fw: Firewall) -> None:
    fw.apply(
        cluster_fw("policy_in: ACCEPT\n"),
        host_fw("IN ACCEPT -p tcp -dport 1100\nGROUP nosuch\nIN ACCEPT -p tcp -dport 1101\n"),
        allow_diagnostics=True,
    )
    fw.check({
        tcp(1100): "ACCEPT@host-in",  # before the broken GROUP
        tcp(1101): HOST_DROP, tcp(1102): HOST_DROP,  # after it: nothing gets through
        tcp(8006, "172.16.1.5"): MGMT,
    })  # fmt: skip


def test_a_broken_accept_rule_is_skipped(fw: Firewall) -> None:
    fw.apply(
        cluster_fw("policy_in: DROP\n"),
        host_fw("IN ACCEPT -source +nosuch -p tcp -dport 1200\n"),
        allow_diagnostics=True,
    )
    fw.check({tcp(1200): "DROP@cluster-in"})


def test_without_broken_rules_the_same_config_opens_the_port(fw: Firewall) -> None:
    """The control: the ACCEPT does open the port when nothing before it is broken."""
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw("IN ACCEPT -p tcp -dport 1001\n"))
    fw.check({tcp(1001): "ACCEPT@host-in"})


def test_an_ipset_with_an_unusable_nomatch_entry_opens_nothing(fw: Firewall) -> None:
    """``!100.100.10.128/166`` cannot be used: ACCEPT with the set is skipped (the range
    it excluded stays closed), DROP with it blocks the port for everyone."""
    fw.apply(
        cluster_fw("policy_in: DROP\n", "[IPSET office]\n100.100.10.0/24\n"
                                        "!100.100.10.128/166\n"),
        host_fw("IN ACCEPT -source +office -p tcp -dport 1300\n"
                "IN DROP -source +office -p tcp -dport 1301\nIN ACCEPT -p tcp -dport 1301\n"),
        allow_diagnostics=True,
    )
    fw.check({
        tcp(1300, "100.100.10.200"): "DROP@cluster-in",  # the excluded range stays closed
        tcp(1300, "100.100.10.5"): "DROP@cluster-in",
        tcp(1301, "100.100.10.5"): HOST_DROP, tcp(1301, "100.100.99.9"): HOST_DROP,
        tcp(22, "172.16.1.5"): MGMT,
    })  # fmt: skip
