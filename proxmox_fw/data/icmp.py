"""ICMP and ICMPv6 type names accepted after ``-icmp-type`` (and legacy ``-p icmp -dport``).

The tables are the union of the iptables names the PVE API writes and the nft names the
Rust daemon accepts. Each name maps to ``(type, code)``; ``code is None`` matches every
code of that type. Lookups ignore case because nothing is gained by rejecting
``Echo-Request`` (the ``TOS-...`` spellings are the only mixed-case names).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

IcmpCode = tuple[int, int | None]

ICMP_TYPES: Final[Mapping[str, IcmpCode]] = MappingProxyType(
    {
        "echo-reply": (0, None),
        "destination-unreachable": (3, None),
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
        "TOS-network-unreachable": (3, 11),
        "TOS-host-unreachable": (3, 12),
        "communication-prohibited": (3, 13),
        "host-precedence-violation": (3, 14),
        "precedence-cutoff": (3, 15),
        "source-quench": (4, None),
        "redirect": (5, None),
        "network-redirect": (5, 0),
        "host-redirect": (5, 1),
        "TOS-network-redirect": (5, 2),
        "TOS-host-redirect": (5, 3),
        "echo-request": (8, None),
        "router-advertisement": (9, None),
        "router-solicitation": (10, None),
        "time-exceeded": (11, None),
        "ttl-zero-during-transit": (11, 0),
        "ttl-zero-during-reassembly": (11, 1),
        "parameter-problem": (12, None),
        "ip-header-bad": (12, 0),
        "required-option-missing": (12, 1),
        "timestamp-request": (13, None),
        "timestamp-reply": (14, None),
        "info-request": (15, None),
        "info-reply": (16, None),
        "address-mask-request": (17, None),
        "address-mask-reply": (18, None),
    }
)

ICMPV6_TYPES: Final[Mapping[str, IcmpCode]] = MappingProxyType(
    {
        "destination-unreachable": (1, None),
        "no-route": (1, 0),
        "communication-prohibited": (1, 1),
        "beyond-scope": (1, 2),
        "address-unreachable": (1, 3),
        "port-unreachable": (1, 4),
        "failed-policy": (1, 5),
        "reject-route": (1, 6),
        "packet-too-big": (2, None),
        "time-exceeded": (3, None),
        "ttl-zero-during-transit": (3, 0),
        "ttl-zero-during-reassembly": (3, 1),
        "parameter-problem": (4, None),
        "bad-header": (4, 0),
        "unknown-header-type": (4, 1),
        "unknown-option": (4, 2),
        "echo-request": (128, None),
        "echo-reply": (129, None),
        "mld-listener-query": (130, None),
        "mld-listener-report": (131, None),
        "mld-listener-done": (132, None),
        "mld-listener-reduction": (132, None),
        "router-solicitation": (133, None),
        "nd-router-solicit": (133, None),
        "router-advertisement": (134, None),
        "nd-router-advert": (134, None),
        "neighbor-solicitation": (135, None),
        "neighbour-solicitation": (135, None),
        "nd-neighbor-solicit": (135, None),
        "neighbor-advertisement": (136, None),
        "neighbour-advertisement": (136, None),
        "nd-neighbor-advert": (136, None),
        "redirect": (137, None),
        "nd-redirect": (137, None),
        "router-renumbering": (138, None),
        "ind-neighbor-solicit": (141, None),
        "ind-neighbor-advert": (142, None),
        "mld2-listener-report": (143, None),
    }
)

# nft's own keywords for the type numbers, for readable output (``icmp type echo-request``).
_NFT_ICMP_NAMES: Final = {
    0: "echo-reply",
    3: "destination-unreachable",
    4: "source-quench",
    5: "redirect",
    8: "echo-request",
    9: "router-advertisement",
    10: "router-solicitation",
    11: "time-exceeded",
    12: "parameter-problem",
    13: "timestamp-request",
    14: "timestamp-reply",
    15: "info-request",
    16: "info-reply",
    17: "address-mask-request",
    18: "address-mask-reply",
}
_NFT_ICMPV6_NAMES: Final = {
    1: "destination-unreachable",
    2: "packet-too-big",
    3: "time-exceeded",
    4: "parameter-problem",
    128: "echo-request",
    129: "echo-reply",
    130: "mld-listener-query",
    131: "mld-listener-report",
    132: "mld-listener-done",
    133: "nd-router-solicit",
    134: "nd-router-advert",
    135: "nd-neighbor-solicit",
    136: "nd-neighbor-advert",
    137: "nd-redirect",
    138: "router-renumbering",
    141: "ind-neighbor-solicit",
    142: "ind-neighbor-advert",
    143: "mld2-listener-report",
}

_FOLDED: Final = {
    False: {k.lower(): v for k, v in ICMP_TYPES.items()},
    True: {k.lower(): v for k, v in ICMPV6_TYPES.items()},
}


def icmp_type_by_name(name: str, v6: bool) -> IcmpCode | None:
    """``(type, code)`` for an ICMP (``v6=False``) or ICMPv6 type name, else None."""
    return _FOLDED[v6].get(name.lower())


def nft_icmp_type_name(type_: int, v6: bool) -> str | None:
    """The nft keyword for a type number, if nft has one."""
    return (_NFT_ICMPV6_NAMES if v6 else _NFT_ICMP_NAMES).get(type_)
