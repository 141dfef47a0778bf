"""Conntrack event lines in libnetfilter_conntrack's default text format.

pvefw-logger writes each NEW and DESTROY event with ``nfct_snprintf(NFCT_O_DEFAULT,
NFCT_OF_SHOW_LAYER3 | NFCT_OF_TIMESTAMP)``: no vmid/time header, fields in the library's
fixed order, each present only when the kernel sent it (timestamps need
``nf_conntrack_timestamp``, counters ``nf_conntrack_acct``). Guest flows carry
``mark=<vmid>``. Pure: an :class:`CtEvent` and the clock in, bytes out.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from proxmox_fw.logger.format import AF_INET, AF_INET6, MAX_TEXT

L3_NAMES = {AF_INET: "ipv4", AF_INET6: "ipv6"}
L4_NAMES = {6: "tcp", 17: "udp", 136: "udplite", 1: "icmp", 58: "icmpv6", 132: "sctp",
            47: "gre", 33: "dccp"}  # fmt: skip
TCP_STATES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
              "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")  # fmt: skip
SCTP_STATES = ("NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
               "SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT",
               "HEARTBEAT_ACKED")  # fmt: skip
DCCP_STATES = ("NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING",
               "TIMEWAIT", "IGNORE", "INVALID")  # fmt: skip
IPS_SEEN_REPLY, IPS_ASSURED, IPS_OFFLOAD, IPS_HW_OFFLOAD = 1 << 1, 1 << 2, 1 << 14, 1 << 15
NSEC = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Tuple:
    """One direction of a connection (addresses as bytes, ports/ids in host order)."""

    src: bytes = b""
    dst: bytes = b""
    proto: int | None = None
    sport: int = 0
    dport: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    icmp_id: int = 0
    zone: int | None = None
    packets: int | None = None
    bytes: int | None = None


@dataclass(frozen=True, slots=True)
class CtEvent:
    """One ctnetlink event; None where the kernel sent no such attribute."""

    kind: str  # NEW, UPDATE or DESTROY
    family: int
    orig: Tuple = field(default_factory=Tuple)
    reply: Tuple = field(default_factory=Tuple)
    timeout: int | None = None
    tcp_state: int | None = None
    sctp_state: int | None = None
    dccp_state: int | None = None
    status: int | None = None
    mark: int | None = None
    secmark: int | None = None
    secctx: str | None = None
    zone: int | None = None
    start_ns: int | None = None
    stop_ns: int | None = None
    helper: str | None = None
    use: int | None = None


def _state(names: tuple[str, ...], state: int) -> str:
    return names[state] if state < len(names) else names[0]


def _tuple(family: int, t: Tuple, direction: str) -> list[str]:
    out: list[str] = []
    af = {AF_INET: socket.AF_INET, AF_INET6: socket.AF_INET6}.get(family)
    size = 4 if family == AF_INET else 16
    if af is not None:
        src, dst = (a.ljust(size, b"\0")[:size] for a in (t.src, t.dst))
        out.append(f"src={socket.inet_ntop(af, src)} dst={socket.inet_ntop(af, dst)} ")
    if t.proto in (6, 17, 136, 132, 33):
        out.append(f"sport={t.sport} dport={t.dport} ")
    elif t.proto == 47:
        out.append(f"srckey=0x{t.sport:x} dstkey=0x{t.dport:x} ")
    elif t.proto in (1, 58):
        out.append(f"type={t.icmp_type} code={t.icmp_code} id={t.icmp_id} ")
    if t.zone is not None:
        out.append(f"zone-{direction}={t.zone} ")
    if t.packets is not None and t.bytes is not None:
        out.append(f"packets={t.packets} bytes={t.bytes} ")
    return out


def format_conntrack(ev: CtEvent, now: int) -> bytes:
    """The line of one event (``now`` is the end of a flow that has no stop time)."""
    out = [f"{'[' + ev.kind + ']':>9} ",
           f"{L3_NAMES.get(ev.family, 'unknown'):<8} {ev.family} "]  # fmt: skip
    if ev.orig.proto is not None:
        out.append(f"{L4_NAMES.get(ev.orig.proto, 'unknown'):<8} {ev.orig.proto} ")
    if ev.timeout is not None:
        out.append(f"{ev.timeout} ")
    for state, names in ((ev.tcp_state, TCP_STATES), (ev.sctp_state, SCTP_STATES),
                         (ev.dccp_state, DCCP_STATES)):  # fmt: skip
        if state is not None:
            out.append(_state(names, state) + " ")
    out.extend(_tuple(ev.family, ev.orig, "orig"))
    if ev.status is not None and not ev.status & IPS_SEEN_REPLY:
        out.append("[UNREPLIED] ")
    out.extend(_tuple(ev.family, ev.reply, "reply"))
    if ev.status is not None:
        for bit, name in ((IPS_HW_OFFLOAD, "HW_OFFLOAD"), (IPS_OFFLOAD, "OFFLOAD"),
                          (IPS_ASSURED, "ASSURED")):  # fmt: skip
            if ev.status & bit:
                out.append(f"[{name}] ")
                break
    for key, value in (("mark", ev.mark), ("secmark", ev.secmark), ("secctx", ev.secctx),
                       ("zone", ev.zone)):  # fmt: skip
        if value is not None:
            out.append(f"{key}={value} ")
    if ev.start_ns is not None:
        stop = ev.stop_ns // NSEC if ev.stop_ns else now
        out.append(f"delta-time={(stop - ev.start_ns // NSEC) % (1 << 64)} ")
        out.append(f"[start={time.ctime(ev.start_ns // NSEC)}] ")
    if ev.stop_ns is not None:
        out.append(f"[stop={time.ctime(ev.stop_ns // NSEC)}] ")
    if ev.helper is not None:
        out.append(f"helper={ev.helper} ")
    if ev.use is not None:
        out.append(f"use={ev.use} ")
    data = "".join(out)[:-1].encode("utf-8", "surrogateescape")
    return data[:MAX_TEXT] + b"\n"
