"""The firewall log for guests (VM tier): a guest rule and a guest policy with
``log_level_in`` produce lines with the guest's vmid and the bridge's devices, ARP
logged on the bridge is printed as pvefw-logger prints it, and the conntrack lines of
guest flows carry ``mark=<vmid>`` (the guest chains set the conntrack mark).

The guest table logs in the bridge family, where the kernel reports the bridge as IN/OUT
and the ports as PHYSIN/PHYSOUT (only those the hook knows). Our ruleset accepts ARP
before any guest rule (as upstream does), so no product rule logs ARP; a test-only
bridge table logs it with a guest prefix to check the daemon's ARP lines on a real
bridge.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fullkernel import guestlib as g
from tests.harness.logdaemon import LoggerProcess
from tests.harness.topology import Topology

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]

MAC = {"outside": "02:00:00:00:01:01", "vm100": "0e:0b:38:b8:b3:21"}
OUT_IP, VM_IP, GATEWAY = "100.100.1.2", "100.200.3.4", "100.200.3.1"
FILES = {
    ".vmlist": g.vmlist({100: "qemu"}),
    "firewall/cluster.fw": "[OPTIONS]\nenable: 1\nlog_ratelimit: 0\n",
    "firewall/100.fw": ("[OPTIONS]\nenable: 1\npolicy_in: DROP\nlog_level_in: info\n\n"
                        "[RULES]\nIN ACCEPT -p tcp -dport 22 -log info\n"
                        "OUT ACCEPT -p udp -dport 5000 -log warning\n"),
    "nodes/pve1/qemu-server/100.conf": (
        f"net0: virtio={MAC['vm100'].upper()},bridge=vmbr0,firewall=1\n"),
}  # fmt: skip
ARP_TABLE = """table bridge pfwt-arplog {
    chain pre {
        type filter hook prerouting priority -400
        ether type arp log prefix ":100:6:tap100i0-OUT: ACCEPT: " group 0
    }
}
"""


@pytest.fixture
def topo() -> Iterator[Topology]:
    with g.one_guest_topology(MAC["outside"], MAC["vm100"]) as t:
        yield t


def when(line: str) -> str:
    text = " ".join(line.split(" ")[3:5])
    stamp = dt.datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z")
    assert abs((dt.datetime.now().astimezone() - stamp).total_seconds()) < 300, line
    return text


def test_guest_rule_policy_and_arp_lines(topo: Topology, tmp_path: Path) -> None:
    g.apply_tree(topo, g.write_tree(tmp_path / "pve", FILES))
    topo.host.ns.nft(ARP_TABLE)
    log = LoggerProcess(topo.host.ns, tmp_path, "--conntrack")
    try:
        log.wait_started(timeout=300)  # a cold start is slow under qemu
        vm, out = topo.zone("vm100"), topo.zone("outside")
        g.send_frames(vm, g.ether(MAC["outside"], MAC["vm100"], g.ETH_P_IP,
                                  g.udp(VM_IP, OUT_IP, 5001, 5000, b"hello")))  # fmt: skip
        g.send_frames(vm, g.ether(g.BROADCAST, MAC["vm100"], g.ETH_P_ARP,
                                  g.arp_request(MAC["vm100"], VM_IP, GATEWAY)))  # fmt: skip
        for dport in (22, 23):
            segment = g.tcp(OUT_IP, VM_IP, 40000 + dport, dport, 0x02)
            g.send_frames(out, g.ether(MAC["vm100"], MAC["outside"], g.ETH_P_IP, segment))
        last = log.wait_for(" SPT=40023 ", timeout=120)[0]
        log.wait_for(" sport=40022 dport=22 ", timeout=120)
        # (IPv6 multicast the namespaces send on their own may be logged as well)
        lines = [ln for ln in log.lines() if VM_IP in ln and not ln.lstrip().startswith("[")]
        flows = [ln for ln in log.lines() if ln.lstrip().startswith("[NEW]")]
    finally:
        log.stop()
        topo.host.ns.nft("delete table bridge pfwt-arplog")
    # Guest IN rules run on the bridge's postrouting hook, which knows only the output
    # device: no IN/PHYSIN and so no MAC (the kernel sends the header with an input device).
    to_vm = "OUT=vmbr0 PHYSOUT=tap100i0"
    syn = "TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP"
    accepted = next(ln for ln in lines if " SPT=40022 " in ln)
    udp = next(ln for ln in lines if " PROTO=UDP " in ln)
    arp = next(ln for ln in lines if " PROTO=ARP " in ln)
    assert lines == [udp, arp, accepted, last], lines
    assert udp == (
        f"100 4 guest-100-out {when(udp)} ACCEPT: IN=vmbr0 PHYSIN=tap100i0 "
        f"MAC={MAC['outside']}:{MAC['vm100']}:08:00 SRC={VM_IP} DST={OUT_IP} LEN=33 "
        "TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP SPT=5001 DPT=5000 LEN=13")
    assert arp == (
        f"100 6 tap100i0-OUT {when(arp)} ACCEPT: IN=vmbr0 PHYSIN=tap100i0 "
        f"MAC={g.BROADCAST}:{MAC['vm100']}:08:06 SRC={VM_IP} DST={GATEWAY} PROTO=ARP REQUEST ")
    assert accepted == (
        f"100 6 guest-100-in {when(accepted)} ACCEPT: {to_vm} SRC={OUT_IP} DST={VM_IP} "
        f"LEN=40 {syn} SPT=40022 DPT=22 SEQ=4096 ACK=0 WINDOW=8192 SYN ")
    assert last == (
        f"100 6 guest-100-in {when(last)} DROP: {to_vm} SRC={OUT_IP} DST={VM_IP} "
        f"LEN=40 {syn} SPT=40023 DPT=23 SEQ=4096 ACK=0 WINDOW=8192 SYN ")
    assert f"{VM_IP} PROTO=ARP" not in " ".join(flows)
    ct = r"    \[NEW\] ipv4     2 {} \d+ {}src={} dst={} sport={} dport={} \[UNREPLIED\] "
    tail = r"src={} dst={} sport={} dport={} mark=100"
    udp_flow = (ct.format("udp      17", "", VM_IP, OUT_IP, 5001, 5000)
                + tail.format(OUT_IP, VM_IP, 5000, 5001))  # fmt: skip
    tcp_flow = (ct.format("tcp      6", "SYN_SENT ", OUT_IP, VM_IP, 40022, 22)
                + tail.format(VM_IP, OUT_IP, 22, 40022))  # fmt: skip
    for pattern in (udp_flow, tcp_flow):
        assert len([ln for ln in flows if re.fullmatch(pattern, ln)]) == 1, (pattern, flows)

