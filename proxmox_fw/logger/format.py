"""The lines of the firewall log, byte for byte as pvefw-logger writes them.

A packet line is ``<vmid> <level> <chain> <dd/Mon/YYYY:HH:MM:SS +zzzz> <rest of prefix>``
followed by ``KEY=value `` fields (admin guide §13.9). The Proxmox API filters guests by
the leading ``<vmid> `` and reads the time from fields 4 and 5, and log shippers parse the
fields, so spacing and case follow pvefw-logger exactly, including its odd spots (no blank
after UDP's ``LEN=``, after an IPv6 routing header's ``SEGMENTS=``, uppercase hex of
``TOS``/``PREC``, a 32-bit vmid printed signed). Values it gets wrong are printed right
here (see README, "Differences from pvefw-logger").

Everything here is pure: a :class:`LoggedPacket` (what one NFLOG message carries) and the
clock go in, bytes come out. Names are looked up through the ``ifname`` callable.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

AF_INET, AF_BRIDGE, AF_INET6 = 2, 7, 10
ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0800, 0x0806, 0x86DD

MAX_CHAIN_LEN = 28
"""pvefw-logger attributes a prefix to a chain only if its name has at most 28 bytes."""
MAX_TEXT = 507
"""Bytes of text per entry before the newline (pvefw-logger's 512-byte entry)."""
DEFAULT_LEVEL = 6
"""Level of a line whose prefix is not ``:<vmid>:<level>:<chain>: `` (syslog info)."""

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip

IfName = Callable[[int], "str | None"]


@dataclass(frozen=True, slots=True)
class LoggedPacket:
    """One packet as NFLOG delivers it; 0 / empty / None where the kernel sent nothing."""

    family: int
    payload: bytes
    prefix: bytes | None = None
    hw_protocol: int = 0
    hwheader: bytes = b""
    indev: int = 0
    outdev: int = 0
    physindev: int = 0
    physoutdev: int = 0
    mark: int = 0
    timestamp: int | None = None  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class Prefix:
    """A log prefix split as pvefw-logger splits it."""

    vmid: int
    level: int
    chain: str
    rest: str


def _text(raw: bytes) -> str:
    """Bytes as str that encodes back to exactly these bytes (see :func:`_finish`)."""
    return raw.decode("utf-8", "surrogateescape")


def parse_prefix(prefix: bytes | None) -> Prefix:
    """``:<digits>:<0-7>:<chain>: <rest>`` with a chain of 1–28 bytes without ``:`` or
    blank; anything else is vmid 0, level 6, chain ``-`` and the whole prefix as rest."""
    if prefix is None:
        return Prefix(0, DEFAULT_LEVEL, "-", "")
    raw = prefix.split(b"\0", 1)[0]
    fallback = Prefix(0, DEFAULT_LEVEL, "-", _text(raw))
    if not raw.startswith(b":"):
        return fallback
    pos = 1
    while pos < len(raw) and 0x30 <= raw[pos] <= 0x39:
        pos += 1
    digits = raw[1:pos]
    if raw[pos : pos + 1] != b":" or raw[pos + 2 : pos + 3] != b":":
        return fallback
    level = raw[pos + 1]
    if not 0x30 <= level <= 0x37:
        return fallback
    start = end = pos + 3
    while end < len(raw) and raw[end] not in b": ":
        end += 1
    if raw[end : end + 2] != b": " or not 0 < end - start <= MAX_CHAIN_LEN:
        return fallback
    vmid = int(digits or b"0") % (1 << 32)
    return Prefix(vmid, level - 0x30, _text(raw[start:end]), _text(raw[end + 2 :]))


def format_time(seconds: int) -> str:
    """``dd/Mon/YYYY:HH:MM:SS +zzzz`` in local time (C locale month names)."""
    t = time.localtime(seconds)
    off = t.tm_gmtoff or 0
    sign = "-" if off < 0 else "+"
    off = abs(off) // 60
    day = f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}"
    clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"{day}:{clock} {sign}{off // 60:02d}{off % 60:02d}"


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _finish(parts: list[str]) -> bytes:
    """Text cut to :data:`MAX_TEXT` bytes, then the newline."""
    data = "".join(parts).encode("utf-8", "surrogateescape")
    return data[:MAX_TEXT] + b"\n"


def format_status(level: int, message: str, now: int) -> bytes:
    """One of the daemon's own lines: ``0 <level> - <time> <message>``."""
    return _finish([f"0 {min(level, 7)} - {format_time(now)} ", message])


