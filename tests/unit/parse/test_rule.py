"""Rule lines: types, actions, every flag spelling, and every rejection with its message."""

from __future__ import annotations

import ipaddress

import pytest

from proxmox_fw.model import (
    AliasRef,
    Direction,
    IcmpType,
    IpList,
    IpsetRef,
    LogLevel,
    Origin,
    PortRange,
    Protocol,
    Verdict,
)
from proxmox_fw.parse.rule import RuleScope
from tests.unit.parse.helpers import bad_rule, errors, ok_rule, rule_of

TCP = Protocol(name="tcp", number=6)
UDP = Protocol(name="udp", number=17)


def test_basic_rule_fields() -> None:
    rule = ok_rule("IN ACCEPT -p tcp -dport 22 # ssh from anywhere")
    assert rule.origin == Origin(file="firewall/cluster.fw", line=7)
    assert rule.kind == "rule"
    assert rule.enabled
    assert rule.direction is Direction.IN
    assert rule.action is Verdict.ACCEPT
    assert rule.proto == TCP
    assert rule.dport == [PortRange(lo=22, hi=22)]
    assert rule.comment == "ssh from anywhere"
    assert rule.macro is None and rule.source is None and rule.log is None


@pytest.mark.parametrize(
    ("text", "direction"),
    [("IN", Direction.IN), ("in", Direction.IN), ("Out", Direction.OUT),
     ("OUT", Direction.OUT), ("FORWARD", Direction.FORWARD), ("forward", Direction.FORWARD)],
)
def test_rule_types_ignore_case(text: str, direction: Direction) -> None:
    assert ok_rule(f"{text} DROP").direction is direction


@pytest.mark.parametrize(
    ("text", "verdict"),
    [("ACCEPT", Verdict.ACCEPT), ("accept", Verdict.ACCEPT), ("Drop", Verdict.DROP),
     ("REJECT", Verdict.REJECT)],
)
def test_actions_ignore_case(text: str, verdict: Verdict) -> None:
    assert ok_rule(f"IN {text}").action is verdict


@pytest.mark.parametrize(
    ("text", "macro", "verdict"),
    [("SSH(ACCEPT)", "SSH", Verdict.ACCEPT), ("ssh(accept)", "SSH", Verdict.ACCEPT),
     ("spiceproxy(DROP)", "SPICEproxy", Verdict.DROP), ("Ping(REJECT)", "Ping", Verdict.REJECT),
     ("HTTP/3(ACCEPT)", "HTTP/3", Verdict.ACCEPT)],
)
def test_macro_action_stored_under_canonical_name(text: str, macro: str, verdict: Verdict) -> None:
    rule = ok_rule(f"IN {text}")
    assert (rule.macro, rule.action) == (macro, verdict)


@pytest.mark.parametrize("line", ["|IN ACCEPT -p tcp", "| IN ACCEPT -p tcp", "  |  in accept"])
def test_disabled_rule_kept(line: str) -> None:
    rule = ok_rule(line)
    assert not rule.enabled
    assert rule.action is Verdict.ACCEPT


def test_disabled_rule_errors_still_reported() -> None:
    assert bad_rule("|IN ACCEPT -dport 80") == (
        "option '-dport' needs -p with a protocol that has ports "
        "(tcp, udp, dccp, sctp or udplite)"
    )


def test_comment_keeps_further_hashes_and_whitespace_is_free() -> None:
    rule = ok_rule("IN\tACCEPT   -p  tcp\t-dport 80#web # really")
    assert rule.comment == "web # really"
    assert rule.dport == [PortRange(lo=80, hi=80)]
    assert ok_rule("IN ACCEPT #").comment is None


@pytest.mark.parametrize("spelling", ["-i", "--i", "-iface", "--iface"])
def test_flag_iface(spelling: str) -> None:
    assert ok_rule(f"IN ACCEPT {spelling} vmbr0").iface == "vmbr0"


@pytest.mark.parametrize("spelling", ["-p", "--p", "-proto", "--proto"])
def test_flag_proto(spelling: str) -> None:
    assert ok_rule(f"IN ACCEPT {spelling} udp").proto == UDP


