"""Guest rules against real traffic (VM tier): REJECT both ways, a security group bound
to one NIC, the blacklist, ``ips: 1``, a vnet firewall, and what removed guests leave.

One topology, two applies. The first config has VM 100 (net0 on vmbr0, net1 on vmbr1)
with REJECT rules, ``GROUP web -i net0``, an ipset and the cluster blacklist; VM 101 with
``ips: 1``; container 201; the firewall of vnet ``vnet0`` (guests 300 and 301 on it). The
second config drops 100 from the guest list, deletes 101's firewall file and the vnet's,
and keeps 201: nothing of the others may stay in the kernel.

REJECT: a guest's OUT REJECT is answered (a TCP reset or an ICMP port-unreachable reaches
the guest); toward a guest REJECT is a DROP, as is a vnet's REJECT: the kernel only
allows a bridge reject on the prerouting/input path (see the README's guest REJECT
section). A stray reset from the uplink is still dropped as conntrack-invalid: the
exception that lets the guest's own reject answer through is no hole.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fullkernel import guestlib as g
from tests.harness.probe import probe
from tests.harness.topology import Topology

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]

MAC = {
    "outside": "02:00:00:00:01:01",
    "vm100": "0e:0b:38:b8:b3:21",
    "vm100i1": "0e:0b:38:b9:b4:21",
    "vm101": "0e:0b:38:b8:b3:22",
    "vm110": "0e:0b:38:b8:b4:21",
    "ct201": "0e:18:24:41:2c:44",
    "vm300": "0e:0b:38:00:03:00",
    "vm301": "0e:0b:38:00:03:01",
}
SRC = {4: "100.100.1.2", 6: "fd00:100:100:1::2"}  # the probes' default source
DST = {4: "100.200.3.4", 6: "fd00:100:200:3::4"}  # ... and destination
BLACKLISTED = {4: "192.0.2.66", 6: "fd00:66::66"}

CLUSTER = """[OPTIONS]
enable: 1

[IPSET blacklist]
192.0.2.66
fd00:66::66

[group web]
IN ACCEPT -p tcp -dport 80
"""
VM100 = """[OPTIONS]
enable: 1

[IPSET trusted]
192.0.2.10

[RULES]
GROUP web -i net0
IN ACCEPT -p tcp -dport 22
IN REJECT -p tcp -dport 81
IN REJECT -p udp -dport 81
OUT REJECT -p tcp -dport 81
OUT REJECT -p udp -dport 81
"""
VM101 = "[OPTIONS]\nenable: 1\nips: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 22\n"
CT201 = "[OPTIONS]\nenable: 1\n"
VNET0 = """[OPTIONS]
enable: 1
policy_forward: DROP

