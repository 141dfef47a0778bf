"""The pve-sim topology is built as the conformance README describes it."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.harness import netns
from tests.harness.topology import (
    BRIDGE_MACS,
    PVE_SIM_GUESTS,
    Topology,
    pve_sim_topology,
)

pytestmark = pytest.mark.netns


def link(ns: netns.NetNs, ifname: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(ns.ip("-d", "-j", "link", "show", ifname))
    return data[0]


def fdb(ns: netns.NetNs) -> list[dict[str, Any]]:
    out = netns.run_tool(["bridge", "-n", ns.name, "-j", "fdb", "show"])
    entries: list[dict[str, Any]] = json.loads(out)
    return entries


def test_host_bridges(pve_sim_full: Topology) -> None:
    host = pve_sim_full.host.ns
    for name, mac in BRIDGE_MACS.items():
        info = link(host, name)
        data = info["linkinfo"]["info_data"]
        assert info["address"] == mac
        assert (data["stp_state"], data["forward_delay"], data["mcast_snooping"]) == (0, 0, 0)
        assert "UP" in info["flags"]
    addrs = json.loads(host.ip("-j", "addr", "show", "vmbr0"))[0]["addr_info"]
    assert {(a["local"], a["prefixlen"]) for a in addrs} >= {
        ("172.16.1.2", 24),
        ("fd00:16:1::2", 64),
    }
    if host.run(os.path.exists, "/proc/sys/net/bridge"):  # else br_netfilter is not loaded
        assert host.read_sysctl("net/bridge/bridge-nf-call-iptables") == "0"
        assert host.read_sysctl("net/bridge/bridge-nf-call-ip6tables") == "0"


def test_guest_ports(pve_sim_full: Topology) -> None:
    host = pve_sim_full.host.ns
    static = {(e["mac"], e["ifname"]) for e in fdb(host) if e.get("state") == "static"}
    for zone_name, bridge, port, mac, addrs in PVE_SIM_GUESTS:
        zone = pve_sim_full.zone(zone_name)
        assert link(host, port)["master"] == bridge
        assert host.read_sysctl(f"net/ipv6/conf/{port}/disable_ipv6") == "1"
        assert link(zone.ns, "eth0")["address"] == mac.lower()
        assert (mac.lower(), port) in static
        shown = json.loads(zone.ns.ip("-j", "-4", "addr", "show", "eth0"))
        have = [f"{a['local']}/{a['prefixlen']}" for s in shown for a in s["addr_info"]]
        assert have == list(addrs)
    assert pve_sim_full.zone("vmbr0/eth0") is pve_sim_full.zone("outside")
    assert pve_sim_full.zone("vmbr1/tap110i0") is pve_sim_full.zone("vm110")
    assert pve_sim_full.zone("vm100i0") is pve_sim_full.zone("vm100")


def test_without_guests_only_host_outside_nfvm(pve_sim_host: Topology) -> None:
    assert set(pve_sim_host.zones) == {"host", "outside", "nfvm"}
    assert link(pve_sim_host.host.ns, "eth0")["master"] == "vmbr0"
    assert link(pve_sim_host.host.ns, "tapXYZ")["master"] == "vmbr0"
    with pytest.raises(KeyError):
        pve_sim_host.zone("vm100")


@pytest.mark.skipif(
    not os.path.exists("/proc/sys/net/bridge"),
    reason="br_netfilter is a module here; loading it would change every namespace",
)
def test_bridge_nf_call_is_explicit(topology_factory: Any) -> None:
    topo = topology_factory(pve_sim_topology(include_guests=False, bridge_nf_call=True))
    assert topo.host.ns.read_sysctl("net/bridge/bridge-nf-call-iptables") == "1"
    assert topo.host.ns.read_sysctl("net/bridge/bridge-nf-call-ip6tables") == "1"


def test_destroy_removes_everything_even_after_an_error() -> None:
    topo = pve_sim_topology(include_guests=True)
    with pytest.raises(RuntimeError), topo:
        names = [ns.name for ns in topo.namespaces]
        assert len(names) == 10
        raise RuntimeError("boom")
    left = set(netns.existing_run_names()) & set(names)
    assert left == set()
    assert not topo.built


def test_a_failed_build_cleans_up() -> None:
    topo = Topology()
    topo.add_bridge("br0", mac="02:00:00:00:aa:01")
    topo.add_port("a", bridge="br0", host_ifname="p-a", mac="02:00:00:00:aa:02")
    topo.add_route("a", "192.0.2.0/24", via="198.51.100.1")  # unreachable gateway: fails
    with pytest.raises(netns.CommandError):
        topo.build()
    assert not [n for n in netns.existing_run_names() if n.startswith(topo.prefix)]
