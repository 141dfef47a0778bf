"""The line format, against strings built by hand from pvefw-logger's format strings
(``../shared/notes/upstream-logger.md`` §2–3): hand-built packets, exact bytes."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from proxmox_fw.logger.format import (
    AF_BRIDGE,
    AF_INET,
    AF_INET6,
    ETH_P_ARP,
    ETH_P_IP,
    ETH_P_IPV6,
    LoggedPacket,
    Prefix,
    format_packet,
    format_status,
    format_time,
    parse_prefix,
)
from tests.unit.logger.conftest import local_zone

T0 = 1_700_000_000  # 14/Nov/2023:22:13:20 UTC
NAMES = {2: "vmbr0", 3: "tap100i0", 4: "fwpr100p0", 5: "eth0"}


@pytest.fixture(autouse=True)
def cet() -> Iterator[None]:
    """A fixed zone one hour east of UTC, so ``%z`` and the hour are checked too."""
    with local_zone("CET-1"):
        yield


def ifname(index: int) -> str | None:
    return NAMES.get(index)


def ip4(proto: int, l4: bytes, *, src: str = "10.0.0.1", dst: str = "10.0.0.2",
        tos: int = 0, ttl: int = 64, ident: int = 4321, frag: int = 0x4000) -> bytes:  # fmt: skip
    return struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(l4), ident, frag, ttl, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + l4  # fmt: skip


def ip6(nexthdr: int, rest: bytes, *, src: str = "fd00::1", dst: str = "fd00::2",
        tc: int = 0, flow: int = 0, hlim: int = 64) -> bytes:  # fmt: skip
    word = (6 << 28) | (tc << 20) | flow
    return struct.pack("!IHBB", word, len(rest), nexthdr, hlim) + socket.inet_pton(
        socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + rest


def tcp(sport: int, dport: int, flags: int, seq: int = 1000, ack: int = 0,
        window: int = 64240, urgp: int = 0) -> bytes:  # fmt: skip
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, window, 0, urgp)


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


HW = bytes.fromhex("020000000102" "020000000201" "0800")
HEAD = "0 6 host-in 14/Nov/2023:23:13:20 +0100 ACCEPT: IN=vmbr0 "
MAC = "MAC=02:00:00:00:01:02:02:00:00:00:02:01:08:00 "


def line(pkt: LoggedPacket, now: int = T0) -> str:
    return format_packet(pkt, ifname, now).decode()


def host_in(payload: bytes, family: int = AF_INET, **kw: object) -> LoggedPacket:
    args: dict[str, object] = {"prefix": b":0:6:host-in: ACCEPT: \0", "indev": 2,
                               "hwheader": HW, "timestamp": T0}  # fmt: skip
    args.update(kw)
    return LoggedPacket(family, payload, **args)  # type: ignore[arg-type]


def test_time_is_local_with_zone_and_c_month() -> None:
    assert format_time(T0) == "14/Nov/2023:23:13:20 +0100"
    assert format_time(T0 - 86400 * 300) == "18/Jan/2023:23:13:20 +0100"


def test_tcp_syn_line() -> None:
    pkt = host_in(ip4(6, tcp(40000, 22, 0x02), tos=0xB8))
    assert line(pkt) == (
        HEAD + MAC + "SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x18 PREC=0xA0 TTL=64 ID=4321 DF "
        "PROTO=TCP SPT=40000 DPT=22 SEQ=1000 ACK=0 WINDOW=64240 SYN \n")


def test_tcp_flags_in_upstream_order_and_urgent_pointer() -> None:
    pkt = host_in(ip4(6, tcp(1, 2, 0x3F, seq=7, ack=9, window=5, urgp=77), frag=0))
    assert line(pkt).endswith(
        "PROTO=TCP SPT=1 DPT=2 SEQ=7 ACK=9 WINDOW=5 URG ACK PSH RST SYN FIN URGP=77 \n")


def test_udp_has_no_blank_before_mark() -> None:
    pkt = host_in(ip4(17, udp(5000, 53, b"x" * 28)), mark=100)
    assert line(pkt) == (
        HEAD + MAC + "SRC=10.0.0.1 DST=10.0.0.2 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=4321 DF "
        "PROTO=UDP SPT=5000 DPT=53 LEN=36mark=100 \n")


@pytest.mark.parametrize(("icmp", "fields"), [
    (struct.pack("!BBHHH", 8, 0, 0, 77, 3), "TYPE=8 CODE=0 ID=77 SEQ=3 "),
    (struct.pack("!BBHHH", 0, 0, 0, 77, 3), "TYPE=0 CODE=0 ID=77 SEQ=3 "),
    (struct.pack("!BBHBxH", 12, 0, 0, 20, 0), "TYPE=12 CODE=0 PARAMETER=20 "),
    (struct.pack("!BBH4s", 5, 1, 0, socket.inet_aton("10.0.0.254")),
     "TYPE=5 CODE=1 GATEWAY=10.0.0.254 "),
    (struct.pack("!BBHHH", 3, 4, 0, 0, 1400), "TYPE=3 CODE=4 MTU=1400 "),
    (struct.pack("!BBHHH", 3, 3, 0, 0, 1400), "TYPE=3 CODE=3 "),
    (struct.pack("!BBH", 8, 0, 0), "LEN=4 INVALID=LEN "),
])  # fmt: skip
def test_icmp(icmp: bytes, fields: str) -> None:
    assert line(host_in(ip4(1, icmp, frag=0))).endswith(f"ID=4321 PROTO=ICMP {fields}\n")


def test_sctp_ah_esp_igmp_and_other_protocols() -> None:
    sctp = struct.pack("!HHII", 3868, 3869, 1, 0)
    assert line(host_in(ip4(132, sctp, frag=0))).endswith("PROTO=SCTP SPT=3868 DPT=3869 \n")
    for proto, name in ((51, "AH"), (50, "ESP"), (2, "IGMP"), (47, "47")):
        assert line(host_in(ip4(proto, b"\0" * 8, frag=0))).endswith(f"PROTO={name} \n")


def test_ipv4_fragments_and_truncation() -> None:
    assert " FRAG=185 MF PROTO=UDP " in line(host_in(ip4(17, udp(1, 2), frag=0x2000 | 185)))
    assert line(host_in(ip4(6, b"\0" * 10, frag=0))).endswith(
        "PROTO=TCP LEN=10 INVALID=LEN \n")
    assert line(host_in(b"\x45" + b"\0" * 10)).endswith(MAC + "LEN=11 INVALID=LEN \n")
    assert line(host_in(ip4(17, b""))).endswith(MAC + "INVALID=IHL \n")


def test_devices_mac_and_mark_order_with_unknown_index() -> None:
    pkt = LoggedPacket(AF_BRIDGE, ip4(17, udp(68, 67)), prefix=b":100:4:tap100i0-OUT: DROP: ",
                       hw_protocol=ETH_P_IP, indev=2, outdev=99, physindev=3, physoutdev=5,
                       hwheader=HW, mark=0, timestamp=T0)  # fmt: skip
    assert line(pkt) == (
        "100 4 tap100i0-OUT 14/Nov/2023:23:13:20 +0100 DROP: IN=vmbr0 OUT=99 PHYSIN=tap100i0 "
        "PHYSOUT=eth0 " + MAC + "SRC=10.0.0.1 DST=10.0.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 "
        "ID=4321 DF PROTO=UDP SPT=68 DPT=67 LEN=8\n")


def test_missing_timestamp_uses_the_clock() -> None:
    pkt = host_in(ip4(17, udp(1, 2)), timestamp=None, hwheader=b"")
    assert line(pkt, now=T0 + 61).startswith("0 6 host-in 14/Nov/2023:23:14:21 +0100 ACCEPT: ")


def test_ipv6_icmpv6_echo() -> None:
    echo = struct.pack("!BBHHH", 128, 0, 0, 9, 1) + b"p" * 8
    pkt = host_in(ip6(58, echo, tc=0xB8, flow=0x12345, hlim=255), AF_INET6,
                  hwheader=HW[:12] + b"\x86\xdd")
    assert line(pkt) == (
        HEAD + "MAC=02:00:00:00:01:02:02:00:00:00:02:01:86:dd SRC=fd00::1 DST=fd00::2 LEN=16 "
        "TC=184 FLOWLBL=74565 HOPLIMIT=255 PROTO=ICMPV6 TYPE=128 CODE=0 ID=9 SEQ=1 \n")


@pytest.mark.parametrize(("icmp6", "fields"), [
    (struct.pack("!BBHBBHII", 134, 0, 0, 64, 0xC0, 1800, 30000, 1000),
     "TYPE=134 CODE=0 HOPLIMIT=64 RA=c0 LIFETIME=1800 REACHABLE=30000 RETRANSMIT=1000 "),
    (struct.pack("!BBHI16s", 136, 0, 0, 0x60000000, b"\0" * 16), "TYPE=136 CODE=0 NA=60000000 "),
    (struct.pack("!BBHI16s", 135, 0, 0, 0, b"\0" * 16), "TYPE=135 CODE=0 "),
    (struct.pack("!BBHI16s16s", 137, 0, 0, 0, socket.inet_pton(socket.AF_INET6, "fe80::1"),
                 socket.inet_pton(socket.AF_INET6, "fd00::9")),
     "TYPE=137 CODE=0 TARGET=fe80::1 GATEWAY=fd00::9 "),
    (struct.pack("!BBHI", 2, 0, 0, 1280), "TYPE=2 CODE=0 MTU=1280 "),
    (struct.pack("!BBHI", 1, 4, 0, 0), "TYPE=1 CODE=4 "),
    (struct.pack("!BBHI", 4, 0, 0, 1), "TYPE=4 CODE=0 PARAMETER=NEXTHEADER "),
    (struct.pack("!BBHI", 4, 0, 0, 40), "TYPE=4 CODE=0 PARAMETER=40 "),
])  # fmt: skip
def test_icmpv6_types(icmp6: bytes, fields: str) -> None:
    got = line(host_in(ip6(58, icmp6), AF_INET6, hwheader=b""))
    assert got.endswith(f"HOPLIMIT=64 PROTO=ICMPV6 {fields}\n")


def test_ipv6_extension_headers() -> None:
    hop = struct.pack("!BB6x", 60, 0)
    dst = struct.pack("!BB6x", 44, 0)
    frag = struct.pack("!BxHI", 6, (100 << 3) | 1, 0xDEADBEEF)
    pkt = host_in(ip6(0, hop + dst + frag + tcp(1, 443, 0x10)), AF_INET6, hwheader=b"")
    assert line(pkt).endswith(
        "NEXTHDR=HOPOPTS NEXTHDR=DSTOPTS FRAG=100 ID=3735928559 MF "
        "PROTO=TCP SPT=1 DPT=443 SEQ=1000 ACK=0 WINDOW=64240 ACK \n")
    home = socket.inet_pton(socket.AF_INET6, "fd00::77")
    routing = struct.pack("!BBBB4x16s", 17, 2, 2, 1, home)
    assert line(host_in(ip6(43, routing + udp(1, 2)), AF_INET6, hwheader=b"")).endswith(
        "TYPE=2 SEGMENTS=1HOME=fd00::77 PROTO=UDP SPT=1 DPT=2 LEN=8\n")
    assert line(host_in(ip6(43, b"\x11\x04\x02\x01" + b"\0" * 4), AF_INET6)).endswith(
        "TYPE=2 SEGMENTS=1LEN=8 INVALID=LEN \n")
    assert line(host_in(ip6(135, b"\x3b\x00" + b"\0" * 6), AF_INET6)).endswith(
        "NEXTHDR=MH PROTO=59 \n")
    assert line(host_in(ip6(6, b""), AF_INET6)).endswith("PROTO=TCP LEN=0 INVALID=LEN \n")
    assert line(host_in(b"\x60" * 39, AF_INET6)).endswith("LEN=39 INVALID=LEN \n")


def arp(op: int) -> bytes:
    sha, spa, tpa = bytes.fromhex("020000000064"), b"\x0a\0\0\x64", b"\x0a\0\0\x01"
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, spa, b"\0" * 6, tpa)


@pytest.mark.parametrize(("op", "fields"), [
    (1, "REQUEST "), (2, "REPLY MAC=02:00:00:00:00:64 "), (10, "NAK "), (3, "CODE=3 "),
])  # fmt: skip
def test_arp_on_the_bridge(op: int, fields: str) -> None:
    pkt = LoggedPacket(AF_BRIDGE, arp(op), prefix=b":100:6:tap100i0-OUT: ACCEPT: ",
                       hw_protocol=ETH_P_ARP, indev=3, timestamp=T0)  # fmt: skip
    assert line(pkt) == ("100 6 tap100i0-OUT 14/Nov/2023:23:13:20 +0100 ACCEPT: IN=tap100i0 "
                         f"SRC=10.0.0.100 DST=10.0.0.1 PROTO=ARP {fields}\n")  # fmt: skip


def test_bridge_family_picks_l3_by_ethertype() -> None:
    v6 = ip6(17, udp(1, 2))
    pkt = LoggedPacket(AF_BRIDGE, v6, prefix=b":1:6:x: ", hw_protocol=ETH_P_IPV6, timestamp=T0)
    assert line(pkt).endswith("+0100 SRC=fd00::1 DST=fd00::2 LEN=8 TC=0 FLOWLBL=0 HOPLIMIT=64 "
                              "PROTO=UDP SPT=1 DPT=2 LEN=8\n")  # fmt: skip
    other = LoggedPacket(AF_BRIDGE, v6, prefix=b":1:6:x: ", hw_protocol=0x88CC, timestamp=T0)
    assert line(other) == "1 6 x 14/Nov/2023:23:13:20 +0100 \n"


@pytest.mark.parametrize(("prefix", "parsed"), [
    (b":0:6:host-in: ACCEPT: ", Prefix(0, 6, "host-in", "ACCEPT: ")),
    (b":100:7:tap100i0-IN: policy DROP: ", Prefix(100, 7, "tap100i0-IN", "policy DROP: ")),
    (b"::3:c: x", Prefix(0, 3, "c", "x")),
    (b":1:6:" + b"c" * 28 + b": R", Prefix(1, 6, "c" * 28, "R")),
    (b":1:6:" + b"c" * 29 + b": R", Prefix(0, 6, "-", ":1:6:" + "c" * 29 + ": R")),
    (b":1:8:c: R", Prefix(0, 6, "-", ":1:8:c: R")),
    (b":1:6:c:R", Prefix(0, 6, "-", ":1:6:c:R")),
    (b":1:6:: R", Prefix(0, 6, "-", ":1:6:: R")),
    (b":1:6:a b: R", Prefix(0, 6, "-", ":1:6:a b: R")),
    (b"1:6:c: R", Prefix(0, 6, "-", "1:6:c: R")),
    (b"custom prefix ", Prefix(0, 6, "-", "custom prefix ")),
    (b":4294967297:6:c: ", Prefix(1, 6, "c", "")),
    (None, Prefix(0, 6, "-", "")),
])  # fmt: skip
def test_prefix_parsing(prefix: bytes | None, parsed: Prefix) -> None:
    assert parse_prefix(prefix) == parsed


def test_fallback_line_prints_the_whole_prefix() -> None:
    pkt = LoggedPacket(AF_INET, ip4(17, udp(1, 2)), prefix=b"my prefix: ", timestamp=T0)
    assert line(pkt).startswith("0 6 - 14/Nov/2023:23:13:20 +0100 my prefix: SRC=10.0.0.1 ")


def test_large_vmid_prints_signed_like_upstream() -> None:
    pkt = LoggedPacket(AF_INET, b"", prefix=b":3000000000:6:c: ", timestamp=T0)
    assert line(pkt) == "-1294967296 6 c 14/Nov/2023:23:13:20 +0100 LEN=0 INVALID=LEN \n"


def test_long_entries_are_cut_and_still_end_in_a_newline() -> None:
    pkt = LoggedPacket(AF_INET, b"", prefix=b"p" * 600, timestamp=T0)
    data = format_packet(pkt, ifname, T0)
    assert len(data) == 508 and data.endswith(b"p\n")


def test_raw_bytes_of_prefix_and_names_survive() -> None:
    pkt = LoggedPacket(AF_INET, b"", prefix=b":1:6:c: \xff\xfe ", indev=7, timestamp=T0)
    data = format_packet(pkt, lambda _: "v\udcffx", T0)
    assert data == b"1 6 c 14/Nov/2023:23:13:20 +0100 \xff\xfe IN=v\xffx LEN=0 INVALID=LEN \n"


def test_status_lines() -> None:
    assert format_status(5, "starting pvefw logger", T0) == (
        b"0 5 - 14/Nov/2023:23:13:20 +0100 starting pvefw logger\n")
    assert format_status(3, "skipped 12 log entries (queue full)", T0) == (
        b"0 3 - 14/Nov/2023:23:13:20 +0100 skipped 12 log entries (queue full)\n")