[RULES]
FORWARD ACCEPT -p tcp -dport 22
FORWARD REJECT -p tcp -dport 24
"""
GUEST_CONFS = {
    "nodes/pve1/qemu-server/100.conf": (
        f"net0: virtio={MAC['vm100'].upper()},bridge=vmbr0,firewall=1\n"
        f"net1: virtio={MAC['vm100i1'].upper()},bridge=vmbr1,firewall=1\n"
    ),
    "nodes/pve1/qemu-server/101.conf": (
        f"net0: virtio={MAC['vm101'].upper()},bridge=vmbr0,firewall=1\n"
    ),
    "nodes/pve1/lxc/201.conf": (
        f"net0: name=eth0,hwaddr={MAC['ct201'].upper()},bridge=vmbr0,firewall=1,"
        "ip=10.0.200.2/24,type=veth\n"
    ),
}


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    t = Topology()
    t.add_bridge("vmbr0", mac="02:00:00:00:00:10", addresses=("172.16.1.2/24", "fd00:16:1::2/64"))
    t.add_bridge("vmbr1", mac="02:00:00:00:00:11")
    t.add_bridge("vnet0", mac="02:00:00:00:00:20")
    ports = [("outside", "vmbr0", "eth0"), ("vm100", "vmbr0", "tap100i0"),
             ("vm100i1", "vmbr1", "tap100i1"), ("vm101", "vmbr0", "tap101i0"),
             ("vm110", "vmbr1", "tap110i0"), ("ct201", "vmbr0", "veth201i0"),
             ("vm300", "vnet0", "tap300i0"), ("vm301", "vnet0", "tap301i0")]  # fmt: skip
    for zone, bridge, port in ports:
        t.add_port(zone, bridge=bridge, host_ifname=port, mac=MAC[zone])
    with t:
        yield t


def verdicts(
    topo: Topology, checks: dict[str, tuple[str, str, str, int, int, str]]
) -> dict[str, str]:
    """name -> (from, to, proto, port, ip version, source or "") -> what the sender saw."""
    out: dict[str, str] = {}
    for name, (src, dst, proto, port, version, source) in checks.items():
        out[name] = probe(topo, src, dst, proto, port, v6=version == 6, source=source or None)
    return out


def stray_reset_arrives(topo: Topology) -> bool:
    """A TCP reset from the uplink to VM 100 that belongs to no connection."""
    outside, vm = topo.zone("outside"), topo.zone("vm100")
    mark, sentinel_mark = g.token(), g.token()
    rst = g.tcp(SRC[4], DST[4], 33333, 22, 0x04, mark)
    syn = g.tcp(SRC[4], DST[4], 33334, 22, 0x02, sentinel_mark)  # IN ACCEPT -p tcp -dport 22
    return g.delivered(outside, vm, g.ether(MAC["vm100"], MAC["outside"], g.ETH_P_IP, rst),
                       mark, g.ether(MAC["vm100"], MAC["outside"], g.ETH_P_IP, syn),
                       sentinel_mark)  # fmt: skip


def test_rules_reject_group_blacklist_ips_vnet(topo: Topology, tmp_path: Path) -> None:
    root = g.write_tree(tmp_path / "pve", {
        ".vmlist": g.vmlist({100: "qemu", 101: "qemu", 201: "lxc"}),
        "firewall/cluster.fw": CLUSTER,
        "firewall/100.fw": VM100,
        "firewall/101.fw": VM101,
        "firewall/201.fw": CT201,
        "sdn/firewall/vnet0.fw": VNET0,
        "sdn/.running-config": g.sdn_running_config("vnet0"),
        **GUEST_CONFS,
    })  # fmt: skip
    g.apply_tree(topo, root, refused=1)  # VNET0's FORWARD REJECT
    items = g.guest_table(topo)
    chains, sets = g.names_of(items, "chain"), g.names_of(items, "set")
    assert {"guest-100-in", "guest-100-out", "guest-101-in", "guest-101-out",
            "bridge-vnet0"} <= chains  # fmt: skip
    assert {"v4-guest-100/trusted", "v6-guest-100/trusted"} <= sets

    checks: dict[str, tuple[str, str, str, int, int, str]] = {}
    for v in (4, 6):
        checks |= {
            f"OUT REJECT tcp v{v}": ("vm100", "outside", "tcp", 81, v, ""),
            f"OUT REJECT udp v{v}": ("vm100", "outside", "udp", 81, v, ""),
            f"OUT REJECT tcp to a guest v{v}": ("vm100", "ct201", "tcp", 81, v, ""),
            f"IN REJECT tcp v{v}": ("outside", "vm100", "tcp", 81, v, ""),
            f"IN REJECT udp v{v}": ("outside", "vm100", "udp", 81, v, ""),
            f"IN REJECT tcp from a guest v{v}": ("ct201", "vm100", "tcp", 81, v, ""),
            f"group on net0 v{v}": ("outside", "vm100", "tcp", 80, v, ""),
            f"group not on net1 v{v}": ("vm110", "vm100i1", "tcp", 80, v, ""),
            f"net1 itself v{v}": ("vm110", "vm100i1", "tcp", 22, v, ""),
            f"blacklisted source v{v}": ("outside", "vm100", "tcp", 22, v, BLACKLISTED[v]),
            f"other source v{v}": ("outside", "vm100", "tcp", 22, v, ""),
            f"ips in v{v}": ("outside", "vm101", "tcp", 22, v, ""),
            f"ips out v{v}": ("vm101", "outside", "tcp", 80, v, ""),
            f"vnet FORWARD ACCEPT v{v}": ("vm300", "vm301", "tcp", 22, v, ""),
            f"vnet policy DROP v{v}": ("vm300", "vm301", "tcp", 23, v, ""),
            f"vnet FORWARD REJECT v{v}": ("vm300", "vm301", "tcp", 24, v, ""),
        }
    with g.sniffing(topo.zone("vm100")) as at_guest:
        got = verdicts(topo, checks)
        seen_by_vm100 = g.received(at_guest)
    expected: dict[str, str] = {}
    for v in (4, 6):
        expected |= {
            f"OUT REJECT tcp v{v}": "REJECT",  # the reset reaches the guest
            f"OUT REJECT udp v{v}": "REJECT",  # ICMP(v6) port-unreachable
            f"OUT REJECT tcp to a guest v{v}": "REJECT",
            f"IN REJECT tcp v{v}": "DROP",  # no bridge reject on the postrouting path
            f"IN REJECT udp v{v}": "DROP",
            f"IN REJECT tcp from a guest v{v}": "DROP",
            f"group on net0 v{v}": "ACCEPT",
            f"group not on net1 v{v}": "DROP",  # policy_in DROP: the group is net0's only
            f"net1 itself v{v}": "ACCEPT",
            f"blacklisted source v{v}": "DROP",
            f"other source v{v}": "ACCEPT",
            f"ips in v{v}": "ACCEPT",  # queued with bypass: no IPS listens
            f"ips out v{v}": "ACCEPT",
            f"vnet FORWARD ACCEPT v{v}": "ACCEPT",
            f"vnet policy DROP v{v}": "DROP",
            f"vnet FORWARD REJECT v{v}": "DROP",  # no bridge reject on the forward path
        }
    assert got == expected
    # A rejected or dropped probe toward VM 100 never reached it (its port 81 probes are
    # the only ones with destination port 81 toward it).
    toward_81 = [
        f for f in seen_by_vm100 if _tcp_or_udp_dport(f) == 81 and f[:6].hex(":") == MAC["vm100"]
    ]
    assert toward_81 == []
    assert not stray_reset_arrives(topo)

    # ips: the accepted packets went through the queue statements (with bypass)
    items = g.guest_table(topo)
    for chain in ("guest-101-in", "guest-101-out"):
        queued = [r for r in g.rules_of(items, chain) if any("queue" in s for s in r)]
        assert queued, f"{chain} has no queue rule"
        assert all("bypass" in str(next(s for s in r if "queue" in s)) for r in queued)
        assert sum(g.counted(r) for r in queued) > 0, f"nothing went through {chain}'s queue"


def test_removed_guests_leave_nothing(topo: Topology, tmp_path: Path) -> None:
    root = g.write_tree(tmp_path / "pve", {
        ".vmlist": g.vmlist({101: "qemu", 201: "lxc"}),  # 100 gone from this node
        "firewall/cluster.fw": CLUSTER,
        "firewall/100.fw": VM100,  # left behind, but the guest is not here
        "firewall/201.fw": CT201,  # 101.fw deleted, vnet0.fw deleted
        **GUEST_CONFS,
    })  # fmt: skip
    g.apply_tree(topo, root)
    items = g.guest_table(topo)
    names = g.names_of(items, "chain") | g.names_of(items, "set")
    assert {"guest-201-in", "guest-201-out"} <= names  # the table itself is still there
    left = sorted(n for n in names if any(k in n for k in ("guest-100", "guest-101", "vnet0")))
    assert left == []
    assert g.map_keys(items, "vm-map-in") == {"veth201i0"}
    assert g.map_keys(items, "vm-map-out") == {"veth201i0"}
    assert g.map_keys(items, "bridge-map") == set()
    assert verdicts(topo, {
        "to 100, once rejected": ("outside", "vm100", "tcp", 81, 4, ""),
        "to 100, blacklisted": ("outside", "vm100", "tcp", 22, 6, BLACKLISTED[6]),
        "from 100, once rejected": ("vm100", "outside", "tcp", 81, 6, ""),
        "vnet, once dropped": ("vm300", "vm301", "tcp", 23, 4, ""),
    }) == dict.fromkeys(("to 100, once rejected", "to 100, blacklisted",
                         "from 100, once rejected", "vnet, once dropped"), "ACCEPT")  # fmt: skip


@pytest.fixture
def br_netfilter() -> Iterator[None]:
    """br_netfilter loaded for one test, then unloaded so later tests see the usual kernel.

    (The VM has no ``modprobe`` on PATH, so ``Topology(bridge_nf_call=True)`` cannot load
    it there; the runner's helper is the one the kernel itself uses.)
    """
    modprobe = Path("/proc/sys/kernel/modprobe").read_text().strip()
    loaded_before = Path("/sys/module/br_netfilter").exists()
    subprocess.run([modprobe, "br_netfilter"], check=True, capture_output=True)
    yield
    if not loaded_before:
        subprocess.run([modprobe, "-r", "br_netfilter"], check=False, capture_output=True)


def test_with_br_netfilter(br_netfilter: None, tmp_path: Path) -> None:
    """With bridge-nf-call-iptables=1 (usual on PVE hosts) bridged IP frames also walk the
    inet hooks; the vnet firewall (bridge forward hook) and the guest chains must still
    see them. At the forward hook's former priority 0 the vnet policy was never applied."""
    t = Topology(bridge_nf_call=True)
    t.add_bridge("vnet0", mac="02:00:00:00:00:20")
    t.add_port("vm300", bridge="vnet0", host_ifname="tap300i0", mac=MAC["vm300"])
    t.add_port("vm301", bridge="vnet0", host_ifname="tap301i0", mac=MAC["vm301"])
    root = g.write_tree(tmp_path / "pve", {
        ".vmlist": g.vmlist({300: "qemu"}),
        "firewall/cluster.fw": "[OPTIONS]\nenable: 1\n",
        "firewall/300.fw": (
            "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\n\n[RULES]\nOUT REJECT -p tcp -dport 81\n"
        ),
        "nodes/pve1/qemu-server/300.conf": (
            f"net0: virtio={MAC['vm300'].upper()},bridge=vnet0,firewall=1\n"
        ),
        "sdn/.running-config": g.sdn_running_config("vnet0"),
        "sdn/firewall/vnet0.fw": (
            "[OPTIONS]\nenable: 1\npolicy_forward: DROP\n\n"
            "[RULES]\nFORWARD ACCEPT -p tcp -dport 22\nFORWARD ACCEPT -p tcp -dport 81\n"
        ),
    })  # fmt: skip
    with t as topo:
        assert topo.host.ns.read_sysctl("net/bridge/bridge-nf-call-iptables") == "1"
        g.apply_tree(topo, root)
        checks: dict[str, tuple[str, str, str, int, int, str]] = {}
        expected: dict[str, str] = {}
        for v in (4, 6):
            checks |= {
                f"vnet FORWARD ACCEPT v{v}": ("vm301", "vm300", "tcp", 22, v, ""),
                f"vnet policy DROP v{v}": ("vm301", "vm300", "tcp", 23, v, ""),
                f"vnet policy DROP, other way v{v}": ("vm300", "vm301", "tcp", 23, v, ""),
                f"guest OUT REJECT v{v}": ("vm300", "vm301", "tcp", 81, v, ""),
            }
            expected |= {
                f"vnet FORWARD ACCEPT v{v}": "ACCEPT",
                f"vnet policy DROP v{v}": "DROP",
                f"vnet policy DROP, other way v{v}": "DROP",
                f"guest OUT REJECT v{v}": "REJECT",
            }
        assert verdicts(topo, checks) == expected


def _tcp_or_udp_dport(frame: bytes) -> int | None:
    """The destination port of a TCP/UDP frame (IPv4 or IPv6), else None."""
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == g.ETH_P_IP:
        proto, l4 = frame[23], frame[14 + (frame[14] & 0x0F) * 4 :]
    elif ethertype == g.ETH_P_IPV6:
        proto, l4 = frame[20], frame[54:]
    else:
        return None
    if proto not in (socket.IPPROTO_TCP, socket.IPPROTO_UDP) or len(l4) < 4:
        return None
    return int.from_bytes(l4[2:4], "big")