def format_packet(pkt: LoggedPacket, ifname: IfName, now: int) -> bytes:
    """The log line of one NFLOG packet (``now`` stands in for a missing timestamp)."""
    pre = parse_prefix(pkt.prefix)
    out = [f"{_signed32(pre.vmid)} {pre.level} {pre.chain} ",
           format_time(pkt.timestamp if pkt.timestamp is not None else now) + " ",
           pre.rest]  # fmt: skip
    for key, index in (("IN", pkt.indev), ("OUT", pkt.outdev), ("PHYSIN", pkt.physindev),
                       ("PHYSOUT", pkt.physoutdev)):  # fmt: skip
        if index > 0:
            name = ifname(index)
            out.append(f"{key}={name if name is not None else index} ")
    if pkt.hwheader:
        out.append("MAC=" + ":".join(f"{b:02x}" for b in pkt.hwheader) + " ")
    out.extend(l3_fields(pkt.family, pkt.hw_protocol, pkt.payload))
    if pkt.mark:
        out.append(f"mark={pkt.mark} ")
    return _finish(out)


def l3_fields(family: int, hw_protocol: int, payload: bytes) -> list[str]:
    """The network-layer part, chosen by the NFLOG family (bridge: by ethertype)."""
    if family == AF_BRIDGE:
        family = {ETH_P_IP: AF_INET, ETH_P_IPV6: AF_INET6, ETH_P_ARP: -1}.get(hw_protocol, 0)
    out: list[str] = []
    if family == AF_INET:
        _ipv4(out, payload)
    elif family == AF_INET6:
        _ipv6(out, payload)
    elif family == -1:
        _arp(out, payload)
    return out


def _invalid_len(out: list[str], length: int) -> None:
    out.append(f"LEN={length} INVALID=LEN ")


def _at(data: bytes, start: int, size: int) -> bytes:
    """``size`` bytes at ``start``, zero-padded where the capture is shorter."""
    chunk = data[start : start + size] if start >= 0 else b""
    return chunk + b"\0" * (size - len(chunk))


def _ipv4(out: list[str], p: bytes) -> None:
    if len(p) < 20:
        _invalid_len(out, len(p))
        return
    ihl = (p[0] & 0x0F) * 4
    if len(p) <= ihl:
        out.append("INVALID=IHL ")
        return
    tos, tot_len, ident, frag, ttl, proto = p[1], *struct.unpack_from("!HHHBB", p, 2)
    out.append(f"SRC={socket.inet_ntop(socket.AF_INET, p[12:16])} "
               f"DST={socket.inet_ntop(socket.AF_INET, p[16:20])} "
               f"LEN={tot_len} TOS=0x{tos & 0x1E:02X} PREC=0x{tos & 0xE0:02X} "
               f"TTL={ttl} ID={ident} ")  # fmt: skip
    if frag & 0x1FFF:
        out.append(f"FRAG={frag & 0x1FFF} ")
    if frag & 0x4000:
        out.append("DF ")
    if frag & 0x2000:
        out.append("MF ")
    if not _transport(out, p[ihl:], proto):
        out.append(f"PROTO={proto} ")


def _transport(out: list[str], h: bytes, proto: int) -> bool:
    """TCP/UDP/ICMP/SCTP/AH/ESP/IGMP fields; False for any other protocol."""
    if proto == 6:
        out.append("PROTO=TCP ")
        if len(h) < 20:
            _invalid_len(out, len(h))
            return True
        sport, dport, seq, ack, _off, flags, window, _sum, urgp = struct.unpack_from(
            "!HHIIBBHHH", h)
        out.append(f"SPT={sport} DPT={dport} SEQ={seq} ACK={ack} WINDOW={window} ")
        for bit, name in ((0x20, "URG"), (0x10, "ACK"), (0x08, "PSH"), (0x04, "RST"),
                          (0x02, "SYN"), (0x01, "FIN")):  # fmt: skip
            if flags & bit:
                out.append(name + " ")
        if flags & 0x20:
            out.append(f"URGP={urgp} ")
    elif proto == 17:
        out.append("PROTO=UDP ")
        if len(h) < 8:
            _invalid_len(out, len(h))
            return True
        sport, dport, length = struct.unpack_from("!HHH", h)
        out.append(f"SPT={sport} DPT={dport} LEN={length}")  # no blank: upstream's format
    elif proto == 1:
        _icmp(out, h)
    elif proto == 132:
        out.append("PROTO=SCTP ")
        if len(h) < 12:
            _invalid_len(out, len(h))
            return True
        sport, dport = struct.unpack_from("!HH", h)
        out.append(f"SPT={sport} DPT={dport} ")
    elif proto in _BARE:
        out.append(f"PROTO={_BARE[proto]} ")
    else:
        return False
    return True


_BARE = {51: "AH", 50: "ESP", 2: "IGMP"}


def _icmp(out: list[str], h: bytes) -> None:
    out.append("PROTO=ICMP ")
    if len(h) < 8:
        _invalid_len(out, len(h))
        return
    kind, code = h[0], h[1]
    out.append(f"TYPE={kind} CODE={code} ")
    if kind in (0, 8):
        ident, seq = struct.unpack_from("!HH", h, 4)
        out.append(f"ID={ident} SEQ={seq} ")
    elif kind == 12:
        out.append(f"PARAMETER={h[4]} ")
    elif kind == 5:
        out.append(f"GATEWAY={socket.inet_ntop(socket.AF_INET, h[4:8])} ")
    elif kind == 3 and code == 4:
        out.append(f"MTU={struct.unpack_from('!H', h, 6)[0]} ")


