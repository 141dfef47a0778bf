"""The NFLOG subscription: one nfnetlink_log group, every packet copied whole.

The firewall's ``log ... group 0`` statements send to group 0 of their network namespace,
for every family (inet tables log as IPv4/IPv6, the guest table as bridge). Messages carry
a sequence number (``NFULNL_CFG_F_SEQ``): a gap means the kernel dropped messages because
the socket was full, and those are counted as skipped like the entries our own queue drops.
"""

from __future__ import annotations

import contextlib
import errno
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from proxmox_fw.logger.format import AF_BRIDGE, AF_INET, AF_INET6, LoggedPacket
from proxmox_fw.nfnetlink import NfnlSocket, attr, attrs, be, messages

NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = NFNL_SUBSYS_ULOG << 8
NFULNL_MSG_CONFIG = (NFNL_SUBSYS_ULOG << 8) | 1
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_NLBUFSIZ, NFULA_CFG_TIMEOUT = 1, 2, 3, 4
NFULA_CFG_FLAGS = 6
NFULNL_CFG_CMD_BIND, NFULNL_CFG_CMD_UNBIND = 1, 2
NFULNL_CFG_CMD_PF_BIND = 3
NFULNL_COPY_PACKET = 2
NFULNL_CFG_F_SEQ = 0x0001
(NFULA_PACKET_HDR, NFULA_MARK, NFULA_TIMESTAMP, NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV,
 NFULA_IFINDEX_PHYSINDEV, NFULA_IFINDEX_PHYSOUTDEV) = range(1, 8)  # fmt: skip
NFULA_PAYLOAD, NFULA_PREFIX, NFULA_SEQ, NFULA_HWHEADER, NFULA_HWLEN = 9, 10, 12, 16, 17

FLUSH_TIMEOUT = 10
"""Hundredths of a second the kernel may batch messages before sending them."""
BATCH_BYTES = 65536
"""The kernel's batch size (``NFULA_CFG_NLBUFSIZ``); each recv reads one whole batch."""


@dataclass(frozen=True, slots=True)
class Received:
    """What one read of the socket gave: the packets and how many the kernel dropped."""

    packets: list[LoggedPacket]
    lost: int


def parse_packet(family: int, body: memoryview) -> tuple[LoggedPacket, int | None]:
    """An ``NFULNL_MSG_PACKET`` body (after the nfgenmsg) and its sequence number."""
    a = attrs(body)
    hdr = a.get(NFULA_PACKET_HDR, b"")
    hwlen = be(a.get(NFULA_HWLEN))
    stamp = a.get(NFULA_TIMESTAMP)
    seq = a.get(NFULA_SEQ)
    return LoggedPacket(
        family=family,
        payload=a.get(NFULA_PAYLOAD, b""),
        prefix=a.get(NFULA_PREFIX),
        hw_protocol=be(hdr[:2]),
        hwheader=a.get(NFULA_HWHEADER, b"")[:hwlen],
        indev=be(a.get(NFULA_IFINDEX_INDEV)),
        outdev=be(a.get(NFULA_IFINDEX_OUTDEV)),
        physindev=be(a.get(NFULA_IFINDEX_PHYSINDEV)),
        physoutdev=be(a.get(NFULA_IFINDEX_PHYSOUTDEV)),
        mark=be(a.get(NFULA_MARK)),
        timestamp=be(stamp[:8]) if stamp and len(stamp) >= 8 else None,
    ), (be(seq) if seq else None)


class SeqGaps:
    """Counts the messages missing between consecutive NFLOG sequence numbers."""

    def __init__(self) -> None:
        self.expected: int | None = None

    def lost_before(self, seq: int) -> int:
        lost = 0 if self.expected is None else (seq - self.expected) % (1 << 32)
        self.expected = (seq + 1) % (1 << 32)
        return lost


class NflogSocket:
    """Bound to one NFLOG group of the current network namespace until :meth:`close`."""

    def __init__(self, group: int = 0) -> None:
        self.group = group
        self.nl = NfnlSocket()
        for family in (AF_INET, AF_INET6, AF_BRIDGE):
            # Only kernels before 3.17 need a family binding; later ones answer 0 or refuse.
            with contextlib.suppress(OSError):
                self.nl.request(NFULNL_MSG_CONFIG, family, 0,
                                attr(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_PF_BIND])))  # fmt: skip
        self.nl.request(NFULNL_MSG_CONFIG, 0, group,
                        attr(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_BIND])))  # fmt: skip
        self.nl.request(
            NFULNL_MSG_CONFIG, 0, group,
            attr(NFULA_CFG_MODE, struct.pack("!IBx", 0xFFFF, NFULNL_COPY_PACKET)),
            attr(NFULA_CFG_NLBUFSIZ, struct.pack("!I", BATCH_BYTES)),
            attr(NFULA_CFG_TIMEOUT, struct.pack("!I", FLUSH_TIMEOUT)),
            attr(NFULA_CFG_FLAGS, struct.pack("!H", NFULNL_CFG_F_SEQ)),
        )
        self.nl.sock.setblocking(False)
        self._gaps = SeqGaps()

    def fileno(self) -> int:
        return self.nl.fileno()

    def receive(self, max_reads: int = 16) -> Received:
        """Everything queued on the socket (up to ``max_reads`` datagrams), no blocking."""
        packets: list[LoggedPacket] = []
        lost = 0
        for _ in range(max_reads):
            try:
                data = self.nl.sock.recv(BATCH_BYTES * 2)
            except BlockingIOError:
                break
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    continue  # the sequence numbers tell how many were lost
                raise
            for pkt, seq in self._parse(data):
                if seq is not None:
                    lost += self._gaps.lost_before(seq)
                packets.append(pkt)
        return Received(packets, lost)

    @staticmethod
    def _parse(data: bytes) -> Iterator[tuple[LoggedPacket, int | None]]:
        for kind, _flags, _seq, body in messages(data):
            if kind == NFULNL_MSG_PACKET and len(body) >= 4:
                yield parse_packet(body[0], body[4:])

    def close(self) -> None:
        """Unbind (so another listener may bind the group) and close."""
        try:
            self.nl.sock.setblocking(True)
            self.nl.request(NFULNL_MSG_CONFIG, 0, self.group,
                            attr(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_UNBIND])))  # fmt: skip
        except OSError:
            pass
        finally:
            self.nl.close()
