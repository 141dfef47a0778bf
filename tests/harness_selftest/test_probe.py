"""Probes against a small hand-written ruleset: every verdict on every kind of path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.probe import TIME_SCALE, ProbeError, last_trace, probe, probe_stats
from tests.harness.topology import Topology, pve_sim_topology

pytestmark = pytest.mark.netns

RULESET = """
table inet selftest {
  set sports { type inet_service; flags dynamic; }
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 2005 add @sports { tcp sport }
    tcp dport 2006 tcp sport 45678 drop
    tcp dport 2001 drop
    tcp dport { 2002, 2004 } reject with tcp reset
    udp dport 2001 drop
    udp dport 2002 reject
    ip daddr 10.99.0.1 icmp type echo-request drop
    ip daddr 10.99.0.2 icmp type echo-request reject
    ip6 daddr fd00:99::1 icmpv6 type echo-request drop
    ip6 daddr fd00:99::2 icmpv6 type echo-request reject
    icmp type timestamp-request drop
  }
  chain output {
    type filter hook output priority 0; policy accept;
    tcp sport 2003 drop
    tcp sport 2004 drop
    tcp dport 3001 drop
    tcp dport 3002 reject with tcp reset
    udp dport 3001 drop
    udp dport 3002 reject
    ip daddr 239.1.1.2 drop
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    tcp dport 4002 drop
    tcp dport 4003 reject with tcp reset
  }
}
table bridge selftest {
  chain forward {
    type filter hook forward priority 0; policy accept;
    tcp dport 4001 drop
    udp dport 4001 drop
  }
}
"""


@pytest.fixture(scope="module")
def topo(pve_sim_full: Topology) -> Iterator[Topology]:
    host = pve_sim_full.host.ns
    host.nft(RULESET)
    try:
        yield pve_sim_full
    finally:
        host.nft("delete table inet selftest; delete table bridge selftest")


# (from, to, proto, dport, options, expected)
CASES: list[tuple[str, str, str, int | str | None, dict[str, Any], str]] = [
    # into the host: the input chain
    ("outside", "host", "tcp", 2000, {}, "ACCEPT"),
    ("outside", "host", "tcp", 2001, {}, "DROP"),
    ("outside", "host", "tcp", 2002, {}, "REJECT"),
    ("outside", "host", "tcp", 2003, {}, "DROP"),  # the handshake answer is dropped
    ("outside", "host", "tcp", 2004, {}, "DROP"),  # rejected, but the reset is dropped
    ("outside", "host", "udp", 2000, {}, "ACCEPT"),
    ("outside", "host", "udp", 2001, {}, "DROP"),
    ("outside", "host", "udp", 2002, {}, "REJECT"),
    ("outside", "host", "icmp", None, {}, "ACCEPT"),
    ("outside", "host", "icmp", "echo-request", {"dest": "10.99.0.1"}, "DROP"),
    ("outside", "host", "icmp", 8, {"dest": "10.99.0.2"}, "REJECT"),
    ("outside", "host", "icmp", "timestamp-request", {}, "DROP"),
    ("outside", "host", "icmp", "timestamp-reply", {}, "ACCEPT"),  # one-way: delivered
    ("nfvm", "host", "tcp", 2000, {"source": "192.0.2.7"}, "ACCEPT"),
    # IPv6
    ("outside", "host", "tcp", 2000, {"v6": True}, "ACCEPT"),
    ("outside", "host", "tcp", 2001, {"v6": True}, "DROP"),
    ("outside", "host", "tcp", 2002, {"v6": True}, "REJECT"),
    ("outside", "host", "udp", 2000, {"v6": True}, "ACCEPT"),
    ("outside", "host", "udp", 2001, {"v6": True}, "DROP"),
    ("outside", "host", "udp", 2002, {"v6": True}, "REJECT"),
    ("outside", "host", "icmpv6", None, {}, "ACCEPT"),
    ("outside", "host", "icmpv6", None, {"dest": "fd00:99::1"}, "DROP"),
    ("outside", "host", "icmpv6", "echo-request", {"dest": "fd00:99::2"}, "REJECT"),
    # out of the host: the output chain
    ("host", "outside", "tcp", 3000, {}, "ACCEPT"),
    ("host", "outside", "tcp", 3001, {}, "DROP"),
    ("host", "outside", "tcp", 3002, {}, "REJECT"),
    ("host", "outside", "udp", 3000, {}, "ACCEPT"),
    ("host", "outside", "udp", 3001, {}, "DROP"),
    ("host", "outside", "udp", 3002, {}, "REJECT"),
    ("host", "outside", "tcp", 3001, {"v6": True}, "DROP"),
    ("host", "outside", "icmp", None, {}, "ACCEPT"),
    ("host", "vm100", "tcp", 3001, {}, "DROP"),
    # bridged between ports: the bridge forward chain
    ("outside", "vm100", "tcp", 4000, {}, "ACCEPT"),
    ("outside", "vm100", "tcp", 4001, {}, "DROP"),
    ("outside", "vm100", "udp", 4001, {}, "DROP"),
    ("nfvm", "vm101", "tcp", 4001, {}, "DROP"),
    ("ct200", "ct201", "udp", 4000, {}, "ACCEPT"),
    ("vm110", "vm100i1", "tcp", 4000, {"v6": True}, "ACCEPT"),
    # routed between bridges: the inet forward chain
    ("vm100i1", "outside", "tcp", 4000, {}, "ACCEPT"),
    ("vm100i1", "outside", "tcp", 4002, {}, "DROP"),
    ("vm100i1", "outside", "tcp", 4003, {}, "REJECT"),
    ("vm110", "vm100", "tcp", 4002, {"v6": True}, "DROP"),
    ("vm110", "host", "tcp", 2001, {}, "DROP"),
    ("vm110", "host", "tcp", 2000, {}, "ACCEPT"),
    # multicast
    ("host", "outside", "udp", 5404, {"dest": "239.1.1.1", "multicast": True}, "ACCEPT"),
    ("host", "outside", "udp", 5404, {"dest": "239.1.1.2", "multicast": True}, "DROP"),
    ("outside", "host", "udp", 5404, {"dest": "239.1.1.1", "multicast": True}, "ACCEPT"),
]


@pytest.mark.parametrize(
    ("src", "dst", "proto", "dport", "opts", "expected"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[3]}-{'-'.join(map(str, c[4].values()))}" for c in CASES],
)
def test_verdict(
    topo: Topology,
    src: str,
    dst: str,
    proto: str,
    dport: int | str | None,
    opts: dict[str, Any],
    expected: str,
) -> None:
    assert probe(topo, src, dst, proto, dport, **opts) == expected
    assert probe_stats(topo)[1] == 0  # every DROP so far was decided from the trace


def test_drop_is_decided_by_the_trace_not_the_timeout(topo: Topology) -> None:
    start = time.monotonic()
    assert probe(topo, "outside", "host", "tcp", 2001, timeout=60) == "DROP"
    assert probe(topo, "host", "outside", "udp", 3001, timeout=60) == "DROP"
    assert probe(topo, "outside", "vm100", "tcp", 4001, timeout=60) == "DROP"
    assert time.monotonic() - start < 1.0 * TIME_SCALE


def test_last_trace_names_the_dropping_rule(topo: Topology) -> None:
    listing = json.loads(topo.host.ns.nft("list chain inet selftest input"))
    handle = next(
        i["rule"]["handle"]
        for i in listing["nftables"]
        if "rule" in i
        and {"drop": None} in i["rule"]["expr"]
        and "2001" in json.dumps(i["rule"]["expr"])
        and "tcp" in json.dumps(i["rule"]["expr"])
    )
    assert probe(topo, "outside", "host", "tcp", 2001) == "DROP"
    assert last_trace(topo)[-1] == f"inet selftest input rule handle {handle}: drop"
    assert probe(topo, "outside", "host", "tcp", 2000) == "ACCEPT"
    assert not any(line.endswith(": drop") for line in last_trace(topo))


def test_thirty_drop_probes(topo: Topology, record_property: Any) -> None:
    start = time.monotonic()
    verdicts = {probe(topo, "outside", "host", "tcp", 2001) for _ in range(30)}
    elapsed = time.monotonic() - start
    record_property("thirty_drop_probes_seconds", round(elapsed, 4))
    print(f"30 DROP probes: {elapsed * 1000:.1f} ms (time scale {TIME_SCALE:.1f})")
    assert verdicts == {"DROP"}
    assert elapsed < 1.5 * TIME_SCALE  # a timeout-based DROP would take 45 s


def test_source_ports_are_unique_per_probe(topo: Topology) -> None:
    # the same 5-tuple twice would ride on the first probe's conntrack entry
    for _ in range(5):
        assert probe(topo, "outside", "host", "tcp", 2005) == "ACCEPT"
    listing = json.loads(topo.host.ns.nft("list set inet selftest sports"))
    sets = [i["set"] for i in listing["nftables"] if "set" in i]
    assert len(sets[0]["elem"]) == 5


def test_an_explicit_source_port_is_used(topo: Topology) -> None:
    assert probe(topo, "outside", "host", "tcp", 2006) == "ACCEPT"
    assert probe(topo, "outside", "host", "tcp", 2006, sport=45678) == "DROP"


def test_an_address_lives_in_one_namespace(topo: Topology) -> None:
    def holders(addr: str) -> list[str]:
        found = []
        for name, zone in topo.zones.items():
            shown = json.loads(zone.ns.ip("-j", "addr", "show"))
            if any(a["local"] == addr for link in shown for a in link["addr_info"]):
                found.append(name)
        return found

    assert probe(topo, "outside", "host", "tcp", 2000, source="192.0.2.55") == "ACCEPT"
    assert holders("192.0.2.55") == ["outside"]
    assert probe(topo, "nfvm", "host", "tcp", 2000, source="192.0.2.55") == "ACCEPT"
    assert holders("192.0.2.55") == ["nfvm"]
    assert probe(topo, "host", "nfvm", "tcp", 2000, dest="192.0.2.55") == "ACCEPT"
    assert holders("192.0.2.55") == ["nfvm"]
    assert probe(topo, "host", "outside", "tcp", 2000, dest="192.0.2.55") == "ACCEPT"
    assert holders("192.0.2.55") == ["outside"]


@pytest.mark.parametrize(
    ("src", "dst", "kwargs"),
    [
        ("host", "outside", {"dest": "239.1.1.1"}),  # unicast to a group cannot exist
        ("host", "outside", {"source": "127.0.0.1"}),  # the kernel never sends that out
        ("outside", "host", {"source": "172.16.1.2"}),  # the reply would stay in the host
        ("outside", "outside", {}),
        ("outside", "host", {"proto": "icmp", "dport": "no-such-type"}),
        ("outside", "host", {"proto": "sctp"}),
    ],
)
def test_impossible_probes_raise(
    topo: Topology, src: str, dst: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ProbeError):
        probe(topo, src, dst, **kwargs)


def test_trace_survives_a_flush_ruleset(topology_factory: Any) -> None:
    topo = topology_factory(pve_sim_topology(include_guests=False))
    drop = "table inet t { chain input { type filter hook input priority 0; tcp dport 7 drop; }; }"
    topo.host.ns.nft(drop)
    assert probe(topo, "outside", "host", "tcp", 7) == "DROP"
    assert topo.tracer.installs == 1
    assert probe(topo, "outside", "host", "tcp", 7) == "DROP"
    assert topo.tracer.installs == 1  # nothing changed: no reinstall
    topo.host.ns.nft("flush ruleset")  # what a careless apply might do
    topo.host.ns.nft(drop)
    start = time.monotonic()
    assert probe(topo, "outside", "host", "tcp", 7, timeout=60) == "DROP"
    assert time.monotonic() - start < 1.0 * TIME_SCALE
    assert topo.tracer.installs == 2
