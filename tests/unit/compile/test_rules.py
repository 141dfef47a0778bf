"""compile_rule: every flag of a rule line → the exact nft expressions it becomes (pure).

Expected JSON is spelled out literally (not built with ``nft.expr``) so a change to any
expression shows here. Each rule is compiled into ``cluster-in`` of a target like the
host table's (iface key ``iifname``, interface names as written, REJECT via
``do-reject``) unless a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from proxmox_fw.compile.refs import RefScope
from proxmox_fw.compile.rules import RuleTarget, compile_rule
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import Direction, LogRateLimit
from proxmox_fw.parse import parse_cluster_fw
from tests.unit.parse.helpers import ok_rule

Json = Any

CLUSTER = parse_cluster_fw(
    "[ALIASES]\nlan 192.168.5.7/24\nsix fd00::/64\n"
    "[IPSET web]\n10.0.0.1\n\n[group web]\nIN ACCEPT\n",
    "firewall/cluster.fw", Diagnostics(),
)
ORIGIN = "firewall/cluster.fw:7"  # where tests.unit.parse.helpers puts every rule


def compiled(line: str, direction: Direction = Direction.IN, **target: Any) -> list[list[Json]]:
    """The expressions of every nft rule ``line`` gives in ``cluster-<direction>``."""
    rule = ok_rule(line)
    target.setdefault("groups", frozenset(CLUSTER.groups))
    tgt = RuleTarget(f"cluster-{direction.value}", direction, RefScope(CLUSTER),
                     LogRateLimit(), **target)
    diags = Diagnostics()
    rules = compile_rule(rule, tgt, diags)
    assert not diags.items, [str(d) for d in diags]
    assert all(r.origin == ORIGIN for r in rules)
    return [r.expr for r in rules]


def refused(line: str, **target: Any) -> str:
    """The one error a rule that cannot be compiled gives; it yields no nft rule."""
    rule = ok_rule(line)
    target.setdefault("groups", frozenset(CLUSTER.groups))
    tgt = RuleTarget("cluster-in", Direction.IN, RefScope(CLUSTER), LogRateLimit(), **target)
    diags = Diagnostics()
    assert compile_rule(rule, tgt, diags) == []
    (d,) = diags.items
    assert (d.file, d.line, d.severity.value) == ("firewall/cluster.fw", 7, "error")
    return d.message


def fail_closed(line: str, **target: Any) -> tuple[list[list[Json]], str]:
    """The nft rules and the one error of a blocking rule with a broken reference."""
    rule = ok_rule(line)
    target.setdefault("groups", frozenset(CLUSTER.groups))
    tgt = RuleTarget("cluster-in", Direction.IN, RefScope(CLUSTER), LogRateLimit(), **target)
    diags = Diagnostics()
    rules = compile_rule(rule, tgt, diags)
    (d,) = diags.items
    assert (d.file, d.line, d.severity.value) == ("firewall/cluster.fw", 7, "error")
    assert all(r.origin == ORIGIN for r in rules)
    return [r.expr for r in rules], d.message


def match(left: Json, right: Json, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def meta(key: str) -> Json:
    return {"meta": {"key": key}}


def payload(protocol: str, field: str) -> Json:
    return {"payload": {"protocol": protocol, "field": field}}


COUNTER: Json = {"counter": None}
ACCEPT: Json = {"accept": None}
DROP: Json = {"drop": None}
REJECT: Json = {"jump": {"target": "do-reject"}}


def l4(proto: Json) -> Json:
    return match(meta("l4proto"), proto)


def dport(value: Json) -> Json:
    return match(payload("th", "dport"), value)


def sport(value: Json) -> Json:
    return match(payload("th", "sport"), value)


def prefix(addr: str, length: int) -> Json:
    return {"prefix": {"addr": addr, "len": length}}


# --- action ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "verdict"), [
    ("IN ACCEPT", ACCEPT), ("IN DROP", DROP), ("IN REJECT", REJECT), ("in accept", ACCEPT),
])
def test_action(line: str, verdict: Json) -> None:
    assert compiled(line) == [[COUNTER, verdict]]


def test_accept_handed_to_the_target_accept() -> None:
    """A guest with ``ips: 1`` accepts by queueing to its NFQUEUE."""
    queue = {"queue": {"num": 3, "flags": ["bypass"]}}
    assert compiled("IN ACCEPT -p tcp", accept=lambda: queue) == [[l4("tcp"), COUNTER, queue]]
    assert compiled("IN DROP -p tcp", accept=lambda: queue) == [[l4("tcp"), COUNTER, DROP]]


def test_reject_as_the_target_spells_it() -> None:
    assert compiled("IN REJECT", reject=lambda: DROP) == [[COUNTER, DROP]]


def test_disabled_rule_gives_nothing() -> None:
    assert compiled("|IN ACCEPT -p tcp -dport 22") == []


def test_rule_of_another_direction_gives_nothing_here() -> None:
    assert compiled("OUT ACCEPT -p tcp") == []
    assert compiled("OUT ACCEPT -p tcp", Direction.OUT) == [[l4("tcp"), COUNTER, ACCEPT]]


def test_comment_changes_no_expression() -> None:
    assert compiled("IN ACCEPT -p tcp # ssh from anywhere") == [[l4("tcp"), COUNTER, ACCEPT]]


# --- -i / -iface ----------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["-i", "-iface", "--iface"])
def test_iface(flag: str) -> None:
    assert compiled(f"IN ACCEPT {flag} eth0") == [
        [match(meta("iifname"), "eth0"), COUNTER, ACCEPT]
    ]


def test_iface_key_and_name_come_from_the_target() -> None:
    """Host OUT matches the output interface; an altname becomes the kernel's name."""
    names = {"enp1s0": "eth0"}
    assert compiled("OUT DROP -i enp1s0", Direction.OUT, iface_key="oifname",
                    iface_map=lambda n: names.get(n, n)) == [
        [match(meta("oifname"), "eth0"), COUNTER, DROP]
    ]


