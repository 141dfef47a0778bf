"""Host-table compilation: config text → nft objects (pure)."""

from __future__ import annotations

from typing import Any

from proxmox_fw.compile import CompileOptions, compile_config
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import PveConfig
from proxmox_fw.nft.objects import Table
from proxmox_fw.parse.fwfile import parse_cluster_fw, parse_host_fw

from .conftest import Compile


def exprs(table: Table, chain: str) -> list[list[Any]]:
    return [r.expr for r in table.chains[chain].rules]


def verdicts(table: Table, chain: str) -> list[Any]:
    return [r.expr[-1] for r in table.chains[chain].rules]


def test_disabled_cluster_deletes_both_tables(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 0\n")
    assert not res.ruleset.host.enabled
    assert not res.ruleset.guests.enabled


def test_nftables_switch_off_means_inactive(compile_texts: Compile) -> None:
    res = compile_texts(host="[OPTIONS]\nnftables: 0\n")
    assert not res.ruleset.host.enabled


def test_host_disabled_removes_host_table(compile_texts: Compile) -> None:
    res = compile_texts(host="[OPTIONS]\nnftables: 1\nenable: 0\n")
    assert not res.ruleset.host.enabled


def test_simple_accept_rule(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 22\n")
    rules = res.ruleset.host.chains["cluster-in"].rules
    first = rules[0]
    assert first.origin == "firewall/cluster.fw:4"
    assert {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}} in (
        first.expr
    )
    assert {
        "match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}},
                  "right": 22}
    } in first.expr
    assert first.expr[-1] == {"accept": None}
    # the policy closes the chain: noise, then drop
    assert rules[-2].expr == [{"jump": {"target": "drop-noise"}}]
    assert rules[-1].expr[-1] == {"drop": None}


def test_reject_goes_through_do_reject(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[RULES]\nOUT REJECT -p udp -dport 53\n")
    assert verdicts(res.ruleset.host, "cluster-out")[0] == {"jump": {"target": "do-reject"}}


def test_host_rules_go_to_host_chains(compile_texts: Compile) -> None:
    res = compile_texts(host="[OPTIONS]\nnftables: 1\n[RULES]\nIN DROP -p tcp -dport 25\n"
                             "OUT ACCEPT -p tcp -dport 80\nFORWARD DROP -p tcp -dport 23\n")
    t = res.ruleset.host
    assert verdicts(t, "host-in") == [{"drop": None}]
    assert verdicts(t, "host-out") == [{"accept": None}]
    assert verdicts(t, "host-forward") == [{"drop": None}]
    assert res.ruleset.host.chains["host-in"].rules[0].origin == "nodes/pve1/host.fw:4"


def test_macro_expands_per_entry(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[RULES]\nIN DNS(ACCEPT)\n")
    rules = res.ruleset.host.chains["cluster-in"].rules[:-2]
    protos = [r.expr[0]["match"]["right"] for r in rules]
    assert sorted(protos) == ["tcp", "udp"]


def test_ping_macro_gives_icmp_and_icmpv6(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[RULES]\nIN Ping(ACCEPT)\n")
    rules = res.ruleset.host.chains["cluster-in"].rules[:-2]
    lefts = [r.expr[0]["match"]["left"]["payload"]["protocol"] for r in rules]
    assert lefts == ["icmp", "icmpv6"]
    assert [r.expr[0]["match"]["right"] for r in rules] == [8, 128]


def test_ping_with_v4_source_keeps_only_icmp(compile_texts: Compile) -> None:
    res = compile_texts(
        cluster="[OPTIONS]\nenable: 1\n[RULES]\nIN Ping(ACCEPT) -source 10.0.0.0/8\n")
    rules = res.ruleset.host.chains["cluster-in"].rules[:-2]
    assert len(rules) == 1
    assert rules[0].expr[0]["match"]["left"]["payload"]["protocol"] == "icmp"


def test_ipset_reference_splits_by_family(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[IPSET web]\n10.0.0.1\nfd00::1\n"
                                "! 10.0.0.0/30\n[RULES]\nIN ACCEPT -source +web -p tcp -dport 80\n")
    t = res.ruleset.host
    rules = t.chains["cluster-in"].rules[:-2]
    assert len(rules) == 2
    assert {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                      "right": "@v4-dc/web-nomatch"}} in rules[0].expr
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}},
                      "right": "@v6-dc/web"}} in rules[1].expr
    # 10.0.0.1 is more specific than the exception around it, so it matches (hash:net)
    assert t.sets["v4-dc/web"].elements == ["10.0.0.1"]
    assert t.sets["v4-dc/web-nomatch"].elements == ["10.0.0.0",
                                                    {"prefix": {"addr": "10.0.0.2", "len": 31}}]
    assert t.sets["v6-dc/web"].elements == ["fd00::1"]


