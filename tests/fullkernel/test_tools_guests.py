"""``trace --vmid`` and ``counters --vmid`` on the guest table (VM tier): a probe toward
VM 100 is traced through the guest's own chain, decided by the rule of its 100.fw line,
and counted on that line."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fullkernel import guestlib as g
from tests.harness.probe import probe
from tests.harness.topology import Topology

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]

MAC = {"outside": "02:00:00:00:01:01", "vm100": "0e:0b:38:b8:b3:21"}
VM100 = "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 22\nIN DROP -p tcp -dport 23\n"
ACCEPT_LINE, DROP_LINE = "firewall/100.fw:5", "firewall/100.fw:6"


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with g.one_guest_topology(MAC["outside"], MAC["vm100"]) as t:
        yield t


def test_trace_and_counters_of_a_guest_rule(topo: Topology, tmp_path: Path) -> None:
    from proxmox_fw.nft.client import NftClient
    from proxmox_fw.nft.netns import NetnsWorker
    from proxmox_fw.tools.counters import collect_counters
    from proxmox_fw.tools.trace import TracedPacket, TraceFilter, run_trace

    root = g.write_tree(tmp_path / "pve", {
        ".vmlist": g.vmlist({100: "qemu"}),
        "firewall/cluster.fw": "[OPTIONS]\nenable: 1\n",
        "firewall/100.fw": VM100,
        "nodes/pve1/qemu-server/100.conf":
            f"net0: virtio={MAC['vm100'].upper()},bridge=vmbr0,firewall=1\n",
    })  # fmt: skip
    assert VM100.splitlines()[4] == "IN ACCEPT -p tcp -dport 22"  # line 5
    g.apply_tree(topo, root)

    packets: list[TracedPacket] = []
    ready = threading.Event()
    worker = NetnsWorker(topo.host.ns.path)

    def trace() -> None:
        run_trace(TraceFilter(proto="tcp", dport=22, vmid=100), packets.append, count=1,
                  timeout=120, ready=ready.set)  # fmt: skip

    tracer = threading.Thread(target=worker.call, args=(trace,))
    tracer.start()
    try:
        assert ready.wait(120)
        assert probe(topo, "outside", "vm100", "tcp", 22) == "ACCEPT"
        assert probe(topo, "outside", "vm100", "tcp", 23) == "DROP"
    finally:
        tracer.join(180)
        worker.close()
    (packet,) = packets
    decision = packet.decision
    assert decision is not None and decision.rule is not None
    assert (decision.event.table, decision.event.chain) == ("proxmox-firewall-guests",
                                                            "guest-100-in")  # fmt: skip
    assert decision.rule.origin == ACCEPT_LINE
    assert packet.verdict == "accept" and packet.oif == "tap100i0"

    def counts() -> dict[str, int]:
        report = collect_counters(NftClient(), tmp_path / "state", vmid=100)
        return {c.origin: c.packets for c in report.counts}

    counted = topo.host.ns.run(counts)
    assert counted[ACCEPT_LINE] >= 1 and counted[DROP_LINE] >= 1
    assert all(origin.startswith("firewall/100.fw") for origin in counted)
