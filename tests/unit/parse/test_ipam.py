"""IPAM state: guest addresses for ``+sdn/guest-ipam-<vmid>``."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import Ipam
from proxmox_fw.parse.ipam import parse_ipam
from tests.unit.helpers import CONFORMANCE, only

F = "sdn/pve-ipam-state.json"


def parse(doc: dict[str, Any] | str) -> tuple[Ipam, Diagnostics]:
    diags = Diagnostics()
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return parse_ipam(text, F, diags), diags


def state(ips: dict[str, object], subnet: str = "10.0.0.0/24") -> dict[str, Any]:
    return {"zones": {"z1": {"subnets": {subnet: {"ips": ips}}}}}


def ips_of(ipam: Ipam) -> dict[int, list[str]]:
    return {vmid: [str(ip) for ip in ips] for vmid, ips in ipam.guest_ips.items()}


def test_entry_kinds() -> None:
    ipam, diags = parse(state({
        "10.0.0.1": {"gateway": 1},
        "10.0.0.5": {"vmid": "105", "mac": "BC:24:11:00:00:05", "hostname": None},
        "10.0.0.6": {"vmid": "105", "mac": "BC:24:11:00:00:06", "hostname": "a"},
        "10.0.0.7": {"mac": "BC:24:11:00:00:07"},
        "10.0.0.8": {"vmid": 108, "mac": "BC:24:11:00:00:08"},  # numeric vmid counts
    }))
    assert not diags.items
    assert ipam.present
    assert ips_of(ipam) == {105: ["10.0.0.5", "10.0.0.6"], 108: ["10.0.0.8"]}


def test_guest_collects_across_zones_and_subnets() -> None:
    doc = {"zones": {
        "z2": {"subnets": {"fd00::/64": {"ips": {"fd00::5": {"vmid": "105", "mac": "x"}}}}},
        "z1": {"subnets": {"10.0.0.0/24": {"ips": {"10.0.0.5": {"vmid": "105"}}},
                           "10.9.0.0/24": {}}},
    }}
    ipam, diags = parse(doc)
    assert not diags.items
    assert ips_of(ipam) == {105: ["fd00::5", "10.0.0.5"]}


@pytest.mark.parametrize(
    ("entry_ip", "entry", "words"),
    [
        ("10.0.0.300", {"vmid": "1"}, "invalid IP"),
        ("10.0.1.5", {"vmid": "1"}, "outside subnet"),
        ("fd00::5", {"vmid": "1"}, "outside subnet"),
        ("10.0.0.9", {"vmid": "abc"}, "invalid vmid"),
        ("10.0.0.9", {"vmid": -4}, "invalid vmid"),
        ("10.0.0.9", {"vmid": True}, "invalid vmid"),
        ("10.0.0.9", {"hostname": "x"}, "neither"),
        ("10.0.0.9", "vm 5", "expected an object"),
    ],
)
def test_bad_entry_is_skipped(entry_ip: str, entry: object, words: str) -> None:
    ipam, diags = parse(state({"10.0.0.5": {"vmid": "105"}, entry_ip: entry}))
    d = only(diags, Severity.ERROR)
    assert words in d.message and entry_ip in d.message, d.message
    assert ips_of(ipam) == {105: ["10.0.0.5"]}


def test_bad_subnet_is_skipped() -> None:
    doc = state({"10.0.0.5": {"vmid": "105"}})
    doc["zones"]["z1"]["subnets"]["10.0.0.0/99"] = {"ips": {"10.0.0.6": {"vmid": "106"}}}
    doc["zones"]["z1"]["subnets"]["10.1.0.0/24"] = {"ips": [1]}
    doc["zones"]["z9"] = "nope"
    ipam, diags = parse(doc)
    assert [d.severity for d in diags] == [Severity.ERROR] * 3
    assert ips_of(ipam) == {105: ["10.0.0.5"]}


def test_garbage_file() -> None:
    ipam, diags = parse("not json")
    assert not ipam.present
    assert only(diags, Severity.ERROR).line == 1


def test_upstream_integration_ipam() -> None:
    path = CONFORMANCE / "upstream-integration/pve/priv/ipam.db"
    if not path.exists():
        pytest.skip("conformance data not available")
    ipam, diags = parse(path.read_text())
    assert not diags.items
    assert ipam.guest_ips == {
        101: [ipaddress.ip_address("10.101.1.100"), ipaddress.ip_address("fd80::1000")]
    }
