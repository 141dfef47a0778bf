"""Whole ``.fw`` files: sections, aliases, ipsets, security groups (options: test_options)."""

from __future__ import annotations

import ipaddress

import pytest

from proxmox_fw.diagnostics import Severity
from proxmox_fw.model import (
    AliasRef,
    Direction,
    Origin,
    PortRange,
    Verdict,
)
from tests.unit.parse.helpers import DEFAULTS, FILES, errors, messages, parse_file, warnings

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
        (3, "error", "GROUP rules are not allowed in security groups"),
        (4, "warning", "'-i eth1' in a security group applies to the host's interface eth1 "
                       "here, and to no guest; pve-firewall refuses this rule"),
    ]


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
