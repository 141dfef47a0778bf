"""A guest on an Open vSwitch bridge: Proxmox puts its tap behind a Linux bridge
``fwbr<vmid>i<n>``, linked to the OVS bridge by the veth pair ``fwln<vmid>i<n>`` (in fwbr)
/ ``fwpr<vmid>p<n>`` (in OVS). The guest table must filter the tap's frames there.

The layout is built with real frames in the VM tier: tap100i0 → fwbr100i0 → fwln100i0 ⇄
fwpr100p0 → vmbr0 → the uplink ``outside``. vmbr0 is a plain Linux bridge standing in
for OVS (the VM has no ovs-vswitchd); its own bridge hooks see fwpr100p0, which no map
names, so only the fwbr side decides, as with OVS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fullkernel import guestlib as g
from tests.harness.topology import Topology

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]

VM_MAC = "bc:24:11:49:8d:75"
OUTSIDE_MAC = "02:00:00:00:01:01"
SPOOF_MAC = "bc:24:11:49:8d:99"
VM_V4, FAR_V4 = "10.0.100.1", "10.0.100.200"

FW = """[OPTIONS]
enable: 1
policy_in: DROP
policy_out: ACCEPT

[RULES]
IN ACCEPT -p udp -dport 80
"""


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    t = Topology()
    t.add_bridge("vmbr0", mac="02:00:00:00:00:10", addresses=("172.16.1.2/24",))
    t.add_bridge("fwbr100i0", mac="02:00:00:00:00:11")
    t.add_port("outside", bridge="vmbr0", host_ifname="eth0", mac=OUTSIDE_MAC,
               addresses=(f"{FAR_V4}/24",))  # fmt: skip
    t.add_port("vm100", bridge="fwbr100i0", host_ifname="tap100i0", mac=VM_MAC,
               addresses=(f"{VM_V4}/24",))  # fmt: skip
    with t:
        host = t.host.ns
        host.ip_batch([
            "link add fwln100i0 type veth peer name fwpr100p0",
            "link set fwln100i0 master fwbr100i0 up",
            "link set fwpr100p0 master vmbr0 up",
        ])  # fmt: skip
        host.sysctls({f"net/ipv6/conf/{n}/disable_ipv6": "1" for n in ("fwln100i0", "fwpr100p0")})
        yield t


def tree(root: Path) -> Path:
    return g.write_tree(root, {
        ".vmlist": g.vmlist({100: "qemu"}),
        "firewall/cluster.fw": "[OPTIONS]\nenable: 1\n",
        "firewall/100.fw": FW,
        # what qemu-server writes for a guest on an OVS bridge
        "nodes/pve1/qemu-server/100.conf": (
            f"net0: virtio={VM_MAC.upper()},bridge=vmbr0,firewall=1\n"
        ),
    })  # fmt: skip


def test_guest_behind_fwbr_is_filtered(topo: Topology, tmp_path: Path) -> None:
    g.apply_tree(topo, tree(tmp_path / "pve"))
    vm, out = topo.zone("vm100"), topo.zone("outside")
    results: dict[str, bool] = {}

    def arp_sentinel(sender_mac: str, sender_ip: str) -> tuple[bytes, bytes]:
        mark = g.token()
        return g.ether(g.BROADCAST, sender_mac, g.ETH_P_ARP,
                       g.arp_request(sender_mac, sender_ip, "10.0.100.254") + mark), mark

    def vm_to_outside(src_mac: str, label: str) -> None:
        t = g.token()
        frame = g.ether(OUTSIDE_MAC, src_mac, g.ETH_P_IP, g.udp(VM_V4, FAR_V4, 40000, 80, t))
        sentinel, mark = arp_sentinel(VM_MAC, VM_V4)
        results[label] = g.delivered(vm, out, frame, t, sentinel, mark)

    def outside_to_vm(dport: int, label: str) -> None:
        t = g.token()
        frame = g.ether(VM_MAC, OUTSIDE_MAC, g.ETH_P_IP,
                        g.udp(FAR_V4, VM_V4, 40000 + dport, dport, t))
        sentinel, mark = arp_sentinel(OUTSIDE_MAC, FAR_V4)  # pre-vm-in accepts ARP
        results[label] = g.delivered(out, vm, frame, t, sentinel, mark)

    vm_to_outside(VM_MAC, "out, own MAC")
    vm_to_outside(SPOOF_MAC, "out, spoofed MAC")  # macfilter (default on)
    outside_to_vm(80, "in, allowed port")
    outside_to_vm(81, "in, other port")  # policy_in DROP
    assert results == {
        "out, own MAC": True,
        "out, spoofed MAC": False,
        "in, allowed port": True,
        "in, other port": False,
    }
    # the decisions were taken by the guest's chains, entered from the fwbr port
    items = g.guest_table(topo)
    assert {"tap100i0"} <= g.map_keys(items, "vm-map-out")