def test_iface_unknown_to_the_target_is_refused() -> None:
    assert refused("IN ACCEPT -i net3", iface_map=lambda _n: None) == (
        "rule skipped: interface 'net3' does not exist here"
    )


# --- -source / -dest ------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "family", "right"), [
    ("10.0.0.1", "ip", "10.0.0.1"),
    ("10.0.0.1/32", "ip", "10.0.0.1"),
    ("10.0.0.9/8", "ip", prefix("10.0.0.0", 8)),
    ("fd00::1", "ip6", "fd00::1"),
    ("fd00::1/64", "ip6", prefix("fd00::", 64)),
    ("10.0.0.1-10.0.0.9", "ip", {"range": ["10.0.0.1", "10.0.0.9"]}),
    ("10.0.0.1,10.1.0.0/16,10.2.0.1-10.2.0.3", "ip", {"set": [
        "10.0.0.1", prefix("10.1.0.0", 16), {"range": ["10.2.0.1", "10.2.0.3"]}]}),
    ("lan", "ip", prefix("192.168.5.0", 24)),
    ("dc/six", "ip6", prefix("fd00::", 64)),
])
@pytest.mark.parametrize(("flag", "field"), [("-source", "saddr"), ("-dest", "daddr")])
def test_address(flag: str, field: str, value: str, family: str, right: Json) -> None:
    assert compiled(f"IN ACCEPT {flag} {value}") == [
        [match(payload(family, field), right), COUNTER, ACCEPT]
    ]


@pytest.mark.parametrize(("flag", "field"), [("-source", "saddr"), ("-dest", "daddr")])
def test_ipset_gives_one_rule_per_family_with_its_nomatch_set(flag: str, field: str) -> None:
    assert compiled(f"IN ACCEPT {flag} +web") == [
        [match(payload("ip", field), "@v4-dc/web"),
         match(payload("ip", field), "@v4-dc/web-nomatch", "!="), COUNTER, ACCEPT],
        [match(payload("ip6", field), "@v6-dc/web"),
         match(payload("ip6", field), "@v6-dc/web-nomatch", "!="), COUNTER, ACCEPT],
    ]


