"""The bundled skeleton: its contract (names), loading, idempotent reload, JSON round trip."""

from __future__ import annotations

import re
from typing import Any

import pytest

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import NetnsWorker, run_in_new_netns
from proxmox_fw.nft.skeleton import (
    listing_to_commands,
    skeleton_commands,
    skeleton_table_text,
    skeleton_text,
)
from tests.unit.nft.nft_testlib import list_host, objects_of, rules_of, strip_handles

INET_BASE = {
    "input": ("input", 0, "drop"),
    "output": ("output", 0, "accept"),
    "forward": ("forward", 0, "accept"),
    "host-bridge-input": ("input", -1, "accept"),
    "host-bridge-output": ("output", 1, "accept"),
}
INET_STATIC = [
    "do-reject",
    "accept-management",
    "block-synflood",
    "log-drop-invalid-tcp",
    "block-invalid-tcp",
    "allow-ndp-in",
    "block-ndp-in",
    "allow-ndp-out",
    "block-ndp-out",
    "block-smurfs",
    "log-drop-smurfs",
    "allow-icmp",
    "default-in",
    "default-out",
    "before-bridge",
    "drop-noise",
]
INET_COMPILER_OWNED = [
    "ratelimit-synflood",
    "log-invalid-tcp",
    "log-smurfs",
    "option-in",
    "option-out",
    "cluster-in",
    "cluster-out",
    "cluster-forward",
    "host-in",
    "host-out",
    "host-forward",
    "ct-in",
    "invalid-conntrack",
]
INET_SETS = [
    "v4-dc/management",
    "v4-dc/management-nomatch",
    "v6-dc/management",
    "v6-dc/management-nomatch",
    "v4-dc/blacklist",
    "v4-dc/blacklist-nomatch",
    "v6-dc/blacklist",
    "v6-dc/blacklist-nomatch",
    "v4-cluster-network",
    "v6-cluster-network",
    "v4-local-network",
    "v6-local-network",
    "v4-synflood-limit",
    "v6-synflood-limit",
]
BRIDGE_CHAINS = [
    "vm-out",
    "vm-in",
    "forward",
    "allow-dhcp-in",
    "allow-dhcp-out",
    "block-dhcp-in",
    "block-dhcp-out",
    "allow-ndp-in",
    "allow-ndp-out",
    "block-ndp-in",
    "block-ndp-out",
    "allow-ra-out",
    "block-ra-out",
    "allow-icmp",
    "do-reject",
    "pre-vm-out",
    "pre-vm-in",
    "before-bridge",
    "invalid-conntrack",
]
BRIDGE_SETS = "v4-dc/blacklist v4-dc/blacklist-nomatch v6-dc/blacklist v6-dc/blacklist-nomatch"


def declared(text: str, kind: str) -> list[str]:
    return re.findall(rf"^\t{kind} (\S+) {{$", text, flags=re.M)


def test_both_tables_are_separate_sections() -> None:
    inet, bridge = skeleton_table_text("inet"), skeleton_table_text("bridge")
    statements = re.compile(r"^(?:add|flush) \w+ (\w+) |^table (\w+) ", flags=re.M)
    assert {a or b for a, b in statements.findall(inet)} == {"inet"}
    assert {a or b for a, b in statements.findall(bridge)} == {"bridge"}
    assert inet in skeleton_text() and bridge in skeleton_text()
    with pytest.raises(ValueError):
        skeleton_table_text("ip")


def test_inet_section_declares_the_contract_names() -> None:
    inet = skeleton_table_text("inet")
    chains = declared(inet, "chain")
    assert sorted(chains) == sorted([*INET_BASE, *INET_STATIC, *INET_COMPILER_OWNED])
    assert sorted(declared(inet, "set")) == sorted(INET_SETS)
    assert declared(inet, "map") == ["bridge-map"]
    # static chains (and only those) are flushed on reload
    flushed = re.findall(r"^flush chain inet proxmox-firewall (\S+)$", inet, flags=re.M)
    assert sorted(flushed) == sorted([*INET_BASE, *INET_STATIC])


def test_bridge_section_declares_the_contract_names() -> None:
    bridge = skeleton_table_text("bridge")
    assert sorted(declared(bridge, "chain")) == sorted(BRIDGE_CHAINS)
    assert sorted(declared(bridge, "set")) == sorted(BRIDGE_SETS.split())
    assert sorted(declared(bridge, "map")) == ["bridge-map", "vm-map-in", "vm-map-out"]
    flushed = re.findall(r"^flush chain bridge \S+ (\S+)$", bridge, flags=re.M)
    assert sorted(flushed) == sorted(c for c in BRIDGE_CHAINS if c != "invalid-conntrack")