@pytest.mark.parametrize("spelling", ["-dport", "--dport"])
def test_flag_dport(spelling: str) -> None:
    rule = ok_rule(f"IN ACCEPT -p tcp {spelling} 80,8000:8080")
    assert rule.dport == [PortRange(lo=80, hi=80), PortRange(lo=8000, hi=8080)]


@pytest.mark.parametrize("spelling", ["-sport", "--sport"])
def test_flag_sport(spelling: str) -> None:
    assert ok_rule(f"IN ACCEPT -p udp {spelling} http").sport == [PortRange(lo=80, hi=80)]


@pytest.mark.parametrize("spelling", ["-source", "--source"])
def test_flag_source(spelling: str) -> None:
    rule = ok_rule(f"IN ACCEPT {spelling} 10.0.0.0/8,10.1.0.1-10.1.0.9")
    assert isinstance(rule.source, IpList)
    assert rule.source.entries[0] == ipaddress.ip_interface("10.0.0.0/8")


@pytest.mark.parametrize("spelling", ["-dest", "--dest"])
def test_flag_dest(spelling: str) -> None:
    assert ok_rule(f"OUT DROP {spelling} +dc/Blocked").dest == IpsetRef(scope="dc",
                                                                        name="Blocked")


@pytest.mark.parametrize("spelling", ["-log", "--log"])
@pytest.mark.parametrize(("value", "level"), [("nolog", LogLevel.NOLOG),
                                              ("warn", LogLevel.WARNING),
                                              ("info", LogLevel.INFO)])
def test_flag_log(spelling: str, value: str, level: LogLevel) -> None:
    assert ok_rule(f"IN DROP {spelling} {value}").log is level


@pytest.mark.parametrize("spelling", ["-icmp-type", "--icmp-type"])
def test_flag_icmp_type(spelling: str) -> None:
    rule = ok_rule(f"IN ACCEPT -p icmp {spelling} echo-request")
    assert rule.icmp_type == IcmpType(v6=False, type=8)


def test_flags_in_any_order_with_long_forms() -> None:
    rule = ok_rule("IN DROP --icmp-type echo-request --proto icmp --log info")
    assert rule.proto == Protocol(name="icmp", number=1)
    assert rule.icmp_type == IcmpType(v6=False, type=8)
    assert rule.log is LogLevel.INFO


@pytest.mark.parametrize(
    ("proto", "value", "expected"),
    [("icmp", "0", IcmpType(v6=False, type=0)),
     ("icmp", "host-unreachable", IcmpType(v6=False, type=3, code=1)),
     ("icmpv6", "echo-request", IcmpType(v6=True, type=128)),
     ("ipv6-icmp", "133", IcmpType(v6=True, type=133))],
)
def test_legacy_icmp_type_in_dport(proto: str, value: str, expected: IcmpType) -> None:
    rule = ok_rule(f"IN ACCEPT -p {proto} -dport {value}")
    assert rule.icmp_type == expected
    assert rule.dport is None


@pytest.mark.parametrize(
    ("line", "v6", "type_", "code"),
    [("-p ipv6-icmp -icmp-type ttl-zero-during-transit", True, 3, 0),
     ("-p icmpv6 -icmp-type neighbour-solicitation", True, 135, None),
     ("-p icmp -icmp-type any", False, None, None),
     ("-p 58 -icmp-type 2", True, 2, None)],
)
def test_icmp_types(line: str, v6: bool, type_: int | None, code: int | None) -> None:
    assert ok_rule(f"FORWARD DROP {line}").icmp_type == IcmpType(v6=v6, type=type_, code=code)


def test_group_rule() -> None:
    rule = ok_rule("GROUP Network1 -i eth0 # grp")
    assert rule.kind == "group"
    assert rule.group == "network1"
    assert rule.iface == "eth0"
    assert rule.direction is None and rule.action is None
    assert rule.comment == "grp"
    assert ok_rule("group web").group == "web"
    assert ok_rule("GROUP web -i net0", "guest").iface == "net0"


