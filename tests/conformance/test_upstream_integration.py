"""The upstream integration test's input, compiled by us, against upstream's output.

``expected.json`` is a reference, not a byte target: here every set it creates in the
inet table must exist with the same elements, and our inet half must load in a kernel.
(The full chain-by-chain comparison, including the guest table, lives with the guest
firewall tests.)
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.apply import apply_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.pipeline import compile_dir

CONF = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
TREE = CONF / "upstream-integration"


def _expected() -> list[dict[str, Any]]:
    doc = json.loads((TREE / "expected.json").read_text())
    return list(doc["nftables"] if isinstance(doc, dict) else doc)


def _norm(elem: Any) -> str:
    """One set element in a canonical text form: network, address or range."""
    if isinstance(elem, dict) and "prefix" in elem:
        p = elem["prefix"]
        return str(ipaddress.ip_network(f"{p['addr']}/{p['len']}", strict=False))
    if isinstance(elem, dict) and "range" in elem:
        lo, hi = elem["range"]
        return f"{ipaddress.ip_address(lo)}-{ipaddress.ip_address(hi)}"
    return str(ipaddress.ip_network(str(elem), strict=False))


def _expected_sets(family: str) -> dict[str, set[str]]:
    sets: dict[str, set[str]] = {}
    for cmd in _expected():
        ((verb, obj),) = cmd.items()
        ((kind, body),) = obj.items()
        if body.get("family") != family:
            continue
        if verb == "add" and kind == "set":
            sets.setdefault(body["name"], set())
        elif verb == "add" and kind == "element" and body["name"] in sets:
            sets[body["name"]].update(_norm(e) for e in body["elem"])
    return sets


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    res = compile_dir(TREE / "pve", "pve1")
    return res


def test_compiles_without_diagnostics(result) -> None:  # type: ignore[no-untyped-def]
    assert [str(d) for d in result.diagnostics] == []


def test_every_inet_set_exists_with_the_same_elements(result) -> None:  # type: ignore[no-untyped-def]
    expected = _expected_sets("inet")
    assert len(expected) == 28  # upstream's count (notes §5): a sanity check of the reader
    ours = result.ruleset.host.sets
    diffs = []
    for name, elems in sorted(expected.items()):
        if name not in ours:
            diffs.append(f"{name}: missing")
            continue
        got = {_norm(e) for e in ours[name].elements}
        if got != elems:
            diffs.append(f"{name}: expected {sorted(elems)}, got {sorted(got)}")
    assert diffs == []


@pytest.mark.netns
def test_inet_half_loads_in_the_kernel(result) -> None:  # type: ignore[no-untyped-def]
    features = probe_features()

    def load() -> tuple[bool, str, list[str], Any]:
        client = NftClient()
        outcome = apply_ruleset(result.ruleset, client, features)
        listing = client.list_table_json("inet", "proxmox-firewall")
        return outcome.ok, outcome.error or "", list(outcome.applied_tables), listing

    ok, error, applied, listing = run_in_new_netns(load)
    assert ok, error
    assert any("inet" in t for t in applied)
    assert listing.ok
    text = json.dumps(listing.output)
    assert "firewall/cluster.fw:24" in text  # a compiled rule with its origin is in the kernel
