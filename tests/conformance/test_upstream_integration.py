"""The upstream integration test's input, compiled by us, against upstream's output.

``expected.json`` is a reference, not a byte target: here every set it creates in the
inet table must exist and match the same addresses, and our inet half must load in a kernel.
(The full chain-by-chain comparison, including the guest table, lives with the guest
firewall tests.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.apply import apply_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.pipeline import compile_dir
from tests.conformance.upstream_compare import NOMATCH, covered

CONF = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
TREE = CONF / "upstream-integration"


def _expected() -> list[dict[str, Any]]:
    doc = json.loads((TREE / "expected.json").read_text())
    return list(doc["nftables"] if isinstance(doc, dict) else doc)


def _expected_sets(family: str) -> dict[str, list[Any]]:
    sets: dict[str, list[Any]] = {}
    for cmd in _expected():
        ((verb, obj),) = cmd.items()
        ((kind, body),) = obj.items()
        if body.get("family") != family:
            continue
        if verb == "add" and kind == "set":
            sets.setdefault(body["name"], [])
        elif verb == "add" and kind == "element" and body["name"] in sets:
            sets[body["name"]].extend(body["elem"])
    return sets


def _matched(sets: dict[str, list[Any]], name: str) -> list[str]:
    """What a rule's ``@set`` and ``!= @set-nomatch`` pair matches (see NOMATCH there)."""
    return covered(sets[name], sets.get(name + NOMATCH, []))


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    res = compile_dir(TREE / "pve", "pve1")
    return res


def test_compiles_without_diagnostics(result) -> None:  # type: ignore[no-untyped-def]
    # but for the range inside an address list, which pve-firewall refuses (said)
    assert [str(d) for d in result.diagnostics] == [
        "firewall/100.fw:20: warning: -source: an address range inside a list is used as "
        "written here; pve-firewall refuses this rule"]


def test_every_inet_set_exists_and_matches_the_same_addresses(result) -> None:  # type: ignore[no-untyped-def]
    """Each set pair matches the same addresses: ours carves ``!`` entries out of the set
    where they decide (hash:net semantics), upstream lists them in the twin as written."""
    expected = _expected_sets("inet")
    assert len(expected) == 28  # upstream's count (notes §5): a sanity check of the reader
    ours = {name: s.elements for name, s in result.ruleset.host.sets.items()}
    diffs = [f"{name}: missing" for name in sorted(expected) if name not in ours]
    for name in sorted(expected):
        if name.endswith(NOMATCH) or name not in ours:
            continue
        want, got = _matched(expected, name), _matched(ours, name)
        if got != want:
            diffs.append(f"{name}: expected {want}, got {got}")
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
