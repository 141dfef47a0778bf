"""The data tables: macros, ICMP names, conntrack helpers, protocols, services."""

from __future__ import annotations

import pytest

from proxmox_fw import data
from proxmox_fw.data.protocols import _parse_protocols_file
from proxmox_fw.data.services import parse_services
from proxmox_fw.model import Family, IcmpType, PortRange

MACRO_NAMES = [
    "Amanda", "Auth", "BGP", "BitTorrent", "BitTorrent32", "CVS", "Ceph", "Citrix", "DAAP",
    "DCC", "DHCPfwd", "DHCPv6", "DNS", "Distcc", "FTP", "Finger", "GNUnet", "GRE", "Git",
    "HKP", "HTTP", "HTTPS", "HTTP/3", "ICPV2", "ICQ", "IMAP", "IMAPS", "IPIP", "IPsec",
    "IPsecah", "IPsecnat", "IRC", "Jetdirect", "L2TP", "LDAP", "LDAPS", "MDNS", "MSNP",
    "MSSQL", "Mail", "Munin", "MySQL", "NNTP", "NNTPS", "NTP", "NeighborDiscovery", "OSPF",
    "OpenVPN", "PBS", "PCA", "PMG", "POP3", "POP3S", "PPtP", "Ping", "PostgreSQL", "Printer",
    "RDP", "RIP", "RNDC", "Razor", "Rdate", "Rsync", "SANE", "SMB", "SMBswat", "SMTP",
    "SMTPS", "SNMP", "SPAMD", "SPICEproxy", "SSH", "SVN", "SixXS", "Squid", "Submission",
    "Syslog", "TFTP", "Telnet", "Telnets", "Time", "Trcrt", "VNC", "VNCL", "Web", "Webcache",
    "Webmin", "Whois",
]


def test_all_88_macros_load() -> None:
    assert len(MACRO_NAMES) == 88
    assert sorted(data.macros()) == sorted(MACRO_NAMES)


@pytest.mark.parametrize("name", MACRO_NAMES)
def test_macro_is_typed_and_found_ignoring_case(name: str) -> None:
    macro = data.macros()[name]
    assert macro.name == name
    assert macro.description
    assert macro.entries
    for entry in macro.entries:
        if entry.dport or entry.sport:
            assert entry.proto.has_ports
        if entry.icmp_type is not None:
            assert entry.proto.is_icmp
            assert entry.icmp_type.v6 == (entry.proto.number == 58)
    assert data.find_macro(name.lower()) is macro
    assert data.find_macro(name.upper()) is macro


def test_unknown_macro() -> None:
    assert data.find_macro("NoSuchMacro") is None


def test_macro_entries_in_detail() -> None:
    smb = data.macros()["SMB"]
    assert [(e.proto.name, e.dport, e.sport) for e in smb.entries] == [
        ("udp", [PortRange(lo=135, hi=135), PortRange(lo=445, hi=445)], None),
        ("udp", [PortRange(lo=137, hi=139)], None),
        ("udp", [PortRange(lo=1024, hi=65535)], [PortRange(lo=137, hi=137)]),
        ("tcp", [PortRange(lo=135, hi=135), PortRange(lo=139, hi=139),
                 PortRange(lo=445, hi=445)], None),
    ]
    ping = data.macros()["Ping"]
    assert [e.icmp_type for e in ping.entries] == [
        IcmpType(v6=False, type=8), IcmpType(v6=True, type=128)
    ]
    assert [e.proto.number for e in data.macros()["GRE"].entries] == [47]
    nd = data.macros()["NeighborDiscovery"]
    assert [e.icmp_type.type for e in nd.entries if e.icmp_type] == [133, 134, 135, 136]
    dhcp = data.macros()["DHCPfwd"].entries[0]
    assert dhcp.dport == dhcp.sport == [PortRange(lo=67, hi=68)]


def test_ct_helpers() -> None:
    helpers = data.ct_helpers()
    assert sorted(helpers) == [
        "amanda", "ftp", "irc", "netbios-ns", "pptp", "sane", "sip", "snmp", "tftp"
    ]
    assert (helpers["ftp"].proto, helpers["ftp"].dport) == ("tcp", 21)
    assert helpers["ftp"].families == [Family.V4, Family.V6]
    assert helpers["irc"].families == [Family.V4]
    assert (helpers["sip"].proto, helpers["sip"].dport) == ("udp", 5060)
    assert data.find_ct_helper("FTP") is helpers["ftp"]
    assert data.find_ct_helper("h323") is None


ICMP_CASES = [
    ("echo-reply", 0, None), ("destination-unreachable", 3, None),
    ("network-unreachable", 3, 0), ("host-unreachable", 3, 1), ("protocol-unreachable", 3, 2),
    ("port-unreachable", 3, 3), ("fragmentation-needed", 3, 4), ("source-route-failed", 3, 5),
    ("network-unknown", 3, 6), ("host-unknown", 3, 7), ("network-prohibited", 3, 9),
    ("host-prohibited", 3, 10), ("TOS-network-unreachable", 3, 11),
    ("TOS-host-unreachable", 3, 12), ("communication-prohibited", 3, 13),
    ("host-precedence-violation", 3, 14), ("precedence-cutoff", 3, 15),
    ("source-quench", 4, None), ("redirect", 5, None), ("network-redirect", 5, 0),
    ("host-redirect", 5, 1), ("TOS-network-redirect", 5, 2), ("TOS-host-redirect", 5, 3),
    ("echo-request", 8, None), ("router-advertisement", 9, None),
    ("router-solicitation", 10, None), ("time-exceeded", 11, None),
    ("ttl-zero-during-transit", 11, 0), ("ttl-zero-during-reassembly", 11, 1),
    ("parameter-problem", 12, None), ("ip-header-bad", 12, 0),
    ("required-option-missing", 12, 1), ("timestamp-request", 13, None),
    ("timestamp-reply", 14, None), ("info-request", 15, None), ("info-reply", 16, None),
    ("address-mask-request", 17, None), ("address-mask-reply", 18, None),
]

