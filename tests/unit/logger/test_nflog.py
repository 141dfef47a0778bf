"""Decoding of NFLOG messages and counting of the kernel's drops by sequence number."""

from __future__ import annotations

import struct

from proxmox_fw.logger.format import AF_BRIDGE, LoggedPacket
from proxmox_fw.logger.nflog import NflogSocket, SeqGaps, parse_packet
from proxmox_fw.nfnetlink import attr


def message(seq: int, family: int = AF_BRIDGE) -> bytes:
    body = struct.pack("!BBH", family, 0, 0) + b"".join([
        attr(1, struct.pack("!HBx", 0x0806, 0)),
        attr(2, struct.pack("!I", 100)),
        attr(3, struct.pack("!QQ", 1_700_000_000, 5)),
        attr(4, struct.pack("!I", 3)),
        attr(6, struct.pack("!I", 4)),
        attr(9, b"payload"),
        attr(10, b":100:6:tap100i0-OUT: ACCEPT: \0"),
        attr(12, struct.pack("!I", seq)),
        attr(16, bytes(range(14)) + b"\0\0"),
        attr(17, struct.pack("!H", 14)),
    ])  # fmt: skip
    return struct.pack("=IHHII", 16 + len(body), 4 << 8, 0, 0, 0) + body


def test_packet_attributes() -> None:
    data = message(7)
    pkt, seq = parse_packet(data[16], memoryview(data)[20:])
    assert seq == 7
    assert pkt == LoggedPacket(
        family=AF_BRIDGE, payload=b"payload", prefix=b":100:6:tap100i0-OUT: ACCEPT: \0",
        hw_protocol=0x0806, hwheader=bytes(range(14)), indev=3, physindev=4, mark=100,
        timestamp=1_700_000_000)  # fmt: skip


def test_sequence_gaps_are_counted_as_lost() -> None:
    parsed = list(NflogSocket._parse(message(5) + message(6) + message(9)))
    gaps = SeqGaps()
    assert [gaps.lost_before(seq) for _, seq in parsed if seq is not None] == [0, 0, 2]
    assert gaps.lost_before(0xFFFFFFFF) == 0xFFFFFFFF - 10
    assert gaps.lost_before(1) == 1  # the counter wraps
