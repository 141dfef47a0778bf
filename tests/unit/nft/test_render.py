"""Shape of the rendered commands (pure) and their acceptance on top of the skeleton."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.nft.objects import CtHelper, Ruleset, Set, Table
from proxmox_fw.nft.render import (
    COMMENT_MAX_BYTES,
    merge_overlapping,
    render_commands,
    render_document,
    render_table_commands,
    truncate_comment,
)
from proxmox_fw.nft.skeleton import skeleton_table_text
from tests.unit.nft.nft_testlib import list_host, objects_of, rules_of

ACCEPT = {"accept": None}


def verbs(commands: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(verb, object kind, name-or-chain) per command, for order assertions."""
    out = []
    for cmd in commands:
        ((verb, obj),) = cmd.items()
        ((kind, body),) = obj.items()
        out.append((verb, kind, body.get("name", body.get("chain", ""))))
    return out


def sample_ruleset() -> Ruleset:
    rs = Ruleset()
    host = rs.host
    cin = host.chain("cluster-in", in_skeleton=True)
    cin.add([{"jump": {"target": "group-web-in"}}], "firewall/cluster.fw:7")
    cin.add([{"drop": None}])
    group = host.chain("group-web-in")
    group.add(
        [
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                    "right": 80,
                }
            },
            ACCEPT,
        ],
        "firewall/cluster.fw:3",
    )
    host.sets["v4-dc/web"] = Set(
        "v4-dc/web",
        "ipv4_addr",
        flags=["interval"],
        auto_merge=True,
        elements=[{"prefix": {"addr": "10.0.0.0", "len": 8}}],
    )
    host.sets["v4-dc/empty"] = Set("v4-dc/empty", "ipv4_addr", flags=["interval"])
    host.ct_helpers["helper-ftp-tcp"] = CtHelper("helper-ftp-tcp", "ftp", "tcp")
    host.map("bridge-map").elements.append(("vnet0", {"jump": {"target": "group-web-in"}}))
    host.map("unused-map")
    rs.guests.enabled = False
    return rs


def test_disabled_table_is_added_then_deleted() -> None:
    table = Table("bridge", "proxmox-firewall-guests", enabled=False)
    table.chain("guest-100-in").add([ACCEPT])
    assert render_table_commands(table) == [
        {"add": {"table": {"family": "bridge", "name": "proxmox-firewall-guests"}}},
        {"delete": {"table": {"family": "bridge", "name": "proxmox-firewall-guests"}}},
    ]


def test_order_sets_helpers_chains_maps_rules() -> None:
    got = verbs(render_table_commands(sample_ruleset().host))
    assert got == [
        ("add", "set", "v4-dc/web"),
        ("flush", "set", "v4-dc/web"),
        ("add", "element", "v4-dc/web"),
        ("add", "set", "v4-dc/empty"),
        ("flush", "set", "v4-dc/empty"),
        ("add", "ct helper", "helper-ftp-tcp"),
        ("flush", "chain", "cluster-in"),
        ("add", "chain", "group-web-in"),
        ("flush", "chain", "group-web-in"),
        ("flush", "map", "bridge-map"),
        ("add", "element", "bridge-map"),
        ("flush", "map", "unused-map"),
        ("add", "rule", "cluster-in"),
        ("add", "rule", "cluster-in"),
        ("add", "rule", "group-web-in"),
    ]


def test_rule_shape_and_origin_comment() -> None:
    cmds = render_table_commands(sample_ruleset().host)
    rules = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    assert rules[0] == {
        "family": "inet",
        "table": "proxmox-firewall",
        "chain": "cluster-in",
        "expr": [{"jump": {"target": "group-web-in"}}],
        "comment": "firewall/cluster.fw:7",
    }
    assert "comment" not in rules[1]  # no origin, no comment


def test_set_and_element_shapes() -> None:
    cmds = render_table_commands(sample_ruleset().host)
    assert cmds[0] == {
        "add": {
            "set": {
                "family": "inet",
                "table": "proxmox-firewall",
                "name": "v4-dc/web",
                "type": "ipv4_addr",
                "flags": ["interval"],
                "auto-merge": True,
            }
        }
    }
    assert cmds[2]["add"]["element"]["elem"] == [{"prefix": {"addr": "10.0.0.0", "len": 8}}]
    assert "auto-merge" not in cmds[3]["add"]["set"]


def test_concatenated_set_type_and_comment() -> None:
    table = Table("bridge", "proxmox-firewall-guests")
    table.sets["mac"] = Set("mac", "ifname . ether_addr", comment="macfilter")
    add_set = render_table_commands(table)[0]
    assert add_set["add"]["set"]["type"] == ["ifname", "ether_addr"]
    assert add_set["add"]["set"]["comment"] == "macfilter"
    assert "flags" not in add_set["add"]["set"]


