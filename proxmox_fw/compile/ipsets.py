"""Ipsets → nft set pairs (``v4-<base>``/``v6-<base>`` and their ``-nomatch`` twins)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from proxmox_fw.compile.refs import RefScope
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import (
    AliasRef,
    Family,
    IpAddr,
    Ipam,
    IpEntry,
    IpRange,
    Ipset,
    Sdn,
    entry_family,
)
from proxmox_fw.model.address import Cidr
from proxmox_fw.nft import expr as x
from proxmox_fw.nft.objects import Set, Table

Entry = tuple[IpEntry, bool]  # (address, nomatch)


def element(entry: IpEntry) -> object:
    if isinstance(entry, IpRange):
        return x.range_(str(entry.start), str(entry.end))
    return x.network(entry)


def set_pair(
    base: str, v6: bool, entries: Iterable[Entry], comment: str | None = None
) -> list[Set]:
    """The match set and its nomatch twin for one family; always both, even when empty,
    so rules can reference them."""
    family = Family.V6 if v6 else Family.V4
    typ = "ipv6_addr" if v6 else "ipv4_addr"
    match: list[object] = []
    nomatch: list[object] = []
    for entry, neg in entries:
        if entry_family(entry) is family:
            (nomatch if neg else match).append(element(entry))
    pre = "v6" if v6 else "v4"
    return [
        Set(f"{pre}-{base}", typ, ["interval"], True, match, comment),
        Set(f"{pre}-{base}-nomatch", typ, ["interval"], True, nomatch, comment),
    ]


def add_sets(table: Table, base: str, entries: list[Entry], comment: str | None = None) -> None:
    for v6 in (False, True):
        for s in set_pair(base, v6, entries, comment):
            table.sets[s.name] = s


def resolve_entries(ipset: Ipset, scope: RefScope, diags: Diagnostics) -> list[Entry]:
    """Ipset entries with alias references replaced by their address; an entry whose alias
    does not exist costs that entry only."""
    out: list[Entry] = []
    for e in ipset.entries:
        addr = e.address
        if isinstance(addr, AliasRef):
            alias = scope.alias(addr)
            if alias is None:
                diags.error(e.origin.file, e.origin.line,
                            f"ipset '{ipset.name}': no such alias '{addr}', entry skipped")
                continue
            cidr: Cidr = alias.cidr
            out.append((cidr, e.nomatch))
        else:
            out.append((addr, e.nomatch))
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