@pytest.mark.parametrize(
    ("scope", "line"),
    [("guest", "IN ACCEPT -i net0"), ("guest", "OUT ACCEPT -i net31"),
     ("host", "IN ACCEPT -i vmbr0.100"), ("cluster", "IN ACCEPT -i enp3s0f1")],
)
def test_iface_valid(scope: RuleScope, line: str) -> None:
    assert ok_rule(line, scope).iface == line.split()[-1]


def test_addresses_with_aliases() -> None:
    rule = ok_rule("IN ACCEPT -source guest/analias -dest dc/Net2", "guest")
    assert rule.source == AliasRef(scope="guest", name="analias")
    assert rule.dest == AliasRef(scope="dc", name="net2")


@pytest.mark.parametrize(
    "line",
    ["IN SSH(ACCEPT) -p tcp", "IN SSH(ACCEPT) -p tcp -dport 22", "IN SSH(ACCEPT) -dport ssh",
     "IN SSH(ACCEPT) -sport 1024:65535", "IN DNS(ACCEPT) -dport 53",
     "IN Ping(ACCEPT) -source 10.0.0.0/8", "IN NeighborDiscovery(ACCEPT) -p icmpv6"],
)
def test_macro_with_matching_or_narrowing_options(line: str) -> None:
    assert ok_rule(line).macro is not None


# --- rejections ------------------------------------------------------------------------

