"""Ipset ``!`` entries: the longest prefix containing an address decides (hash:net nomatch).

The sweep is checked against a brute-force oracle that, for every address of a small
space, picks the longest containing entry, on random overlapping prefixes in IPv4 and
IPv6; then the full path from ipset entries to the nft elements of the set pair.
"""

from __future__ import annotations

import ipaddress
import itertools
import random

import pytest

from proxmox_fw.compile.ipsets import Entry, resolve_entries, set_pair
from proxmox_fw.compile.longest_prefix import Block, cidr_blocks, longest_prefix
from proxmox_fw.compile.refs import RefScope
from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import IpEntry, IpRange
from proxmox_fw.nft.expr import Json
from proxmox_fw.parse.fwfile import parse_cluster_fw

# (family bits, window base, window prefix length): every address of the window is checked
WINDOWS = [
    (32, int(ipaddress.IPv4Address("10.1.0.0")), 22),  # 10.1.0.0/22, around a /24
    (128, int(ipaddress.IPv6Address("2001:db8::")), 118),  # 2001:db8::/118, around a /120
]


def oracle(blocks: list[Block], addr: int) -> bool | None:
    """True: matched, False: excluded by a ``!`` entry, None: in no entry."""
    best: Block | None = None
    for b in blocks:
        if b[0] <= addr <= b[1] and (best is None or b[1] - b[0] < best[1] - best[0]):
            best = b  # strictly smaller only: the first of identical blocks decides
    return None if best is None else not best[2]


def lookup(matched: list[tuple[int, int]], excluded: list[tuple[int, int]], addr: int
           ) -> bool | None:
    hits = [True for lo, hi in matched if lo <= addr <= hi]
    hits += [False for lo, hi in excluded if lo <= addr <= hi]
    assert len(hits) <= 1, f"address {addr} in {len(hits)} intervals"
    return hits[0] if hits else None


def random_blocks(rnd: random.Random, bits: int, base: int, window: int, n: int
                  ) -> list[Block]:
    blocks: list[Block] = []
    assert base % (1 << (bits - window)) == 0
    for _ in range(n):
        length = rnd.randint(window, bits)
        size = 1 << (bits - length)
        lo = base + rnd.randrange(0, 1 << (bits - window), size)
        blocks.append((lo, lo + size - 1, rnd.random() < 0.4))
    return blocks


@pytest.mark.parametrize(("bits", "base", "window"), WINDOWS)
@pytest.mark.parametrize("seed", range(40))
def test_sweep_agrees_with_the_oracle_on_every_address(
    bits: int, base: int, window: int, seed: int
) -> None:
    rnd = random.Random(seed)
    blocks = random_blocks(rnd, bits, base, window, rnd.randint(1, 30))
    if seed % 5 == 0:  # duplicates, with either meaning
        blocks += [(lo, hi, rnd.random() < 0.5) for lo, hi, _ in rnd.sample(blocks, 1)]
    matched, excluded = longest_prefix(blocks)
    for addr in range(base - 3, base + (1 << (bits - window)) + 3):
        assert lookup(matched, excluded, addr) == oracle(blocks, addr), hex(addr)
    # maximal runs: sorted, disjoint, no two touching intervals of the same kind
    for runs in (matched, excluded):
        assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(runs))


def test_the_issue_example() -> None:
    v4 = int(ipaddress.IPv4Address("10.0.0.0"))
    blocks: list[Block] = [
        (v4, v4 + (1 << 24) - 1, False),  # 10.0.0.0/8
        (v4 + (1 << 16), v4 + (2 << 16) - 1, True),  # ! 10.1.0.0/16
        (v4 + (1 << 16) + 0x0203, v4 + (1 << 16) + 0x0203, False),  # 10.1.2.3
    ]
    matched, excluded = longest_prefix(blocks)
    a = int(ipaddress.IPv4Address("10.1.2.3"))
    assert matched == [(v4, v4 + (1 << 16) - 1), (a, a), (v4 + (2 << 16), v4 + (1 << 24) - 1)]
    assert excluded == [(v4 + (1 << 16), a - 1), (a + 1, v4 + (2 << 16) - 1)]


def test_a_zero_prefix_covers_the_whole_family() -> None:
    top = (1 << 32) - 1
    matched, excluded = longest_prefix([(0, top, False), (5, 5, True)])
    assert matched == [(0, 4), (6, top)]
    assert excluded == [(5, 5)]


