"""Audit: a guest's MAC and IP filters hold for every frame it sends (VM tier).

Seed §13.6.3: "any outgoing traffic with a source IP not matching its interface's
corresponding ipfilter set will be dropped"; the MAC filter likewise. A frame that passes
the bridge's prerouting hook also teaches the bridge its source MAC, so one accepted frame
with a foreign source MAC moves that MAC to the guest's port (the guest then receives the
traffic meant for it). Two paths used to accept such frames before the filters ran:

- ICMP errors (``allow-icmp``, jumped from ``vm-out`` before the guest's chain);
- packets of a connection conntrack already knows (``pre-vm-out``, the first rule of the
  guest's chain).

The MAC filter now holds for every frame; the IP filter for every packet that is not part
of an accepted connection (as in pve-firewall, whose conntrack rule precedes the tap
chains); vital ICMP is accepted only after both.

Container 200 (veth200i0, 10.0.200.1 / fd00:200::1) with ``ipfilter``, ``macfilter`` and
``policy_out: DROP``; what it sends towards ``outside`` is sniffed there.
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
    ON,
    OUTSIDE_MAC,
    SPOOF_MAC,
    SPOOF_V4,
    SPOOF_V6,
    ct200_topology,
    tree,
)
from tests.harness.topology import Topology

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]

OUT_V4, OUT_V6 = "100.200.9.4", "fd00:100:200:9::4"  # a far address behind ``outside``


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with ct200_topology() as t:
        yield t


def icmp_unreachable(src: str, dst: str, mark: bytes) -> bytes:
    """An ICMP(v6) port-unreachable from ``src`` to ``dst`` about a UDP datagram ``dst``
    sent to ``src`` (a connection conntrack has never seen)."""
    inner = g.udp(dst, src, 33000, 33434, mark)
    if ":" not in src:
        body = struct.pack("!BBHI", 3, 3, 0, 0) + inner
        body = body[:2] + struct.pack("!H", g._csum(body)) + body[4:]
        return g.ipv4(src, dst, 1, body)
    body = struct.pack("!BBHI", 1, 4, 0, 0) + inner
    body = body[:2] + struct.pack("!H", g._l4_checksum(src, dst, 58, body)) + body[4:]
    return g.ipv6(src, dst, 58, body)


def arrives(topo: Topology, src_mac: str, packet: bytes, mark: bytes) -> bool:
    """Whether ``packet``, sent by the container with source MAC ``src_mac``, reaches
    ``outside``; an ARP request of the container is the sentinel."""
    ct, out = topo.zone("ct200"), topo.zone("outside")
    sentinel_mark = g.token()
    sentinel = g.ether(g.BROADCAST, CT_MAC, g.ETH_P_ARP,
                       g.arp_request(CT_MAC, CT_V4, "10.0.200.254") + sentinel_mark)  # fmt: skip
    frame = g.ether(OUTSIDE_MAC, src_mac, g.ethertype_of(packet), packet)
    return g.delivered(ct, out, frame, mark, sentinel, sentinel_mark)


def outside_sentinel() -> tuple[bytes, bytes]:
    """A frame from ``outside`` that reaches the container whatever its rules (inbound ARP
    is always accepted), and its mark."""
    mark = g.token()
    frame = g.ether(g.BROADCAST, OUTSIDE_MAC, g.ETH_P_ARP,
                    g.arp_request(OUTSIDE_MAC, "10.0.200.250", CT_V4) + mark)  # fmt: skip
    return frame, mark


@pytest.fixture(scope="module")
def applied(topo: Topology, tmp_path_factory: pytest.TempPathFactory) -> Topology:
    g.apply_tree(topo, tree(tmp_path_factory.mktemp("spoof") / "pve", ON))
    return topo


def test_icmp_errors_pass_the_mac_and_ip_filters(applied: Topology) -> None:
    results: dict[str, bool] = {}
    for v, own, spoof, far in (("v4", CT_V4, SPOOF_V4, OUT_V4), ("v6", CT_V6, SPOOF_V6, OUT_V6)):
        t = g.token()
        results[f"own {v}"] = arrives(applied, CT_MAC, icmp_unreachable(own, far, t), t)
        t = g.token()
        results[f"spoofed MAC {v}"] = arrives(applied, SPOOF_MAC, icmp_unreachable(own, far, t), t)
        t = g.token()
        results[f"spoofed IP {v}"] = arrives(applied, CT_MAC, icmp_unreachable(spoof, far, t), t)
    assert results == {
        "own v4": True,  # vital ICMP passes policy_out DROP and ct invalid (RFC 4890)
        "spoofed MAC v4": False,  # ... but only from the guest's own MAC
        "spoofed IP v4": False,  # ... and own address (ipfilter)
        "own v6": True,
        "spoofed MAC v6": False,
        "spoofed IP v6": False,
    }


def test_known_connection_does_not_lift_the_mac_filter(applied: Topology) -> None:
    ct, out = applied.zone("ct200"), applied.zone("outside")
    results: dict[str, bool] = {}
    for v, own, far in (("v4", CT_V4, OUT_V4), ("v6", CT_V6, OUT_V6)):
        # The container's rule (OUT ACCEPT -p udp -dport 80) lets the flow start ...
        t = g.token()
        results[f"first {v}"] = arrives(applied, CT_MAC, g.udp(own, far, 40123, 80, t), t)
        # ... the reply makes it an established connection in the bridge's conntrack ...
        t = g.token()
        reply = g.udp(far, own, 80, 40123, t)
        results[f"reply {v}"] = g.delivered(
            out, ct, g.ether(CT_MAC, OUTSIDE_MAC, g.ethertype_of(reply), reply), t,
            *outside_sentinel(),
        )
        t = g.token()
        results[f"established {v}"] = arrives(applied, CT_MAC, g.udp(own, far, 40123, 80, t), t)
        # ... whose packets must still come from the container's own MAC.
        t = g.token()
        results[f"established, spoofed MAC {v}"] = arrives(
            applied, SPOOF_MAC, g.udp(own, far, 40123, 80, t), t
        )
    assert results == {
        "first v4": True,
        "reply v4": True,
        "established v4": True,
        "established, spoofed MAC v4": False,
        "first v6": True,
        "reply v6": True,
        "established v6": True,
        "established, spoofed MAC v6": False,
    }


@pytest.mark.parametrize("policy_out", ["DROP", "ACCEPT"])
def test_vlan_tagged_frames_cannot_bypass_the_ip_filter(
    applied: Topology, tmp_path: Path, policy_out: str
) -> None:
    """The kernel moves one VLAN tag into metadata before the bridge, so a single-tagged
    frame is filtered like an untagged one; a second (inner) tag would still hide the IP
    header from ``ip saddr`` matches in the bridge family, whatever the output policy."""
    g.apply_tree(applied, tree(tmp_path / "pve", ON.replace("policy_out: DROP",
                                                          f"policy_out: {policy_out}")))
    results: dict[str, bool] = {}
    ct, out = applied.zone("ct200"), applied.zone("outside")
    for v, own, spoof, far in (("v4", CT_V4, SPOOF_V4, OUT_V4), ("v6", CT_V6, SPOOF_V6, OUT_V6)):
        for tags, name in (((0x8100,), "802.1Q"), ((0x88A8,), "802.1ad"),
                           ((0x88A8, 0x8100), "QinQ"), ((0x8100, 0x8100), "Q-in-Q")):
            for label, src in (("own", own), ("spoofed", spoof)):
                t = g.token()
                packet = g.udp(src, far, 40200, 80, t)
                body, inner_type = packet, g.ethertype_of(packet)
                for tpid in reversed(tags[1:]):
                    body, inner_type = struct.pack("!HH", 30, inner_type) + body, tpid
                body = struct.pack("!HH", 20, inner_type) + body
                frame = g.ether(OUTSIDE_MAC, CT_MAC, tags[0], body)
                sentinel_mark = g.token()
                sentinel = g.ether(g.BROADCAST, CT_MAC, g.ETH_P_ARP,
                                   g.arp_request(CT_MAC, CT_V4, "10.0.200.254") + sentinel_mark)
                results[f"{name} {label} {v}"] = g.delivered(ct, out, frame, t, sentinel,
                                                            sentinel_mark)
    spoofed = {key: value for key, value in results.items() if "spoofed" in key}
    assert spoofed == {key: False for key in spoofed}, results