def test_ipset_with_an_address_keeps_only_that_family() -> None:
    assert compiled("IN ACCEPT -source fd00::1 -dest +dc/web") == [
        [match(payload("ip6", "saddr"), "fd00::1"),
         match(payload("ip6", "daddr"), "@v6-dc/web"),
         match(payload("ip6", "daddr"), "@v6-dc/web-nomatch", "!="), COUNTER, ACCEPT],
    ]


def test_source_and_dest_in_that_order() -> None:
    assert compiled("IN ACCEPT -dest 10.0.0.2 -source 10.0.0.1") == [
        [match(payload("ip", "saddr"), "10.0.0.1"), match(payload("ip", "daddr"), "10.0.0.2"),
         COUNTER, ACCEPT]
    ]


def test_standard_ipsets_exist_without_a_definition() -> None:
    assert compiled("IN DROP -source +blacklist")[0][0] == (
        match(payload("ip", "saddr"), "@v4-dc/blacklist")
    )


@pytest.mark.parametrize(("line", "message"), [
    ("IN ACCEPT -source nosuch", "rule skipped: no such alias 'nosuch'"),
    ("IN ACCEPT -dest +nosuch", "rule skipped: no such ipset '+nosuch'"),
    ("IN ACCEPT -source six -dest lan",
     "rule skipped: its address families contradict each other, it can match nothing"),
    ("IN ACCEPT -p icmp -dest six",
     "rule skipped: its address families contradict each other, it can match nothing"),
])
def test_unresolvable_or_contradicting_addresses_are_refused(line: str, message: str) -> None:
    assert refused(line) == message


TCP22 = [match(meta("l4proto"), "tcp"), match(payload("th", "dport"), 22)]
LAN = match(payload("ip", "daddr"), {"prefix": {"addr": "192.168.5.0", "len": 24}})


@pytest.mark.parametrize("verdict", ["DROP", "REJECT"])
@pytest.mark.parametrize(("broken", "kept"), [
    ("-source nosuch", []), ("-source dc/nosuch", []), ("-source +nosuch", []),
    ("-source +dc/nosuch", []), ("-dest +sdn/nosuch", []), ("-source +guest/nosuch", []),
    ("-dest nosuch", []), ("-source nosuch -dest lan", [LAN]),
    ("-source +nosuch -dest nosuch2", []),
])
def test_blocking_rules_with_a_broken_reference_fail_closed(
    verdict: str, broken: str, kept: list[Json]
) -> None:
    """Issue 10: the rule blocks at least what it covered: without the broken condition."""
    rules, message = fail_closed(f"IN {verdict} -p tcp -dport 22 {broken}")
    assert rules == [[*TCP22, *kept, COUNTER, DROP if verdict == "DROP" else REJECT]]
    assert message.endswith("the rule applies without that condition until it is fixed "
                            "(fail-closed: it blocks more, never less)")
    assert "no such" in message


def test_a_blocking_rule_that_can_match_nothing_is_still_skipped() -> None:
    assert refused("IN DROP -source six -dest lan") == (
        "rule skipped: its address families contradict each other, it can match nothing")
    assert refused("IN DROP -source nosuch -p icmp -dest six") == (
        "rule skipped: no such alias 'nosuch'")


def test_a_blocking_rule_on_a_missing_interface_fails_closed() -> None:
    rules, message = fail_closed("IN DROP -i net3 -p tcp -dport 22", iface_map=lambda _n: None)
    assert rules == [[*TCP22, COUNTER, DROP]] and "interface 'net3'" in message


