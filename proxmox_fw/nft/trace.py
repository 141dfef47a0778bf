"""nftables trace events, read straight from netlink (never from ``nft monitor``).

A packet carrying ``meta nftrace`` makes the kernel report every chain and rule it meets
on the NFNLGRP_NFTRACE group of its network namespace: one NFT_MSG_TRACE message per
step, with table, chain, rule handle, verdict and (on the first step of each chain walk)
the packet's headers. :class:`TraceReader` decodes those messages from a netlink socket
and also notices ruleset changes (the NFNLGRP_NFTABLES group), so a reader of rule
handles knows when to list the rules again. ``proxmox-firewall trace`` and the test
harness share it.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from proxmox_fw.nfnetlink import attrs as nl_attrs

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
SO_RCVBUFFORCE = 33  # not exported by Python's socket module
NFNLGRP_NFTABLES = 7
NFNLGRP_NFTRACE = 9
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_DELTABLE = 2
NFT_MSG_DELCHAIN = 5
NFT_MSG_DELRULE = 8
NFT_MSG_NEWGEN = 15
NFT_MSG_TRACE = 17

# enum nft_trace_attributes
_A_TABLE, _A_CHAIN, _A_HANDLE, _A_TYPE, _A_VERDICT, _A_ID = 1, 2, 3, 4, 5, 6
_A_NETWORK, _A_TRANSPORT, _A_IIF, _A_OIF, _A_POLICY = 8, 9, 10, 12, 16
_VERDICT_CODE = 1

TRACETYPE_POLICY, TRACETYPE_RETURN, TRACETYPE_RULE = 1, 2, 3
NF_DROP, NF_ACCEPT = 0, 1

ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})
ICMPV6_ERRORS = frozenset({1, 2, 3, 4})

FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
VERDICTS = {0: "drop", 1: "accept", -1: "continue", -2: "break", -3: "jump", -4: "goto",
            -5: "return"}  # fmt: skip
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}


def be32(raw: bytes | None) -> int | None:
    return None if raw is None or len(raw) < 4 else int.from_bytes(raw[:4], "big")


def be64(raw: bytes | None) -> int | None:
    return None if raw is None or len(raw) < 8 else int.from_bytes(raw[:8], "big")


def signed_verdict(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    code = be32(nl_attrs(raw, 0, len(raw)).get(_VERDICT_CODE))
    if code is None:
        return None
    if code >= 1 << 31:  # NFT_CONTINUE, NFT_JUMP, ... are negative
        return code - (1 << 32)
    return code & 0xFF  # NF_DROP may carry an errno in the upper bits


@dataclass(frozen=True, slots=True)
class Packet:
    """What a trace event shows of a packet (enough to tie it to one flow)."""

    version: int
    src: str
    dst: str
    proto: int  # IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6)
    sport: int | None = None  # tcp/udp
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None  # echo id, or the first 16 bits after the header
    inner_proto: int | None = None  # protocol quoted by an ICMP error, when visible

    @property
    def is_icmp_error(self) -> bool:
        if self.proto == 1:
            return self.icmp_type in ICMP_ERRORS
        if self.proto == 58:
            return self.icmp_type in ICMPV6_ERRORS
        return False

    def describe(self) -> str:
        """``tcp 192.0.2.1:40000 -> 192.0.2.2:22``, ``icmp 192.0.2.1 -> 192.0.2.2 type 8``."""
        proto = PROTOCOLS.get(self.proto, f"proto {self.proto}")
        if self.sport is not None and self.dport is not None:
            src, dst = _with_port(self.src, self.sport), _with_port(self.dst, self.dport)
            return f"{proto} {src} -> {dst}"
        text = f"{proto} {self.src} -> {self.dst}"
        if self.icmp_type is not None:
            text += f" type {self.icmp_type} code {self.icmp_code}"
        return text

    def to_json(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


def _with_port(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def parse_packet(network: bytes | None, transport: bytes | None) -> Packet | None:
    """Decode the (truncated) headers a trace event carries."""
    if not network:
        return None
    version = network[0] >> 4
    if version == 4 and len(network) >= 20:
        ihl = (network[0] & 0x0F) * 4
        proto = network[9]
        src = str(ipaddress.IPv4Address(network[12:16]))
        dst = str(ipaddress.IPv4Address(network[16:20]))
        l4 = transport if transport else network[ihl:]
    elif version == 6 and len(network) >= 40:
        proto = network[6]
        src = str(ipaddress.IPv6Address(network[8:24]))
        dst = str(ipaddress.IPv6Address(network[24:40]))
        l4 = transport if transport else network[40:]
    else:
        return None
    if proto in (6, 17) and len(l4) >= 4:
        sport, dport = struct.unpack_from("!HH", l4, 0)
        return Packet(version, src, dst, proto, sport=sport, dport=dport)
    if proto in (1, 58) and len(l4) >= 2:
        icmp_id = struct.unpack_from("!H", l4, 4)[0] if len(l4) >= 6 else None
        inner = l4[8:]
        inner_proto: int | None = None
        if version == 4 and len(inner) >= 10 and inner[0] >> 4 == 4:
            inner_proto = inner[9]
        elif version == 6 and len(inner) >= 7 and inner[0] >> 4 == 6:
            inner_proto = inner[6]
        return Packet(version, src, dst, proto, icmp_type=l4[0], icmp_code=l4[1],
                      icmp_id=icmp_id, inner_proto=inner_proto)  # fmt: skip
    return Packet(version, src, dst, proto)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    trace_id: int
    family: int  # nfgen family of the table (1 inet, 7 bridge, ...)
    table: str
    chain: str
    type: int
    verdict: int | None  # NF_DROP, NF_ACCEPT or a negative nft verdict (jump, return ...)
    policy: int | None
    packet: Packet | None  # only on the first event of each chain walk
    iif: int | None = None
    oif: int | None = None
    rule_handle: int | None = None

    @property
    def family_name(self) -> str:
        return FAMILIES.get(self.family, str(self.family))

    @property
    def dropped(self) -> bool:
        """The packet ended here (a drop, or a reject: both are NF_DROP to the kernel)."""
        if self.type == TRACETYPE_POLICY:
            return self.policy == NF_DROP
        return self.type == TRACETYPE_RULE and self.verdict == NF_DROP

    @property
    def verdict_name(self) -> str:
        """``accept``, ``drop``, ``jump``, ... of a rule or policy; ``return`` of a return."""
        if self.type == TRACETYPE_POLICY:
            return VERDICTS.get(self.policy or 0, str(self.policy))
        if self.type == TRACETYPE_RETURN:
            return "return"
        if self.verdict is None:
            return "?"
        return VERDICTS.get(self.verdict, str(self.verdict))

    def describe(self) -> str:
        """One line: where the packet went and what it met."""
        where = f"{self.family_name} {self.table} {self.chain}"
        if self.type == TRACETYPE_POLICY:
            return f"{where} policy {self.verdict_name}"
        if self.type == TRACETYPE_RETURN:
            return f"{where} return"
        return f"{where} rule handle {self.rule_handle}: {self.verdict_name}"


def _name(raw: bytes | None) -> str:
    return (raw or b"").rstrip(b"\0").decode(errors="replace")


def trace_event(family: int, attrs: dict[int, bytes]) -> TraceEvent:
    """One NFT_MSG_TRACE message's attributes as an event."""
    return TraceEvent(
        trace_id=be32(attrs.get(_A_ID)) or 0,
        family=family,
        table=_name(attrs.get(_A_TABLE)),
        chain=_name(attrs.get(_A_CHAIN)),
        type=be32(attrs.get(_A_TYPE)) or 0,
        verdict=signed_verdict(attrs.get(_A_VERDICT)),
        policy=be32(attrs.get(_A_POLICY)),
        packet=parse_packet(attrs.get(_A_NETWORK), attrs.get(_A_TRANSPORT)),
        iif=be32(attrs.get(_A_IIF)),
        oif=be32(attrs.get(_A_OIF)),
        rule_handle=be64(attrs.get(_A_HANDLE)),
    )