def test_alias_resolves_to_its_network(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[ALIASES]\nlan 192.168.5.7/24\n"
                                "[RULES]\nIN ACCEPT -source lan\n")
    r = res.ruleset.host.chains["cluster-in"].rules[0]
    assert r.expr[0]["match"]["right"] == {"prefix": {"addr": "192.168.5.0", "len": 24}}


def test_missing_alias_skips_rule_with_diagnostic(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -source nosuch\n"
                                "IN ACCEPT -p tcp -dport 22\n")
    msgs = [(d.line, d.message) for d in res.diagnostics]
    assert (4, "rule skipped: no such alias 'nosuch'") in msgs
    assert len(res.ruleset.host.chains["cluster-in"].rules) == 3  # rule 5 + noise + policy


def test_missing_group_skips_rule(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[RULES]\nGROUP nosuch\n")
    assert any("security group 'nosuch' is not defined" in d.message for d in res.diagnostics)
    assert all("group-nosuch" not in str(r.expr)
               for r in res.ruleset.host.chains["cluster-in"].rules)


def test_alias_family_conflict_is_rejected_not_widened(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[ALIASES]\nsix fd00::1\n"
                                "[RULES]\nIN ACCEPT -p icmp -source six\n")
    assert any("contradict" in d.message for d in res.diagnostics)
    assert len(res.ruleset.host.chains["cluster-in"].rules) == 2  # noise + policy only


def test_group_chains_and_jump(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[RULES]\nGROUP web -i vmbr0\n"
                                "[group web]\nIN ACCEPT -p tcp -dport 443\n")
    t = res.ruleset.host
    assert verdicts(t, "group-web-in") == [{"accept": None}]
    assert t.chains["group-web-out"].rules == []
    jump = t.chains["cluster-in"].rules[0].expr
    assert jump == [
        {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "vmbr0"}},
        {"jump": {"target": "group-web-in"}},
    ]


def test_log_rule_precedes_verdict_with_prefix_and_limit(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\nlog_ratelimit: 1,rate=2/second,burst=12\n"
                                "[RULES]\nIN DROP -p tcp -dport 23 -log debug\n")
    rules = res.ruleset.host.chains["cluster-in"].rules
    log_rule = rules[0].expr
    assert log_rule[-2] == {"limit": {"rate": 2, "per": "second", "burst": 12}}
    assert log_rule[-1] == {"log": {"prefix": ":0:7:cluster-in: DROP: ", "group": 0}}
    assert rules[1].expr[-1] == {"drop": None}


def test_policy_log_uses_host_log_level(compile_texts: Compile) -> None:
    res = compile_texts(host="[OPTIONS]\nnftables: 1\nlog_level_in: info\n")
    rules = res.ruleset.host.chains["cluster-in"].rules
    assert rules[-2].expr[-1] == {"log": {"prefix": ":0:6:cluster-in: DROP: ", "group": 0}}


