"""Host and cluster rules matched against real packets, IPv4 and IPv6.

Every rule opens one port through a DROP policy; a packet that matches must be accepted
by that rule (``ACCEPT@host-in``) and one that just misses it (address outside the
range, the ipset's ``!`` entry, another port, protocol or interface) must fall through
to the policy (``DROP@cluster-in``). Addresses, ranges, lists, aliases, ipsets, ports,
service names, macros, ICMP types, ``-i``, disabled rules, security groups and the order
host rules → cluster rules are covered.
"""

from __future__ import annotations

import pytest

from tests.behaviour.hostlib import Firewall, Pkt, cluster_fw, host_fw

pytestmark = pytest.mark.netns

ACC, DROP = "ACCEPT@host-in", "DROP@cluster-in"

CLUSTER_OBJECTS = """\
[ALIASES]
net4 100.100.9.0/24
net6 fd00:100:9::/64
single4 100.100.11.7

[IPSET mixed]
100.100.10.0/24
!100.100.10.128/25
single4
fd00:100:10::/64
!fd00:100:10::100/120
"""


def tcp(port: int, source: str | None = None, dest: str | None = None) -> Pkt:
    return Pkt("tcp", port, source=source, dest=dest)


def out(proto: str, port: int, dest: str | None = None, v6: bool = False) -> Pkt:
    """A packet the host sends to ``outside``."""
    return Pkt(proto, port, dest=dest, v6=v6, src="host", dst="outside")


def test_source_addresses(fw: Firewall) -> None:
    fw.apply(
        cluster_fw("policy_in: DROP\n", CLUSTER_OBJECTS),
        host_fw("""\
            IN ACCEPT -source 100.100.5.1 -p tcp -dport 1001
            IN ACCEPT -source 100.100.6.0/24 -p tcp -dport 1002
            IN ACCEPT -source 100.100.7.10-100.100.7.20 -p tcp -dport 1003
            IN ACCEPT -source 100.100.8.1,100.100.8.3,100.100.8.16/28 -p tcp -dport 1004
            IN ACCEPT -source net4 -p tcp -dport 1005
            IN ACCEPT -source dc/net4 -p tcp -dport 1006
            IN ACCEPT -source +mixed -p tcp -dport 1007
            IN ACCEPT -source +dc/mixed -p tcp -dport 1008
            IN ACCEPT -source fd00:100:5::1 -p tcp -dport 2001
            IN ACCEPT -source fd00:100:6::/64 -p tcp -dport 2002
            IN ACCEPT -source fd00:100:7::10-fd00:100:7::20 -p tcp -dport 2003
            IN ACCEPT -source fd00:100:8::1,fd00:100:8::3,fd00:100:8::10/124 -p tcp -dport 2004
            IN ACCEPT -source net6 -p tcp -dport 2005
            IN ACCEPT -source +mixed -p tcp -dport 2007
        """),
    )
    fw.check({
        tcp(1001, "100.100.5.1"): ACC, tcp(1001, "100.100.5.2"): DROP,
        tcp(1002, "100.100.6.200"): ACC, tcp(1002, "100.100.16.1"): DROP,
        tcp(1003, "100.100.7.10"): ACC, tcp(1003, "100.100.7.20"): ACC,
        tcp(1003, "100.100.7.21"): DROP, tcp(1003, "100.100.7.9"): DROP,
        tcp(1004, "100.100.8.3"): ACC, tcp(1004, "100.100.8.20"): ACC,
        tcp(1004, "100.100.8.2"): DROP,
        tcp(1005, "100.100.9.77"): ACC, tcp(1005, "100.100.19.77"): DROP,
        tcp(1006, "100.100.9.78"): ACC,
        tcp(1007, "100.100.10.5"): ACC, tcp(1007, "100.100.11.7"): ACC,
        tcp(1007, "100.100.10.200"): DROP, tcp(1007, "100.100.11.8"): DROP,
        tcp(1008, "100.100.10.6"): ACC, tcp(1008, "100.100.10.129"): DROP,
        tcp(2001, "fd00:100:5::1"): ACC, tcp(2001, "fd00:100:5::2"): DROP,
        tcp(2002, "fd00:100:6::abcd"): ACC, tcp(2002, "fd00:100:16::1"): DROP,
        tcp(2003, "fd00:100:7::15"): ACC, tcp(2003, "fd00:100:7::21"): DROP,
        tcp(2004, "fd00:100:8::3"): ACC, tcp(2004, "fd00:100:8::1f"): ACC,
        tcp(2004, "fd00:100:8::2"): DROP,
        tcp(2005, "fd00:100:9::9"): ACC, tcp(2005, "fd00:100:19::9"): DROP,
        tcp(2007, "fd00:100:10::5"): ACC, tcp(2007, "fd00:100:10::105"): DROP,
        # an ipset of both families opens its port to both; an IP list to its own only
        tcp(1007, "fd00:100:10::5"): ACC, tcp(1007, "fd00:100:10::105"): DROP,
        tcp(1004, "fd00:100:8::3"): DROP, tcp(2004, "100.100.8.3"): DROP,
    })  # fmt: skip


