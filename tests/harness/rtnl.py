"""The few rtnetlink requests probes make per packet, sent without an ``ip`` process.

Probes move addresses, host routes and neighbour entries between namespaces all the
time; under the full-kernel VM (TCG, ~30x slower) an ``ip`` process per change would
dominate the suite's run time. An rtnetlink socket made inside a namespace talks to that
namespace from any thread, so these are plain socket writes.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import struct
import time

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_CREATE = 0x100, 0x400
NLMSG_ERROR = 2
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTN_LOCAL = 2
RTM_NEWNEIGH = 28
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_NODAD, IFA_F_NOPREFIXROUTE = 0x02, 0x200
RTA_DST, RTA_OIF = 1, 4
RT_TABLE_MAIN, RTPROT_STATIC, RTN_UNICAST = 254, 4, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST = 0, 253, 254
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _family(ip: Address) -> int:
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


class Rtnl:
    """One rtnetlink socket of a namespace (create it with ``NetNs.socket``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.bind((0, 0))
        self._seq = itertools.count(1)

    def _request(self, mtype: int, flags: int, body: bytes) -> bytes:
        """Send one request; return the body of its (first) answer, b"" for a bare ack."""
        seq = next(self._seq)
        header = struct.pack("=IHHII", 16 + len(body), mtype, NLM_F_REQUEST | NLM_F_ACK | flags,
                             seq, 0)  # fmt: skip
        self.sock.send(header + body)
        answer = b""
        while True:
            data = self.sock.recv(65536)
            pos = 0
            while pos + 16 <= len(data):
                length, kind, _flags, got_seq, _pid = struct.unpack_from("=IHHII", data, pos)
                if got_seq == seq and kind == NLMSG_ERROR:
                    code = struct.unpack_from("=i", data, pos + 16)[0]
                    if code:
                        raise OSError(-code, f"rtnetlink request {mtype}: {os.strerror(-code)}")
                    return answer
                if got_seq == seq and not answer:
                    answer = data[pos + 16 : pos + length]
                pos += (length + 3) & ~3

    def addr(self, add: bool, ifindex: int, ip: Address) -> None:
        """Add (or replace) / delete a host address (/32 or /128), no DAD, no prefix route."""
        plen = ip.max_prefixlen
        flags = IFA_F_NOPREFIXROUTE | (IFA_F_NODAD if ip.version == 6 else 0)
        body = struct.pack("=BBBBI", _family(ip), plen, 0, RT_SCOPE_UNIVERSE, ifindex)
        body += _attr(IFA_LOCAL, ip.packed) + _attr(IFA_ADDRESS, ip.packed)
        body += _attr(IFA_FLAGS, struct.pack("=I", flags))
        if add:
            self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, body)
        else:
            self._request(RTM_DELADDR, 0, body)

    def host_route(self, ifindex: int, ip: Address) -> None:
        """``ip route replace <ip>/<max> dev <ifindex>``."""
        scope = RT_SCOPE_LINK if ip.version == 4 else RT_SCOPE_UNIVERSE
        body = struct.pack("=BBBBBBBBI", _family(ip), ip.max_prefixlen, 0, 0, RT_TABLE_MAIN,
                           RTPROT_STATIC, scope, RTN_UNICAST, 0)  # fmt: skip
        body += _attr(RTA_DST, ip.packed) + _attr(RTA_OIF, struct.pack("=I", ifindex))
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body)

    def route_type(self, ip: Address) -> int:
        """The type (RTN_LOCAL, RTN_UNICAST, ...) of the route the kernel picks for ``ip``."""
        body = struct.pack("=BBBBBBBBI", _family(ip), ip.max_prefixlen, 0, 0, 0, 0, 0, 0, 0)
        body += _attr(RTA_DST, ip.packed)
        try:
            answer = self._request(RTM_GETROUTE, 0, body)
        except OSError:
            return -1  # no route at all (ENETUNREACH, EHOSTUNREACH)
        return answer[7] if len(answer) >= 8 else -1

    def wait_local(self, ip: Address, timeout: float) -> None:
        """Wait until ``ip`` routes locally.

        An IPv6 address, even with IFA_F_NODAD, gets its local route from a work queue a
        moment after the request returns; a packet arriving before that is not for us.
        """
        deadline = time.monotonic() + timeout
        while self.route_type(ip) != RTN_LOCAL:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ip} never became a local address")
            time.sleep(0.0005)

    def neighbour(self, ifindex: int, ip: Address, mac: str) -> None:
        """``ip neigh replace <ip> lladdr <mac> dev <ifindex> nud permanent``."""
        body = struct.pack("=BxxxiHBB", _family(ip), ifindex, NUD_PERMANENT, 0, 0)
        body += _attr(NDA_DST, ip.packed) + _attr(NDA_LLADDR, bytes.fromhex(mac.replace(":", "")))
        self._request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body)

    def close(self) -> None:
        self.sock.close()
