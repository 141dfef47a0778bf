"""Small value parsers: booleans, verdicts, log levels, addresses, ports, protocols, ICMP."""

from __future__ import annotations

import ipaddress
import re

import pytest

from proxmox_fw.model import (
    AliasRef,
    Family,
    IcmpType,
    IpList,
    IpRange,
    IpsetRef,
    LogLevel,
    PortRange,
    Protocol,
    Verdict,
)
from proxmox_fw.parse.values import (
    ValueParseError,
    parse_address,
    parse_bool,
    parse_cidr,
    parse_icmp_type,
    parse_log_level,
    parse_ports,
    parse_protocol,
    parse_uint,
    parse_verdict,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("0", False), ("true", True), ("FALSE", False), ("yes", True),
     ("No", False), ("on", True), ("OFF", False)],
)
def test_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["2", "", "y", "enabled", "10"])
def test_bool_rejects(text: str) -> None:
    with pytest.raises(ValueParseError, match="is not a boolean"):
        parse_bool(text)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [("ACCEPT", Verdict.ACCEPT), ("accept", Verdict.ACCEPT), ("Drop", Verdict.DROP),
     ("reject", Verdict.REJECT)],
)
def test_verdict(text: str, verdict: Verdict) -> None:
    assert parse_verdict(text) is verdict


def test_verdict_rejects() -> None:
    with pytest.raises(ValueParseError, match="'ALLOW' is not a verdict"):
        parse_verdict("ALLOW")


@pytest.mark.parametrize(
    ("text", "level"),
    [("nolog", LogLevel.NOLOG), ("emerg", LogLevel.EMERG), ("alert", LogLevel.ALERT),
     ("crit", LogLevel.CRIT), ("err", LogLevel.ERR), ("warn", LogLevel.WARNING),
     ("warning", LogLevel.WARNING), ("WARN", LogLevel.WARNING), ("notice", LogLevel.NOTICE),
     ("info", LogLevel.INFO), ("Debug", LogLevel.DEBUG)],
)
def test_log_level(text: str, level: LogLevel) -> None:
    assert parse_log_level(text) is level


@pytest.mark.parametrize("text", ["error", "verbose", "7", ""])
def test_log_level_rejects(text: str) -> None:
    with pytest.raises(ValueParseError, match="is not a log level"):
        parse_log_level(text)


def test_uint() -> None:
    assert parse_uint("0") == 0
    assert parse_uint("262144") == 262144
    for bad in ("-1", "1.5", "x", "", "+3"):
        with pytest.raises(ValueParseError, match="not a non-negative integer"):
            parse_uint(bad)


# --- addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", "10.0.0.1/32"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.168.0.1/24", "192.168.0.1/24"),  # host bits kept
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("fe80::1", "fe80::1/128"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:db8::1/64", "2001:db8::1/64"),
    ],
)
def test_cidr(text: str, expected: str) -> None:
    assert parse_cidr(text) == ipaddress.ip_interface(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1/33", "prefix length 33 out of range for IPv4 (0-32)"),
        ("fe80::/129", "prefix length 129 out of range for IPv6 (0-128)"),
        ("10.0.0.1/", "invalid prefix length ''"),
        ("10.0.0.0/255.0.0.0", "invalid prefix length '255.0.0.0'"),
        ("10.0.0.256", "'10.0.0.256' is not a valid IP address"),
        ("010.0.0.1", "'010.0.0.1' is not a valid IP address"),
        ("fe80::1%eth0", "'fe80::1%eth0' is not a valid IP address"),
        ("host", "'host' is not a valid IP address"),
    ],
)
def test_cidr_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueParseError, match=re.escape(message)):
        parse_cidr(text)


def test_address_single_and_list() -> None:
    single = parse_address("10.0.0.1")
    assert isinstance(single, IpList)
    assert single.entries == [ipaddress.ip_interface("10.0.0.1/32")]
    listed = parse_address("192.168.0.1/24,127.0.0.1-127.255.255.0,172.16.0.1")
    assert isinstance(listed, IpList)
    assert listed.family is Family.V4
    assert listed.entries == [
        ipaddress.ip_interface("192.168.0.1/24"),
        IpRange(start=ipaddress.ip_address("127.0.0.1"),
                end=ipaddress.ip_address("127.255.255.0")),
        ipaddress.ip_interface("172.16.0.1/32"),
    ]
    v6 = parse_address("fe80::1-fe80::10,2001:db8::/64")
    assert isinstance(v6, IpList)
    assert v6.family is Family.V6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("myalias", AliasRef(scope=None, name="myalias")),
        ("MyAlias", AliasRef(scope=None, name="myalias")),
        ("dc/Net1", AliasRef(scope="dc", name="net1")),
        ("guest/analias", AliasRef(scope="guest", name="analias")),
        ("non-existing-alias", AliasRef(scope=None, name="non-existing-alias")),
        ("+myset", IpsetRef(scope=None, name="myset")),
        ("+dc/MySet", IpsetRef(scope="dc", name="MySet")),
        ("+guest/ipfilter-net0", IpsetRef(scope="guest", name="ipfilter-net0")),
        ("+sdn/guest-ipam-101", IpsetRef(scope="sdn", name="guest-ipam-101")),
    ],
)
def test_address_references(text: str, expected: AliasRef | IpsetRef) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1,fe80::1", "mixes IPv4 and IPv6"),
        ("10.0.0.1-fe80::1", "range '10.0.0.1-fe80::1' mixes IPv4 and IPv6"),
        ("10.0.0.9-10.0.0.1", "range '10.0.0.9-10.0.0.1' is reversed"),
        ("10.0.0.1,,10.0.0.2", "empty entry in address list"),
        ("10.0.0.1,", "empty entry in address list"),
        ("10.0.0.1/40", "prefix length 40 out of range"),
        ("+", "is not a valid ipset reference"),
        ("+foo/bar", "is not a valid ipset reference"),
        ("+dc/", "is not a valid ipset reference"),
        ("10.0.0.1.5", "'10.0.0.1.5' is not a valid IP address"),
        ("1abc", "'1abc' is not an IP address, alias name or ipset reference"),
        ("xy/z", "'xy/z' is not an IP address, alias name or ipset reference"),
        ("dc/", "'dc/' is not an IP address, alias name or ipset reference"),
    ],
)
def test_address_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueParseError, match=message):
        parse_address(text)


