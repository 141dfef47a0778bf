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
from typing import Any

from proxmox_fw.nft.kernelstate import KernelStateError, read_generation


def ruleset_generation() -> int | None:
    """The current generation id of this network namespace's ruleset, or None."""
    try:
        return read_generation()
    except KernelStateError:
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
