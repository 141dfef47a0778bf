"""A small nfnetlink layer: messages and attributes of ``NETLINK_NETFILTER`` sockets,
shared by the logger (NFLOG, conntrack), the trace reader and the kernel-state reader.

pyroute2 has no NFLOG messages and decodes conntrack events into generic dicts at many
times the cost of these few struct calls; under a log flood every microsecond per packet
counts, so both sockets are plain sockets parsed here.
"""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Iterator

NETLINK_NETFILTER = 12
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLA_TYPE_MASK = 0x3FFF
SO_RCVBUFFORCE = 33


def attrs(data: bytes | memoryview, start: int = 0, end: int | None = None) -> dict[int, bytes]:
    """The netlink attributes in ``data[start:end]`` by type (the last one wins)."""
    out: dict[int, bytes] = {}
    end = len(data) if end is None else end
    pos = start
    while pos + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, pos)
        if length < 4 or pos + length > end:
            break
        out[kind & NLA_TYPE_MASK] = bytes(data[pos + 4 : pos + length])
        pos += (length + 3) & ~3
    return out


def attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def be(raw: bytes | None, default: int = 0) -> int:
    """A big-endian unsigned attribute (any width), ``default`` when absent."""
    return default if not raw else int.from_bytes(raw, "big")


def messages(data: bytes) -> Iterator[tuple[int, int, int, memoryview]]:
    """``(type, flags, seq, body)`` of each netlink message in one datagram."""
    view = memoryview(data)
    pos = 0
    while pos + 16 <= len(data):
        length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", data, pos)
        if length < 16 or pos + length > len(data):
            return
        yield kind, flags, seq, view[pos + 16 : pos + length]
        pos += (length + 3) & ~3


class NfnlSocket:
    """A ``NETLINK_NETFILTER`` socket of the calling thread's network namespace."""

    def __init__(self, groups: int = 0, rcvbuf: int = 4 << 20) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((0, groups))
        self._seq = itertools.count(1)

    def fileno(self) -> int:
        return self.sock.fileno()

    def request(self, kind: int, family: int, res_id: int, *payload: bytes,
                timeout: float = 2.0) -> None:  # fmt: skip
        """Send one nfnetlink request and wait for its acknowledgement; raise if refused."""
        body = struct.pack("!BBH", family, 0, res_id) + b"".join(payload)
        seq = next(self._seq)
        self.sock.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK,
                                   seq, 0) + body)  # fmt: skip
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            while True:
                for mtype, _flags, rseq, msg in messages(self.sock.recv(1 << 16)):
                    if mtype == NLMSG_ERROR and rseq == seq:
                        err = struct.unpack_from("=i", msg)[0]
                        if err:
                            raise OSError(-err, f"nfnetlink request {kind:#x} refused")
                        return
        finally:
            self.sock.settimeout(old)

    def close(self) -> None:
        self.sock.close()
