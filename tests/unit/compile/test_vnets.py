"""Vnet (SDN bridge) firewalls: ``bridge-<vnet>`` chains in both tables, and their maps."""

from __future__ import annotations

from typing import Any

from proxmox_fw.nft.objects import Table

from .test_guests import (
    ACCEPT,
    CLUSTER_ON,
    DO_REJECT,
    DROP,
    HOST_ON,
    G,
    build,
    exprs,
    jump,
    m,
    meta,
    pl,
    without_counter,
)

VNET_ON = "[OPTIONS]\nenable: 1\n"


def tables(vnets: dict[str, str], refused: int = 0, **kw: Any) -> tuple[Table, Table]:
    """Both tables; ``refused`` lines are warned about as pve-firewall refusals."""
    res = build(vnets=vnets, **kw)
    said = [str(d) for d in res.diagnostics]
    assert [d for d in said if "pve-firewall refuses" not in d] == []
    assert len(said) == refused, said
    return res.ruleset.host, res.ruleset.guests


def verdicts(table: Table, chain: str) -> list[Any]:
    return [r[-1] for r in exprs(table, chain)]


def test_vnet_chain_in_both_tables_starts_with_before_bridge() -> None:
    host, guests = tables({"vnet0": VNET_ON})
    assert guests.enabled  # an enabled vnet alone needs the guest table
    for t in (host, guests):
        assert exprs(t, "bridge-vnet0")[0] == [jump("before-bridge")]
        assert not t.chains["bridge-vnet0"].in_skeleton


def test_bridge_map_elements() -> None:
    host, guests = tables({"vnet0": VNET_ON, "vnet1": VNET_ON})
    # forwarded within the bridge: keyed by input and output bridge
    assert guests.maps["bridge-map"].elements == [
        ({"concat": ["vnet0", "vnet0"]}, jump("bridge-vnet0")),
        ({"concat": ["vnet1", "vnet1"]}, jump("bridge-vnet1")),
    ]
    # to and from the host: keyed by the bridge interface
    assert host.maps["bridge-map"].elements == [
        ("vnet0", jump("bridge-vnet0")),
        ("vnet1", jump("bridge-vnet1")),
    ]


def test_forward_rules_and_default_accept_policy() -> None:
    text = VNET_ON + "[RULES]\nFORWARD DROP -p tcp -dport 23\nFORWARD ACCEPT -source 10.0.0.0/8\n"
    host, guests = tables({"vnet0": text})
    for t in (host, guests):
        rules = [without_counter(r) for r in exprs(t, "bridge-vnet0")]
        assert rules == [
            [jump("before-bridge")],
            [m(meta("l4proto"), "tcp"), m(pl("th", "dport"), 23), DROP],
            [m(pl("ip", "saddr"), {"prefix": {"addr": "10.0.0.0", "len": 8}}), ACCEPT],
            [ACCEPT],
        ]


def test_drop_policy_with_log() -> None:
    host, guests = tables({"vnet0": VNET_ON + "policy_forward: DROP\nlog_level_forward: info\n"})
    for t in (host, guests):
        assert exprs(t, "bridge-vnet0")[-2] == [
            {"limit": {"rate": 1, "per": "second", "burst": 5}},
            {"log": {"prefix": ":0:6:bridge-vnet0: DROP: ", "group": 0}},
        ]
        assert without_counter(exprs(t, "bridge-vnet0")[-1]) == [DROP]


def test_reject_is_drop_in_the_bridge_table_and_do_reject_in_inet() -> None:
    text = VNET_ON + "policy_forward: REJECT\n[RULES]\nFORWARD REJECT -p tcp -dport 23\n"
    host, guests = tables({"vnet0": text}, refused=2)  # the policy line and the rule
    # the bridge forward hook cannot reject: the kernel would refuse the whole batch
    assert verdicts(guests, "bridge-vnet0")[1:] == [DROP, DROP]
    assert verdicts(host, "bridge-vnet0")[1:] == [DO_REJECT, DO_REJECT]


def test_disabled_vnet_produces_nothing() -> None:
    res = build(vnets={"vnet0": "[OPTIONS]\nenable: 0\n", "vnet1": "[RULES]\nFORWARD DROP\n"})
    assert not res.ruleset.guests.enabled  # vnet firewalls are off by default
    assert "bridge-vnet0" not in res.ruleset.host.chains
    assert "bridge-vnet1" not in res.ruleset.host.chains
    assert res.ruleset.host.maps["bridge-map"].elements == []


def test_disabled_vnet_next_to_an_enabled_guest() -> None:
    res = build({100: G()}, vnets={"vnet0": "[OPTIONS]\nenable: 0\n"})
    assert res.ruleset.guests.enabled
    assert "bridge-vnet0" not in res.ruleset.guests.chains
    assert res.ruleset.guests.maps["bridge-map"].elements == []


def test_host_firewall_off_keeps_the_vnet_chain_in_the_bridge_table_only() -> None:
    host, guests = tables({"vnet0": VNET_ON}, host="[OPTIONS]\nnftables: 1\nenable: 0\n")
    assert not host.enabled
    assert guests.enabled and "bridge-vnet0" in guests.chains


def test_cluster_firewall_off_means_no_vnet_chains() -> None:
    res = build(vnets={"vnet0": VNET_ON}, cluster="[OPTIONS]\nenable: 0\n")
    assert not res.ruleset.guests.enabled and not res.ruleset.host.enabled


def test_group_in_a_vnet_jumps_to_the_forward_group_chain() -> None:
    cluster = CLUSTER_ON + "[group web]\nFORWARD REJECT -p tcp -dport 80\n"
    host, guests = tables({"vnet0": VNET_ON + "[RULES]\nGROUP web\n"}, refused=1,
                          cluster=cluster)
    for t in (host, guests):
        assert exprs(t, "bridge-vnet0")[1] == [jump("group-web-forward")]
    # group-web-forward is reached from the bridge forward hook: no reject there either
    assert verdicts(guests, "group-web-forward") == [DROP]
    assert verdicts(host, "group-web-forward") == [DO_REJECT]


def test_vnet_rule_with_cluster_ipset() -> None:
    text = VNET_ON + "[RULES]\nFORWARD DROP -source +dc/bad\n"
    host, guests = tables({"vnet0": text}, cluster=CLUSTER_ON + "[IPSET bad]\n10.6.6.0/24\n")
    for t in (host, guests):
        assert t.sets["v4-dc/bad"].elements == [{"prefix": {"addr": "10.6.6.0", "len": 24}}]
        v4, v6 = exprs(t, "bridge-vnet0")[1:3]
        assert m(pl("ip", "saddr"), "@v4-dc/bad") in v4
        assert m(pl("ip6", "saddr"), "@v6-dc/bad") in v6


def test_vnet_and_guest_share_the_guest_table() -> None:
    res = build({100: G()}, vnets={"vnet0": VNET_ON}, host=HOST_ON)
    t = res.ruleset.guests
    assert {"guest-100-in", "bridge-vnet0"} <= set(t.chains)
    assert [k for k, _ in t.maps["vm-map-in"].elements] == ["tap100i0"]
    assert len(t.maps["bridge-map"].elements) == 1