def test_management_ipset_in_rules(fw: Firewall) -> None:
    """Seed §13.6: ``IN HTTP(ACCEPT) -source +management`` opens HTTP to the management
    ipset, which includes the local network (§13.6.1) and honours its ``!`` entries."""
    fw.apply(
        cluster_fw("policy_in: DROP\n",
                   "[IPSET management]\n198.51.100.0/24\n!198.51.100.128/25\nfd00:99::/64\n"),
        host_fw("IN HTTP(ACCEPT) -source +management\n"),
    )
    fw.check({
        tcp(80, "198.51.100.7"): ACC, tcp(80, "172.16.1.5"): ACC, tcp(80, "fd00:99::7"): ACC,
        tcp(80, "198.51.100.200"): DROP, tcp(80, "100.100.1.2"): DROP,
        tcp(80, "fd00:98::7"): DROP,
    })  # fmt: skip


def test_dest_addresses(fw: Firewall) -> None:
    """``-dest`` on IN: the host's extra addresses (placed on vmbr0 by the probe). A range
    inside a list works, and is said (pve-firewall refuses it)."""
    done = fw.apply(
        cluster_fw("policy_in: DROP\n", CLUSTER_OBJECTS),
        host_fw("""\
            IN ACCEPT -dest 172.16.1.50 -p tcp -dport 1101
            IN ACCEPT -dest 172.16.1.60-172.16.1.70 -p tcp -dport 1102
            IN ACCEPT -dest 172.16.1.80,172.16.1.96/30 -p tcp -dport 1103
            IN ACCEPT -dest fd00:16:1::50 -p tcp -dport 2101
            IN ACCEPT -dest fd00:16:1::60-fd00:16:1::70,fd00:16:1::80 -p tcp -dport 2102
        """),
        allow_diagnostics=True,
    )
    assert done.diagnostics == [
        "nodes/pve1/host.fw:9: warning: -dest: an address range inside a list is used as "
        "written here; pve-firewall refuses this rule"]
    fw.check({
        tcp(1101, dest="172.16.1.50"): ACC, tcp(1101): DROP,
        tcp(1102, dest="172.16.1.65"): ACC, tcp(1102, dest="172.16.1.71"): DROP,
        tcp(1103, dest="172.16.1.98"): ACC, tcp(1103, dest="172.16.1.81"): DROP,
        tcp(2101, dest="fd00:16:1::50"): ACC, tcp(2101, dest="fd00:16:1::51"): DROP,
        tcp(2102, dest="fd00:16:1::70"): ACC, tcp(2102, dest="fd00:16:1::80"): ACC,
        tcp(2102, dest="fd00:16:1::71"): DROP,
    })  # fmt: skip


def test_protocols_and_ports(fw: Firewall) -> None:
    fw.apply(
        cluster_fw("policy_in: DROP\n"),
        host_fw("""\
            IN ACCEPT -p tcp -dport 3001,3003
            IN ACCEPT -p tcp -dport 3010:3020
            IN ACCEPT -p udp -dport 3030,3040:3045
            IN ACCEPT -p tcp -dport http
            IN ACCEPT -p udp -dport ntp,3046
            IN ACCEPT -p tcp -dport 3050 -sport 1000:1010
            IN ACCEPT -p udp -sport 1100,1102 -dport 3051
        """),
    )
    cases: dict[Pkt, str] = {}
    for v6 in (False, True):
        cases |= {
            Pkt("tcp", 3001, v6=v6): ACC, Pkt("tcp", 3003, v6=v6): ACC,
            Pkt("tcp", 3002, v6=v6): DROP, Pkt("udp", 3001, v6=v6): DROP,
            Pkt("tcp", 3010, v6=v6): ACC, Pkt("tcp", 3020, v6=v6): ACC,
            Pkt("tcp", 3021, v6=v6): DROP,
            Pkt("udp", 3030, v6=v6): ACC, Pkt("udp", 3042, v6=v6): ACC,
            Pkt("udp", 3031, v6=v6): DROP, Pkt("tcp", 3042, v6=v6): DROP,
            Pkt("tcp", 80, v6=v6): ACC, Pkt("udp", 123, v6=v6): ACC,
            Pkt("udp", 3046, v6=v6): ACC, Pkt("tcp", 123, v6=v6): DROP,
            Pkt("tcp", 3050, sport=1005, v6=v6): ACC, Pkt("tcp", 3050, sport=1011, v6=v6): DROP,
            Pkt("udp", 3051, sport=1102, v6=v6): ACC, Pkt("udp", 3051, sport=1101, v6=v6): DROP,
        }  # fmt: skip
    fw.check(cases)


