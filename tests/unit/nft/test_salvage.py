"""The safety net (issue 10 item 2b) against the real kernel, in throwaway namespaces:
rules the kernel refuses are singled out and everything else is applied; a refusal that
cannot be narrowed down loads the default rules (management access), never nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from proxmox_fw.nft.apply import ApplyResult, apply_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.nft.objects import Ruleset, Set
from tests.unit.nft.nft_testlib import MISSING_SET, Poisoned, list_host, objects_of, rules_of
from tests.unit.nft.test_apply import small_ruleset

pytestmark = pytest.mark.netns

DPORT = {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                   "right": 3306}}  # fmt: skip
MANAGEMENT = "v4-dc/management"


def with_management(rs: Ruleset) -> Ruleset:
    rs.host.sets[MANAGEMENT] = Set(MANAGEMENT, "ipv4_addr", flags=["interval"],
                                   auto_merge=True, elements=["192.0.2.10"])  # fmt: skip
    return rs


def apply_in(worker: NetnsWorker, rs: Ruleset,
             client: Callable[[], NftClient] = NftClient) -> Any:
    return worker.call(lambda: apply_ruleset(rs, client(), probe_features()))


def host(worker: NetnsWorker) -> list[dict[str, Any]]:
    return worker.call(lambda: list_host(NftClient()))


def comments(items: list[dict[str, Any]], chain: str) -> list[Any]:
    return [r.get("comment") for r in rules_of(items, chain)]


@pytest.mark.parametrize("verdict", ["accept", "drop", "reject", "jump"])
def test_a_refused_rule_is_named_and_the_rest_applies(worker: NetnsWorker, verdict: str) -> None:
    rs = with_management(small_ruleset())
    cluster_in = rs.host.chains["cluster-in"]
    stmt: dict[str, Any] = (
        {"jump": {"target": "group-admins-in"}} if verdict == "jump" else {verdict: None})
    cluster_in.rules.insert(1, type(cluster_in.rules[0])([MISSING_SET, DPORT, stmt],
                                                         "firewall/cluster.fw:5"))
    result: ApplyResult = apply_in(worker, rs)
    assert result.ok and not result.complete and not result.fallback
    (message,) = result.refused
    assert message.startswith("firewall/cluster.fw:5: the kernel refuses this rule")
    items = host(worker)
    if verdict == "accept":  # left out: what it would accept meets the rules after it
        assert comments(items, "cluster-in") == [
            "firewall/cluster.fw:12", None, "firewall/cluster.fw:2"]
    else:  # never wider: nothing after it in the chain can accept what it stopped
        assert comments(items, "cluster-in") == [
            "firewall/cluster.fw:12", "firewall/cluster.fw:5", None, "firewall/cluster.fw:2"]
        assert rules_of(items, "cluster-in")[1]["expr"] == [{"drop": None}]
    assert [r.get("comment") for r in rules_of(items, "group-admins-in")] == [
        "firewall/cluster.fw:9"]
    assert objects_of(items, "set")[MANAGEMENT]["elem"] == ["192.0.2.10"]


def test_several_refused_rules_in_several_chains_are_all_named(worker: NetnsWorker) -> None:
    rs = small_ruleset()
    rs.host.chains["group-admins-in"].add([MISSING_SET, {"accept": None}], "firewall/a.fw:3")
    rs.host.chains["cluster-in"].add([MISSING_SET, {"drop": None}], "firewall/b.fw:7")
    for n in range(40):  # many good rules around them: bisected, not tried one by one
        rs.host.chains["cluster-in"].add([DPORT, {"counter": None}], f"firewall/c.fw:{n}")
    result = apply_in(worker, rs)
    assert result.ok
    assert sorted(m.split(":")[0] + ":" + m.split(":")[1] for m in result.refused) == [
        "firewall/a.fw:3", "firewall/b.fw:7"]
    assert len(rules_of(host(worker), "cluster-in")) == 3 + 1 + 40


def bad_declaration(rs: Ruleset) -> Ruleset:
    rs.host.sets["v4-broken"] = Set("v4-broken", "ipv4_addr", elements=["300.1.2.3"])
    return rs


def test_an_unisolable_refusal_loads_the_default_rules_with_management(
    worker: NetnsWorker,
) -> None:
    result = apply_in(worker, bad_declaration(with_management(small_ruleset())))
    assert result.ok and result.fallback and not result.complete
    items = host(worker)
    chains = objects_of(items, "chain")
    assert chains["input"]["policy"] == "drop"
    assert "group-admins-in" not in chains  # no user rule
    assert rules_of(items, "cluster-in") == []
    # management access (admin guide §13.8.1) kept: the set and the rules using it
    assert objects_of(items, "set")[MANAGEMENT]["elem"] == ["192.0.2.10"]
    assert len(rules_of(items, "accept-management")) == 2
    assert any(r["expr"][-1] == {"jump": {"target": "accept-management"}}
               for r in rules_of(items, "default-in"))


def test_the_fallback_never_replaces_tables_already_there(worker: NetnsWorker) -> None:
    assert apply_in(worker, small_ruleset()).ok
    before = host(worker)
    result = apply_in(worker, bad_declaration(small_ruleset()))
    assert not result.ok and "kept" in result.error
    assert host(worker) == before


def test_the_kernel_refusing_the_last_command_of_the_transaction(worker: NetnsWorker) -> None:
    rs = small_ruleset()
    rs.host.chain("host-in", in_skeleton=True).add([DPORT, {"reject": None}],
                                                   "firewall/host.fw:99")
    result = apply_in(worker, rs, lambda: Poisoned(rules={"firewall/host.fw:99"}))
    assert result.ok
    (message,) = result.refused
    assert message.startswith("firewall/host.fw:99: the kernel refuses this rule")
    items = host(worker)
    assert comments(items, "cluster-in") == [
        "firewall/cluster.fw:12", None, "firewall/cluster.fw:2"]
    assert rules_of(items, "host-in") == [{"family": "inet", "table": "proxmox-firewall",
                                           "chain": "host-in", "expr": [{"drop": None}],
                                           "comment": "firewall/host.fw:99"}]  # fmt: skip
