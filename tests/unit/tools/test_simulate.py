"""``simulate`` against the packet tests: every host-side pve-sim case the conformance
suite runs on this kernel gets the same verdict from ``simulate``, which builds its own
node, applies the suite's configuration and sends the packet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxmox_fw.nft.features import KernelFeatures, probe_features
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.tools.simulate import (
    GuestPort,
    Request,
    SimulateError,
    Unsupported,
    compile_for_node,
    guest_port,
    simulate,
)
from tests.harness import pvesim

ROOT = Path(__file__).resolve().parents[3]
INAPPLICABLE = pvesim.load_inapplicable()
CASES = [c for c in pvesim.all_cases() if pvesim.host_side(c) and c.id not in INAPPLICABLE]


def test_the_cases_are_there() -> None:
    assert len(CASES) >= 40


@pytest.mark.netns
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_agrees_with_the_packet_test(case: pvesim.Case) -> None:
    assert not case.multicast and not case.v6
    req = Request(case.src_zone, case.dst_zone, case.proto, case.source, case.dest,
                  case.sport, case.dport if isinstance(case.dport, int) else None)
    outcome = simulate(case.pve_dir, "pve1", req)
    assert outcome.verdict == case.action, (case, outcome.seen)
    assert outcome.packets, "the packet was traced"


@pytest.mark.netns
def test_cli_names_the_deciding_rule(tmp_path: Path) -> None:
    (tmp_path / "firewall").mkdir()
    (tmp_path / "firewall" / "cluster.fw").write_text(
        "[OPTIONS]\nenable: 1\n\n[RULES]\nIN REJECT -p tcp -dport 22\n")
    (tmp_path / ".vmlist").write_text('{"version": 1, "ids": {}}\n')
    res = subprocess.run([sys.executable, "-m", "cli.main", "--pve-dir", str(tmp_path),
                          "--nodename", "pve1", "simulate", "--from", "outside", "--to", "host",
                          "--dport", "22"], capture_output=True, text=True, cwd=ROOT,
                         check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:3] == [
        "packet: outside 100.100.1.2 -> host 172.16.1.2 tcp dport 22",
        "verdict: REJECT (TCP reset)",
        f"decided by: {tmp_path}/firewall/cluster.fw:5 (inet proxmox-firewall cluster-in)"]
    assert ("  inet proxmox-firewall cluster-in: tcp dport 22 jump do-reject -> jump  "
            f"[{tmp_path}/firewall/cluster.fw:5]") in lines


def test_guest_zones_need_the_bridge_features() -> None:
    """Without the guest table's kernel features a guest zone is refused, naming them."""
    lacking = KernelFeatures(bridge_conntrack=False, bridge_reject=False)
    with pytest.raises(Unsupported) as err:
        simulate(pvesim.suite_dir("test-basic1") / "pve", "pve1",
                 Request("outside", "vm100", dport=22), lacking)  # fmt: skip
    msg = str(err.value)
    assert msg.startswith("zone 'vm100': the guest table cannot be loaded here")
    assert "CONFIG_NF_CONNTRACK_BRIDGE" in msg and "bridge_meta" not in msg


def test_guest_ports_come_from_the_guest_config() -> None:
    cfg, _ = compile_for_node(pvesim.suite_dir("test-basic1") / "pve", "pve1")
    assert guest_port(cfg, "vm100") == GuestPort("vm100", "tap100i0", "0E:0B:38:B8:B3:21")
    assert guest_port(cfg, "ct200") == GuestPort("ct200", "veth200i0", "0E:18:24:41:2C:43")
    with pytest.raises(Unsupported, match="net1 is on bridge vmbr1"):
        guest_port(cfg, "vm100i1")
    with pytest.raises(SimulateError, match="no container 100"):
        guest_port(cfg, "ct100")
    with pytest.raises(SimulateError, match="has no net7"):
        guest_port(cfg, "vm100i7")
    assert Request("vm100", "outside").resolved().source == "172.16.1.100"


@pytest.mark.netns
def test_cli_guest_zone_on_this_kernel(tmp_path: Path) -> None:
    """Exit 3 naming the missing features where the kernel lacks them (this machine's
    own kernel); elsewhere the zone is looked up and a guest that is not there is a
    usage error."""
    (tmp_path / "firewall").mkdir()
    (tmp_path / "firewall" / "cluster.fw").write_text("[OPTIONS]\nenable: 1\n")
    (tmp_path / ".vmlist").write_text('{"version": 1, "ids": {}}\n')
    res = subprocess.run([sys.executable, "-m", "cli.main", "--pve-dir", str(tmp_path),
                          "--nodename", "pve1", "simulate", "--from", "outside", "--to",
                          "vm100"], capture_output=True, text=True, cwd=ROOT,
                         check=False)  # fmt: skip
    worker = NetnsWorker()
    try:
        lacks = worker.call(lambda: probe_features().missing_for_guests())
    finally:
        worker.close()
    if lacks:
        assert res.returncode == 3, res.stderr
        assert "zone 'vm100': the guest table cannot be loaded here, this kernel lacks " \
            + ", ".join(lacks) in res.stderr
    else:
        assert res.returncode == 2, res.stderr
        assert "zone 'vm100': no VM 100 on this node" in res.stderr
