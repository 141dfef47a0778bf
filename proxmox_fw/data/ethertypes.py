"""Ethernet protocol names for the guest option ``layer2_protocols`` (ebtables ``-p``).

The names, aliases and numbers of Debian's ``/etc/ethertypes`` (netbase), which
pve-firewall checks the option against; bundled so that compiling reads no system file.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# Name as in /etc/ethertypes -> (number, aliases)
_TABLE: Final = {
    "IPv4": (0x0800, ('ip', 'ip4')),
    "X25": (0x0805, ()),
    "ARP": (0x0806, ('ether-arp',)),
    "FR_ARP": (0x0808, ()),
    "BPQ": (0x08FF, ()),
    "TRILL": (0x22F3, ()),
    "L2-IS-IS": (0x22F4, ()),
    "TEB": (0x6558, ()),
    "RAW_FR": (0x6559, ()),
    "RARP": (0x8035, ()),
    "ATALK": (0x809B, ()),
    "AARP": (0x80F3, ()),
    "802_1Q": (0x8100, ('8021q', '1q', '802.1q', 'dot1q')),
    "IPX": (0x8137, ()),
    "NetBEUI": (0x8191, ()),
    "IPv6": (0x86DD, ('ip6',)),
    "PPP": (0x880B, ()),
    "MPLS": (0x8847, ()),
    "MPLS_MULTI": (0x8848, ()),
    "ATMMPOA": (0x884C, ()),
    "PPP_DISC": (0x8863, ()),
    "PPP_SES": (0x8864, ()),
    "ATMFATE": (0x8884, ()),
    "EAPOL": (0x888E, ()),
    "S-TAG": (0x88A8, ()),
    "EAP_PREAUTH": (0x88C7, ()),
    "LLDP": (0x88CC, ()),
    "MACSEC": (0x88E5, ()),
    "PBB": (0x88E7, ('macinmac',)),
    "MVRP": (0x88F5, ()),
    "PTP": (0x88F7, ()),
    "FCOE": (0x8906, ()),
    "FIP": (0x8914, ()),
    "ROCE": (0x8915, ()),
    "LoWPAN": (0xA0ED, ()),
}

# Every name and alias, lowercased (ebtables compares them ignoring case) -> number.
ETHERTYPES: Final = MappingProxyType({
    key.lower(): number
    for name, (number, aliases) in _TABLE.items()
    for key in (name, *aliases)
})


def lookup_ethertype(text: str) -> int | None:
    """A name or alias (any case), or a hexadecimal number 0600-FFFF as ebtables takes
    them (``0x8100`` or ``8100``); None if it is neither."""
    number = ETHERTYPES.get(text.lower())
    if number is not None:
        return number
    digits = text[2:] if text[:2].lower() == "0x" else text
    if 1 <= len(digits) <= 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
        value = int(digits, 16)
        return value if value >= 0x0600 else None
    return None
