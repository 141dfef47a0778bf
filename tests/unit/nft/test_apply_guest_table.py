"""The guest (bridge) half of the nft layer, on a kernel that can load it.

Runs in the qemu tier (``fullkernel``: Debian's stock kernel). Without the fullkernel
plugin, on a kernel lacking the bridge features, it is skipped with the reason.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxmox_fw.nft.apply import apply_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import NetnsWorker, run_in_new_netns
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, Ruleset, Set
from proxmox_fw.nft.skeleton import skeleton_commands, skeleton_table_text
from tests.unit.nft.nft_testlib import objects_of, rules_of, strip_handles

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]


@pytest.fixture(autouse=True)
def _needs_guest_table() -> None:
    missing = probe_features().missing_for_guests()
    if missing:
        pytest.skip("kernel lacks " + ", ".join(missing))


def test_bridge_skeleton_commands_round_trip(worker: NetnsWorker) -> None:
    commands = skeleton_commands((BRIDGE,))
    text = skeleton_table_text(BRIDGE)

    def via_text() -> Any:
        client = NftClient()
        loaded = client.run_text(text)
        assert loaded.ok, loaded.error
        return strip_handles(client.list_ruleset_json().output)

    def via_json() -> Any:
        client = NftClient()
        result = client.run_json({"nftables": commands})
        assert result.ok, result.error
        return strip_handles(client.list_ruleset_json().output)

    assert worker.call(via_json) == run_in_new_netns(via_text)


def test_apply_with_guest_table(worker: NetnsWorker) -> None:
    rs = Ruleset()
    rs.host.chain("cluster-in", in_skeleton=True).add([{"accept": None}], "firewall/cluster.fw:1")
    guests = rs.guests
    guests.sets["v4-guest-100/ipfilter-net0"] = Set(
        "v4-guest-100/ipfilter-net0", "ipv4_addr", ["interval"], True, ["192.0.2.10"]
    )
    for direction in ("in", "out"):
        chain = guests.chain(f"guest-100-{direction}")
        chain.add([{"jump": {"target": f"pre-vm-{direction}"}}])
        chain.add([{"drop": None}], "firewall/100.fw:3")
        guests.map(f"vm-map-{direction}").elements.append(
            ("tap100i0", {"goto": {"target": f"guest-100-{direction}"}})
        )

    def run() -> Any:
        client = NftClient()
        result = apply_ruleset(rs, client, probe_features())
        assert result.ok, result.error
        assert result.complete and len(result.applied_tables) == 2
        listed = client.list_table_json(BRIDGE, GUEST_TABLE)
        assert listed.ok, listed.error
        return strip_handles(listed.output)

    items = worker.call(run)
    assert [r.get("comment") for r in rules_of(items, "guest-100-in")] == [
        None,
        "firewall/100.fw:3",
    ]
    assert objects_of(items, "map")["vm-map-out"]["elem"] == [
        ["tap100i0", {"goto": {"target": "guest-100-out"}}]
    ]
    assert objects_of(items, "set")["v4-guest-100/ipfilter-net0"]["elem"] == ["192.0.2.10"]
    assert len(rules_of(items, "pre-vm-in")) == 4  # the skeleton came with it