def test_map_elements_and_helper_shape() -> None:
    cmds = render_table_commands(sample_ruleset().host)
    elems = [c["add"]["element"] for c in cmds if "element" in c.get("add", {})]
    assert elems[1] == {
        "family": "inet",
        "table": "proxmox-firewall",
        "name": "bridge-map",
        "elem": [["vnet0", {"jump": {"target": "group-web-in"}}]],
    }
    helper = next(c["add"]["ct helper"] for c in cmds if "ct helper" in c.get("add", {}))
    assert helper == {
        "family": "inet",
        "table": "proxmox-firewall",
        "name": "helper-ftp-tcp",
        "type": "ftp",
        "protocol": "tcp",
        "l3proto": None,
    }


def test_document_covers_both_tables_deterministically() -> None:
    doc = render_document(sample_ruleset())
    assert list(doc) == ["nftables"]
    assert doc["nftables"] == render_commands(sample_ruleset())
    assert doc["nftables"][-2:] == render_table_commands(sample_ruleset().guests)
    assert json.dumps(doc) == json.dumps(render_document(sample_ruleset()))


def test_long_comment_is_cut_on_a_character_boundary() -> None:
    assert truncate_comment("firewall/cluster.fw:1") == "firewall/cluster.fw:1"
    cut = truncate_comment("é" * 100)
    assert len(cut.encode()) <= COMMENT_MAX_BYTES
    assert cut == "é" * (COMMENT_MAX_BYTES // 2)


def test_merge_leaves_disjoint_elements_untouched() -> None:
    elems = [
        {"prefix": {"addr": "192.168.0.1", "len": 24}},  # host bits kept as written
        "10.0.0.1",
        {"range": ["10.0.0.2", "10.0.0.9"]},
        "fe80::1",
    ]
    assert merge_overlapping(elems) is elems


def test_merge_overlapping_elements() -> None:
    elems = [
        "10.1.2.3",
        {"prefix": {"addr": "10.0.0.0", "len": 8}},
        "192.168.1.1",
        "192.168.1.1",
        {"range": ["172.16.0.10", "172.16.0.20"]},
        {"range": ["172.16.0.15", "172.16.0.30"]},
        "10.1.2.3",
    ]
    assert merge_overlapping(elems) == [
        {"prefix": {"addr": "10.0.0.0", "len": 8}},  # the covering element, at its position
        "192.168.1.1",
        {"range": ["172.16.0.10", "172.16.0.30"]},
    ]


def test_merge_aligned_union_becomes_prefix_and_families_stay_apart() -> None:
    elems = [
        {"range": ["10.0.0.0", "10.0.0.200"]},
        {"range": ["10.0.0.100", "10.0.0.255"]},
        {"prefix": {"addr": "fd00::", "len": 64}},
        "fd00::5",
    ]
    assert merge_overlapping(elems) == [
        {"prefix": {"addr": "10.0.0.0", "len": 24}},
        {"prefix": {"addr": "fd00::", "len": 64}},
    ]


def test_merge_gives_up_on_non_address_elements() -> None:
    elems = [{"concat": ["tap100i0", "aa:bb:cc:dd:ee:ff"]}, "10.0.0.1", "10.0.0.1"]
    assert merge_overlapping(elems) is elems


@pytest.mark.netns
def test_compile_output_applies_on_top_of_the_skeleton(worker: NetnsWorker) -> None:
    """The documented pipe: `skeleton | nft -f -` then `compile | nft -j -f -`."""
    rs = sample_ruleset()
    rs.host.sets["v4-dc/web"].elements.append("10.9.9.9")  # overlaps 10.0.0.0/8
    rs.host.chain("host-in", in_skeleton=True).add([ACCEPT], "nodes/pve1/host.fw:4")
    rs.host.maps.pop("unused-map")

    def run() -> list[dict[str, Any]]:
        client = NftClient()
        loaded = client.run_text(skeleton_table_text("inet"))
        assert loaded.ok, loaded.error
        for _ in range(2):  # a second compile on top of the first one must apply too
            result = client.run_json(render_document(rs))
            assert result.ok, result.error
        return list_host(client)

    items = worker.call(run)
    cluster_in = rules_of(items, "cluster-in")
    assert len(cluster_in) == 2
    assert cluster_in[0]["comment"] == "firewall/cluster.fw:7"
    assert cluster_in[0]["expr"] == [{"jump": {"target": "group-web-in"}}]
    assert "comment" not in cluster_in[1]
    assert rules_of(items, "host-in")[0]["comment"] == "nodes/pve1/host.fw:4"
    assert len(rules_of(items, "group-web-in")) == 1
    assert objects_of(items, "set")["v4-dc/web"]["elem"] == [
        {"prefix": {"addr": "10.0.0.0", "len": 8}}
    ]
    assert objects_of(items, "map")["bridge-map"]["elem"] == [
        ["vnet0", {"jump": {"target": "group-web-in"}}]
    ]
    assert "helper-ftp-tcp" in objects_of(items, "ct helper")
