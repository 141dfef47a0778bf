"""The log prefix rule pvefw-logger applies to every NFLOG prefix (admin guide §13.9).

A prefix ``:<digits>:<0-7>:<chain>: <rest>`` gives the line's VMID, log level and chain;
the chain is 1-28 characters without ``:`` or space. Any other prefix is kept whole as
the rest and the line is attributed to VMID 0, level 6 (info), chain ``-``. The compiler
must emit prefixes that pass (its tests parse them with this function), and the daemon
writes lines with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# pvefw-logger's MAX_CHAIN_LEN: a longer chain name fails the rule.
MAX_CHAIN_LEN: Final = 28
FALLBACK_VMID: Final = 0
FALLBACK_LEVEL: Final = 6
FALLBACK_CHAIN: Final = "-"


@dataclass(frozen=True, slots=True)
class Prefix:
    vmid: int
    level: int
    chain: str
    rest: str
    parsed: bool  # False: the fallback attribution (0, 6, "-") with the whole prefix as rest


def parse_prefix(prefix: str) -> Prefix:
    """Split an NFLOG prefix as pvefw-logger does, fallback included."""
    fallback = Prefix(FALLBACK_VMID, FALLBACK_LEVEL, FALLBACK_CHAIN, prefix, parsed=False)
    if not prefix.startswith(":"):
        return fallback
    i = 1
    vmid = 0
    # Zero digits are allowed and the C accumulator is a 32-bit unsigned int.
    while i < len(prefix) and "0" <= prefix[i] <= "9":
        vmid = (vmid * 10 + ord(prefix[i]) - ord("0")) & 0xFFFFFFFF
        i += 1
    if prefix[i:i + 1] != ":" or not "0" <= prefix[i + 1:i + 2] <= "7" \
            or prefix[i + 2:i + 3] != ":":
        return fallback
    level = int(prefix[i + 1])
    start = end = i + 3
    while end < len(prefix) and prefix[end] not in ": " and prefix[end] != "\0":
        end += 1
    chain = prefix[start:end]
    if prefix[end:end + 2] != ": " or not 1 <= len(chain) <= MAX_CHAIN_LEN:
        return fallback
    return Prefix(vmid, level, chain, prefix[end + 2:], parsed=True)
