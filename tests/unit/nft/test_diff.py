"""plan_update on hand-built rulesets: which commands, in which order (no kernel).

The kernel round trips in test_diff_kernel.py prove the commands do what they claim;
these pin the shape: what is touched, what is left alone, and the order that lets the
kernel accept deletions.
"""

from __future__ import annotations

import copy
from typing import Any

from proxmox_fw.nft.diff import plan_update
from proxmox_fw.nft.objects import HOST_TABLE, INET, Command, CtHelper, Ruleset, Set
from proxmox_fw.nft.skeleton import skeleton_names


def accept_port(port: int) -> list[Any]:
    dport = {"payload": {"protocol": "tcp", "field": "dport"}}
    return [{"match": {"op": "==", "left": dport, "right": port}}, {"counter": None},
            {"accept": None}]


def base() -> Ruleset:
    """Host table only (the guest table disabled), like a node without guest firewalls."""
    rs = Ruleset()
    rs.guests.enabled = False
    host = rs.host
    host.sets["v4-dc/trusted"] = Set("v4-dc/trusted", "ipv4_addr", ["interval"], True,
                                     ["192.0.2.1", {"prefix": {"addr": "198.51.100.0", "len": 24}}])
    host.sets["v4-dc/management"] = Set("v4-dc/management", "ipv4_addr", ["interval"], True,
                                        ["203.0.113.7"])
    host.chain("group-web-in").add(accept_port(80), "firewall/cluster.fw:20")
    host.chain("bridge-vnet1").add(accept_port(443), "sdn/firewall/vnet1.fw:3")
    cluster_in = host.chain("cluster-in", in_skeleton=True)
    cluster_in.add([{"jump": {"target": "group-web-in"}}], "firewall/cluster.fw:10")
    cluster_in.add([{"counter": None}, {"drop": None}], "firewall/cluster.fw")
    host.chain("host-in", in_skeleton=True).add(accept_port(22), "nodes/pve1/host.fw:8")
    host.map("bridge-map").elements.append(("vnet1", {"jump": {"target": "bridge-vnet1"}}))
    host.ct_helpers["helper-ftp-tcp"] = CtHelper("helper-ftp-tcp", "ftp", "tcp", "inet")
    return rs


def kinds(commands: list[Command]) -> list[tuple[str, str, str]]:
    """(verb, object, name-or-chain) per command."""
    out = []
    for cmd in commands:
        ((verb, body),) = cmd.items()
        ((obj, spec),) = body.items()
        out.append((verb, obj, spec.get("name", spec.get("chain", ""))))
    return out


def test_identical_rulesets_need_no_commands() -> None:
    plan = plan_update(base(), base())
    assert plan.empty
    assert plan.stats.summary() == {}


def test_changed_chain_is_flushed_and_refilled_alone() -> None:
    new = base()
    new.host.chains["host-in"].add(accept_port(8006), "nodes/pve1/host.fw:9")
    plan = plan_update(base(), new)
    assert kinds(plan.commands) == [
        ("flush", "chain", "host-in"),
        ("add", "rule", "host-in"),
        ("add", "rule", "host-in"),
    ]
    assert plan.stats.summary() == {"chains_changed": 1}


def test_new_chain_is_declared_before_the_rule_that_jumps_to_it() -> None:
    new = base()
    new.host.chain("group-db-in").add(accept_port(5432), "firewall/cluster.fw:30")
    new.host.chains["cluster-in"].rules.insert(
        0, copy.deepcopy(new.host.chains["cluster-in"].rules[0]))
    new.host.chains["cluster-in"].rules[0].expr = [{"jump": {"target": "group-db-in"}}]
    plan = plan_update(base(), new)
    order = kinds(plan.commands)
    assert order.index(("add", "chain", "group-db-in")) < order.index(("add", "rule", "cluster-in"))
    assert ("flush", "chain", "group-web-in") not in order  # untouched
    assert plan.stats.chains_added == 1
    assert plan.stats.chains_changed == 1


def test_removed_chain_is_deleted_after_its_references() -> None:
    new = base()
    del new.host.chains["group-web-in"]
    new.host.chains["cluster-in"].rules.pop(0)  # the jump to it
    del new.host.chains["bridge-vnet1"]
    new.host.maps["bridge-map"].elements.clear()  # the map element jumping to it
    plan = plan_update(base(), new)
    order = kinds(plan.commands)
    assert order[-2:] == [("delete", "chain", "group-web-in"), ("delete", "chain", "bridge-vnet1")]
    assert order.index(("flush", "chain", "cluster-in")) < order.index(
        ("delete", "chain", "group-web-in"))
    assert order.index(("delete", "element", "bridge-map")) < order.index(
        ("delete", "chain", "bridge-vnet1"))
    assert plan.stats.chains_removed == 2


