"""Conntrack NEW and DESTROY events from ctnetlink, decoded into :class:`CtEvent`."""

from __future__ import annotations

import errno
from collections.abc import Iterator

from proxmox_fw.logger.ctformat import CtEvent, Tuple
from proxmox_fw.nfnetlink import NfnlSocket, attrs, be, messages

NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_GET_STATS = 0, 2, 5
NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY = 1, 3
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
(CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO, CTA_HELP, _NAT_SRC, CTA_TIMEOUT,
 CTA_MARK, CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY, CTA_USE) = range(1, 12)  # fmt: skip
CTA_SECMARK, CTA_ZONE, CTA_SECCTX, CTA_TIMESTAMP = 17, 18, 19, 20
CTA_TUPLE_IP, CTA_TUPLE_PROTO, CTA_TUPLE_ZONE = 1, 2, 3
CTA_PROTOINFO_TCP, CTA_PROTOINFO_DCCP, CTA_PROTOINFO_SCTP = 1, 2, 3

GROUPS = (1 << (NFNLGRP_CONNTRACK_NEW - 1)) | (1 << (NFNLGRP_CONNTRACK_DESTROY - 1))


def _tuple(raw: bytes | None, counters: bytes | None) -> Tuple:
    a = attrs(raw or b"")
    ip = attrs(a.get(CTA_TUPLE_IP, b""))
    proto = attrs(a.get(CTA_TUPLE_PROTO, b""))
    num = proto.get(1)
    c = attrs(counters or b"")
    packets = c.get(1) or c.get(3)
    nbytes = c.get(2) or c.get(4)
    icmp = (5, 6, 4) if num == b"\x01" else (8, 9, 7)
    return Tuple(
        src=ip.get(1) or ip.get(3) or b"",
        dst=ip.get(2) or ip.get(4) or b"",
        proto=num[0] if num else None,
        sport=be(proto.get(2)),
        dport=be(proto.get(3)),
        icmp_type=be(proto.get(icmp[0])),
        icmp_code=be(proto.get(icmp[1])),
        icmp_id=be(proto.get(icmp[2])),
        zone=be(a[CTA_TUPLE_ZONE]) if CTA_TUPLE_ZONE in a else None,
        packets=be(packets) if packets is not None else None,
        bytes=be(nbytes) if nbytes is not None else None,
    )


def _opt(a: dict[int, bytes], key: int) -> int | None:
    return be(a[key]) if key in a else None


def _string(raw: bytes | None, key: int = 1) -> str | None:
    if raw is None:
        return None
    value = attrs(raw).get(key)
    return None if value is None else value.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def parse_event(kind: str, family: int, body: memoryview | bytes) -> CtEvent:
    """A ctnetlink message body (after the nfgenmsg)."""
    a = attrs(body)
    info = attrs(a.get(CTA_PROTOINFO, b""))
    states = [attrs(info[k]).get(1) if k in info else None
              for k in (CTA_PROTOINFO_TCP, CTA_PROTOINFO_SCTP, CTA_PROTOINFO_DCCP)]  # fmt: skip
    stamps = attrs(a.get(CTA_TIMESTAMP, b""))
    return CtEvent(
        kind=kind,
        family=family,
        orig=_tuple(a.get(CTA_TUPLE_ORIG), a.get(CTA_COUNTERS_ORIG)),
        reply=_tuple(a.get(CTA_TUPLE_REPLY), a.get(CTA_COUNTERS_REPLY)),
        timeout=_opt(a, CTA_TIMEOUT),
        tcp_state=states[0][0] if states[0] else None,
        sctp_state=states[1][0] if states[1] else None,
        dccp_state=states[2][0] if states[2] else None,
        status=_opt(a, CTA_STATUS),
        mark=_opt(a, CTA_MARK),
        secmark=_opt(a, CTA_SECMARK),
        secctx=_string(a.get(CTA_SECCTX)),
        zone=_opt(a, CTA_ZONE),
        start_ns=_opt(stamps, 1),
        stop_ns=_opt(stamps, 2),
        helper=_string(a.get(CTA_HELP)),
        use=_opt(a, CTA_USE),
    )


class ConntrackEvents:
    """Subscribed to the NEW and DESTROY event groups of this namespace until closed."""

    def __init__(self) -> None:
        self.nl = NfnlSocket(groups=GROUPS)
        # Joining the groups only asks for nf_conntrack_netlink in the background, and no
        # event is sent before it is loaded; a request is answered only once it is there.
        try:
            self.nl.request((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS, 0, 0)
        except OSError:
            self.nl.close()
            raise
        self.nl.sock.setblocking(False)

    def fileno(self) -> int:
        return self.nl.fileno()

    def receive(self, max_reads: int = 64) -> tuple[list[CtEvent], bool]:
        """Queued events, and whether the kernel reported lost ones (ENOBUFS)."""
        events: list[CtEvent] = []
        overrun = False
        for _ in range(max_reads):
            try:
                data = self.nl.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as err:
                if err.errno != errno.ENOBUFS:
                    raise
                overrun = True
                continue
            events.extend(self._parse(data))
        return events, overrun

    @staticmethod
    def _parse(data: bytes) -> Iterator[CtEvent]:
        for mtype, flags, _seq, body in messages(data):
            if mtype >> 8 != NFNL_SUBSYS_CTNETLINK or len(body) < 4:
                continue
            msg = mtype & 0xFF
            if msg == IPCTNL_MSG_CT_NEW:
                kind = "NEW" if flags & (NLM_F_CREATE | NLM_F_EXCL) else "UPDATE"
            elif msg == IPCTNL_MSG_CT_DELETE:
                kind = "DESTROY"
            else:
                continue
            yield parse_event(kind, body[0], body[4:])

    def close(self) -> None:
        self.nl.close()

