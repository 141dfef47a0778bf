"""The kernel's nftables ruleset generation, and a cheap shape of our tables.

Every committed nftables transaction (ours or anyone's) bumps the generation id, so
reading it (one small netlink request, ``NFT_MSG_GETGEN``) tells the daemon in each poll
whether the ruleset could have changed at all. Only then does it list our tables — tersely,
without set elements — and compare their shape with what it applied; a hand edit inside
our tables (a flushed chain, a deleted rule) is repaired like upstream's re-apply every
five seconds would, without that cost when nothing happened.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
from typing import Any

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 15
NFT_MSG_GETGEN = 16
NFTA_GEN_ID = 1
NLM_F_REQUEST = 0x1
NLMSG_ERROR = 2


def ruleset_generation() -> int | None:
    """The current generation id of this network namespace's ruleset, or None."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.settimeout(2.0)
            seq = int.from_bytes(os.urandom(4), "little")
            nfgen = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)  # family, version, res_id
            hdr = struct.pack("=IHHII", 16 + len(nfgen),
                              (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST,
                              seq, 0)
            sock.send(hdr + nfgen)
            data = sock.recv(65536)
    except OSError:
        return None
    return _parse_gen(data, seq)


def _parse_gen(data: bytes, seq: int) -> int | None:
    pos = 0
    while pos + 16 <= len(data):
        length, kind, _flags, rseq, _pid = struct.unpack_from("=IHHII", data, pos)
        if length < 16:
            return None
        if rseq == seq and kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN:
            attr = pos + 16 + 4  # after nlmsghdr and nfgenmsg
            end = pos + length
            while attr + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, attr)
                if alen < 4:
                    break
                if atype & 0x3FFF == NFTA_GEN_ID and alen >= 8:
                    return int.from_bytes(data[attr + 4 : attr + 8], "big")
                attr += (alen + 3) & ~3
            return None
        if kind == NLMSG_ERROR:
            return None
        pos += (length + 3) & ~3
    return None


def shape_digest(listing: Any) -> str:
    """A digest of a terse JSON listing with what legitimately changes removed: rule
    counters, set elements the kernel adds itself (synflood limits) and handles of
    nothing but the table (handles of rules stay: they change when rules are replaced)."""
    items = listing.get("nftables", []) if isinstance(listing, dict) else []
    cleaned: list[Any] = []
    for item in items:
        if not isinstance(item, dict) or "metainfo" in item:
            continue
        cleaned.append(_strip(item))
    return hashlib.sha256(json.dumps(cleaned, sort_keys=True).encode()).hexdigest()


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, val in value.items():
            if key == "counter":
                continue  # packet/byte counts move with traffic
            if key == "elem":
                continue  # set contents: dynamic sets change without a transaction
            out[key] = _strip(val)
        return out
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and "counter" in v)]
    return value
