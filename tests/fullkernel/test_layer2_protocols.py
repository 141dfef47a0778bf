"""``layer2_protocols``: the guest sends only the listed ethertypes, plus IPv4 and IPv6
(as pve-firewall's per-tap ebtables chain), with real frames (VM tier).

Container 200 sends raw frames to the uplink; a listed ARP request is the sentinel that
proves the path works. VLAN-tagged frames count as 802_1Q whatever they carry, and the
IP filter still drops stacked tags when 802_1Q is allowed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fullkernel import guestlib as g
from tests.fullkernel.test_guest_filters import (
    CT_MAC,
    CT_V4,
    CT_V6,
    OUTSIDE_MAC,
    ct200_topology,
    tree,
)
from tests.harness.topology import Topology

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]

FAR_V4, FAR_V6 = "100.200.3.4", "fd00:100:200:3::4"
ETH_P_8021Q, ETH_P_IPX, ETH_P_NETBEUI, ETH_P_LLDP = 0x8100, 0x8137, 0x8191, 0x88CC


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with ct200_topology() as t:
        yield t


def tagged(*vids: int, inner: int, payload: bytes) -> tuple[int, bytes]:
    """(outer ethertype, rest of the frame): ``payload`` of type ``inner`` under one
    802.1Q tag per VLAN id, the first one outermost."""
    body, ethertype = payload, inner
    for vid in reversed(vids):
        body, ethertype = struct.pack("!HH", vid, ethertype) + body, ETH_P_8021Q
    return ethertype, body


def sent(topo: Topology) -> dict[str, bool]:
    """Which frames from the container reach the uplink."""
    ct, out = topo.zone("ct200"), topo.zone("outside")
    sentinel_mark = g.token()
    sentinel = g.ether(g.BROADCAST, CT_MAC, g.ETH_P_ARP,
                       g.arp_request(CT_MAC, CT_V4, "10.0.200.254") + sentinel_mark)

    def arrives(ethertype: int, payload: bytes, mark: bytes) -> bool:
        frame = g.ether(OUTSIDE_MAC, CT_MAC, ethertype, payload)
        return g.delivered(ct, out, frame, mark, sentinel, sentinel_mark)

    results: dict[str, bool] = {}
    for label, ethertype in (("ipx", ETH_P_IPX), ("netbeui", ETH_P_NETBEUI),
                             ("lldp", ETH_P_LLDP)):  # fmt: skip
        t = g.token()
        results[label] = arrives(ethertype, t + bytes(30), t)
    t = g.token()
    results["ipv4"] = arrives(g.ETH_P_IP, g.udp(CT_V4, FAR_V4, 40000, 80, t), t)
    t = g.token()
    results["ipv6"] = arrives(g.ETH_P_IPV6, g.udp(CT_V6, FAR_V6, 40000, 80, t), t)
    t = g.token()
    ip4 = g.udp(CT_V4, FAR_V4, 40001, 80, t)
    results["vlan-tagged ipv4"] = arrives(*tagged(5, inner=g.ETH_P_IP, payload=ip4), t)
    t = g.token()
    ip4 = g.udp(CT_V4, FAR_V4, 40002, 80, t)
    results["stacked-tagged ipv4"] = arrives(*tagged(5, 6, inner=g.ETH_P_IP, payload=ip4), t)
    return results


def guest_fw(options: str) -> str:
    return f"[OPTIONS]\nenable: 1\npolicy_out: ACCEPT\n{options}"


def test_only_listed_ethertypes_leave_the_guest(topo: Topology, tmp_path: Path) -> None:
    g.apply_tree(topo, tree(tmp_path / "pve", guest_fw("layer2_protocols: ARP,IPX\n")))
    assert sent(topo) == {
        "ipx": True, "netbeui": False, "lldp": False,
        "ipv4": True, "ipv6": True,  # always, as in pve-firewall: the IP rules judge them
        "vlan-tagged ipv4": False,  # a tagged frame is 802_1Q, not listed
        "stacked-tagged ipv4": False,
    }  # fmt: skip


def test_listed_802_1q_with_ip_filter(topo: Topology, tmp_path: Path) -> None:
    """802_1Q listed: a single tag passes (its IPv4 packet meets the IP filter and is the
    guest's own); stacked tags are still dropped by the IP filter."""
    fw = guest_fw("layer2_protocols: ARP,802_1Q\nipfilter: 1\n")
    g.apply_tree(topo, tree(tmp_path / "pve", fw))
    assert sent(topo) == {
        "ipx": False, "netbeui": False, "lldp": False, "ipv4": True, "ipv6": True,
        "vlan-tagged ipv4": True, "stacked-tagged ipv4": False,
    }  # fmt: skip


def test_without_the_option_every_ethertype_leaves(topo: Topology, tmp_path: Path) -> None:
    g.apply_tree(topo, tree(tmp_path / "pve", guest_fw("")))
    assert sent(topo) == {
        "ipx": True, "netbeui": True, "lldp": True, "ipv4": True, "ipv6": True,
        "vlan-tagged ipv4": True, "stacked-tagged ipv4": True,
    }  # fmt: skip
