"""The pure parts of the operator tools: trace filters, nft text of a listing, counts."""

from __future__ import annotations

import pytest

from proxmox_fw.tools.counters import Baseline, count_rules, take_baseline
from proxmox_fw.tools.kernelrules import KernelRule, rule_texts
from proxmox_fw.tools.trace import FilterError, TraceFilter, tracing_tables

LISTING = """\
table inet proxmox-firewall { # handle 5
	set v4-dc/management { # handle 3
		type ipv4_addr
		flags interval
	}
	chain host-in { # handle 20
		tcp dport 3001 counter packets 4 bytes 240 accept comment "nodes/pve1/host.fw:5" # handle 41
		jump group-web-in comment "nodes/pve1/host.fw:6" # handle 42
		ct state vmap { invalid : drop, established : accept } # handle 43
		counter packets 1 bytes 2 drop comment "firewall/cluster.fw" # handle 44
	}
	ct helper ftp-21 { # handle 9
		type "ftp" protocol tcp
	}
}
"""


def test_rule_texts_without_counter_and_comment() -> None:
    assert rule_texts(LISTING) == {41: "tcp dport 3001 accept", 42: "jump group-web-in",
                                   43: "ct state vmap { invalid : drop, established : accept }",
                                   44: "drop"}  # fmt: skip


def test_filters_become_nft_matches() -> None:
    assert TraceFilter(proto="TCP", source="192.0.2.0/24", dport=22).matches() == (
        "meta l4proto tcp ip saddr 192.0.2.0/24 th dport 22")
    assert TraceFilter(dest="2001:db8::1").matches() == "ip6 daddr 2001:db8::1"
    assert TraceFilter(dport=53).matches() == (
        "meta l4proto { tcp, udp, sctp, dccp, udplite } th dport 53")
    assert TraceFilter(vmid=100, iface="eth0").interfaces() == ["tap100i*", "veth100i*", "eth0"]


@pytest.mark.parametrize(("filt", "message"), [
    (TraceFilter(source="192.0.2.1", dest="::1"), "different IP versions"),
    (TraceFilter(source="nonsense"), "--source nonsense: not an IP address"),
    (TraceFilter(proto="icmp", dport=1), "--dport needs a protocol with ports"),
    (TraceFilter(proto="icmp", dest="::1"), "icmp is IPv4"),
    (TraceFilter(proto="tcp; flush ruleset"), "not a protocol name"),
])  # fmt: skip
def test_bad_filters(filt: TraceFilter, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        filt.matches()


def test_bad_interface_name() -> None:
    with pytest.raises(FilterError, match="not an interface name"):
        TraceFilter(iface='eth0" accept').interfaces()


def test_tracing_tables_trace_only_matching_packets() -> None:
    text = tracing_tables("t-1", TraceFilter(proto="udp", iface="eth1"))
    assert text.count("table ") == 2 and "table bridge t-1" in text
    assert 'iifname "eth1" meta l4proto udp meta nftrace set 1' in text
    assert 'oifname "eth1" meta l4proto udp meta nftrace set 1' in text
    assert "hook postrouting" in text
    assert "    meta nftrace set 1\n" in tracing_tables("t-1", TraceFilter())


def rule(handle: int, origin: str | None, packets: int | None,
         chain: str = "host-in") -> KernelRule:  # fmt: skip
    return KernelRule("inet", "proxmox-firewall", chain, handle, origin, packets,
                      None if packets is None else packets * 60)  # fmt: skip


def test_counts_per_config_line_sorted_by_hits() -> None:
    rules = [rule(1, "firewall/cluster.fw:3", 2), rule(2, "firewall/cluster.fw:3", 5),
             rule(3, "firewall/100.fw:4", 9, chain="guest-100-in"),
             rule(4, "firewall/cluster.fw:9", 0), rule(5, None, 7), rule(6, "x:1", None)]
    counts = count_rules(rules)
    assert [(c.origin, c.packets, c.nft_rules) for c in counts] == [
        ("firewall/100.fw:4", 9, 1), ("firewall/cluster.fw:3", 7, 2),
        ("firewall/cluster.fw:9", 0, 1)]  # fmt: skip
    assert [c.origin for c in count_rules(rules, vmid=100)] == ["firewall/100.fw:4"]


def test_baseline_subtracts_only_from_the_same_table() -> None:
    before = [rule(1, "f.fw:1", 3)]
    base = Baseline.from_json(take_baseline(before, {"inet proxmox-firewall": 7}, 1.0).to_json())
    assert base is not None
    now = [rule(1, "f.fw:1", 5)]
    assert count_rules(now, baseline=base, handles={"inet proxmox-firewall": 7})[0].packets == 2
    # the table was re-created since: its counters restarted, nothing to subtract
    assert count_rules(now, baseline=base, handles={"inet proxmox-firewall": 8})[0].packets == 5
