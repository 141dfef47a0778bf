"""Whole ``.fw`` files: sections, options, aliases, ipsets, security groups."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import (
    AliasRef,
    ClusterOptions,
    Direction,
    GuestOptions,
    HostOptions,
    LogLevel,
    LogRateLimit,
    Origin,
    PortRange,
    Verdict,
    VnetOptions,
)
from proxmox_fw.parse import parse_cluster_fw
from tests.unit.parse.helpers import FILES, NOW, errors, parse_file, warnings

DEFAULTS: dict[str, Any] = {
    "cluster": ClusterOptions(),
    "host": HostOptions(),
    "guest": GuestOptions(),
    "vnet": VnetOptions(),
}


def messages(diags: Diagnostics) -> list[tuple[int | None, str, str]]:
    return [(d.line, d.severity.value, d.message) for d in diags]


# --- the example from the brief ----------------------------------------------------------


def test_cluster_example_keeps_good_rule_and_reports_two_errors() -> None:
    text = (
        "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 22\nIN FOO -p tcp\n"
        "IN ACCEPT -p tcp -dport 99999\n"
    )
    fw, diags = parse_file("cluster", text)
    assert fw.present
    assert fw.options.enable is True
    assert [r.origin.line for r in fw.rules] == [4]
    assert fw.rules[0].dport == [PortRange(lo=22, hi=22)]
    errs = errors(diags)
    assert len(diags) == len(errs) == 2
    assert [(e.file, e.line) for e in errs] == [("firewall/cluster.fw", 5),
                                               ("firewall/cluster.fw", 6)]
    assert "unknown action 'FOO'" in errs[0].message
    assert "port 99999 out of range" in errs[1].message


# --- sections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["[OPTIONS]", "[options]", "[Options]", "[OPTIONS] # the options", " [ options ] "]
)
def test_options_header_spellings(header: str) -> None:
    fw, diags = parse_file("guest", f"{header}\nenable: 1\n")
    assert fw.options.enable is True
    assert len(diags) == 0


@pytest.mark.parametrize("header", ["[RULES]", "[rules]", "[Rules] #x"])
def test_rules_header_spellings(header: str) -> None:
    fw, diags = parse_file("host", f"{header}\nIN ACCEPT\n")
    assert len(fw.rules) == 1
    assert len(diags) == 0


@pytest.mark.parametrize("header", ["[ALIASES]", "[aliases]"])
def test_aliases_header_spellings(header: str) -> None:
    fw, diags = parse_file("cluster", f"{header}\nnet1 10.0.0.0/8\n")
    assert list(fw.aliases) == ["net1"]
    assert len(diags) == 0


@pytest.mark.parametrize(
    ("header", "comment"),
    [("[IPSET MySet]", None), ("[ipset MySet]", None), ("[IPSET MySet] # my set", "my set"),
     ("[Ipset   MySet]#c", "c")],
)
def test_ipset_header_spellings(header: str, comment: str | None) -> None:
    fw, diags = parse_file("cluster", f"{header}\n10.0.0.1\n")
    ipset = fw.ipsets["myset"]
    assert ipset.name == "MySet"
    assert ipset.comment == comment
    assert ipset.origin == Origin(file="firewall/cluster.fw", line=1)
    assert len(ipset.entries) == 1
    assert len(diags) == 0


@pytest.mark.parametrize(
    ("header", "comment"),
    [("[group Web]", None), ("[GROUP web]", None), ("[Group web] # web servers", "web servers")],
)
def test_group_header_spellings(header: str, comment: str | None) -> None:
    fw, diags = parse_file("cluster", f"{header}\nIN ACCEPT -p tcp -dport 80\n")
    group = fw.groups["web"]
    assert group.name == "web"
    assert group.comment == comment
    assert [r.dport for r in group.rules] == [[PortRange(lo=80, hi=80)]]
    assert len(diags) == 0


def test_blank_and_comment_lines_and_crlf() -> None:
    fw, diags = parse_file("cluster", "# top\r\n\r\n[OPTIONS]\r\n  # c\r\nenable: 1\r\n")
    assert fw.options.enable is True
    assert len(diags) == 0


def test_empty_file_gives_defaults() -> None:
    for kind in FILES:
        fw, diags = parse_file(kind, "")
        assert fw.options == DEFAULTS[kind]
        assert len(diags) == 0


def test_content_before_any_section() -> None:
    fw, diags = parse_file("host", "enable: 1\nIN ACCEPT\n[RULES]\nIN DROP\n")
    assert [r.action for r in fw.rules] == [Verdict.DROP]
    assert [(d.line, d.severity) for d in diags] == [(1, Severity.ERROR), (2, Severity.ERROR)]
    assert "outside any section" in diags.items[0].message


@pytest.mark.parametrize(
    ("kind", "header"),
    [("host", "[ALIASES]"), ("host", "[IPSET s]"), ("host", "[group g]"),
     ("guest", "[group g]"), ("vnet", "[ALIASES]"), ("vnet", "[IPSET s]"),
     ("vnet", "[group g]")],
)
def test_section_not_allowed_in_file_kind(kind: str, header: str) -> None:
    text = f"{header}\nnet1 10.0.0.1\nIN ACCEPT\n[RULES]\nGROUP other\n"
    fw, diags = parse_file(kind, text)
    assert [(d.line, d.severity) for d in diags] == [(1, Severity.ERROR)]
    assert "not allowed in" in diags.items[0].message
    assert "ignored" in diags.items[0].message
    assert [r.origin.line for r in fw.rules] == [5]


@pytest.mark.parametrize(
    ("header", "message"),
    [("[FOO]", "unknown section '[FOO]'"), ("[RULES", "malformed section header"),
     ("[RULES] trailing", "malformed section header"),
     ("[IPSET]", "ipset section without a name"),
     ("[IPSET 1abc]", "invalid ipset name '1abc'"),
     ("[group a.b]", "invalid security group name 'a.b'"),
     ("[OPTIONS x]", "section [OPTIONS] takes no name")],
)
def test_bad_headers_skip_their_lines(header: str, message: str) -> None:
    fw, diags = parse_file("cluster", f"{header}\nIN ACCEPT\nenable: 1\n10.0.0.1\n")
    assert [(d.line, d.severity) for d in diags] == [(1, Severity.ERROR)]
    assert message in diags.items[0].message
    assert fw.rules == [] and fw.ipsets == {} and fw.groups == {}
    assert fw.options.enable is False


def test_repeated_plain_section_merges_with_warning() -> None:
    fw, diags = parse_file("host", "[RULES]\nIN ACCEPT\n[OPTIONS]\nenable: 0\n[RULES]\nOUT DROP\n")
    assert [r.direction for r in fw.rules] == [Direction.IN, Direction.OUT]
    assert messages(diags) == [
        (5, "warning",
         "section [RULES] appears again (first on line 1); its lines are added to the earlier "
         "ones"),
    ]


def test_duplicate_ipset_and_group_last_wins() -> None:
    text = (
        "[IPSET a]\n10.0.0.1\n[ipset A]\n10.0.0.2\n"
        "[group g]\nIN ACCEPT\n[GROUP G]\nOUT DROP\n"
    )
    fw, diags = parse_file("cluster", text)
    assert fw.ipsets["a"].name == "A"
    assert [e.address for e in fw.ipsets["a"].entries] == [ipaddress.ip_interface("10.0.0.2")]
    assert [r.direction for r in fw.groups["g"].rules] == [Direction.OUT]
    assert [(d.line, d.severity) for d in diags] == [(3, Severity.WARNING),
                                                     (7, Severity.WARNING)]
    assert "ipset 'A' is defined again (first on line 1)" in diags.items[0].message
    assert "security group 'G' is defined again (first on line 5)" in diags.items[1].message


# --- rules per file kind ------------------------------------------------------------------


def test_rule_scope_follows_file_kind() -> None:
    text = "[RULES]\nIN ACCEPT -i net0\nFORWARD ACCEPT\nGROUP g -i net1\n"
    fw, diags = parse_file("guest", text)
    assert [r.origin.line for r in fw.rules] == [2, 4]
    assert messages(diags) == [
        (3, "error", "FORWARD rules are not allowed in guest firewall files")
    ]

    fw, diags = parse_file("vnet", "[RULES]\nFORWARD ACCEPT -p tcp\nIN ACCEPT\n")
    assert fw.name == "vnet0"
    assert [r.origin.line for r in fw.rules] == [2]
    assert messages(diags) == [(3, "error", "IN rules are not allowed in vnet firewall files")]

    fw, diags = parse_file("host", "[RULES]\nIN ACCEPT -i net0x\nIN ACCEPT -i vmbr0\n")
    assert [r.iface for r in fw.rules] == ["net0x", "vmbr0"]
    assert len(diags) == 0


def test_group_section_rules() -> None:
    text = "[group web]\nIN ACCEPT -p tcp -dport 80\nGROUP other\nFORWARD DROP -i eth1\n"
    fw, diags = parse_file("cluster", text)
    assert [r.origin.line for r in fw.groups["web"].rules] == [2, 4]
    assert messages(diags) == [
        (3, "error", "GROUP rules are not allowed in security groups")
    ]


# --- options --------------------------------------------------------------------------------

OPTION_VALUES: list[tuple[str, str, str, str, Any]] = [
    ("cluster", "enable", "1", "enable", True),
    ("cluster", "enable", "off", "enable", False),
    ("cluster", "policy_in", "accept", "policy_in", Verdict.ACCEPT),
    ("cluster", "policy_out", "DROP", "policy_out", Verdict.DROP),
    ("cluster", "policy_forward", "Reject", "policy_forward", Verdict.REJECT),
    ("cluster", "ebtables", "0", "ebtables", False),
    ("cluster", "log_ratelimit", "0", "log_ratelimit", LogRateLimit(enable=False)),
    ("cluster", "log_ratelimit", "1,rate=10/second,burst=20", "log_ratelimit",
     LogRateLimit(enable=True, rate=10, burst=20)),
    ("cluster", "log_ratelimit", "burst=12,enable=1,rate=2/second", "log_ratelimit",
     LogRateLimit(enable=True, rate=2, burst=12)),
    ("cluster", "log_ratelimit", "rate=3/hour", "log_ratelimit",
     LogRateLimit(rate=3, per="hour")),
    ("cluster", "log_ratelimit", "enable=no,rate=5", "log_ratelimit",
     LogRateLimit(enable=False, rate=5)),
    ("cluster", "log_ratelimit", "burst=0,rate=1/day", "log_ratelimit",
     LogRateLimit(rate=1, per="day", burst=0)),
    ("host", "enable", "0", "enable", False),
    ("host", "nftables", "1", "nftables", True),
    ("host", "log_level_in", "info", "log_level_in", LogLevel.INFO),
    ("host", "log_level_out", "WARN", "log_level_out", LogLevel.WARNING),
    ("host", "log_level_forward", "debug", "log_level_forward", LogLevel.DEBUG),
    ("host", "log_level_in", "", "log_level_in", LogLevel.NOLOG),
    ("host", "tcpflags", "yes", "tcpflags", True),
    ("host", "tcp_flags_log_level", "err", "tcp_flags_log_level", LogLevel.ERR),
    ("host", "nosmurfs", "0", "nosmurfs", False),
    ("host", "smurf_log_level", "alert", "smurf_log_level", LogLevel.ALERT),
    ("host", "ndp", "false", "ndp", False),
    ("host", "nf_conntrack_allow_invalid", "1", "nf_conntrack_allow_invalid", True),
    ("host", "nf_conntrack_helpers", "FTP,sip", "nf_conntrack_helpers", ["ftp", "sip"]),
    ("host", "nf_conntrack_helpers", "", "nf_conntrack_helpers", []),
    ("host", "nf_conntrack_max", "262144", "nf_conntrack_max", 262144),
    ("host", "nf_conntrack_tcp_timeout_established", "432000",
     "nf_conntrack_tcp_timeout_established", 432000),
    ("host", "nf_conntrack_tcp_timeout_syn_recv", "60", "nf_conntrack_tcp_timeout_syn_recv",
     60),
    ("host", "protection_synflood", "1", "protection_synflood", True),
    ("host", "protection_synflood_rate", "400", "protection_synflood_rate", 400),
    ("host", "protection_synflood_burst", "1337", "protection_synflood_burst", 1337),
    ("host", "log_nf_conntrack", "on", "log_nf_conntrack", True),
    ("guest", "enable", "1", "enable", True),
    ("guest", "policy_in", "ACCEPT", "policy_in", Verdict.ACCEPT),
    ("guest", "policy_out", "reject", "policy_out", Verdict.REJECT),
    ("guest", "log_level_in", "crit", "log_level_in", LogLevel.CRIT),
    ("guest", "log_level_out", "notice", "log_level_out", LogLevel.NOTICE),
    ("guest", "macfilter", "0", "macfilter", False),
    ("guest", "dhcp", "0", "dhcp", False),
    ("guest", "ndp", "0", "ndp", False),
    ("guest", "radv", "1", "radv", True),
    ("guest", "ipfilter", "1", "ipfilter", True),
    ("guest", "ips", "1", "ips", True),
    ("guest", "ips_queues", "0:3", "ips_queues", (0, 3)),
    ("guest", "ips_queues", "2", "ips_queues", (2, 2)),
    ("vnet", "enable", "1", "enable", True),
    ("vnet", "policy_forward", "DROP", "policy_forward", Verdict.DROP),
    ("vnet", "log_level_forward", "info", "log_level_forward", LogLevel.INFO),
]


@pytest.mark.parametrize(("kind", "key", "value", "field", "expected"), OPTION_VALUES)
def test_option_value(kind: str, key: str, value: str, field: str, expected: Any) -> None:
    fw, diags = parse_file(kind, f"[OPTIONS]\n{key}: {value}\n")
    assert getattr(fw.options, field) == expected
    assert len(diags) == 0
    # keys ignore case too
    fw, diags = parse_file(kind, f"[OPTIONS]\n{key.upper()}:{value}\n")
    assert getattr(fw.options, field) == expected


BAD_OPTION_VALUES: list[tuple[str, str, str, str]] = [
    ("cluster", "enable", "maybe", "is not a boolean"),
    ("cluster", "policy_in", "ALLOW", "is not a verdict"),
    ("cluster", "ebtables", "2", "is not a boolean"),
    ("cluster", "log_ratelimit", "rate=0", "rate must be at least 1"),
    ("cluster", "log_ratelimit", "rate=1/week", "is not N or N/second|minute|hour|day"),
    ("cluster", "log_ratelimit", "rate=1/Second", "is not N or N/second|minute|hour|day"),
    ("cluster", "log_ratelimit", "1,speed=3", "unknown key 'speed' in log_ratelimit"),
    ("cluster", "log_ratelimit", "rate=1,", "empty element in log_ratelimit"),
    ("cluster", "log_ratelimit", "burst=-1", "not a non-negative integer"),
    ("cluster", "log_ratelimit", "rate=1,1", "needs a key"),
    ("cluster", "log_ratelimit", "burst=1,burst=2", "'burst' is given more than once"),
    ("host", "nftables", "enabled", "is not a boolean"),
    ("host", "log_level_in", "loud", "is not a log level"),
    ("host", "nf_conntrack_max", "-5", "not a non-negative integer"),
    ("host", "protection_synflood_rate", "fast", "not a non-negative integer"),
    ("guest", "policy_out", "maybe", "is not a verdict"),
    ("guest", "macfilter", "x", "is not a boolean"),
    ("guest", "ips_queues", "3:1", "queue range '3:1' is reversed"),
    ("guest", "ips_queues", "a", "is not a queue number or range"),
    ("guest", "ips_queues", "1:70000", "queue number 70000 out of range"),
    ("vnet", "policy_forward", "x", "is not a verdict"),
    ("vnet", "log_level_forward", "x", "is not a log level"),
]


@pytest.mark.parametrize(("kind", "key", "value", "message"), BAD_OPTION_VALUES)
def test_bad_option_value_keeps_default(kind: str, key: str, value: str, message: str) -> None:
    fw, diags = parse_file(kind, f"[OPTIONS]\n{key}: {value}\n")
    assert fw.options == DEFAULTS[kind]
    errs = errors(diags)
    assert len(diags) == len(errs) == 1
    assert errs[0].line == 2
    assert errs[0].file == FILES[kind]
    assert errs[0].message.startswith(f"bad value for option '{key}': ")
    assert message in errs[0].message


def test_bad_value_does_not_undo_earlier_good_value() -> None:
    fw, diags = parse_file("guest", "[OPTIONS]\npolicy_in: ACCEPT\npolicy_in: MAYBE\n")
    assert fw.options.policy_in is Verdict.ACCEPT
    assert [d.line for d in errors(diags)] == [3]


@pytest.mark.parametrize(("kind", "key"), [("cluster", "enable"), ("guest", "policy_in"),
                                           ("host", "nf_conntrack_max")])
def test_empty_value_is_an_error_except_for_log_levels(kind: str, key: str) -> None:
    fw, diags = parse_file(kind, f"[OPTIONS]\n{key}:\n")
    assert fw.options == DEFAULTS[kind]
    assert messages(diags) == [(2, "error", f"option '{key}' has no value")]


def test_empty_log_level_resets_to_default() -> None:
    fw, diags = parse_file("host", "[OPTIONS]\nlog_level_in: info\nlog_level_in:\n")
    assert fw.options.log_level_in is LogLevel.NOLOG
    assert [d.severity for d in diags] == [Severity.WARNING]


def test_duplicate_option_last_wins_with_warning() -> None:
    fw, diags = parse_file("guest", "[OPTIONS]\nenable: 1\nenable: 0\n")
    assert fw.options.enable is False
    assert messages(diags) == [
        (3, "warning", "option 'enable' already set on line 2; this later value is used")
    ]


def test_several_options_sections_merge() -> None:
    fw, _ = parse_file("guest", "[OPTIONS]\nenable: 1\n[RULES]\n[OPTIONS]\ndhcp: 0\n")
    assert (fw.options.enable, fw.options.dhcp) == (True, False)


@pytest.mark.parametrize(
    ("kind", "key"),
    [("cluster", "log_level_in"), ("guest", "nftables"), ("vnet", "policy_in"),
     ("host", "dafadfsdf")],
)
def test_unknown_option_is_a_warning(kind: str, key: str) -> None:
    fw, diags = parse_file(kind, f"[OPTIONS]\n{key}: 1 # comment\n")
    assert fw.options == DEFAULTS[kind]
    assert messages(diags) == [(2, "warning", f"unknown option '{key}' ignored")]


@pytest.mark.parametrize(
    ("kind", "line"),
    [("host", "protection_limit: 100"), ("guest", "policy_forward: DROP"),
     ("guest", "layer2_protocols: ipv4,arp")],
)
def test_upstream_options_without_effect_are_info(kind: str, line: str) -> None:
    fw, diags = parse_file(kind, f"[OPTIONS]\n{line}\n")
    assert fw.options == DEFAULTS[kind]
    assert [(d.line, d.severity) for d in diags] == [(2, Severity.INFO)]
    assert "has no effect" in diags.items[0].message


def test_option_line_without_colon() -> None:
    _, diags = parse_file("guest", "[OPTIONS]\nenable 1\n")
    assert messages(diags) == [(2, "error", "expected 'name: value' in [OPTIONS], got "
                                            "'enable 1'")]


def test_option_value_trailing_comment_is_dropped() -> None:
    fw, diags = parse_file("guest", "[OPTIONS]\nenable: 1 # on\npolicy_in: ACCEPT#x\n")
    assert fw.options.enable is True
    assert [d.line for d in errors(diags)] == [3]  # '#' glued to the value stays part of it


def test_conntrack_helpers_unknown_name_is_a_warning() -> None:
    fw, diags = parse_file("host", "[OPTIONS]\nnf_conntrack_helpers: ftp,h323,tftp,ftp,\n")
    assert fw.options.nf_conntrack_helpers == ["ftp", "tftp"]
    assert messages(diags) == [(2, "warning", "unknown conntrack helper 'h323' ignored")]


@pytest.mark.parametrize(
    ("age", "enabled", "severities"),
    [(30, True, []), (-100, True, []), (60, True, []), (61, False, [Severity.INFO]),
     (3600, False, [Severity.INFO])],
)
def test_cluster_enable_timestamp(age: int, enabled: bool, severities: list[Severity]) -> None:
    diags = Diagnostics()
    fw = parse_cluster_fw(f"[OPTIONS]\nenable: {int(NOW) - age}\n", "firewall/cluster.fw",
                          diags, now=NOW)
    assert fw.options.enable is enabled
    assert [d.severity for d in diags] == severities


def test_cluster_enable_timestamp_uses_the_clock_by_default() -> None:
    import time

    diags = Diagnostics()
    recent = parse_cluster_fw(f"[OPTIONS]\nenable: {int(time.time())}\n", "c", diags)
    stale = parse_cluster_fw("[OPTIONS]\nenable: 1000000000\n", "c", diags)
    assert recent.options.enable is True
    assert stale.options.enable is False


# --- aliases --------------------------------------------------------------------------------


def test_aliases() -> None:
    text = (
        "[ALIASES]\nNet1 10.0.0.0/8\nhost1\t192.168.0.1/24   # with host bits\n"
        "v6 2001:db8::1\nsingle 10.1.1.1#glued\n"
    )
    fw, diags = parse_file("guest", text)
    assert len(diags) == 0
    assert list(fw.aliases) == ["net1", "host1", "v6", "single"]
    net1 = fw.aliases["net1"]
    assert (net1.name, net1.cidr, net1.comment) == ("net1", ipaddress.ip_interface("10.0.0.0/8"),
                                                    None)
    assert net1.origin == Origin(file="firewall/100.fw", line=2)
    assert fw.aliases["host1"].cidr == ipaddress.ip_interface("192.168.0.1/24")
    assert fw.aliases["host1"].comment == "with host bits"
    assert fw.aliases["v6"].cidr == ipaddress.ip_interface("2001:db8::1/128")
    assert fw.aliases["single"].comment == "glued"


@pytest.mark.parametrize(
    ("line", "message"),
    [("net1", "expected 'name address [# comment]' in [ALIASES]"),
     ("net1 10.0.0.1 10.0.0.2", "expected 'name address [# comment]' in [ALIASES]"),
     ("1net 10.0.0.1", "invalid alias name '1net'"),
     ("net1 10.0.0.1/33", "alias 'net1': prefix length 33 out of range"),
     ("net1 10.0.0.1-10.0.0.5", "alias 'net1': '10.0.0.1-10.0.0.5' is not a valid IP address"),
     ("net1 dc/other", "alias 'net1': 'dc/other' is not a valid IP address")],
)
def test_bad_alias_lines(line: str, message: str) -> None:
    fw, diags = parse_file("cluster", f"[ALIASES]\n{line}\nok 10.9.9.9\n")
    assert list(fw.aliases) == ["ok"]
    errs = errors(diags)
    assert len(diags) == len(errs) == 1
    assert errs[0].line == 2
    assert message in errs[0].message


def test_duplicate_alias_last_wins() -> None:
    fw, diags = parse_file("cluster", "[ALIASES]\na 10.0.0.1\nA 10.0.0.2\n")
    assert fw.aliases["a"].cidr == ipaddress.ip_interface("10.0.0.2")
    assert messages(diags) == [
        (3, "warning", "alias 'A' is defined again (first on line 2); this later definition "
                       "is used")
    ]


# --- ipsets ---------------------------------------------------------------------------------


def test_ipset_entries() -> None:
    text = (
        "[IPSET set1] # my set\n10.0.0.0/8\n! 10.1.0.0/16\n!10.2.0.1 # excluded\n"
        "1.2.3.4#glued\nfe80::1\ndc/Net1\nguest/other\nbare_alias\n"
    )
    fw, diags = parse_file("guest", text)
    assert len(diags) == 0
    entries = fw.ipsets["set1"].entries
    assert [(e.nomatch, e.address, e.comment) for e in entries] == [
        (False, ipaddress.ip_interface("10.0.0.0/8"), None),
        (True, ipaddress.ip_interface("10.1.0.0/16"), None),
        (True, ipaddress.ip_interface("10.2.0.1/32"), "excluded"),
        (False, ipaddress.ip_interface("1.2.3.4/32"), "glued"),
        (False, ipaddress.ip_interface("fe80::1/128"), None),
        (False, AliasRef(scope="dc", name="net1"), None),
        (False, AliasRef(scope="guest", name="other"), None),
        (False, AliasRef(scope=None, name="bare_alias"), None),
    ]
    assert [e.origin.line for e in entries] == list(range(2, 10))


def test_empty_ipset_is_kept() -> None:
    fw, diags = parse_file("guest", "[IPSET ipfilter-net2] # allow nothing\n[RULES]\n")
    assert fw.ipsets["ipfilter-net2"].entries == []
    assert len(diags) == 0


def test_ipset_zero_prefix_is_kept_with_warning() -> None:
    fw, diags = parse_file("cluster", "[IPSET all]\n0.0.0.0/0\n::/0\n")
    assert len(fw.ipsets["all"].entries) == 2
    assert [(d.line, d.severity) for d in diags] == [(2, Severity.WARNING),
                                                     (3, Severity.WARNING)]
    assert "prefix length 0" in warnings(diags)[0].message


@pytest.mark.parametrize(
    ("line", "message"),
    [("10.0.0.1-10.0.0.9", "'10.0.0.1-10.0.0.9': address ranges are not allowed in an ipset"),
     ("10.0.0.1,10.0.0.2", "lists are not allowed in an ipset"),
     ("+other", "'+other': an ipset cannot contain another ipset"),
     ("10.0.0.1/40", "prefix length 40 out of range"),
     ("10.0.0.1 10.0.0.2", "expected '[!] address [# comment]' in an ipset"),
     ("!", "expected '[!] address [# comment]' in an ipset")],
)
def test_bad_ipset_entries(line: str, message: str) -> None:
    fw, diags = parse_file("cluster", f"[IPSET s]\n{line}\n10.9.9.9\n")
    assert len(fw.ipsets["s"].entries) == 1
    errs = errors(diags)
    assert len(diags) == len(errs) == 1
    assert errs[0].line == 2
    assert message in errs[0].message