def test_policy_accept_has_no_noise_jump(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\n")
    rules = res.ruleset.host.chains["cluster-in"].rules
    assert [r.expr[-1] for r in rules] == [{"accept": None}]


def test_management_merges_local_network(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[IPSET management]\n10.9.9.9\n")
    assert res.ruleset.host.sets["v4-dc/management"].elements == [
        "10.9.9.9", {"prefix": {"addr": "192.168.10.0", "len": 24}}]


def test_local_network_alias_overrides_detection(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[ALIASES]\nlocal_network 1.2.3.4\n")
    assert res.ruleset.host.sets["v4-dc/management"].elements == ["1.2.3.4"]


def test_no_local_network_warns(compile_texts: Compile) -> None:
    res = compile_texts(local_network=None)
    assert any("local network could not be detected" in d.message for d in res.diagnostics)


def test_blacklist_sets_always_exist(compile_texts: Compile) -> None:
    t = compile_texts().ruleset.host
    assert t.sets["v4-dc/blacklist"].elements == []
    t = compile_texts(cluster="[OPTIONS]\nenable: 1\n[IPSET blacklist]\n203.0.113.0/24\n"
                      ).ruleset.host
    assert t.sets["v4-dc/blacklist"].elements == [{"prefix": {"addr": "203.0.113.0", "len": 24}}]


def test_host_options(compile_texts: Compile) -> None:
    t = compile_texts(host="[OPTIONS]\nnftables: 1\nndp: 0\ntcpflags: 1\nnosmurfs: 0\n"
                           "protection_synflood: 1\nprotection_synflood_rate: 50\n"
                           "protection_synflood_burst: 70\nsmurf_log_level: info\n").ruleset.host
    jumps = [r.expr[-1]["jump"]["target"] for r in t.chains["option-in"].rules]
    assert jumps == ["block-ndp-in", "block-synflood", "block-invalid-tcp"]
    rl = t.chains["ratelimit-synflood"].rules[0].expr
    assert rl[0]["set"]["stmt"] == [{"limit": {"rate": 50, "per": "second", "burst": 70,
                                               "inv": True}}]
    assert t.chains["log-smurfs"].rules == []  # nosmurfs off: no log rule either
    assert verdicts(t, "invalid-conntrack") == [{"drop": None}]


def test_allow_invalid_conntrack(compile_texts: Compile) -> None:
    t = compile_texts(host="[OPTIONS]\nnftables: 1\nnf_conntrack_allow_invalid: 1\n").ruleset.host
    assert t.chains["invalid-conntrack"].rules == []


def test_conntrack_helpers(compile_texts: Compile) -> None:
    t = compile_texts(host="[OPTIONS]\nnftables: 1\nnf_conntrack_helpers: ftp,irc\n").ruleset.host
    assert set(t.ct_helpers) == {"helper-ftp-tcp", "helper-irc-tcp"}
    assert t.ct_helpers["helper-irc-tcp"].l3proto == "ip"
    assert t.chains["ct-in"].rules[0].expr[-1] == {"ct helper": "helper-ftp-tcp"}


def test_side_effects_only_in_result(compile_texts: Compile) -> None:
    res = compile_texts(host="[OPTIONS]\nnftables: 1\nnf_conntrack_max: 300000\n")
    assert res.side_effects["/proc/sys/net/netfilter/nf_conntrack_max"] == "300000"
    assert res.side_effects["/var/lib/pve-firewall/log_nf_conntrack"] == "0"


def test_disabled_rule_is_not_compiled(compile_texts: Compile) -> None:
    res = compile_texts(cluster="[OPTIONS]\nenable: 1\n[RULES]\n|IN ACCEPT -p tcp -dport 22\n")
    assert len(res.ruleset.host.chains["cluster-in"].rules) == 2


def test_option_rules_cite_the_file_they_came_from() -> None:
    """host.fw read from ``local/host.fw`` (the node's own directory had none): the option
    chains say so, and do not invent ``nodes/<node>/host.fw``."""
    diags = Diagnostics()
    cfg = PveConfig(
        nodename="pve1",
        cluster=parse_cluster_fw("[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp\n",
                                 "firewall/cluster.fw", diags),
        host=parse_host_fw("[OPTIONS]\nnftables: 1\nnf_conntrack_helpers: ftp\n",
                           "local/host.fw", diags),
    )
    t = compile_config(cfg, CompileOptions(), diags).ruleset.host
    assert {r.origin for r in t.chains["option-in"].rules} == {"local/host.fw"}
    assert {r.origin for r in t.chains["invalid-conntrack"].rules} == {"local/host.fw"}
    assert [r.origin for r in t.chains["cluster-in"].rules] == [
        "firewall/cluster.fw:4", "firewall/cluster.fw", "firewall/cluster.fw"
    ]
