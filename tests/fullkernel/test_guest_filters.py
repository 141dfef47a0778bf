"""A guest's anti-spoofing and service options, on and off, with real frames (VM tier).

Container 200 (veth200i0 on vmbr0, 10.0.200.1 and fd00:200::1) is configured twice:
first with every filter on (``ipfilter``, ``macfilter``, ``dhcp``, ``ndp``, ``radv``) and
DROP policies both ways, then with every filter off and ACCEPT policies. Each check is
chosen so that the option, not the policy, decides it: what the option lets through is
refused by the policy, and what it blocks is allowed by the policy. IPv4 and IPv6 alike;
the frames no socket can send (DHCP from 0.0.0.0, ARP, a spoofed source MAC) are raw.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fullkernel import guestlib as g
from tests.harness.probe import probe
from tests.harness.topology import Topology

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]

CT_MAC = "0e:18:24:41:2c:43"
OUTSIDE_MAC = "02:00:00:00:01:01"
SPOOF_MAC = "0e:18:24:41:2c:99"
CT_V4, CT_V6 = "10.0.200.1", "fd00:200::1"
SPOOF_V4, SPOOF_V6 = "10.0.200.99", "fd00:200::99"
FAR_V4, FAR_V6 = "100.200.3.4", "fd00:100:200:3::4"  # outside's address in the probes

ON = """[OPTIONS]
enable: 1
ipfilter: 1
macfilter: 1
dhcp: 1
ndp: 1
radv: 1
policy_in: DROP
policy_out: DROP

[RULES]
OUT ACCEPT -p udp -dport 80
"""
OFF = """[OPTIONS]
enable: 1
ipfilter: 0
macfilter: 0
dhcp: 0
ndp: 0
radv: 0
policy_in: ACCEPT
policy_out: ACCEPT
"""


def link_local(mac: str) -> str:
    """The EUI-64 link-local address (the test's own derivation, not the product's)."""
    b = bytearray(bytes.fromhex(mac.replace(":", "")))
    b[0] ^= 0x02
    eui = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + eui))


def tree(root: Path, guest_fw: str) -> Path:
    return g.write_tree(root, {
        ".vmlist": g.vmlist({200: "lxc"}),
        "firewall/cluster.fw": "[OPTIONS]\nenable: 1\n",
        "firewall/200.fw": guest_fw,
        "nodes/pve1/lxc/200.conf": (
            f"net0: name=eth0,hwaddr={CT_MAC.upper()},bridge=vmbr0,firewall=1,"
            f"ip={CT_V4}/24,ip6={CT_V6}/64,type=veth\n"
        ),
    })  # fmt: skip


def ct200_topology() -> Topology:
    """vmbr0 with the uplink ``outside`` and container 200's port, not built."""
    t = Topology()
    t.add_bridge("vmbr0", mac="02:00:00:00:00:10", addresses=("172.16.1.2/24", "fd00:16:1::2/64"))
    t.add_port("outside", bridge="vmbr0", host_ifname="eth0", mac=OUTSIDE_MAC)
    t.add_port("ct200", bridge="vmbr0", host_ifname="veth200i0", mac=CT_MAC,
               addresses=(f"{CT_V4}/24",))  # fmt: skip
    return t


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with ct200_topology() as t:
        yield t


def raw_checks(topo: Topology) -> dict[str, bool]:
    """Frames from the container to the uplink: which of them arrive."""
    ct, out = topo.zone("ct200"), topo.zone("outside")
    sentinel_mark = g.token()
    sentinel = g.ether(
        g.BROADCAST,
        CT_MAC,
        g.ETH_P_ARP,
        g.arp_request(CT_MAC, CT_V4, "10.0.200.254") + sentinel_mark,
    )

    def arrives(dst_mac: str, src_mac: str, ethertype: int, payload: bytes, mark: bytes) -> bool:
        frame = g.ether(dst_mac, src_mac, ethertype, payload)
        return g.delivered(ct, out, frame, mark, sentinel, sentinel_mark)

    results: dict[str, bool] = {}
    t = g.token()
    results["dhcp discover from 0.0.0.0"] = arrives(
        g.BROADCAST, CT_MAC, g.ETH_P_IP, g.udp("0.0.0.0", "255.255.255.255", 68, 67, t), t
    )
    t = g.token()
    results["dhcpv6 solicit"] = arrives(
        "33:33:00:01:00:02",
        CT_MAC,
        g.ETH_P_IPV6,
        g.udp(link_local(CT_MAC), "ff02::1:2", 546, 547, t),
        t,
    )
    for label, src in (("v4", CT_V4), ("v6", CT_V6)):
        t = g.token()
        packet = g.udp(src, FAR_V4 if label == "v4" else FAR_V6, 40000, 80, t)
        results[f"spoofed source MAC {label}"] = arrives(
            OUTSIDE_MAC, SPOOF_MAC, g.ethertype_of(packet), packet, t
        )
    t = g.token()
    results["arp with a spoofed sender MAC"] = arrives(
        g.BROADCAST, CT_MAC, g.ETH_P_ARP, g.arp_request(SPOOF_MAC, CT_V4, "10.0.200.254") + t, t
    )
    t = g.token()
    results["arp with a foreign sender IP"] = arrives(
        g.BROADCAST, CT_MAC, g.ETH_P_ARP, g.arp_request(CT_MAC, SPOOF_V4, "10.0.200.254") + t, t
    )
    return results  # fmt: skip