def test_macros(fw: Firewall) -> None:
    """SSH from a non-management source only through the macro's ``-source``; DNS on
    both protocols; Ping for ICMP and ICMPv6 echo; a macro with REJECT."""
    fw.apply(
        cluster_fw("policy_in: DROP\n"),
        host_fw("""\
            IN SSH(ACCEPT) -source 100.100.20.0/24
            IN SSH(ACCEPT) -source fd00:100:20::/64
            IN DNS(ACCEPT)
            IN Ping(ACCEPT)
            IN Telnet(REJECT)
        """),
    )
    cases: dict[Pkt, str] = {
        tcp(22, "100.100.20.5"): ACC, tcp(22, "100.100.21.5"): DROP,
        tcp(22, "fd00:100:20::5"): ACC, tcp(22, "fd00:100:21::5"): DROP,
    }  # fmt: skip
    for v6 in (False, True):
        cases |= {
            Pkt("udp", 53, v6=v6): ACC, Pkt("tcp", 53, v6=v6): ACC, Pkt("udp", 54, v6=v6): DROP,
            Pkt("icmpv6" if v6 else "icmp", "echo-request", v6=v6): ACC,
            Pkt("tcp", 23, v6=v6): "REJECT", Pkt("udp", 23, v6=v6): DROP,
        }  # fmt: skip
    fw.check(cases)


def test_icmp_types(fw: Firewall) -> None:
    """``-icmp-type`` by name and number opens that type only."""
    fw.apply(
        cluster_fw("policy_in: DROP\n"),
        host_fw("""\
            IN ACCEPT -p icmp -icmp-type timestamp-request
            IN ACCEPT -p icmp -icmp-type 17
            IN ACCEPT -p icmpv6 -icmp-type echo-request
        """),
    )
    fw.check({
        Pkt("icmp", "timestamp-request"): ACC, Pkt("icmp", "address-mask-request"): ACC,
        Pkt("icmp", "echo-request"): DROP,
        Pkt("icmpv6", "echo-request"): ACC, Pkt("icmpv6", 139): DROP,
    })  # fmt: skip


def test_interface(fw: Firewall) -> None:
    """``-i``: IN matches the input interface (the bridge), OUT the output interface."""
    fw.apply(
        cluster_fw("policy_in: DROP\npolicy_out: DROP\n"),
        host_fw("""\
            IN ACCEPT -i vmbr0 -p tcp -dport 4001
            IN ACCEPT -i vmbr1 -p tcp -dport 4002
            OUT ACCEPT -i vmbr0 -p tcp -dport 4003
            OUT ACCEPT -i vmbr1 -p tcp -dport 4004
        """),
    )
    cases: dict[Pkt, str] = {}
    for v6 in (False, True):
        cases |= {
            Pkt("tcp", 4001, v6=v6): ACC, Pkt("tcp", 4002, v6=v6): DROP,
            Pkt("tcp", 4003, v6=v6, src="host", dst="outside"): "ACCEPT@host-out",
            Pkt("tcp", 4004, v6=v6, src="host", dst="outside"): "DROP@cluster-out",
        }  # fmt: skip
    fw.check(cases)


def test_out_rules(fw: Firewall) -> None:
    """OUT rules with ``-dest``/``-source``/ports through ``policy_out: DROP``."""
    fw.apply(
        cluster_fw("policy_out: DROP\n"),
        host_fw("""\
            OUT ACCEPT -p tcp -dport 4101 -dest 100.200.3.4
            OUT ACCEPT -p udp -dport 4102 -source 172.16.1.2
            OUT ACCEPT -p tcp -dport 4101 -dest fd00:100:200:3::4
            OUT ACCEPT -p udp -dport 4102 -source fd00:16:1::2
            OUT REJECT -p tcp -dport 4103
        """),
    )
    fw.check({
        out("tcp", 4101): "ACCEPT@host-out",
        out("tcp", 4101, dest="100.200.3.5"): "DROP@cluster-out",
        out("tcp", 4101, v6=True): "ACCEPT@host-out",
        out("tcp", 4101, dest="fd00:100:200:3::5"): "DROP@cluster-out",
        out("udp", 4102): "ACCEPT@host-out",
        out("udp", 4102, v6=True): "ACCEPT@host-out",
        out("udp", 4103): "DROP@cluster-out",
        out("tcp", 4103): "REJECT", out("tcp", 4103, v6=True): "REJECT",
    })  # fmt: skip