def test_every_interval_set_auto_merges() -> None:
    """The JSON listing of nft 1.0.6 drops auto-merge; the text is the reference."""
    blocks = re.findall(r"^\tset (\S+) {\n(.*?)^\t}", skeleton_text(), flags=re.M | re.S)
    interval = [(name, body) for name, body in blocks if "flags interval" in body]
    assert len(interval) == 16
    assert all("auto-merge" in body for _, body in interval)


@pytest.mark.netns
def test_inet_skeleton_loads_and_reloads_idempotently(worker: NetnsWorker) -> None:
    text = skeleton_table_text("inet")

    def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        client = NftClient()
        assert client.run_text(text).ok
        once = list_host(client)
        result = client.run_text(text)
        assert result.ok, result.error
        return once, list_host(client)

    once, twice = worker.call(run)
    assert once == twice
    chains = objects_of(once, "chain")
    for name, (hook, prio, policy) in INET_BASE.items():
        assert (chains[name]["hook"], chains[name]["prio"], chains[name]["policy"]) == (
            hook,
            prio,
            policy,
        )
    assert len(rules_of(once, "input")) == 5
    assert rules_of(once, "cluster-in") == []


@pytest.mark.netns
def test_reload_keeps_compiler_owned_content(worker: NetnsWorker) -> None:
    text = skeleton_table_text("inet")

    def run() -> list[dict[str, Any]]:
        client = NftClient()
        assert client.run_text(text).ok
        added = client.run_text(
            "add rule inet proxmox-firewall cluster-in drop\n"
            "add element inet proxmox-firewall v4-dc/management { 192.0.2.0/24 }\n"
        )
        assert added.ok, added.error
        assert client.run_text(text).ok
        return list_host(client)

    items = worker.call(run)
    assert [r["expr"] for r in rules_of(items, "cluster-in")] == [[{"drop": None}]]
    assert objects_of(items, "set")["v4-dc/management"]["elem"] == [
        {"prefix": {"addr": "192.0.2.0", "len": 24}}
    ]
    assert len(rules_of(items, "default-in")) == 9


@pytest.mark.netns
def test_whole_skeleton_text_fails_only_in_the_kernel_when_bridge_features_lack() -> None:
    """Userspace accepts the bridge half; only missing kernel support may reject it."""

    def run() -> tuple[bool, str]:
        result = NftClient().run_text(skeleton_text())
        return result.ok, result.error

    ok, error = run_in_new_netns(run)
    if probe_features().guest_table_supported:
        assert ok, error
    else:
        assert not ok
        messages = re.findall(r"Error: (.*)", error)
        assert messages
        assert all(m.startswith("Could not process rule: ") for m in messages), error


@pytest.mark.netns
def test_skeleton_commands_round_trip(worker: NetnsWorker) -> None:
    families = ("inet", "bridge") if probe_features().guest_table_supported else ("inet",)
    commands = skeleton_commands(families)
    assert commands == skeleton_commands(families)  # cached, and a fresh copy each time
    assert commands is not skeleton_commands(families)
    text = "".join(skeleton_table_text(f) for f in families)

    def via_text() -> Any:
        client = NftClient()
        assert client.run_text(text).ok
        return strip_handles(client.list_ruleset_json().output)

    def via_json() -> Any:
        client = NftClient()
        result = client.run_json({"nftables": commands})
        assert result.ok, result.error
        return strip_handles(client.list_ruleset_json().output)

    assert worker.call(via_json) == run_in_new_netns(via_text)


def test_listing_conversion_orders_chains_before_elements_and_rules() -> None:
    listing = [
        {"table": {"family": "inet", "name": "t", "handle": 1}},
        {"map": {"family": "inet", "table": "t", "name": "m", "type": "ifname",
                 "map": "verdict", "handle": 2, "elem": [["x", {"jump": {"target": "c"}}]]}},
        {"chain": {"family": "inet", "table": "t", "name": "c", "handle": 3}},
        {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 4,
                  "expr": [{"accept": None}]}},
    ]  # fmt: skip
    assert listing_to_commands(listing) == [
        {"add": {"table": {"family": "inet", "name": "t"}}},
        {"add": {"chain": {"family": "inet", "table": "t", "name": "c"}}},
        {"add": {"map": {"family": "inet", "table": "t", "name": "m", "type": "ifname",
                         "map": "verdict"}}},
        {"add": {"element": {"family": "inet", "table": "t", "name": "m",
                             "elem": [["x", {"jump": {"target": "c"}}]]}}},
        {"add": {"rule": {"family": "inet", "table": "t", "chain": "c",
                          "expr": [{"accept": None}]}}},
    ]  # fmt: skip