REJECTED: list[tuple[str, RuleScope, str]] = [
    ("", "cluster", "empty rule"),
    ("FOO ACCEPT", "cluster", "unknown rule type 'FOO' (use IN, OUT, FORWARD or GROUP)"),
    ("IN", "cluster", "IN rule has no action"),
    ("IN FOO -p tcp", "cluster", "unknown action 'FOO'"),
    ("IN accepted", "cluster", "unknown action 'accepted'"),
    ("IN Foo(ACCEPT)", "cluster", "unknown macro 'Foo'"),
    ("IN SSH(ALLOW)", "cluster", "unknown action 'ALLOW' in 'SSH(ALLOW)'"),
    ("IN ACCEPT -x 1", "cluster", "unknown option '-x'"),
    ("IN ACCEPT -icmp_type any", "cluster", "unknown option '-icmp_type'"),
    ("IN ACCEPT ---log info", "cluster", "unexpected '---log'"),
    ("IN ACCEPT -p", "cluster", "option '-p' needs a value"),
    ("IN ACCEPT -source -p tcp", "cluster", "option '-source' needs a value"),
    ("IN ACCEPT -p tcp --p udp", "cluster", "option '--p' is given more than once"),
    ("IN ACCEPT -p tcp 22", "cluster", "unexpected '22'"),
    ("IN ACCEPT -dport 80", "cluster", "option '-dport' needs -p with a protocol that has ports"),
    ("IN ACCEPT --sport 80", "cluster", "option '--sport' needs -p with a protocol"),
    ("IN ACCEPT -p gre -dport 80", "cluster", "protocol gre has no ports"),
    ("IN ACCEPT -p 50 -sport 500", "cluster", "protocol esp has no ports"),
    ("IN ACCEPT -p tcp -dport 99999", "cluster", "port 99999 out of range"),
    ("IN ACCEPT -p tcp -dport 90:80", "cluster", "port range '90:80' is reversed"),
    ("IN ACCEPT -p tcp -dport nosuchname", "cluster", "unknown port name 'nosuchname'"),
    ("IN ACCEPT -p foo", "cluster", "unknown protocol 'foo'"),
    ("IN ACCEPT -icmp-type echo-request", "cluster", "option '-icmp-type' needs -p icmp"),
    ("IN ACCEPT -p tcp -icmp-type 8", "cluster", "option '-icmp-type' needs -p icmp"),
    ("IN ACCEPT -p icmp -icmp-type 8 -dport 8", "cluster", "cannot be combined"),
    ("IN ACCEPT -p icmp -sport 8", "cluster", "protocol icmp has no ports"),
    ("IN ACCEPT -p icmp -dport 0,8", "cluster", "unknown ICMP type '0,8'"),
    ("IN ACCEPT -p icmp -dport 256", "cluster", "ICMP type 256 out of range"),
    ("IN ACCEPT -p icmp -icmp-type nd-neighbor-solicit", "cluster", "unknown ICMP type"),
    ("IN ACCEPT -p icmpv6 -icmp-type host-unreachable", "cluster", "unknown ICMPv6 type"),
    ("IN ACCEPT -source 10.0.0.1 -dest fe80::1", "cluster",
     "source and destination mix IPv4 and IPv6 addresses"),
    ("IN ACCEPT -p icmp -source fe80::1", "cluster", "protocol icmp cannot match IPv6"),
    ("IN ACCEPT -p icmpv6 -dest 10.0.0.0/8", "cluster", "protocol icmpv6 cannot match IPv4"),
    ("IN ACCEPT -source 10.0.0.1,fe80::1", "cluster", "mixes IPv4 and IPv6"),
    ("IN ACCEPT -source 10.0.0.1/33", "cluster", "prefix length 33 out of range"),
    ("IN ACCEPT -log verbose", "cluster", "'verbose' is not a log level"),
    ("IN SSH(ACCEPT) -p udp", "cluster", "'-p udp' conflicts with macro SSH"),
    ("IN DNS(ACCEPT) -p udp", "cluster", "'-p udp' conflicts with macro DNS"),
    ("IN SSH(ACCEPT) -dport 80", "cluster", "'-dport 80' conflicts with macro SSH"),
    ("IN DHCPfwd(ACCEPT) --sport 68", "cluster", "'--sport 68' conflicts with macro DHCPfwd"),
    ("IN GRE(ACCEPT) -dport 80", "cluster", "cannot be used with macro GRE"),
    ("IN Ping(ACCEPT) -icmp-type echo-reply", "cluster", "needs -p icmp or -p icmpv6"),
    ("IN Ping(ACCEPT) -p icmp", "cluster", "'-p icmp' conflicts with macro Ping"),
    ("IN NeighborDiscovery(ACCEPT) -p icmpv6 -icmp-type echo-request", "cluster",
     "conflicts with macro NeighborDiscovery"),
    ("GROUP web -p tcp", "cluster", "GROUP rules accept only -i, not '-p'"),
    ("GROUP web -i eth0 -source 10.0.0.1", "cluster", "GROUP rules accept only -i"),
    ("GROUP 1web", "cluster", "'1web' is not a valid security group name"),
    ("GROUP other", "group", "GROUP rules are not allowed in security groups"),
    ("FORWARD ACCEPT", "guest", "FORWARD rules are not allowed in guest firewall files"),
    ("IN ACCEPT", "vnet", "IN rules are not allowed in vnet firewall files"),
    ("OUT ACCEPT", "vnet", "OUT rules are not allowed in vnet firewall files"),
    ("FORWARD ACCEPT -i vmbr0", "vnet", "option '-i' is not allowed in vnet firewall rules"),
    ("GROUP web -i vmbr0", "vnet", "option '-i' is not allowed in vnet firewall rules"),
    ("IN ACCEPT -i eth0", "guest", "interface 'eth0' is not a guest network device"),
    ("IN ACCEPT -i net32", "guest", "interface 'net32' is not a guest network device"),
    ("IN ACCEPT -i net01", "guest", "interface 'net01' is not a guest network device"),
    ("IN ACCEPT -i averyveryverylongname", "host", "is not a valid interface name"),
    ("IN ACCEPT -i eth0/1", "host", "'eth0/1' is not a valid interface name"),
]


@pytest.mark.parametrize(("line", "scope", "message"), REJECTED)
def test_rejected_rules(line: str, scope: RuleScope, message: str) -> None:
    assert message in bad_rule(line, scope)


def test_one_diagnostic_per_bad_rule() -> None:
    rule, diags = rule_of("IN FOO -p foo -dport 99999 -x")
    assert rule is None
    assert len(errors(diags)) == len(diags) == 1
