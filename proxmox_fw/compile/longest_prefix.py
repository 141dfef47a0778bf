"""Ipset entries with ``!`` (nomatch) exceptions → the exact address set they describe.

pve-firewall loads each ipset as a kernel ``hash:net`` set, where the longest prefix that
contains an address decides: ``10.0.0.0/8``, ``! 10.1.0.0/16``, ``10.1.2.3`` matches
10.1.2.3 and 10.2.0.1 but not 10.1.2.4. nft interval sets have no such rule, so the
decision is taken here, once per set, and the kernel gets plain disjoint intervals.

Addresses are integers of one family. CIDR blocks nest or are disjoint, so one sort and
one sweep with a stack of the blocks open at the current address decide every address:
the innermost open block is the longest prefix. O(n log n) for n entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

Block = tuple[int, int, bool]  # (first address, last address, nomatch): one CIDR block
Interval = tuple[int, int]  # (first address, last address), inclusive


def cidr_blocks(lo: int, hi: int, bits: int) -> Iterator[tuple[int, int]]:
    """The CIDR blocks that exactly cover ``lo..hi`` (how ipset stores a range)."""
    while lo <= hi:
        size = lo & -lo if lo else 1 << bits
        while lo + size - 1 > hi:
            size >>= 1
        yield lo, lo + size - 1
        lo += size


def longest_prefix(blocks: Iterable[Block]) -> tuple[list[Interval], list[Interval]]:
    """(matched, excluded): the addresses whose longest containing block is a plain entry,
    and those where it is a ``!`` entry. Both sorted, disjoint, adjacent runs merged.

    Blocks must be CIDR-aligned (nested or disjoint). Of identical blocks the first one
    given decides (pve-firewall refuses the later duplicate line).
    """
    matched: list[Interval] = []
    excluded: list[Interval] = []

    def emit(lo: int, hi: int, nomatch: bool) -> None:
        if lo > hi:
            return
        out = excluded if nomatch else matched
        if out and out[-1][1] + 1 == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))

    # Outer blocks first at equal start; sorted() is stable, so the first duplicate leads.
    order = sorted(blocks, key=lambda b: (b[0], -b[1]))
    stack: list[Block] = []  # open blocks, innermost last
    pos = 0  # first address not yet emitted (meaningful while the stack is not empty)
    for block in order:
        lo, hi, _ = block
        while stack and stack[-1][1] < lo:
            _, top_hi, top_nomatch = stack.pop()
            emit(pos, top_hi, top_nomatch)
            pos = top_hi + 1
        if stack:
            top = stack[-1]
            if top[0] == lo and top[1] == hi:
                continue  # a duplicate: the first one decides
            emit(pos, lo - 1, top[2])
        stack.append(block)
        pos = lo
    while stack:
        _, top_hi, top_nomatch = stack.pop()
        emit(pos, top_hi, top_nomatch)
        pos = top_hi + 1
    return matched, excluded
