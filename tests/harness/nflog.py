"""An NFLOG reader: what the firewall's ``log group 0`` statements really emit.

The log rules of the firewall send packets to nfnetlink_log group 0 of their namespace,
where pvefw-logger would read them. :class:`NflogReader` binds that group over a
``NETLINK_NETFILTER`` socket made inside the namespace (only one listener per group and
namespace can bind), asks for a copy of each packet and for every message to be sent at
once (queue threshold 1, so no batching delay), and decodes prefix and packet headers.
"""

from __future__ import annotations

import itertools
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.harness.netns import NetNs
from tests.harness.nfnl import attr, await_ack
from tests.harness.nftrace import Packet, be32, nl_attrs, parse_packet

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_TIMEOUT, NFULA_CFG_QTHRESH = 1, 2, 4, 5
NFULNL_CFG_CMD_BIND, NFULNL_CFG_CMD_UNBIND = 1, 2
NFULNL_COPY_PACKET = 2
NFULA_PACKET_HDR, NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV = 1, 4, 5
NFULA_PAYLOAD, NFULA_PREFIX = 9, 10
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
SO_RCVBUFFORCE = 33


@dataclass(frozen=True, slots=True)
class LogMessage:
    """One packet logged to the group: the rule's prefix and the packet's headers."""

    prefix: str
    hook: int | None
    indev: int | None
    outdev: int | None
    packet: Packet | None


class NflogReader:
    """Bound to one NFLOG group of a namespace until :meth:`close`."""

    def __init__(self, ns: NetNs, group: int = 0) -> None:
        self.group = group
        self.sock = ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
        self.sock.bind((0, 0))
        self._seq = itertools.count(1)
        self._config(attr(NFULA_CFG_CMD, struct.pack("B", NFULNL_CFG_CMD_BIND)))
        self._config(
            attr(NFULA_CFG_MODE, struct.pack("!IBx", 0xFFFF, NFULNL_COPY_PACKET)),
            attr(NFULA_CFG_QTHRESH, struct.pack("!I", 1)),
            attr(NFULA_CFG_TIMEOUT, struct.pack("!I", 0)),
        )
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def _config(self, *attrs: bytes) -> None:
        """One NFULNL_MSG_CONFIG request; raises if the kernel refuses it."""
        body = struct.pack("!BBH", socket.AF_UNSPEC, 0, self.group) + b"".join(attrs)
        seq = next(self._seq)
        mtype = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
        self.sock.send(struct.pack("=IHHII", 16 + len(body), mtype, NLM_F_REQUEST | NLM_F_ACK,
                                   seq, 0) + body)  # fmt: skip
        await_ack(self.sock, seq, f"nfnetlink_log config of group {self.group}")

    def read(self) -> list[LogMessage]:
        """Every queued message, without blocking."""
        out: list[LogMessage] = []
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return out
            self._parse(data, out)

    def _parse(self, data: bytes, out: list[LogMessage]) -> None:
        pos = 0
        while pos + 16 <= len(data):
            length, mtype = struct.unpack_from("=IH", data, pos)
            if length < 16:
                return
            end = pos + length
            if mtype == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET and length >= 20:
                attrs = nl_attrs(data, pos + 20, end)
                hdr = attrs.get(NFULA_PACKET_HDR)
                out.append(LogMessage(
                    prefix=attrs.get(NFULA_PREFIX, b"").rstrip(b"\0").decode(errors="replace"),
                    hook=hdr[2] if hdr and len(hdr) >= 3 else None,
                    indev=be32(attrs.get(NFULA_IFINDEX_INDEV)),
                    outdev=be32(attrs.get(NFULA_IFINDEX_OUTDEV)),
                    packet=parse_packet(attrs.get(NFULA_PAYLOAD), None),
                ))  # fmt: skip
            pos += (length + 3) & ~3

    def wait(self, want: Callable[[LogMessage], bool], timeout: float) -> list[LogMessage]:
        """Messages read until one satisfies ``want`` or ``timeout`` passes (all returned)."""
        got: list[LogMessage] = []
        deadline = time.monotonic() + timeout
        while True:
            got.extend(self.read())
            if any(want(m) for m in got):
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return got
            select.select([self.sock], [], [], remaining)

    def close(self) -> None:
        """Unbind (so another reader may bind the group) and close."""
        try:
            self.sock.setblocking(True)
            self._config(attr(NFULA_CFG_CMD, struct.pack("B", NFULNL_CFG_CMD_UNBIND)))
        except OSError:
            pass
        finally:
            self.sock.close()