# --- -p, -dport, -sport ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "l4proto"), [
    ("tcp", "tcp"), ("TCP", "tcp"), ("6", "tcp"), ("udp", "udp"), ("sctp", "sctp"),
    ("dccp", "dccp"), ("udplite", "udplite"), ("icmp", "icmp"), ("icmpv6", "ipv6-icmp"),
    ("ipv6-icmp", "ipv6-icmp"), ("gre", 47), ("47", 47), ("esp", 50),
])
@pytest.mark.parametrize("flag", ["-p", "-proto", "--proto"])
def test_proto(flag: str, value: str, l4proto: Json) -> None:
    assert compiled(f"IN ACCEPT {flag} {value}") == [[l4(l4proto), COUNTER, ACCEPT]]


@pytest.mark.parametrize(("value", "right"), [
    ("22", 22),
    ("ssh", 22),
    ("22:25", {"range": [22, 25]}),
    ("22,80", {"set": [22, 80]}),
    ("22:25,80,https", {"set": [{"range": [22, 25]}, 80, 443]}),
])
def test_dport(value: str, right: Json) -> None:
    assert compiled(f"IN ACCEPT -p tcp -dport {value}") == [
        [l4("tcp"), dport(right), COUNTER, ACCEPT]
    ]


def test_sport() -> None:
    assert compiled("IN ACCEPT -p udp -sport 53,123") == [
        [l4("udp"), sport({"set": [53, 123]}), COUNTER, ACCEPT]
    ]


def test_sport_before_dport() -> None:
    assert compiled("IN ACCEPT -p tcp -dport 80 -sport 1024:65535") == [
        [l4("tcp"), sport({"range": [1024, 65535]}), dport(80), COUNTER, ACCEPT]
    ]


# --- -icmp-type -----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "matches"), [
    ("IN ACCEPT -p icmp -icmp-type echo-request", [match(payload("icmp", "type"), 8)]),
    ("IN ACCEPT -p icmp -icmp-type 13", [match(payload("icmp", "type"), 13)]),
    ("IN ACCEPT -p icmp -icmp-type port-unreachable",
     [match(payload("icmp", "type"), 3), match(payload("icmp", "code"), 3)]),
    ("IN ACCEPT -p icmpv6 -icmp-type neighbor-solicitation",
     [match(payload("icmpv6", "type"), 135)]),
    ("IN ACCEPT -p ipv6-icmp -icmp-type 128", [match(payload("icmpv6", "type"), 128)]),
    # ``any`` is the protocol alone
    ("IN ACCEPT -p icmp -icmp-type any", [l4("icmp")]),
    ("IN ACCEPT -p icmpv6 -icmp-type any", [l4("ipv6-icmp")]),
    # the legacy spelling: the type given as -dport
    ("IN ACCEPT -p icmp -dport echo-request", [match(payload("icmp", "type"), 8)]),
])
def test_icmp_type(line: str, matches: list[Json]) -> None:
    assert compiled(line) == [[*matches, COUNTER, ACCEPT]]


def test_icmp_type_with_an_address_of_its_family() -> None:
    assert compiled("IN ACCEPT -p icmp -icmp-type echo-request -source 10.0.0.0/8") == [
        [match(payload("icmp", "type"), 8), match(payload("ip", "saddr"), prefix("10.0.0.0", 8)),
         COUNTER, ACCEPT]
    ]


# --- -log -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "logid"), [
    ("emerg", 0), ("alert", 1), ("crit", 2), ("err", 3), ("warning", 4), ("warn", 4),
    ("notice", 5), ("info", 6), ("debug", 7),
])
def test_log_rule_before_the_verdict(level: str, logid: int) -> None:
    assert compiled(f"IN DROP -p tcp -log {level}") == [
        [l4("tcp"), {"limit": {"rate": 1, "per": "second", "burst": 5}},
         {"log": {"prefix": f":0:{logid}:cluster-in: DROP: ", "group": 0}}],
        [l4("tcp"), COUNTER, DROP],
    ]


def test_log_nolog_logs_nothing() -> None:
    assert compiled("IN ACCEPT -log nolog") == [[COUNTER, ACCEPT]]


