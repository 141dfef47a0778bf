"""PVE IPAM state (``sdn/pve-ipam-state.json``, formerly ``priv/ipam.db``).

Shape: ``{"zones": {zone: {"subnets": {cidr: {"ips": {ip: entry}}}}}}``. An entry with
a ``vmid`` puts its address into ``+sdn/guest-ipam-<vmid>``; gateway and MAC-only
entries are valid but give no ipset. A bad subnet or entry is reported and skipped.
Unlike upstream, a numeric ``vmid`` counts: it plainly names the guest.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.limits import VMID_MAX, json_uint, shown
from proxmox_fw.model import Cidr, IpAddr, Ipam
from proxmox_fw.parse.jsondoc import JsonWhere, get_object, join, load_json_object, type_name


def parse_ipam(text: str, file: str, diags: Diagnostics) -> Ipam:
    doc = load_json_object(text, file, diags)
    if doc is None:
        return Ipam()
    where = JsonWhere(file, diags)
    guest_ips: dict[int, list[IpAddr]] = {}
    for zone, zone_raw in get_object(doc, "zones", "", file, diags).items():
        zone_path = join("zones", zone)
        if not isinstance(zone_raw, dict):
            where.error(zone_path, f"expected an object, got {type_name(zone_raw)}; skipped")
            continue
        subnets = get_object(zone_raw, "subnets", zone_path, file, diags)
        for key, subnet_raw in subnets.items():
            path = join(join(zone_path, "subnets"), key)
            for vmid, ip in _subnet_guest_ips(key, subnet_raw, path, where):
                ips = guest_ips.setdefault(vmid, [])
                if ip not in ips:
                    ips.append(ip)
    return Ipam(present=True, guest_ips=dict(sorted(guest_ips.items())))


def _subnet_guest_ips(
    key: str, raw: Any, path: str, where: JsonWhere
) -> list[tuple[int, IpAddr]]:
    try:
        subnet: Cidr = ipaddress.ip_interface(key)
    except ValueError:
        where.error(path, "invalid subnet, skipped")
        return []
    if not isinstance(raw, dict):
        where.error(path, f"expected an object, got {type_name(raw)}; skipped")
        return []
    ips = raw.get("ips")
    if ips is None:
        return []
    if not isinstance(ips, dict):
        where.error(join(path, "ips"), f"expected an object, got {type_name(ips)}; skipped")
        return []
    found: list[tuple[int, IpAddr]] = []
    for ip_text, entry in ips.items():
        entry_path = join(join(path, "ips"), ip_text)
        try:
            ip = ipaddress.ip_address(ip_text)
        except ValueError:
            where.error(entry_path, "invalid IP address, entry skipped")
            continue
        if ip.version != subnet.version or ip not in subnet.network:
            where.error(entry_path, f"address is outside subnet {key}, entry skipped")
            continue
        vmid = _entry_vmid(entry, entry_path, where)
        if vmid is not None:
            found.append((vmid, ip))
    return found


def _entry_vmid(entry: Any, path: str, where: JsonWhere) -> int | None:
    """The guest owning an entry; None for gateway/custom entries and for bad ones."""
    if not isinstance(entry, dict):
        where.error(path, f"expected an object, got {type_name(entry)}; entry skipped")
        return None
    if "vmid" not in entry:
        if "gateway" in entry or "mac" in entry:
            return None
        where.error(path, "entry has neither vmid, gateway nor mac; skipped")
        return None
    raw = entry["vmid"]
    vmid = json_uint(raw, 1, VMID_MAX)
    if vmid is None:
        what = shown(str(raw)[:30]) if isinstance(raw, str | int) else type_name(raw)
        where.error(path, f"invalid vmid {what!r} (1-{VMID_MAX}), entry skipped")
    return vmid
