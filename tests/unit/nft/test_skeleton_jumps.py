"""The skeleton's own JSON listing against what the compiler assumes about it: every
jump/goto the compiler emits lands on a chain that exists, and the chains it fills are
the ones the skeleton leaves empty for it.

The listing needs the table loaded (a throwaway namespace); the guest table's only loads
with the bridge features, so its half runs in the full-kernel VM.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.objects import BRIDGE, FILLED_CHAINS, INET, Table
from proxmox_fw.nft.skeleton import skeleton_commands, skeleton_names
from proxmox_fw.pipeline import compile_dir
from tests.unit.helpers import CONFORMANCE

REPO = Path(__file__).resolve().parents[3]
TREES = [
    REPO / "examples" / "pve",
    CONFORMANCE / "upstream-integration" / "pve",
    *sorted((CONFORMANCE / "pve-sim").glob("*/pve")),
]
LOCAL_NET = ipaddress.ip_interface("172.16.1.0/24")


def _targets(value: Any) -> Iterator[str]:
    """Every ``jump``/``goto`` target inside a JSON fragment."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("jump", "goto") and isinstance(inner, dict) and "target" in inner:
                yield inner["target"]
            else:
                yield from _targets(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _targets(inner)


def dangling_jumps(table: Table) -> dict[str, set[str]]:
    """Chain (or map) → jump targets that are neither skeleton nor compiled chains."""
    known = skeleton_names(table.family, ("chain",)) | set(table.chains)
    out: dict[str, set[str]] = {}
    for chain in table.chains.values():
        for rule in chain.rules:
            missing = set(_targets(rule.expr)) - known
            if missing:
                out.setdefault(chain.name, set()).update(missing)
    for m in table.maps.values():
        missing = set(_targets(m.elements)) - known
        if missing:
            out.setdefault(m.name, set()).update(missing)
    return out


def check_family(family: str) -> None:
    empty = _empty_skeleton_chains(family)
    assert set(FILLED_CHAINS[family]) == empty
    checked = 0
    for tree in TREES:
        assert tree.is_dir(), tree
        rs = compile_dir(tree, "pve1", honor_nftables_switch=False, local_net=LOCAL_NET).ruleset
        table = next(t for t in rs.tables if t.family == family)
        if not table.enabled:
            continue
        checked += 1
        assert dangling_jumps(table) == {}, tree
        skeleton_declared = {c.name for c in table.chains.values() if c.in_skeleton}
        assert skeleton_declared <= skeleton_names(family, ("chain",)), tree
    assert checked >= 2  # the example and the upstream tree have both tables


def _empty_skeleton_chains(family: str) -> set[str]:
    commands = skeleton_commands((family,))
    chains = {c["add"]["chain"]["name"] for c in commands if "chain" in c.get("add", {})}
    ruled = {c["add"]["rule"]["chain"] for c in commands if "rule" in c.get("add", {})}
    return chains - ruled


def test_targets_finds_nested_jumps_and_gotos() -> None:
    expr = [{"match": {"op": "==", "left": 1, "right": 2}},
            {"vmap": {"key": "x", "data": {"set": [["a", {"goto": {"target": "g"}}]]}}},
            {"jump": {"target": "j"}}]
    assert sorted(_targets(expr)) == ["g", "j"]


@pytest.mark.netns
def test_host_table_jumps_land_on_existing_chains() -> None:
    check_family(INET)


@pytest.mark.fullkernel
@pytest.mark.netns
def test_guest_table_jumps_land_on_existing_chains() -> None:
    check_family(BRIDGE)
