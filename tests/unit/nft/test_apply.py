"""apply_ruleset / remove_tables against the real kernel, in throwaway namespaces."""

from __future__ import annotations

from typing import Any

import pytest

from proxmox_fw.nft.apply import apply_ruleset, remove_tables
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.diff import plan_update
from proxmox_fw.nft.features import KernelFeatures, probe_features
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.nft.objects import GUEST_TABLE, Ruleset, Set
from tests.unit.nft.nft_testlib import list_host, objects_of, rules_of

pytestmark = pytest.mark.netns

HOST = "inet proxmox-firewall"
GUESTS = "bridge proxmox-firewall-guests"
DPORT_22 = {
    "match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}
}


def small_ruleset(group: str = "group-admins-in") -> Ruleset:
    rs = Ruleset()
    rs.host.sets["v4-dc/admins"] = Set(
        "v4-dc/admins",
        "ipv4_addr",
        flags=["interval"],
        auto_merge=True,
        elements=[
            {"prefix": {"addr": "192.0.2.0", "len": 24}},
            "192.0.2.7",  # overlaps the prefix: merged before it reaches nft 1.0.6
            "198.51.100.1",
        ],
    )
    chain = rs.host.chain(group)
    admins = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                        "right": "@v4-dc/admins"}}  # fmt: skip
    chain.add([admins, DPORT_22, {"accept": None}], "firewall/cluster.fw:9")
    cluster_in = rs.host.chain("cluster-in", in_skeleton=True)
    cluster_in.add([{"jump": {"target": group}}], "firewall/cluster.fw:12")
    cluster_in.add([{"jump": {"target": "drop-noise"}}])
    cluster_in.add([{"drop": None}], "firewall/cluster.fw:2")
    return rs


def apply_in(worker: NetnsWorker, rs: Ruleset, features: KernelFeatures) -> Any:
    def run() -> Any:
        return apply_ruleset(rs, NftClient(), features)

    return worker.call(run)


def host_listing(worker: NetnsWorker) -> list[dict[str, Any]]:
    return worker.call(lambda: list_host(NftClient()))


def table_exists(worker: NetnsWorker, family: str, name: str) -> bool:
    return bool(worker.call(lambda: NftClient().list_table_json(family, name).ok))


def test_apply_small_ruleset(worker: NetnsWorker) -> None:
    features = probe_features()
    result = apply_in(worker, small_ruleset(), features)
    assert result.ok, result.error
    items = host_listing(worker)

    cluster_in = rules_of(items, "cluster-in")
    assert [r.get("comment") for r in cluster_in] == [
        "firewall/cluster.fw:12",
        None,
        "firewall/cluster.fw:2",
    ]
    assert cluster_in[0]["expr"] == [{"jump": {"target": "group-admins-in"}}]
    (group_rule,) = rules_of(items, "group-admins-in")
    assert group_rule["comment"] == "firewall/cluster.fw:9"
    assert objects_of(items, "set")["v4-dc/admins"]["elem"] == [
        {"prefix": {"addr": "192.0.2.0", "len": 24}},
        "198.51.100.1",
    ]
    assert len(rules_of(items, "default-in")) == 9  # the skeleton came with it
    assert objects_of(items, "chain")["input"]["policy"] == "drop"

    assert result.applied_tables[0] == HOST
    if features.guest_table_supported:
        assert result.applied_tables == [HOST, GUESTS] and result.complete
    else:
        assert result.missing_features == features.missing_for_guests() != []
        assert result.deleted_tables == [GUESTS] and not result.complete
        assert not table_exists(worker, "bridge", GUEST_TABLE)


def test_failed_apply_keeps_the_previous_ruleset(worker: NetnsWorker) -> None:
    features = probe_features()
    assert apply_in(worker, small_ruleset(), features).ok
    before = host_listing(worker)

    # A refused declaration cannot be left out like a refused rule (see test_salvage):
    # with our host table in the kernel, that table stays as it was.
    broken = small_ruleset(group="group-other-in")
    broken.host.sets["v4-broken"] = Set("v4-broken", "ipv4_addr", elements=["300.1.2.3"])
    result = apply_in(worker, broken, features)
    assert not result.ok
    assert result.error  # libnftables' own message
    assert result.applied_tables == []
    assert host_listing(worker) == before


def test_reapply_replaces_stale_objects(worker: NetnsWorker) -> None:
    features = probe_features()
    first = small_ruleset(group="group-old-in")
    first.host.sets["v4-dc/old"] = Set("v4-dc/old", "ipv4_addr", elements=["192.0.2.1"])
    assert apply_in(worker, first, features).ok
    assert apply_in(worker, small_ruleset(), features).ok
    items = host_listing(worker)
    assert "group-old-in" not in objects_of(items, "chain")
    assert "v4-dc/old" not in objects_of(items, "set")
    assert "group-admins-in" in objects_of(items, "chain")


def test_disabled_host_table_is_removed(worker: NetnsWorker) -> None:
    features = probe_features()
    assert apply_in(worker, small_ruleset(), features).ok
    rs = Ruleset()
    rs.host.enabled = False
    rs.guests.enabled = False
    result = apply_in(worker, rs, features)
    assert result.ok, result.error
    assert result.applied_tables == [] and result.deleted_tables == [HOST, GUESTS]
    assert not table_exists(worker, "inet", "proxmox-firewall")


def test_guest_table_that_cannot_load_fails_the_whole_transaction(worker: NetnsWorker) -> None:
    """Claiming the bridge features on a kernel without them must not half-apply."""
    if probe_features().guest_table_supported:
        pytest.skip("this kernel loads the guest table")
    assert apply_in(worker, small_ruleset(), probe_features()).ok
    before = host_listing(worker)
    rs = small_ruleset(group="group-new-in")
    result = apply_in(worker, rs, KernelFeatures())  # wrongly claims everything
    assert not result.ok
    assert "bridge" in result.error
    assert host_listing(worker) == before


def test_transaction_shape(worker: NetnsWorker) -> None:
    rs = small_ruleset()
    rs.guests.enabled = False
    tx = worker.call(lambda: plan_update(None, rs))
    host = {"table": {"family": "inet", "name": "proxmox-firewall"}}
    guests = {"table": {"family": "bridge", "name": GUEST_TABLE}}
    # the host table is reset, rebuilt from the skeleton, then filled; the guest one removed
    assert tx.commands[:3] == [{"add": host}, {"delete": host}, {"add": host}]
    assert tx.commands[-2:] == [{"add": guests}, {"delete": guests}]
    assert tx.stats.tables_replaced == [HOST] and tx.stats.tables_deleted == [GUESTS]


def test_remove_tables_leaves_foreign_tables(worker: NetnsWorker) -> None:
    def empty() -> bool:
        return remove_tables(NftClient()).ok

    assert worker.call(empty)  # nothing there: not an error
    assert apply_in(worker, small_ruleset(), probe_features()).ok
    assert worker.call(lambda: NftClient().run_text("add table inet custom").ok)
    result = worker.call(lambda: remove_tables(NftClient()))
    assert result.ok, result.error
    assert not table_exists(worker, "inet", "proxmox-firewall")
    assert not table_exists(worker, "bridge", GUEST_TABLE)
    assert table_exists(worker, "inet", "custom")
