"""Conntrack event lines against libnetfilter_conntrack's default format strings
(``../shared/notes/upstream-logger.md`` §4), and the decoding of ctnetlink messages."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from proxmox_fw.logger.conntrack import ConntrackEvents, parse_event
from proxmox_fw.logger.ctformat import CtEvent, Tuple, format_conntrack
from proxmox_fw.nfnetlink import attr
from tests.unit.logger.conftest import local_zone

A, B = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
T0 = 1_700_000_000


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    with local_zone("UTC"):
        yield


def test_new_tcp_event_as_in_the_note() -> None:
    ev = CtEvent("NEW", 2, Tuple(A, B, 6, 51000, 22), Tuple(B, A, 6, 22, 51000), timeout=120,
                 tcp_state=1, status=0x8, mark=100)  # fmt: skip
    assert format_conntrack(ev, T0) == (
        b"    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=51000 "
        b"dport=22 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=22 dport=51000 mark=100\n")


def test_destroy_with_counters_timestamps_and_zone() -> None:
    orig = Tuple(A, B, 17, 5000, 53, zone=3, packets=2, bytes=120)
    reply = Tuple(B, A, 17, 53, 5000, packets=1, bytes=90)
    ev = CtEvent("DESTROY", 2, orig, reply, status=0x2 | 0x4, start_ns=T0 * 10**9,
                 stop_ns=(T0 + 30) * 10**9, zone=3, use=1)  # fmt: skip
    assert format_conntrack(ev, T0 + 99) == (
        b"[DESTROY] ipv4     2 udp      17 src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=53 "
        b"zone-orig=3 packets=2 bytes=120 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=5000 "
        b"packets=1 bytes=90 [ASSURED] zone=3 delta-time=30 "
        b"[start=Tue Nov 14 22:13:20 2023] [stop=Tue Nov 14 22:13:50 2023] use=1\n")


def test_icmpv6_and_unknown_protocols() -> None:
    a6 = socket.inet_pton(socket.AF_INET6, "fd00::1")
    b6 = socket.inet_pton(socket.AF_INET6, "fd00::2")
    ev = CtEvent("NEW", 10, Tuple(a6, b6, 58, icmp_type=128, icmp_id=7),
                 Tuple(b6, a6, 58, icmp_type=129, icmp_id=7), timeout=30, status=0)  # fmt: skip
    assert format_conntrack(ev, T0) == (
        b"    [NEW] ipv6     10 icmpv6   58 30 src=fd00::1 dst=fd00::2 type=128 code=0 id=7 "
        b"[UNREPLIED] src=fd00::2 dst=fd00::1 type=129 code=0 id=7\n")
    other = CtEvent("NEW", 2, Tuple(A, B, 50), Tuple(B, A, 50), timeout=600, status=0x2)
    assert format_conntrack(other, T0) == (
        b"    [NEW] ipv4     2 unknown  50 600 src=10.0.0.1 dst=10.0.0.2 "
        b"src=10.0.0.2 dst=10.0.0.1\n")


def _tuple(src: bytes, dst: bytes, proto: int, sport: int, dport: int) -> bytes:
    ip = attr(1, src) + attr(2, dst)
    l4 = attr(1, bytes([proto])) + attr(2, struct.pack("!H", sport)) + attr(
        3, struct.pack("!H", dport))
    return attr(1, ip) + attr(2, l4)


def test_ctnetlink_message_decodes_to_the_event() -> None:
    body = (attr(1, _tuple(A, B, 6, 51000, 22)) + attr(2, _tuple(B, A, 6, 22, 51000))
            + attr(3, struct.pack("!I", 0x8)) + attr(7, struct.pack("!I", 120))
            + attr(4, attr(1, attr(1, b"\x01")))
            + attr(8, struct.pack("!I", 100)) + attr(12, struct.pack("!I", 99)))  # fmt: skip
    ev = parse_event("NEW", 2, body)
    assert ev == CtEvent("NEW", 2, Tuple(A, B, 6, 51000, 22), Tuple(B, A, 6, 22, 51000),
                         timeout=120, tcp_state=1, status=8, mark=100)  # fmt: skip


def test_message_type_and_flags_pick_the_event_kind() -> None:
    def message(kind: int, flags: int) -> bytes:
        body = struct.pack("!BBH", 2, 0, 0) + attr(1, _tuple(A, B, 6, 1, 2))
        return struct.pack("=IHHII", 16 + len(body), (1 << 8) | kind, flags, 0, 0) + body

    data = message(0, 0x400 | 0x200) + message(0, 0) + message(2, 0) + message(1, 0)
    kinds = [ev.kind for ev in ConntrackEvents._parse(data)]
    assert kinds == ["NEW", "UPDATE", "DESTROY"]
