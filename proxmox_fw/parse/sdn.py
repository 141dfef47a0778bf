"""``/etc/pve/sdn/.running-config``: the vnets and subnets behind the ``+sdn/<vnet>-*`` ipsets.

Upstream rejects the whole file on one bad zone, vnet or subnet; here each bad object
is reported and skipped (taking with it only what hangs off it), so the other vnets'
ipsets still exist. Keys the firewall does not use (controllers, ipam, snat, ...) are
ignored.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.limits import json_uint, shown
from proxmox_fw.model import Cidr, IpAddr, IpRange, Sdn, Subnet, Vnet
from proxmox_fw.parse.jsondoc import JsonWhere, get_object, join, load_json_object, type_name

ZONE_TYPES = frozenset({"simple", "vlan", "qinq", "vxlan", "evpn"})
MAX_SDN_TAG = 2**24 - 1  # a VXLAN VNI; VLAN tags are smaller
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,7}")  # zone and vnet ids: 1-8 chars




def parse_sdn(text: str, file: str, diags: Diagnostics) -> Sdn:
    doc = load_json_object(text, file, diags)
    if doc is None:
        return Sdn()
    where = JsonWhere(file, diags)
    zones = _zones(get_object(get_object(doc, "zones", "", file, diags), "ids", "zones",
                              file, diags), where)
    vnets = _vnets(get_object(get_object(doc, "vnets", "", file, diags), "ids", "vnets",
                              file, diags), zones, where)
    subnet_ids = get_object(get_object(doc, "subnets", "", file, diags), "ids", "subnets",
                            file, diags)
    for key, raw in subnet_ids.items():
        _add_subnet(key, raw, vnets, where)
    return Sdn(present=True, vnets=vnets)


def _zones(ids: dict[str, Any], where: JsonWhere) -> set[str]:
    zones: set[str] = set()
    for name, raw in ids.items():
        path = join("zones.ids", name)
        if not _NAME_RE.fullmatch(name):
            where.error(path, "invalid zone name, zone skipped")
            continue
        if not isinstance(raw, dict):
            where.error(path, f"expected an object, got {type_name(raw)}; zone skipped")
            continue
        zone_type = raw.get("type")
        if zone_type not in ZONE_TYPES:
            where.warning(path, f"unknown zone type {zone_type!r}")
        zones.add(name)
    return zones


def _vnets(ids: dict[str, Any], zones: set[str], where: JsonWhere) -> dict[str, Vnet]:
    vnets: dict[str, Vnet] = {}
    for name, raw in ids.items():
        path = join("vnets.ids", name)
        if not _NAME_RE.fullmatch(name):
            where.error(path, "invalid vnet name, vnet skipped")
            continue
        if not isinstance(raw, dict):
            where.error(path, f"expected an object, got {type_name(raw)}; vnet skipped")
            continue
        zone = raw.get("zone")
        if not isinstance(zone, str) or zone not in zones:
            where.error(path, f"unknown zone {zone!r}, vnet skipped")
            continue
        vnets[name] = Vnet(name=name, zone=zone, tag=_tag(raw.get("tag"), path, where))
    return vnets


def _tag(value: Any, path: str, where: JsonWhere) -> int | None:
    if value is None:
        return None
    tag = json_uint(value, 0, MAX_SDN_TAG)
    if tag is None:
        shown_value = shown(str(value)[:30]) if isinstance(value, str | int) else \
            type_name(value)
        where.warning(join(path, "tag"), f"invalid tag {shown_value!r} ignored "
                      f"(0-{MAX_SDN_TAG})")
    return tag


def _add_subnet(key: str, raw: Any, vnets: dict[str, Vnet], where: JsonWhere) -> None:
    """Attach subnet ``<zone>-<ip>-<mask>`` to its vnet, or report why it cannot be."""
    path = join("subnets.ids", key)
    parts = key.split("-", 2)
    try:
        if len(parts) != 3:
            raise ValueError
        zone = parts[0]
        cidr: Cidr = ipaddress.ip_interface(f"{parts[1]}/{parts[2]}")
    except ValueError:
        where.error(path, "subnet id is not <zone>-<address>-<prefix>, subnet skipped")
        return
    if not isinstance(raw, dict):
        where.error(path, f"expected an object, got {type_name(raw)}; subnet skipped")
        return
    vnet_name = raw.get("vnet")
    vnet = vnets.get(vnet_name) if isinstance(vnet_name, str) else None
    if vnet is None:
        where.error(path, f"unknown vnet {vnet_name!r}, subnet skipped")
        return
    if vnet.zone != zone:
        where.error(path, f"zone {zone!r} differs from vnet {vnet.name!r}'s zone "
                          f"{vnet.zone!r}, subnet skipped")
        return
    vnet.subnets.append(
        Subnet(
            cidr=cidr,
            gateway=_gateway(raw.get("gateway"), cidr, path, where),
            dhcp_ranges=_ranges(raw.get("dhcp-range"), cidr, path, where),
        )
    )


def _gateway(value: Any, cidr: Cidr, path: str, where: JsonWhere) -> IpAddr | None:
    if value is None:
        return None
    gw_path = join(path, "gateway")
    try:
        if not isinstance(value, str):
            raise ValueError
        gateway = ipaddress.ip_address(value)
    except ValueError:
        where.warning(gw_path, f"invalid gateway {value!r} ignored")
        return None
    if gateway.version != cidr.version:
        where.warning(gw_path, f"gateway {value} is not in the subnet's family, ignored")
        return None
    return gateway


def _ranges(value: Any, cidr: Cidr, path: str, where: JsonWhere) -> list[IpRange]:
    if value is None:
        return []
    range_path = join(path, "dhcp-range")
    if isinstance(value, str):  # a single range written without the array
        value = [value]
    if not isinstance(value, list):
        where.warning(range_path, f"expected an array, got {type_name(value)}; ignored")
        return []
    ranges: list[IpRange] = []
    for item in value:
        parsed = _range(item)
        if isinstance(parsed, str):
            where.warning(range_path, f"{parsed}, range ignored")
        elif parsed.start.version != cidr.version:
            where.warning(range_path, f"range {item!r} is not in the subnet's family, ignored")
        else:
            ranges.append(parsed)
    return ranges


def _range(item: Any) -> IpRange | str:
    """The range, or why ``item`` is not one."""
    if not isinstance(item, str):
        return f"expected a string, got {type_name(item)}"
    props = dict(part.strip().partition("=")[::2] for part in item.split(",") if part.strip())
    if set(props) != {"start-address", "end-address"}:
        return f"{item!r} is not start-address=<ip>,end-address=<ip>"
    try:
        start = ipaddress.ip_address(props["start-address"].strip())
        end = ipaddress.ip_address(props["end-address"].strip())
    except ValueError:
        return f"{item!r} holds an invalid address"
    if start.version != end.version:
        return f"{item!r} mixes IPv4 and IPv6"
    if start > end:  # type: ignore[operator]
        return f"{item!r} starts after it ends"
    return IpRange(start=start, end=end)