def test_rule_verdicts_under_accept_policy(fw: Firewall) -> None:
    fw.apply(
        cluster_fw("policy_in: ACCEPT\n"),
        host_fw("""\
            IN DROP -p tcp -dport 4201
            IN REJECT -p tcp -dport 4202
            IN REJECT -p udp -dport 4202
            IN REJECT -p icmp
            IN DROP -p icmpv6 -icmp-type echo-request
        """),
    )
    cases: dict[Pkt, str] = {Pkt("icmp", "echo-request"): "REJECT",
                             Pkt("icmpv6", "echo-request"): "DROP@host-in"}  # fmt: skip
    for v6 in (False, True):
        cases |= {
            Pkt("tcp", 4201, v6=v6): "DROP@host-in", Pkt("tcp", 4202, v6=v6): "REJECT",
            Pkt("udp", 4202, v6=v6): "REJECT", Pkt("tcp", 4203, v6=v6): "ACCEPT",
        }  # fmt: skip
    fw.check(cases)


def test_disabled_rule(fw: Firewall) -> None:
    fw.apply(
        cluster_fw("policy_in: DROP\n"),
        host_fw("|IN ACCEPT -p tcp -dport 4301\nIN ACCEPT -p tcp -dport 4302\n"),
    )
    fw.check({Pkt("tcp", 4301): DROP, Pkt("tcp", 4301, v6=True): DROP,
              Pkt("tcp", 4302): ACC, Pkt("tcp", 4302, v6=True): ACC})  # fmt: skip


def test_security_groups(fw: Firewall) -> None:
    """``GROUP x`` in host.fw and cluster.fw jumps to the group's rules in both
    directions; ``GROUP y -i vmbr1`` applies only to that interface."""
    fw.apply(
        cluster_fw("policy_in: DROP\npolicy_out: DROP\n", """\
            [RULES]
            GROUP dcgrp

            [group webgrp]
            IN ACCEPT -p tcp -dport 5001
            OUT ACCEPT -p tcp -dport 5002

            [group othergrp]
            IN ACCEPT -p tcp -dport 5003
            OUT ACCEPT -p tcp -dport 5005

            [group dcgrp]
            IN ACCEPT -p udp -dport 5004
        """),
        host_fw("GROUP webgrp\nGROUP othergrp -i vmbr1\n"),
    )
    cases: dict[Pkt, str] = {}
    for v6 in (False, True):
        cases |= {
            Pkt("tcp", 5001, v6=v6): "ACCEPT@group-webgrp-in",
            Pkt("tcp", 5002, v6=v6, src="host", dst="outside"): "ACCEPT@group-webgrp-out",
            Pkt("tcp", 5003, v6=v6): DROP,
            out("tcp", 5005, v6=v6): "DROP@cluster-out",
            Pkt("udp", 5004, v6=v6): "ACCEPT@group-dcgrp-in",
        }  # fmt: skip
    fw.check(cases)


def test_host_rules_before_cluster_rules(fw: Firewall) -> None:
    fw.apply(
        cluster_fw("policy_in: DROP\npolicy_forward: DROP\n", """\
            [RULES]
            IN DROP -p tcp -dport 6001
            IN ACCEPT -p tcp -dport 6002
            IN ACCEPT -p tcp -dport 6004
            OUT ACCEPT -p tcp -dport 6005
            FORWARD ACCEPT -p tcp -dport 6006
            FORWARD ACCEPT -p tcp -dport 6007
        """),
        host_fw("""\
            IN ACCEPT -p tcp -dport 6001
            IN REJECT -p tcp -dport 6002
            IN DROP -p tcp -dport 6003
            IN ACCEPT -p tcp -dport 6003
            OUT DROP -p tcp -dport 6005
            FORWARD DROP -p tcp -dport 6006
        """),
    )
    cases: dict[Pkt, str] = {}
    for v6 in (False, True):
        cases |= {
            Pkt("tcp", 6001, v6=v6): ACC, Pkt("tcp", 6002, v6=v6): "REJECT",
            Pkt("tcp", 6003, v6=v6): "DROP@host-in",  # first match wins
            Pkt("tcp", 6004, v6=v6): "ACCEPT@cluster-in",
            out("tcp", 6005, v6=v6): "DROP@host-out",
            Pkt("tcp", 6006, v6=v6, dst="far"): "DROP@host-forward",
            Pkt("tcp", 6007, v6=v6, dst="far"): "ACCEPT@cluster-forward",
        }  # fmt: skip
    fw.check(cases)
