"""Ipset ``!`` entries as pve-firewall's ``hash:net`` sets meant them: the longest prefix
containing the address decides, so a plain entry inside an exception matches again.

Real packets through the host table, IPv4 and IPv6: the blacklist (dropped in
``default-in``), an ipset in a user rule, and the management ipset.
"""

from __future__ import annotations

import pytest

from tests.behaviour.hostlib import Firewall, Pkt, cluster_fw, host_fw

pytestmark = pytest.mark.netns

BLACK, ACC, POLICY = "DROP@default-in", "ACCEPT@host-in", "DROP@cluster-in"
MGMT = "ACCEPT@accept-management"


def tcp80(verdicts: dict[str, str]) -> dict[Pkt, str]:
    """A TCP port 80 probe from each source address, with its expected verdict."""
    return {Pkt("tcp", 80, source=src): want for src, want in verdicts.items()}


def test_blacklist_exception_with_a_listed_host_inside(fw: Firewall) -> None:
    """``10.0.0.0/8``, ``! 10.1.0.0/16``, ``10.1.2.3``: 10.1.2.3 is dropped (the /32 is the
    longest match), the rest of 10.1.0.0/16 passes, the rest of 10/8 is dropped."""
    fw.apply(
        cluster_fw("policy_in: DROP\n", """\
            [IPSET blacklist]
            10.0.0.0/8
            ! 10.1.0.0/16
            10.1.2.3
            fd00:a::/32
            ! fd00:a:1::/48
            fd00:a:1::3
        """),
        host_fw("IN ACCEPT -p tcp -dport 80\n"),
    )
    # (the listed host, the rest of the exception, the rest of the outer network)
    cases = tcp80({"10.1.2.3": BLACK, "10.1.2.4": ACC, "10.2.0.1": BLACK,
                   "fd00:a:1::3": BLACK, "fd00:a:1::4": ACC, "fd00:a:2::1": BLACK})  # fmt: skip
    fw.check(cases)


def test_ipset_in_a_rule_follows_the_longest_prefix(fw: Firewall) -> None:
    """A rule's ``-source +set``: the host inside the exception is accepted again."""
    fw.apply(
        cluster_fw("policy_in: DROP\n", """\
            [IPSET partners]
            100.64.0.0/16
            ! 100.64.1.0/24
            100.64.1.9
            fd00:64::/48
            ! fd00:64:0:1::/64
            fd00:64:0:1::9
        """),
        host_fw("IN ACCEPT -source +partners -p tcp -dport 80\n"),
    )
    cases = tcp80({
        "100.64.1.9": ACC, "100.64.1.10": POLICY, "100.64.2.1": ACC,
        "fd00:64:0:1::9": ACC, "fd00:64:0:1::a": POLICY, "fd00:64:0:2::1": ACC,
    })  # fmt: skip
    fw.check(cases)


def test_management_host_inside_an_exception(fw: Firewall) -> None:
    fw.apply(cluster_fw("policy_in: DROP\n", """\
        [IPSET management]
        198.51.100.0/24
        ! 198.51.100.0/25
        198.51.100.7
        fd00:99::/64
        ! fd00:99::/120
        fd00:99::7
    """))
    fw.check({
        Pkt("tcp", 22, source="198.51.100.7"): MGMT,
        Pkt("tcp", 22, source="198.51.100.8"): POLICY,
        Pkt("tcp", 22, source="198.51.100.200"): MGMT,
        Pkt("tcp", 22, source="fd00:99::7"): MGMT,
        Pkt("tcp", 22, source="fd00:99::8"): POLICY,
        Pkt("tcp", 22, source="fd00:99::1:1"): MGMT,
    })  # fmt: skip