ICMPV6_CASES = [
    ("destination-unreachable", 1, None), ("no-route", 1, 0),
    ("communication-prohibited", 1, 1), ("beyond-scope", 1, 2),
    ("address-unreachable", 1, 3), ("port-unreachable", 1, 4), ("failed-policy", 1, 5),
    ("reject-route", 1, 6), ("packet-too-big", 2, None), ("time-exceeded", 3, None),
    ("ttl-zero-during-transit", 3, 0), ("ttl-zero-during-reassembly", 3, 1),
    ("parameter-problem", 4, None), ("bad-header", 4, 0), ("unknown-header-type", 4, 1),
    ("unknown-option", 4, 2), ("echo-request", 128, None), ("echo-reply", 129, None),
    ("mld-listener-query", 130, None), ("mld-listener-report", 131, None),
    ("mld-listener-done", 132, None), ("mld-listener-reduction", 132, None),
    ("router-solicitation", 133, None), ("nd-router-solicit", 133, None),
    ("router-advertisement", 134, None), ("nd-router-advert", 134, None),
    ("neighbor-solicitation", 135, None), ("neighbour-solicitation", 135, None),
    ("nd-neighbor-solicit", 135, None), ("neighbor-advertisement", 136, None),
    ("neighbour-advertisement", 136, None), ("nd-neighbor-advert", 136, None),
    ("redirect", 137, None), ("nd-redirect", 137, None), ("router-renumbering", 138, None),
    ("ind-neighbor-solicit", 141, None), ("ind-neighbor-advert", 142, None),
    ("mld2-listener-report", 143, None),
]


@pytest.mark.parametrize(("name", "type_", "code"), ICMP_CASES)
def test_icmp_table(name: str, type_: int, code: int | None) -> None:
    assert data.ICMP_TYPES[name] == (type_, code)
    assert data.icmp_type_by_name(name.upper(), v6=False) == (type_, code)


@pytest.mark.parametrize(("name", "type_", "code"), ICMPV6_CASES)
def test_icmpv6_table(name: str, type_: int, code: int | None) -> None:
    assert data.ICMPV6_TYPES[name] == (type_, code)
    assert data.icmp_type_by_name(name, v6=True) == (type_, code)


def test_icmp_tables_are_complete_and_separate() -> None:
    assert len(data.ICMP_TYPES) == len(ICMP_CASES)
    assert len(data.ICMPV6_TYPES) == len(ICMPV6_CASES)
    assert data.icmp_type_by_name("info-request", v6=True) is None
    assert data.icmp_type_by_name("nd-router-solicit", v6=False) is None


@pytest.mark.parametrize(
    ("type_", "v6", "name"),
    [(8, False, "echo-request"), (128, True, "echo-request"), (135, True,
     "nd-neighbor-solicit"), (3, False, "destination-unreachable"), (200, False, None)],
)
def test_nft_icmp_type_name(type_: int, v6: bool, name: str | None) -> None:
    assert data.nft_icmp_type_name(type_, v6) == name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tcp", ("tcp", 6)), ("TCP", ("tcp", 6)), ("6", ("tcp", 6)), ("udp", ("udp", 17)),
        ("icmp", ("icmp", 1)), ("icmpv6", ("icmpv6", 58)), ("ipv6-icmp", ("icmpv6", 58)),
        ("58", ("icmpv6", 58)), ("sctp", ("sctp", 132)), ("dccp", ("dccp", 33)),
        ("udplite", ("udplite", 136)), ("136", ("udplite", 136)), ("0", ("ip", 0)),
        ("gre", ("gre", 47)), ("GRE", ("gre", 47)), ("47", ("gre", 47)), ("esp", ("esp", 50)),
        ("ospf", ("ospf", 89)), ("255", ("255", 255)),
        ("256", None), ("nosuchproto", None), ("-1", None),
    ],
)
def test_lookup_protocol(value: str, expected: tuple[str, int] | None) -> None:
    assert data.lookup_protocol(value) == expected


def test_parse_protocols_file_uses_first_name_and_aliases() -> None:
    by_name, by_number = _parse_protocols_file(
        "# comment\nfoo\t200\tFOO BAR\t# x\nbaz 201\nbad x\n"
    )
    assert by_name == {"foo": 200, "bar": 200, "baz": 201}
    assert by_number == {200: "foo", 201: "baz"}


def test_parse_services_text() -> None:
    table = parse_services(
        "# c\nssh\t\t22/tcp\t\t\t# SSH\nhttp 80/tcp www # web\nhttp 80/udp\n"
        "odd 99999/tcp\nkerberos 88/udp kerberos5 krb5\n"
    )
    assert table == {
        "ssh": 22, "http": 80, "www": 80, "kerberos": 88, "kerberos5": 88, "krb5": 88,
    }


@pytest.mark.parametrize(
    ("name", "port"),
    [("http", 80), ("www", 80), ("ssh", 22), ("domain", 53), ("https", 443),
     ("ntp", 123), ("HTTP", 80), ("nosuchservice", None)],
)
def test_port_by_name_reads_etc_services(name: str, port: int | None) -> None:
    assert data.port_by_name(name) == port