@pytest.mark.parametrize("seed", range(20))
def test_cidr_blocks_cover_a_range_exactly(seed: int) -> None:
    rnd = random.Random(seed)
    lo = rnd.randrange(0, 4096)
    hi = rnd.randrange(lo, 4200)
    blocks = list(cidr_blocks(lo, hi, 32))
    covered = [a for b_lo, b_hi in blocks for a in range(b_lo, b_hi + 1)]
    assert covered == list(range(lo, hi + 1))
    for b_lo, b_hi in blocks:  # each a CIDR block: aligned power of two
        size = b_hi - b_lo + 1
        assert size & (size - 1) == 0 and b_lo % size == 0


def test_cidr_blocks_of_the_whole_space() -> None:
    assert list(cidr_blocks(0, (1 << 32) - 1, 32)) == [(0, (1 << 32) - 1)]


# --- through the set pair: entries as configured → nft elements -------------------------


def expand(elements: list[Json]) -> set[int]:
    out: set[int] = set()
    for e in elements:
        if isinstance(e, str):
            net = ipaddress.ip_network(e)
        elif isinstance(e, dict) and "prefix" in e:
            net = ipaddress.ip_network(f"{e['prefix']['addr']}/{e['prefix']['len']}")
        else:
            assert isinstance(e, dict)
            lo, hi = (int(ipaddress.ip_address(a)) for a in e["range"])
            out.update(range(lo, hi + 1))
            continue
        out.update(range(int(net.network_address), int(net.broadcast_address) + 1))
    return out


def cidr(text: str) -> IpEntry:
    return ipaddress.ip_interface(text)


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize("seed", range(15))
def test_set_pair_holds_exactly_the_matching_addresses(v6: bool, seed: int) -> None:
    rnd = random.Random(seed)
    bits, base, window = WINDOWS[1 if v6 else 0]
    blocks = random_blocks(rnd, bits, base, window, rnd.randint(1, 25))
    mk = ipaddress.IPv6Address if v6 else ipaddress.IPv4Address
    entries: list[Entry] = []
    for lo, hi, neg in blocks:
        length = bits - (hi - lo + 1).bit_length() + 1
        entries.append((cidr(f"{mk(lo)}/{length}"), neg))
    # a range (as SDN DHCP ranges are) and an entry of the other family, which is ignored
    r_lo = base + rnd.randrange(0, 300)
    r_hi = r_lo + rnd.randrange(0, 200)
    entries.append((IpRange(start=mk(r_lo), end=mk(r_hi)), False))
    blocks.extend((lo, hi, False) for lo, hi in cidr_blocks(r_lo, r_hi, bits))
    entries.append((cidr("192.0.2.1" if v6 else "2001:db8::1"), False))
    match, nomatch = set_pair("dc/x", v6, entries)
    assert match.name == f"{'v6' if v6 else 'v4'}-dc/x"
    assert nomatch.name == f"{match.name}-nomatch"
    got_match, got_nomatch = expand(match.elements), expand(nomatch.elements)
    assert not got_match & got_nomatch
    for addr in range(base - 2, base + (1 << (bits - window)) + 2):
        want = oracle(blocks, addr)
        assert (addr in got_match) == (want is True), hex(addr)
        assert (addr in got_nomatch) == (want is False), hex(addr)


def test_issue_example_elements() -> None:
    entries: list[Entry] = [(cidr("10.0.0.0/8"), False), (cidr("10.1.0.0/16"), True),
                            (cidr("10.1.2.3/32"), False)]
    match, nomatch = set_pair("dc/blacklist", False, entries)
    assert match.elements == [
        {"prefix": {"addr": "10.0.0.0", "len": 16}},
        "10.1.2.3",
        {"range": ["10.2.0.0", "10.255.255.255"]},
    ]
    assert nomatch.elements == [{"range": ["10.1.0.0", "10.1.2.2"]},
                                {"range": ["10.1.2.4", "10.1.255.255"]}]


def test_a_repeated_entry_with_the_opposite_meaning_is_a_warning() -> None:
    diags = Diagnostics()
    text = ("[OPTIONS]\nenable: 1\n[ALIASES]\nnet 10.0.0.0/8\n"
            "[IPSET x]\n10.0.0.0/8\n! net\n10.9.0.0/16\n10.9.0.0/16\n")
    cluster = parse_cluster_fw(text, "firewall/cluster.fw", diags)
    entries = resolve_entries(cluster.ipsets["x"], RefScope(cluster), diags)
    assert len(entries) == 4
    warnings = [d for d in diags if d.severity is Severity.WARNING]
    assert [(d.line, "line 6" in d.message) for d in warnings] == [(7, True)]
    match, nomatch = set_pair("dc/x", False, entries)
    assert match.elements == [{"prefix": {"addr": "10.0.0.0", "len": 8}}]
    assert nomatch.elements == []