def probe_checks(topo: Topology, outside_v4: str, outside_v6: str) -> dict[str, str]:
    """Packets sockets can send, and what the sender sees."""
    out: dict[str, str] = {}
    for v, own, spoof in (("v4", CT_V4, SPOOF_V4), ("v6", CT_V6, SPOOF_V6)):
        out[f"own source {v}"] = probe(topo, "ct200", "outside", "udp", 80, source=own)
        out[f"spoofed source {v}"] = probe(topo, "ct200", "outside", "udp", 80, source=spoof)
    # DHCP replies toward the guest (server port -> client port)
    out["dhcp offer"] = probe(
        topo, "outside", "ct200", "udp", 68, sport=67, source=outside_v4, dest=CT_V4
    )
    out["dhcpv6 advertise"] = probe(
        topo, "outside", "ct200", "udp", 546, sport=547, source=outside_v6, dest=CT_V6
    )
    for name in ("neighbor-solicitation", "neighbor-advertisement"):
        out[f"{name} out"] = probe(topo, "ct200", "outside", "icmpv6", name, source=CT_V6)
        out[f"{name} in"] = probe(
            topo, "outside", "ct200", "icmpv6", name, source=outside_v6, dest=CT_V6
        )
    out["router-advertisement out"] = probe(
        topo, "ct200", "outside", "icmpv6", "router-advertisement", source=CT_V6
    )
    return out  # fmt: skip


def test_filters_on(topo: Topology, tmp_path: Path) -> None:
    g.apply_tree(topo, tree(tmp_path / "pve", ON))
    assert probe_checks(topo, "100.100.1.2", "fd00:100:100:1::2") == {
        "own source v4": "ACCEPT",
        "spoofed source v4": "DROP",  # ipfilter: not the container's address
        "own source v6": "ACCEPT",
        "spoofed source v6": "DROP",
        "dhcp offer": "ACCEPT",  # dhcp: 1 beats policy_in DROP
        "dhcpv6 advertise": "ACCEPT",
        "neighbor-solicitation out": "ACCEPT",  # ndp: 1 beats policy_out DROP
        "neighbor-solicitation in": "ACCEPT",  # ... and policy_in DROP
        "neighbor-advertisement out": "ACCEPT",
        "neighbor-advertisement in": "ACCEPT",
        "router-advertisement out": "ACCEPT",  # radv: 1
    }
    assert raw_checks(topo) == {
        "dhcp discover from 0.0.0.0": True,  # before the ipfilter, despite policy_out DROP
        "dhcpv6 solicit": True,
        "spoofed source MAC v4": False,  # macfilter
        "spoofed source MAC v6": False,
        "arp with a spoofed sender MAC": False,  # macfilter, ARP sender hardware address
        "arp with a foreign sender IP": False,  # ipfilter, ARP sender address
    }


def test_filters_off(topo: Topology, tmp_path: Path) -> None:
    g.apply_tree(topo, tree(tmp_path / "pve", OFF))
    # other sources than in test_filters_on: no conntrack entry of that test can match
    assert probe_checks(topo, "100.100.1.3", "fd00:100:100:1::3") == {
        "own source v4": "ACCEPT",
        "spoofed source v4": "ACCEPT",  # no ipfilter
        "own source v6": "ACCEPT",
        "spoofed source v6": "ACCEPT",
        "dhcp offer": "DROP",  # dhcp: 0 beats policy_in ACCEPT
        "dhcpv6 advertise": "DROP",
        "neighbor-solicitation out": "DROP",  # ndp: 0 beats policy_out ACCEPT
        "neighbor-solicitation in": "DROP",
        "neighbor-advertisement out": "DROP",
        "neighbor-advertisement in": "DROP",
        "router-advertisement out": "DROP",  # radv: 0 beats policy_out ACCEPT
    }
    assert raw_checks(topo) == {
        "dhcp discover from 0.0.0.0": False,  # dhcp: 0
        "dhcpv6 solicit": False,
        "spoofed source MAC v4": True,  # no macfilter
        "spoofed source MAC v6": True,
        "arp with a spoofed sender MAC": True,
        "arp with a foreign sender IP": True,  # no ipfilter
    }