def test_removed_skeleton_chain_is_flushed_not_deleted() -> None:
    assert "host-in" in skeleton_names(INET)
    new = base()
    del new.host.chains["host-in"]
    plan = plan_update(base(), new)
    assert kinds(plan.commands) == [("flush", "chain", "host-in")]


def test_set_elements_are_added_and_removed_individually() -> None:
    new = base()
    new.host.sets["v4-dc/trusted"].elements = [
        {"prefix": {"addr": "198.51.100.0", "len": 24}}, "192.0.2.9"]
    plan = plan_update(base(), new)
    assert plan.commands == [
        {"delete": {"element": {"family": INET, "table": HOST_TABLE, "name": "v4-dc/trusted",
                                "elem": ["192.0.2.1"]}}},
        {"add": {"element": {"family": INET, "table": HOST_TABLE, "name": "v4-dc/trusted",
                             "elem": ["192.0.2.9"]}}},
    ]
    assert plan.stats.summary() == {"sets_changed": 1, "elements_added": 1,
                                    "elements_removed": 1}


def test_removed_sets_are_deleted_last_or_flushed_when_the_skeleton_has_them() -> None:
    new = base()
    del new.host.sets["v4-dc/trusted"]
    del new.host.sets["v4-dc/management"]  # declared by the skeleton: emptied only
    plan = plan_update(base(), new)
    assert kinds(plan.commands) == [("flush", "set", "v4-dc/management"),
                                    ("delete", "set", "v4-dc/trusted")]


def test_map_element_with_a_new_verdict_is_replaced() -> None:
    new = base()
    new.host.chain("bridge-vnet2").add(accept_port(8443), "sdn/firewall/vnet2.fw:3")
    new.host.maps["bridge-map"].elements = [
        ("vnet1", {"goto": {"target": "bridge-vnet1"}}),
        ("vnet2", {"jump": {"target": "bridge-vnet2"}}),
    ]
    plan = plan_update(base(), new)
    ref = {"family": INET, "table": HOST_TABLE, "name": "bridge-map"}
    assert {"delete": {"element": {**ref, "elem": ["vnet1"]}}} in plan.commands
    assert {"add": {"element": {**ref, "elem": [
        ["vnet1", {"goto": {"target": "bridge-vnet1"}}],
        ["vnet2", {"jump": {"target": "bridge-vnet2"}}],
    ]}}} in plan.commands
    order = kinds(plan.commands)
    assert order.index(("add", "chain", "bridge-vnet2")) < order.index(
        ("add", "element", "bridge-map"))


def test_set_definition_change_replaces_the_table() -> None:
    new = base()
    new.host.sets["v4-dc/trusted"].comment = "now with a comment"
    plan = plan_update(base(), new)
    assert plan.stats.tables_replaced == [f"{INET} {HOST_TABLE}"]
    assert plan.commands[:2] == [
        {"add": {"table": {"family": INET, "name": HOST_TABLE}}},
        {"delete": {"table": {"family": INET, "name": HOST_TABLE}}},
    ]


def test_disabled_table_is_deleted_and_unknown_state_rebuilds_everything() -> None:
    new = base()
    new.host.enabled = False
    plan = plan_update(base(), new)
    assert plan.commands == [
        {"add": {"table": {"family": INET, "name": HOST_TABLE}}},
        {"delete": {"table": {"family": INET, "name": HOST_TABLE}}},
    ]
    assert plan.stats.tables_deleted == [f"{INET} {HOST_TABLE}"]
    both_off = base()
    both_off.host.enabled = False
    assert plan_update(both_off, both_off).empty


def test_new_and_removed_ct_helpers() -> None:
    new = base()
    del new.host.ct_helpers["helper-ftp-tcp"]
    new.host.ct_helpers["helper-tftp-udp"] = CtHelper("helper-tftp-udp", "tftp", "udp", "inet")
    plan = plan_update(base(), new)
    order = kinds(plan.commands)
    assert order == [("add", "ct helper", "helper-tftp-udp"),
                     ("delete", "ct helper", "helper-ftp-tcp")]