def _ipv6(out: list[str], p: bytes) -> None:
    if len(p) < 40:
        _invalid_len(out, len(p))
        return
    flow, plen, nexthdr, hlim = struct.unpack_from("!IHBB", p)
    out.append(f"SRC={socket.inet_ntop(socket.AF_INET6, p[8:24])} "
               f"DST={socket.inet_ntop(socket.AF_INET6, p[24:40])} LEN={plen} "
               f"TC={(flow >> 20) & 0xFF} FLOWLBL={flow & 0xFFFFF} HOPLIMIT={hlim} ")  # fmt: skip
    _next_headers(out, p[40:], nexthdr)


_EXT_NAMES = {0: "HOPOPTS", 60: "DSTOPTS", 135: "MH"}


def _next_headers(out: list[str], h: bytes, proto: int) -> None:
    """Walk the extension headers to the transport header (pvefw-logger's order); every
    step consumes at least 8 bytes or stops, so the walk ends."""
    while True:
        if _transport(out, h, proto):
            return
        if proto == 58:
            out.append("PROTO=ICMPV6 ")
            _icmp6(out, h)
            return
        if proto == 43:
            if _ext_too_short(out, h) or _routing(out, h):
                return
            ext_len = (h[1] + 1) * 8
        elif proto == 44:
            if _ext_too_short(out, h):
                return
            if len(h) < 8:
                _invalid_len(out, len(h))
                return
            offlg, ident = struct.unpack_from("!HI", h, 2)
            out.append(f"FRAG={offlg >> 3} ID={ident} ")
            if offlg & 1:
                out.append("MF ")
            ext_len = 8
        elif proto in _EXT_NAMES:
            out.append(f"NEXTHDR={_EXT_NAMES[proto]} ")
            if _ext_too_short(out, h):
                return
            ext_len = (h[1] + 1) * 8
        else:
            out.append(f"PROTO={proto} ")
            return
        proto, h = h[0], h[ext_len:]


def _ext_too_short(out: list[str], h: bytes) -> bool:
    if len(h) < 2 or len(h) < h[1]:
        _invalid_len(out, len(h))
        return True
    return False


def _routing(out: list[str], h: bytes) -> bool:
    """Routing header fields; True when the header is cut short (stop walking)."""
    hdr_len, kind, segments = h[1], h[2] if len(h) > 2 else 0, h[3] if len(h) > 3 else 0
    out.append(f"TYPE={kind} SEGMENTS={segments}")  # no blank: upstream's format
    size = (hdr_len + 1) * 8
    if len(h) < size:
        _invalid_len(out, len(h))
        return True
    if kind == 0 and size < 8 + segments * 16:
        out.append("INVALID=SEGMENTS ")
    elif kind == 2:
        if size < 24:
            _invalid_len(out, len(h))
            return True
        out.append(f"HOME={socket.inet_ntop(socket.AF_INET6, h[8:24])} ")
    return False


_PARAM_NAMES = {0: "HEADER", 1: "NEXTHEADER", 2: "OPTION"}


def _icmp6(out: list[str], h: bytes) -> None:
    if len(h) < 8:
        _invalid_len(out, len(h))
        return
    kind, code = h[0], h[1]
    out.append(f"TYPE={kind} CODE={code} ")
    word = struct.unpack_from("!I", h, 4)[0]
    if kind in (128, 129):
        out.append(f"ID={word >> 16} SEQ={word & 0xFFFF} ")
    elif kind == 134:
        reachable, retransmit = struct.unpack("!II", _at(h, 8, 8))
        out.append(f"HOPLIMIT={h[4]} RA={h[5]:02x} LIFETIME={word & 0xFFFF} "
                   f"REACHABLE={_signed32(reachable)} "
                   f"RETRANSMIT={_signed32(retransmit)} ")
    elif kind == 136:
        out.append(f"NA={word:08x} ")
    elif kind == 137:
        out.append(f"TARGET={socket.inet_ntop(socket.AF_INET6, _at(h, 8, 16))} "
                   f"GATEWAY={socket.inet_ntop(socket.AF_INET6, _at(h, 24, 16))} ")  # fmt: skip
    elif kind == 2:
        out.append(f"MTU={word} ")
    elif kind == 4:
        out.append(f"PARAMETER={_PARAM_NAMES.get(word, word)} ")


def _arp(out: list[str], h: bytes) -> None:
    if len(h) < 28:
        _invalid_len(out, len(h))
        return
    op = struct.unpack_from("!H", h, 6)[0]
    out.append(f"SRC={'.'.join(map(str, h[14:18]))} DST={'.'.join(map(str, h[24:28]))} "
               "PROTO=ARP ")
    if op == 1:
        out.append("REQUEST ")
    elif op == 2:
        out.append("REPLY MAC=" + ":".join(f"{b:02x}" for b in h[8:14]) + " ")
    elif op == 10:
        out.append("NAK ")
    else:
        out.append(f"CODE={op} ")
