"""Raw ICMP/ICMPv6 probe messages: type names, building, and reading what comes back.

The type names are the iptables/nft spellings the pve-sim cases use in ``dport``; the
table is the harness's own (not the product's), so a wrong entry in the product cannot
hide itself in the test.
"""

from __future__ import annotations

import ipaddress
import struct

from tests.harness.nftrace import ECHO_REPLY, ECHO_REQUEST, ICMP_ERRORS, ICMPV6_ERRORS, Flow

# A port no default rule of the firewall opens, for cases that name none.
DEFAULT_DPORT = 9

ICMP_NAMES: dict[str, tuple[int, int]] = {
    "echo-reply": (0, 0),
    "destination-unreachable": (3, 0),
    "network-unreachable": (3, 0),
    "host-unreachable": (3, 1),
    "protocol-unreachable": (3, 2),
    "port-unreachable": (3, 3),
    "fragmentation-needed": (3, 4),
    "source-route-failed": (3, 5),
    "network-unknown": (3, 6),
    "host-unknown": (3, 7),
    "network-prohibited": (3, 9),
    "host-prohibited": (3, 10),
    "communication-prohibited": (3, 13),
    "source-quench": (4, 0),
    "redirect": (5, 0),
    "echo-request": (8, 0),
    "router-advertisement": (9, 0),
    "router-solicitation": (10, 0),
    "time-exceeded": (11, 0),
    "parameter-problem": (12, 0),
    "timestamp-request": (13, 0),
    "timestamp-reply": (14, 0),
    "address-mask-request": (17, 0),
    "address-mask-reply": (18, 0),
}
ICMPV6_NAMES: dict[str, tuple[int, int]] = {
    "destination-unreachable": (1, 0),
    "no-route": (1, 0),
    "communication-prohibited": (1, 1),
    "address-unreachable": (1, 3),
    "port-unreachable": (1, 4),
    "packet-too-big": (2, 0),
    "time-exceeded": (3, 0),
    "parameter-problem": (4, 0),
    "echo-request": (128, 0),
    "echo-reply": (129, 0),
    "router-solicitation": (133, 0),
    "router-advertisement": (134, 0),
    "neighbor-solicitation": (135, 0),
    "neighbour-solicitation": (135, 0),
    "neighbor-advertisement": (136, 0),
    "neighbour-advertisement": (136, 0),
    "redirect": (137, 0),
}
PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}


def icmp_type_code(value: int | str | None, v6: bool) -> tuple[int, int]:
    """ICMP type (and code) from a number, ``type/code`` or a name; default echo-request."""
    if value is None:
        return (ECHO_REQUEST[6 if v6 else 4], 0)
    if isinstance(value, int):
        return (value, 0)
    text = value.strip()
    if "/" in text:
        t, c = text.split("/", 1)
        return (int(t), int(c))
    if text.isdigit():
        return (int(text), 0)
    table = ICMPV6_NAMES if v6 else ICMP_NAMES
    try:
        return table[text.lower()]
    except KeyError:
        raise ValueError(f"unknown {'icmpv6' if v6 else 'icmp'} type {value!r}") from None


# -- packets -----------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp_message(flow: Flow, code: int, token: bytes) -> bytes:
    """An ICMP(v6) message of the probe's type; errors quote a plausible inner packet."""
    v6 = flow.version == 6
    errors = ICMPV6_ERRORS if v6 else ICMP_ERRORS
    if flow.echo or flow.icmp_type == ECHO_REPLY[flow.version]:
        rest = struct.pack("!HH", flow.icmp_id, 1)
        body = token
    elif flow.icmp_type in errors:
        rest = b"\0" * 4
        inner_udp = struct.pack("!HHHH", flow.sport or 40000, DEFAULT_DPORT, 8 + len(token), 0)
        src = ipaddress.ip_address(flow.dst).packed
        dst = ipaddress.ip_address(flow.src).packed
        if v6:
            inner_ip = struct.pack("!IHBB", 6 << 28, 8 + len(token), 17, 64) + src + dst
        else:
            inner_ip = (
                struct.pack("!BBHHHBBH", 0x45, 0, 28 + len(token), flow.icmp_id, 0, 64, 17, 0)
                + src
                + dst
            )
        body = inner_ip + inner_udp + token
    else:
        rest = struct.pack("!HH", flow.icmp_id, 0)
        body = token
    msg = struct.pack("!BBH", flow.icmp_type, code, 0) + rest + body
    if not v6:  # the kernel fills in the ICMPv6 checksum itself
        csum = checksum(msg)
        msg = msg[:2] + struct.pack("!H", csum) + msg[4:]
    return msg


def icmp_view(data: bytes, version: int, peer: str) -> tuple[str, bytes] | None:
    """(source address, ICMP message) from what a raw socket returned."""
    if version == 4:
        if len(data) < 20:
            return None
        ihl = (data[0] & 0x0F) * 4
        return str(ipaddress.IPv4Address(data[12:16])), data[ihl:]
    return peer, data


def quotes(msg: bytes, flow: Flow) -> bool:
    """Whether an ICMP error message quotes a packet of ``flow`` (this probe's, not an
    earlier one's: an ICMP probe's type and echo id are checked too)."""
    inner = msg[8:]
    if flow.version == 4 and len(inner) >= 20 and inner[0] >> 4 == 4:
        src = str(ipaddress.IPv4Address(inner[12:16]))
        dst = str(ipaddress.IPv4Address(inner[16:20]))
        proto, l4 = inner[9], inner[(inner[0] & 0x0F) * 4 :]
    elif flow.version == 6 and len(inner) >= 40 and inner[0] >> 4 == 6:
        src = str(ipaddress.IPv6Address(inner[8:24]))
        dst = str(ipaddress.IPv6Address(inner[24:40]))
        proto, l4 = inner[6], inner[40:]
    else:
        return False
    if (src, dst, proto) != (flow.src, flow.dst, flow.proto):
        return False
    if flow.proto in (1, 58):
        if len(l4) < 6 or l4[0] != flow.icmp_type:
            return False
        return not flow.echo or struct.unpack_from("!H", l4, 4)[0] == flow.icmp_id
    return True
