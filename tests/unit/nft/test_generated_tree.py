"""The benchmarks' generated tree (benchmarks/gentree.py, issue 12) compiles without
errors and loads, and guests are dispatched through verdict maps (goal 5).

The host table is loaded natively in a throwaway namespace; the guest table's load needs
the full-kernel tier (tests/fullkernel). Dispatch is checked on the structure: packets
reach a guest's chains only through one lookup in ``vm-map-in``/``vm-map-out`` (whose
cost does not grow with the number of guests), never through a chain of per-guest rules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks.gentree import NODE, make_tree
from proxmox_fw.diagnostics import Severity
from proxmox_fw.nft.apply import apply_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import KernelFeatures
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.nft.objects import BRIDGE, Table
from proxmox_fw.nft.skeleton import skeleton_text
from proxmox_fw.pipeline import compile_dir
from tests.unit.nft.nft_testlib import list_host, objects_of

GUESTS = 16


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gen") / "pve"
    make_tree(root, GUESTS, blacklist=2000)
    return root


@pytest.mark.netns
def test_generated_tree_compiles_and_loads(tree: Path, worker: NetnsWorker) -> None:
    result = compile_dir(tree, NODE)
    errors = [str(d) for d in result.diagnostics if d.severity is Severity.ERROR]
    assert not errors, errors
    # The host table natively; the guest table is left out as on a kernel without the
    # bridge features.
    features = KernelFeatures(bridge_conntrack=False, bridge_reject=False, bridge_meta=False)

    def run() -> Any:
        applied = apply_ruleset(result.ruleset, NftClient(), features)
        return applied, list_host(NftClient())

    applied, items = worker.call(run)
    assert applied.ok, applied.error
    sets = objects_of(items, "set")
    assert "v4-dc/blacklist" in sets and "v4-dc/set49" in sets
    listed = sets["v4-dc/blacklist"].get("elem", [])
    assert len(listed) > 1000  # merged /24s and hosts of the 2000 entries


def _guest_chain_targets(table: Table) -> tuple[dict[str, int], list[str]]:
    """Guest chains by how many map elements lead to them; rules that jump to one."""
    via_maps: dict[str, int] = {}
    for name in ("vm-map-in", "vm-map-out"):
        for _key, verdict in table.maps[name].elements:
            target = next(iter(verdict.values()))["target"]
            via_maps[target] = via_maps.get(target, 0) + 1
    direct = [
        f"{chain.name}: {rule.origin}"
        for chain in table.chains.values()
        for rule in chain.rules
        if re.search(r'"(jump|goto)": \{"target": "guest-\d+-(in|out)"', json.dumps(rule.expr))
    ]
    return via_maps, direct


def test_guest_dispatch_is_one_verdict_map_lookup(tree: Path) -> None:
    table = compile_dir(tree, NODE).ruleset.guests
    assert table.family == BRIDGE and table.enabled
    guest_chains = {name for name in table.chains if re.fullmatch(r"guest-\d+-(in|out)", name)}
    assert len(guest_chains) == 2 * GUESTS
    via_maps, direct = _guest_chain_targets(table)
    assert set(via_maps) == guest_chains  # every guest chain, each port one element
    assert not direct, direct  # no per-guest rule on any path
    # The skeleton's bridge hooks look the port up once per direction.
    text = skeleton_text()
    assert text.count("vmap @vm-map-in") == 1 and text.count("vmap @vm-map-out") == 1
