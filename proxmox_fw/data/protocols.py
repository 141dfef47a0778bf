"""IP protocol names and numbers for ``-p``.

The built-in names are the ones nft knows and the firewall treats specially; any other
name is looked up in ``/etc/protocols`` (as Perl does), and any number 0-255 is valid.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Final

from proxmox_fw.limits import ascii_uint
from proxmox_fw.textlines import split_lines

ETC_PROTOCOLS: Final = Path("/etc/protocols")

# Canonical (nft) name -> number, plus the accepted aliases.
BUILTIN_PROTOCOLS: Final = MappingProxyType(
    {
        "icmp": 1,
        "tcp": 6,
        "udp": 17,
        "dccp": 33,
        "icmpv6": 58,
        "sctp": 132,
        "udplite": 136,
    }
)
_BUILTIN_ALIASES: Final = {"ipv6-icmp": "icmpv6"}

# Protocols whose header starts with 16-bit source and destination ports.
PORT_PROTOCOLS: Final = frozenset({6, 17, 33, 132, 136})


def _parse_protocols_file(text: str) -> tuple[dict[str, int], dict[int, str]]:
    by_name: dict[str, int] = {}
    by_number: dict[int, str] = {}
    for raw in split_lines(text):
        fields = raw.split("#", 1)[0].split()
        number = ascii_uint(fields[1], 0, 255) if len(fields) >= 2 else None
        if number is None:
            continue
        by_number.setdefault(number, fields[0].lower())
        for name in (fields[0], *fields[2:]):
            by_name.setdefault(name.lower(), number)
    return by_name, by_number


@cache
def _system_protocols(path: Path = ETC_PROTOCOLS) -> tuple[dict[str, int], dict[int, str]]:
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return {}, {}
    return _parse_protocols_file(text)


def lookup_protocol(value: str) -> tuple[str, int] | None:
    """``(canonical name, number)`` for a ``-p`` value, or None if it is unknown.

    Numbers name themselves with the built-in or /etc/protocols name when there is one,
    so ``-p 6`` and ``-p tcp`` compare equal.
    """
    key = value.lower()
    key = _BUILTIN_ALIASES.get(key, key)
    by_name = _system_protocols()[0]
    if key.isdecimal():
        number = ascii_uint(key, 0, 255)
        return None if number is None else (protocol_name(number), number)
    if key in BUILTIN_PROTOCOLS:
        return key, BUILTIN_PROTOCOLS[key]
    if key in by_name:
        number = by_name[key]
        return protocol_name(number), number
    return None


def protocol_name(number: int) -> str:
    """The canonical name of a protocol number (the number itself if it has none)."""
    for name, num in BUILTIN_PROTOCOLS.items():
        if num == number:
            return name
    return _system_protocols()[1].get(number, str(number))