def test_log_follows_the_cluster_ratelimit_and_the_target() -> None:
    rule = ok_rule("OUT REJECT -log info")
    tgt = RuleTarget("guest-100-out", Direction.OUT, RefScope(CLUSTER),
                     LogRateLimit(enable=False), vmid=100)
    assert [r.expr for r in compile_rule(rule, tgt, Diagnostics())] == [
        [{"log": {"prefix": ":100:6:guest-100-out: REJECT: ", "group": 0}}],
        [COUNTER, REJECT],
    ]


def test_log_of_every_macro_part_and_family() -> None:
    rules = compiled("IN DNS(ACCEPT) -log info")
    assert [len(r) for r in rules] == [4, 4, 4, 4]  # (log, verdict) for udp, then for tcp
    assert [r[0] for r in rules] == [l4("udp"), l4("udp"), l4("tcp"), l4("tcp")]


# --- macros ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "rules"), [
    ("IN SSH(ACCEPT)", [[l4("tcp"), dport(22), COUNTER, ACCEPT]]),
    ("IN ssh(DROP)", [[l4("tcp"), dport(22), COUNTER, DROP]]),
    ("IN DNS(REJECT)", [[l4("udp"), dport(53), COUNTER, REJECT],
                        [l4("tcp"), dport(53), COUNTER, REJECT]]),
    ("IN Ping(ACCEPT)", [[match(payload("icmp", "type"), 8), COUNTER, ACCEPT],
                         [match(payload("icmpv6", "type"), 128), COUNTER, ACCEPT]]),
    ("IN SSH(ACCEPT) -source lan",
     [[l4("tcp"), dport(22), match(payload("ip", "saddr"), prefix("192.168.5.0", 24)),
       COUNTER, ACCEPT]]),
    # a v4 source leaves the ICMPv6 part out
    ("IN Ping(DROP) -source 10.0.0.0/8",
     [[match(payload("icmp", "type"), 8), match(payload("ip", "saddr"), prefix("10.0.0.0", 8)),
       COUNTER, DROP]]),
    ("IN HTTP(ACCEPT) -i eth1",
     [[match(meta("iifname"), "eth1"), l4("tcp"), dport(80), COUNTER, ACCEPT]]),
])
def test_macro(line: str, rules: list[list[Json]]) -> None:
    assert compiled(line) == rules


def test_macro_times_ipset_families() -> None:
    assert compiled("IN HTTP(ACCEPT) -source +web") == [
        [l4("tcp"), dport(80), match(payload("ip", "saddr"), "@v4-dc/web"),
         match(payload("ip", "saddr"), "@v4-dc/web-nomatch", "!="), COUNTER, ACCEPT],
        [l4("tcp"), dport(80), match(payload("ip6", "saddr"), "@v6-dc/web"),
         match(payload("ip6", "saddr"), "@v6-dc/web-nomatch", "!="), COUNTER, ACCEPT],
    ]


# --- GROUP ----------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", list(Direction))
def test_group_jumps_to_its_chain_of_the_direction(direction: Direction) -> None:
    assert compiled("GROUP web", direction) == [
        [{"jump": {"target": f"group-web-{direction.value}"}}]
    ]


def test_group_with_iface_and_any_case() -> None:
    assert compiled("GROUP WEB -i eth0") == [
        [match(meta("iifname"), "eth0"), {"jump": {"target": "group-web-in"}}]
    ]


def test_group_chain_as_the_target_names_it() -> None:
    name: Callable[[str, Direction], str] = lambda g, d: f"guest-group-{g}-{d.value}"  # noqa: E731
    assert compiled("GROUP web", group_chain=name) == [
        [{"jump": {"target": "guest-group-web-in"}}]
    ]


def test_undefined_group_fails_closed() -> None:
    """Issue 10: skipping it would let later ACCEPT rules take what the group dropped."""
    for line, groups in (("GROUP nosuch", frozenset(CLUSTER.groups)),
                         ("GROUP web", frozenset())):
        rules, message = fail_closed(line, groups=groups)
        assert rules == [[COUNTER, DROP]]
        name = line.split()[1]
        assert message == (f"security group '{name}' is not defined; everything this rule "
                           "reaches is dropped until it is fixed (fail-closed)")
