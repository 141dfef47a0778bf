"""Netlink pieces the nfnetlink readers share (tests/harness/nflog.py, nfqueue.py)."""

from __future__ import annotations

import socket
import struct

NLMSG_ERROR = 2


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def await_ack(sock: socket.socket, seq: int, what: str, timeout: float = 2.0) -> None:
    """Wait for the kernel's answer to request ``seq``; raise OSError if it refused."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            pos = 0
            while pos + 20 <= len(data):
                length, kind, _flags, rseq, _pid = struct.unpack_from("=IHHII", data, pos)
                if kind == NLMSG_ERROR and rseq == seq:
                    err = struct.unpack_from("=i", data, pos + 16)[0]
                    if err != 0:
                        raise OSError(-err, what)
                    return
                if length < 16:
                    break
                pos += (length + 3) & ~3
    finally:
        sock.settimeout(None)
