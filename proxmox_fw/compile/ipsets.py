"""Ipsets → nft set pairs (``v4-<base>``/``v6-<base>`` and their ``-nomatch`` twins).

The pair holds the ipset's meaning as pve-firewall's ``hash:net`` sets had it (the longest
prefix containing an address decides, see ``longest_prefix``): the set holds exactly the
addresses that match, the ``-nomatch`` twin the addresses a ``!`` entry takes out. They are
disjoint, so the rules' ``@set`` and ``!= @set-nomatch`` pair means the same as ``@set``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from proxmox_fw.compile.longest_prefix import Block, cidr_blocks, longest_prefix
from proxmox_fw.compile.memo import CompileMemo, Inputs
from proxmox_fw.compile.refs import RefScope
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import (
    AliasRef,
    IpAddr,
    Ipam,
    IpEntry,
    IpRange,
    Ipset,
    Sdn,
)
from proxmox_fw.model.address import Cidr
from proxmox_fw.nft import expr as x
from proxmox_fw.nft.objects import Set, Table

Entry = tuple[IpEntry, bool]  # (address, nomatch)


def element(entry: IpEntry) -> object:
    if isinstance(entry, IpRange):
        return x.range_(str(entry.start), str(entry.end))
    return x.network(entry)


def _blocks(entry: IpEntry, nomatch: bool, bits: int) -> list[Block]:
    if isinstance(entry, IpRange):
        return [(lo, hi, nomatch)
                for lo, hi in cidr_blocks(int(entry.start), int(entry.end), bits)]
    net = entry.network  # num_addresses is slow: it builds the broadcast address
    lo = int(net.network_address)
    return [(lo, lo + (1 << (bits - net.prefixlen)) - 1, nomatch)]


def set_pair(
    base: str, v6: bool, entries: Iterable[Entry], comment: str | None = None
) -> list[Set]:
    """The match set and its nomatch twin for one family; always both, even when empty,
    so rules can reference them."""
    version, bits = (6, 128) if v6 else (4, 32)
    blocks: list[Block] = []
    for entry, neg in entries:
        if (entry.start if isinstance(entry, IpRange) else entry).version == version:
            blocks.extend(_blocks(entry, neg, bits))
    matched, excluded = longest_prefix(blocks)
    typ = "ipv6_addr" if v6 else "ipv4_addr"
    pre = "v6" if v6 else "v4"
    return [
        Set(f"{pre}-{base}", typ, ["interval"], True,
            [x.interval(lo, hi, v6) for lo, hi in matched], comment),
        Set(f"{pre}-{base}-nomatch", typ, ["interval"], True,
            [x.interval(lo, hi, v6) for lo, hi in excluded], comment),
    ]


def add_sets(table: Table, base: str, entries: list[Entry], comment: str | None = None) -> None:
    for v6 in (False, True):
        for s in set_pair(base, v6, entries, comment):
            table.sets[s.name] = s


def cluster_ipset_sets(table: Table, key: str, ipset: Ipset, scope: RefScope,
                       diags: Diagnostics, memo: CompileMemo) -> None:
    """The sets of cluster ipset ``key`` (``dc/<key>``): a piece of its own, since a
    100k-entry blacklist is the costliest thing to compile. It reads the ipset and the
    cluster aliases, both in cluster.fw."""
    memo.piece(("dc-ipset", key), Inputs(same=(ipset, scope.cluster)), table, diags,
               lambda t, d: add_sets(t, f"dc/{key}", resolve_entries(ipset, scope, d),
                                     ipset.comment))


def resolve_entries(ipset: Ipset, scope: RefScope, diags: Diagnostics) -> list[Entry]:
    """Ipset entries with alias references replaced by their address; an entry whose alias
    does not exist costs that entry only."""
    out: list[Entry] = []
    first: dict[object, tuple[bool, int]] = {}  # network -> (nomatch, line) of its first entry
    check = any(e.nomatch for e in ipset.entries)  # only a `!` entry can contradict another
    for e in ipset.entries:
        addr = e.address
        if isinstance(addr, AliasRef):
            alias = scope.alias(addr)
            if alias is None:
                diags.error(e.origin.file, e.origin.line,
                            f"ipset '{ipset.name}': no such alias '{addr}', entry skipped")
                continue
            cidr: Cidr = alias.cidr
        else:
            cidr = addr
        earlier = first.setdefault(cidr.network, (e.nomatch, e.origin.line)) if check else None
        if earlier is not None and earlier[0] != e.nomatch:
            diags.warning(
                e.origin.file, e.origin.line,
                f"ipset '{ipset.name}': {'! ' if e.nomatch else ''}{cidr.network} repeats "
                f"the entry of line {earlier[1]} with the opposite meaning; that first entry "
                "decides (pve-firewall refuses the repeated line)")
        out.append((cidr, e.nomatch))
    return out


def sdn_entries(sdn: Sdn, ipam: Ipam) -> dict[str, list[Entry]]:
    """The ``+sdn/...`` ipsets (notes §7.2–7.3): per vnet -all/-gateway/-no-gateway/-dhcp, and
    ``guest-ipam-<vmid>`` per guest known to the PVE IPAM. Names are lowercased."""
    sets: dict[str, list[Entry]] = {}
    for name in sorted(sdn.vnets):
        vnet = sdn.vnets[name]
        key = name.lower()
        all_: list[Entry] = []
        gw: list[Entry] = []
        dhcp: list[Entry] = []
        for sub in vnet.subnets:
            all_.append((sub.cidr, False))
            if sub.gateway is not None:
                gw.append((_host(sub.gateway), False))
            dhcp.extend((r, False) for r in sub.dhcp_ranges)
        sets[f"{key}-all"] = all_
        sets[f"{key}-gateway"] = gw
        sets[f"{key}-no-gateway"] = all_ + [(e, True) for e, _ in gw]
        sets[f"{key}-dhcp"] = dhcp
    for vmid in sorted(ipam.guest_ips):
        sets[f"guest-ipam-{vmid}"] = [(_host(ip), False) for ip in ipam.guest_ips[vmid]]
    return sets


def _host(ip: IpAddr) -> Cidr:
    return ipaddress.ip_interface(ip)
