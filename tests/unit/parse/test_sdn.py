"""SDN running config: vnets, subnets, gateways, DHCP ranges, and skipping bad pieces."""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

import pytest

from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import Sdn
from proxmox_fw.parse.sdn import parse_sdn
from tests.unit.helpers import CONFORMANCE, only

F = "sdn/.running-config"

BASE: dict[str, Any] = {
    "version": 7,
    "zones": {"ids": {"zone1": {"type": "simple", "dhcp": "dnsmasq", "ipam": "pve"}}},
    "vnets": {"ids": {"vnet1": {"zone": "zone1", "type": "vnet", "tag": 100},
                      "vnet2": {"zone": "zone1", "type": "vnet"}}},
    "subnets": {"ids": {
        "zone1-10.1.0.0-24": {"vnet": "vnet1", "gateway": "10.1.0.1", "type": "subnet",
                              "dhcp-range": ["start-address=10.1.0.100,end-address=10.1.0.200",
                                             "end-address=10.1.0.250,start-address=10.1.0.240"]},
        "zone1-fd00:1::-64": {"vnet": "vnet1", "snat": 1},
        "zone1-10.2.0.0-16": {"vnet": "vnet2"},
    }},
    "controllers": {"ids": {}},
}


def parse(doc: dict[str, Any] | str) -> tuple[Sdn, Diagnostics]:
    diags = Diagnostics()
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return parse_sdn(text, F, diags), diags


def with_subnet(key: str, value: object) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["subnets"]["ids"][key] = value
    return doc


def test_good_config() -> None:
    sdn, diags = parse(BASE)
    assert not diags.items
    assert sdn.present and sorted(sdn.vnets) == ["vnet1", "vnet2"]
    vnet1 = sdn.vnets["vnet1"]
    assert (vnet1.zone, vnet1.tag) == ("zone1", 100)
    v4, v6 = vnet1.subnets
    assert v4.cidr == ipaddress.ip_interface("10.1.0.0/24")
    assert v4.gateway == ipaddress.ip_address("10.1.0.1")
    assert [(str(r.start), str(r.end)) for r in v4.dhcp_ranges] == [
        ("10.1.0.100", "10.1.0.200"), ("10.1.0.240", "10.1.0.250")
    ]
    assert (v6.cidr, v6.gateway, v6.dhcp_ranges) == (ipaddress.ip_interface("fd00:1::/64"),
                                                     None, [])
    assert [str(s.cidr) for s in sdn.vnets["vnet2"].subnets] == ["10.2.0.0/16"]


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("zone1-10.3.0.0", {"vnet": "vnet1"}, "subnet id"),
        ("zone1-10.3.0.0-33", {"vnet": "vnet1"}, "subnet id"),
        ("zone1-10.3.0.0-24", {"vnet": "nope"}, "unknown vnet"),
        ("zone1-10.3.0.0-24", {}, "unknown vnet"),
        ("other-10.3.0.0-24", {"vnet": "vnet1"}, "zone 'other' differs"),
        ("zone1-10.3.0.0-24", "vnet1", "expected an object"),
    ],
)
def test_bad_subnet_is_skipped(key: str, value: object, words: str) -> None:
    sdn, diags = parse(with_subnet(key, value))
    d = only(diags, Severity.ERROR)
    assert d.file == F and words in d.message and key in d.message
    assert len(sdn.vnets["vnet1"].subnets) == 2  # the good ones remain


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"gateway": "fd00::1"}, "family"),
        ({"gateway": "10.3.0.x"}, "invalid gateway"),
        ({"gateway": 17}, "invalid gateway"),
        ({"dhcp-range": ["start-address=10.3.0.9,end-address=10.3.0.1"]}, "starts after"),
        ({"dhcp-range": ["start-address=10.3.0.1,end-address=fd00::1"]}, "mixes"),
        ({"dhcp-range": ["start-address=10.3.0.1"]}, "is not start-address"),
        ({"dhcp-range": ["start-address=10.3.0.1,end-address=10.3.0.x"]}, "invalid address"),
        ({"dhcp-range": ["start-address=fd00::1,end-address=fd00::9"]}, "family"),
        ({"dhcp-range": [5]}, "expected a string"),
        ({"dhcp-range": {"a": 1}}, "expected an array"),
    ],
)
def test_bad_gateway_or_range_costs_only_itself(extra: dict[str, object], words: str) -> None:
    sdn, diags = parse(with_subnet("zone1-10.3.0.0-24", {"vnet": "vnet2", **extra}))
    d = only(diags, Severity.WARNING)
    assert words in d.message, d.message
    subnet = sdn.vnets["vnet2"].subnets[-1]
    assert subnet.cidr == ipaddress.ip_interface("10.3.0.0/24")
    assert subnet.gateway is None and subnet.dhcp_ranges == []


def test_bad_vnets_and_zones() -> None:
    doc = copy.deepcopy(BASE)
    doc["zones"]["ids"]["toolongzonename"] = {"type": "simple"}
    doc["zones"]["ids"]["z2"] = {"type": "wireguard"}
    doc["vnets"]["ids"]["9bad"] = {"zone": "zone1"}
    doc["vnets"]["ids"]["orphan"] = {"zone": "toolongzonename"}
    doc["vnets"]["ids"]["vnet3"] = {"zone": "z2", "tag": "x"}
    doc["vnets"]["ids"]["vnet4"] = 3
    sdn, diags = parse(doc)
    messages = sorted((d.severity.value, d.message) for d in diags)
    assert [m[0] for m in messages] == ["error"] * 4 + ["warning"] * 2
    assert any("toolongzonename" in m and "invalid zone name" in m for _, m in messages)
    assert any("wireguard" in m for _, m in messages)
    assert sorted(sdn.vnets) == ["vnet1", "vnet2", "vnet3"]
    assert sdn.vnets["vnet3"].tag is None  # the bad tag was dropped, the vnet kept


def test_missing_sections_mean_empty() -> None:
    sdn, diags = parse('{"version": 1}')
    assert sdn.present and sdn.vnets == {} and not diags.items


def test_wrong_section_types() -> None:
    sdn, diags = parse('{"zones": [], "vnets": {"ids": 5}}')
    assert sdn.vnets == {}
    assert [d.severity for d in diags] == [Severity.ERROR, Severity.ERROR]


def test_invalid_json_is_treated_as_missing() -> None:
    sdn, diags = parse('{"zones": {')
    assert not sdn.present
    d = only(diags, Severity.ERROR)
    assert (d.file, d.line) == (F, 1) and "invalid JSON" in d.message


def test_upstream_integration_sdn() -> None:
    path = CONFORMANCE / "upstream-integration/pve/sdn/.running-config"
    if not path.exists():
        pytest.skip("conformance data not available")
    sdn, diags = parse(path.read_text())
    assert not diags.items
    public = sdn.vnets["public"]
    assert public.zone == "test"
    assert [(str(s.cidr), str(s.gateway)) for s in public.subnets] == [
        ("10.101.0.0/16", "10.101.1.1"), ("fd80::/64", "fd80::1")
    ]
    assert [[(str(r.start), str(r.end)) for r in s.dhcp_ranges] for s in public.subnets] == [
        [("10.101.99.100", "10.101.99.200")], [("fd80::1000", "fd80::ffff")]
    ]