# --- ports, protocols, ICMP ------------------------------------------------------------


def _ranges(*pairs: tuple[int, int]) -> list[PortRange]:
    return [PortRange(lo=lo, hi=hi) for lo, hi in pairs]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22", _ranges((22, 22))),
        ("0", _ranges((0, 0))),
        ("65535", _ranges((65535, 65535))),
        ("http", _ranges((80, 80))),
        ("www", _ranges((80, 80))),  # an alias in /etc/services
        ("5900:5999", _ranges((5900, 5999))),
        ("ssh:http", _ranges((22, 80))),
        ("123,222:333", _ranges((123, 123), (222, 333))),
        (",".join(str(p) for p in range(1, 21)), _ranges(*((p, p) for p in range(1, 21)))),
    ],
)
def test_ports(text: str, expected: list[PortRange]) -> None:
    assert parse_ports(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("99999", "port 99999 out of range"),
        ("80:70", "port range '80:70' is reversed"),
        ("nosuchservice", "unknown port name 'nosuchservice'"),
        ("80,,81", "empty entry in port list"),
        ("80:", "empty port"),
        ("80-90", "unknown port name '80-90'"),
    ],
)
def test_ports_reject(text: str, message: str) -> None:
    with pytest.raises(ValueParseError, match=message):
        parse_ports(text)


@pytest.mark.parametrize(
    ("text", "name", "number"),
    [("tcp", "tcp", 6), ("udp", "udp", 17), ("icmp", "icmp", 1), ("icmpv6", "icmpv6", 58),
     ("ipv6-icmp", "icmpv6", 58), ("sctp", "sctp", 132), ("dccp", "dccp", 33),
     ("udplite", "udplite", 136), ("17", "udp", 17), ("gre", "gre", 47), ("89", "ospf", 89)],
)
def test_protocol(text: str, name: str, number: int) -> None:
    assert parse_protocol(text) == Protocol(name=name, number=number)


def test_protocol_rejects() -> None:
    with pytest.raises(ValueParseError, match="unknown protocol 'foo'"):
        parse_protocol("foo")
    with pytest.raises(ValueParseError, match="protocol number 300 out of range"):
        parse_protocol("300")


@pytest.mark.parametrize(
    ("text", "v6", "expected"),
    [
        ("any", False, IcmpType(v6=False)),
        ("ANY", True, IcmpType(v6=True)),
        ("0", False, IcmpType(v6=False, type=0)),
        ("255", True, IcmpType(v6=True, type=255)),
        ("echo-request", False, IcmpType(v6=False, type=8)),
        ("echo-request", True, IcmpType(v6=True, type=128)),
        ("host-unreachable", False, IcmpType(v6=False, type=3, code=1)),
        ("reject-route", True, IcmpType(v6=True, type=1, code=6)),
        ("info-request", False, IcmpType(v6=False, type=15)),
    ],
)
def test_icmp_type(text: str, v6: bool, expected: IcmpType) -> None:
    assert parse_icmp_type(text, v6) == expected


@pytest.mark.parametrize(
    ("text", "v6", "message"),
    [
        ("256", False, "ICMP type 256 out of range"),
        ("bogus", False, "unknown ICMP type 'bogus'"),
        ("nd-neighbor-solicit", False, "unknown ICMP type"),
        ("host-unreachable", True, "unknown ICMPv6 type 'host-unreachable'"),
    ],
)
def test_icmp_type_rejects(text: str, v6: bool, message: str) -> None:
    with pytest.raises(ValueParseError, match=message):
        parse_icmp_type(text, v6)


@pytest.mark.parametrize("text", ["\x00", "1.2.3.4\x00", "::\x00", "\x00/24"])
def test_a_nul_in_an_address_is_a_parse_error_not_a_traceback(text: str) -> None:
    # found by tests/fuzz (inet_pton raises ValueError, not OSError, on a NUL)
    with pytest.raises(ValueParseError):
        parse_cidr(text)
