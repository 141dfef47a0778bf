"""``ips: 1`` against real traffic (VM tier, admin guide §13.10.2): a guest's accepted
packets go to the NFQUEUE of ``ips_queues`` (one number, or a range), an IPS reading the
queue sees them and gives its verdict; with nobody reading, traffic still flows (the
queue is bypassed, as upstream); dropped and rejected packets never reach a queue.

VM 101 uses queue 7, VM 102 the range 0:1. Readers (tests/harness/nfqueue.py) bind
queues 0, 1 and 7 of the host namespace, where the guest table runs, and accept every
packet, so a probe that gets through has been through the reader.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fullkernel import guestlib as g
from tests.harness.nfqueue import Queued, QueueReader
from tests.harness.probe import probe
from tests.harness.topology import Topology

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]

MAC = {"outside": "02:00:00:00:02:01", "vm101": "0e:0b:38:c8:b3:22",
       "vm102": "0e:0b:38:c8:b3:23"}
NFPROTO_BRIDGE = 7
RULES = """[RULES]
IN ACCEPT -p tcp -dport 22
IN DROP -p tcp -dport 23
IN REJECT -p tcp -dport 24
OUT REJECT -p tcp -dport 81
OUT DROP -p tcp -dport 82
"""
TREE = {
    ".vmlist": g.vmlist({101: "qemu", 102: "qemu"}),
    "firewall/cluster.fw": "[OPTIONS]\nenable: 1\n",
    "firewall/101.fw": "[OPTIONS]\nenable: 1\nips: 1\nips_queues: 7\n\n" + RULES,
    "firewall/102.fw": "[OPTIONS]\nenable: 1\nips: 1\nips_queues: 0:1\n\n" + RULES,
    "nodes/pve1/qemu-server/101.conf":
        f"net0: virtio={MAC['vm101'].upper()},bridge=vmbr0,firewall=1\n",
    "nodes/pve1/qemu-server/102.conf":
        f"net0: virtio={MAC['vm102'].upper()},bridge=vmbr0,firewall=1\n",
}


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    t = Topology()
    t.add_bridge("vmbr0", mac="02:00:00:00:02:10", addresses=("172.16.1.2/24",))
    for zone, port in (("outside", "eth0"), ("vm101", "tap101i0"), ("vm102", "tap102i0")):
        t.add_port(zone, bridge="vmbr0", host_ifname=port, mac=MAC[zone])
    with t:
        g.apply_tree(t, g.write_tree(tmp_path_factory.mktemp("pve"), TREE))
        yield t


@pytest.fixture
def readers(topo: Topology) -> Iterator[dict[int, QueueReader]]:
    opened: dict[int, QueueReader] = {}
    try:
        for q in (0, 1, 7):
            opened[q] = QueueReader(topo.host.ns, q)
        yield opened
    finally:
        for r in opened.values():
            r.close()


def tcp_to(seen: list[Queued], dport: int) -> list[Queued]:
    return [q for q in seen if q.packet is not None and q.packet.proto == 6
            and q.packet.dport == dport]


PROBES = (("IN ACCEPT", "in", 22, "ACCEPT"), ("IN DROP", "in", 23, "DROP"),
          ("IN REJECT", "in", 24, "DROP"),  # toward a guest REJECT is a DROP
          ("IN policy", "in", 26, "DROP"), ("OUT policy", "out", 80, "ACCEPT"),
          ("OUT REJECT", "out", 81, "REJECT"), ("OUT DROP", "out", 82, "DROP"))


def test_accepted_packets_reach_the_configured_queue(
        topo: Topology, readers: dict[int, QueueReader]) -> None:
    def seen() -> dict[int, list[Queued]]:
        return {q: r.seen() for q, r in readers.items()}

    for vm, mine in (("vm101", (7,)), ("vm102", (0, 1))):
        before = seen()
        got, want = {}, {}
        for v in (4, 6):
            for name, way, port, verdict in PROBES:
                src, dst = ("outside", vm) if way == "in" else (vm, "outside")
                got[f"{name} v{v}"] = probe(topo, src, dst, "tcp", port, v6=v == 6)
                want[f"{name} v{v}"] = verdict
        assert got == want, vm
        new = {q: packets[len(before[q]):] for q, packets in seen().items()}
        ours = [p for q in mine for p in new[q]]
        # The accepted connections, both directions and both families, went through
        # the guest's queue (for 0:1 fanout picks by CPU: this VM has one, so queue 0),
        # as packets of the bridge family ...
        for port in (22, 80):
            assert {q.packet.version for q in tcp_to(ours, port) if q.packet} == {4, 6}, (
                vm, port, new)
        assert {q.family for q in ours} == {NFPROTO_BRIDGE}
        # ... and through no other queue (the other guest's own background traffic,
        # IPv6 MLD and the like, still goes to its queue meanwhile).
        others = [p for q, packets in new.items() if q not in mine for p in packets]
        for _name, _way, port, _verdict in PROBES:
            assert tcp_to(others, port) == [], (vm, port, others)
        # Dropped and rejected packets never reach a queue.
        for port in (23, 24, 26, 81, 82):
            assert tcp_to(ours, port) == [], (vm, port)


def test_without_a_reader_traffic_still_flows(topo: Topology) -> None:
    # No queue is bound: the queue statements' bypass flag lets the packets pass.
    for vm in ("vm101", "vm102"):
        for v in (4, 6):
            assert probe(topo, "outside", vm, "tcp", 22, v6=v == 6) == "ACCEPT"
            assert probe(topo, vm, "outside", "tcp", 80, v6=v == 6) == "ACCEPT"
            assert probe(topo, "outside", vm, "tcp", 23, v6=v == 6) == "DROP"
    items = g.guest_table(topo)
    for chain in ("guest-101-in", "guest-101-out", "guest-102-in", "guest-102-out"):
        queued = [r for r in g.rules_of(items, chain) if any("queue" in s for s in r)]
        assert queued and sum(g.counted(r) for r in queued) > 0, chain
