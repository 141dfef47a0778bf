"""A tiny NFQUEUE reader: what an IPS behind ``ips: 1`` would see (admin guide §13.10.2).

A guest with ``ips: 1`` hands its accepted packets to nfnetlink_queue instead of accepting
them. :class:`QueueReader` binds one queue number of a namespace over a
``NETLINK_NETFILTER`` socket (bind, copy mode), records every packet it receives (queue,
hook, headers) and gives each back with an ACCEPT verdict, as a permissive IPS would,
from a thread of its own until :meth:`close` unbinds the queue.
"""

from __future__ import annotations

import itertools
import select
import socket
import struct
import threading
from dataclasses import dataclass

from tests.harness.netns import NetNs
from tests.harness.nfnl import attr, await_ack
from tests.harness.nftrace import Packet, nl_attrs, parse_packet

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_PACKET = 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
SO_RCVBUFFORCE = 33


@dataclass(frozen=True, slots=True)
class Queued:
    """One packet the kernel queued: to which queue, from which hook, and its headers."""

    queue: int
    family: int
    hook: int
    packet: Packet | None


class QueueReader:
    """Bound to one queue number of a namespace; accepts every packet until closed."""

    def __init__(self, ns: NetNs, queue: int) -> None:
        self.queue = queue
        self.packets: list[Queued] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self.sock = ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
        self.sock.bind((0, 0))
        try:
            self._config(attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
            self._config(attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0xFFFF, NFQNL_COPY_PACKET)))
        except OSError:
            self.sock.close()
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"nfqueue-{queue}",
                                        daemon=True)
        self._thread.start()

    def _send(self, mtype: int, flags: int, family: int, body: bytes) -> int:
        seq = next(self._seq)
        payload = struct.pack("!BBH", family, 0, self.queue) + body
        self.sock.send(struct.pack("=IHHII", 16 + len(payload), (NFNL_SUBSYS_QUEUE << 8) | mtype,
                                   flags, seq, 0) + payload)  # fmt: skip
        return seq

    def _config(self, *attrs: bytes) -> None:
        """One NFQNL_MSG_CONFIG request, before the thread runs; raises if refused."""
        seq = self._send(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, socket.AF_UNSPEC,
                         b"".join(attrs))
        await_ack(self.sock, seq, f"nfnetlink_queue config of queue {self.queue}")

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.1)
            if not ready:
                continue
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                return
            pos = 0
            while pos + 20 <= len(data):
                length, mtype = struct.unpack_from("=IH", data, pos)
                if length < 16:
                    break
                if mtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    self._packet(data, pos, pos + length)
                pos += (length + 3) & ~3

    def _packet(self, data: bytes, start: int, end: int) -> None:
        family, _version, res_id = struct.unpack_from("!BBH", data, start + 16)
        attrs = nl_attrs(data, start + 20, end)
        hdr = attrs.get(NFQA_PACKET_HDR)
        if hdr is None or len(hdr) < 7:
            return
        packet_id, _hw_proto, hook = struct.unpack_from("!IHB", hdr)
        with self._lock:
            self.packets.append(Queued(res_id, family, hook,
                                       parse_packet(attrs.get(NFQA_PAYLOAD), None)))
        verdict = attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        self._send(NFQNL_MSG_VERDICT, NLM_F_REQUEST, family, verdict)

    def seen(self) -> list[Queued]:
        with self._lock:
            return list(self.packets)

    def close(self) -> None:
        """Stop the thread, unbind the queue (traffic then bypasses it) and close."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._send(NFQNL_MSG_CONFIG, NLM_F_REQUEST, socket.AF_UNSPEC,
                       attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, 0)))
        except OSError:
            pass
        finally:
            self.sock.close()