def nftables_messages(data: bytes) -> Iterator[tuple[int, int, dict[int, bytes]]]:
    """(message type, nfgen family, attributes) of each nf_tables message in ``data``."""
    pos = 0
    while pos + 16 <= len(data):
        length, mtype = struct.unpack_from("=IH", data, pos)
        if length < 16:
            return
        subsys, msg = mtype >> 8, mtype & 0xFF
        if subsys == NFNL_SUBSYS_NFTABLES and length >= 20:
            yield msg, data[pos + 16], nl_attrs(data, pos + 20, pos + length)
        pos += (length + 3) & ~3


def open_trace_socket(rcvbuf: int = 8 << 20) -> socket.socket:
    """A netlink socket of this thread's namespace, subscribed to trace events and ruleset
    changes; needs CAP_NET_ADMIN."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    subscribe(sock, rcvbuf)
    return sock


def subscribe(sock: socket.socket, rcvbuf: int = 8 << 20) -> None:
    """Bind ``sock`` (a NETLINK_NETFILTER socket) and join the trace and ruleset groups."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((0, 0))
    for group in (NFNLGRP_NFTRACE, NFNLGRP_NFTABLES):
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
    sock.setblocking(False)


class TraceReader:
    """Decodes what a subscribed socket receives: trace events, plus which tables were
    deleted or changed and whether a new ruleset generation was committed since the
    caller last looked (:meth:`take_changes`)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lost = False  # the kernel dropped messages (ENOBUFS): events are missing
        self._deleted: set[str] = set()
        self._new_generation = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[TraceEvent]:
        """Every queued trace event, without blocking."""
        events: list[TraceEvent] = []
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return events
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # we fell behind; changes may be missed too
                    self.lost = True
                    self._new_generation = True
                    self._deleted.add("*")
                    continue
                raise
            self.parse(data, events)

    def parse(self, data: bytes, events: list[TraceEvent]) -> None:
        for msg, family, attrs in nftables_messages(data):
            if msg == NFT_MSG_TRACE:
                events.append(trace_event(family, attrs))
            elif msg == NFT_MSG_NEWGEN:
                self._new_generation = True
            elif msg in (NFT_MSG_DELTABLE, NFT_MSG_DELCHAIN, NFT_MSG_DELRULE):
                # the table name is attribute 1 for all three messages
                self._deleted.add(_name(attrs.get(1)))

    def take_changes(self) -> tuple[bool, frozenset[str]]:
        """(a new generation was committed, tables something was deleted from; ``*``
        when messages were lost) since the last call."""
        out = (self._new_generation, frozenset(self._deleted))
        self._new_generation = False
        self._deleted.clear()
        return out

    def close(self) -> None:
        self.sock.close()
