"""The ruleset generation moves with every transaction; the shape ignores counters."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.generation import ruleset_generation, shape_digest
from proxmox_fw.nft.netns import run_in_new_netns


@pytest.mark.netns
def test_generation_moves_and_shape_sees_a_flushed_chain() -> None:
    def body() -> tuple[int | None, int | None, int | None, str, str, Any]:
        client = NftClient()
        g0 = ruleset_generation()
        assert client.run_text("add table inet t; add chain inet t c; "
                               "add rule inet t c counter accept").ok
        g1 = ruleset_generation()
        listing = client.list_table_terse("inet", "t").output
        first = shape_digest(listing)
        g2 = ruleset_generation()  # reading changes nothing
        assert client.run_text("flush chain inet t c").ok
        flushed = shape_digest(client.list_table_terse("inet", "t").output)
        return g0, g1, g2, first, flushed, listing

    g0, g1, g2, first, flushed, listing = run_in_new_netns(body)
    assert g0 is not None and g1 is not None and g1 > g0
    assert g2 == g1
    assert flushed != first
    # Traffic moves counters, never the shape.
    busier = copy.deepcopy(listing)
    for item in busier["nftables"]:
        for stmt in item.get("rule", {}).get("expr", []):
            if "counter" in stmt:
                stmt["counter"] = {"packets": 7, "bytes": 700}
    assert busier != listing
    assert shape_digest(busier) == first
