"""``proxmox-firewall trace`` against the kernel: run as the operator runs it (a subprocess
in the host namespace), it shows the deciding rule's config file:line for a real packet,
and leaves no table behind, also when stopped by SIGTERM or killed."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.behaviour.hostlib import Firewall, Pkt, cluster_fw, host_fw
from tests.behaviour.toolcli import cli_argv, host_line
from tests.harness.netns import NetNs

pytestmark = pytest.mark.netns

TRACE_PREFIX = "proxmox-firewall-trace"



def tables(ns: NetNs) -> list[str]:
    out = json.loads(ns.nft("list tables") or '{"nftables": []}')
    return [f"{t['table']['family']} {t['table']['name']}" for t in out["nftables"]
            if "table" in t]  # fmt: skip


def trace_tables(ns: NetNs) -> list[str]:
    return [t for t in tables(ns) if TRACE_PREFIX in t]


class TraceRun:
    """``trace`` started in the host namespace, ready (its tables installed) on return."""

    def __init__(self, fw: Firewall, *args: str) -> None:
        self.ns = fw.topo.host.ns
        self.proc = subprocess.Popen(cli_argv(self.ns, fw.tree, "trace", *args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)  # fmt: skip
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        line = ""
        while "tracing" not in line:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stderr], [], [], max(left, 0))
            assert ready and self.proc.poll() is None, f"trace did not start: {line}"
            line = self.proc.stderr.readline()

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def rules(fw: Firewall) -> Firewall:
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw("""\
        IN ACCEPT -p tcp -dport 3001
        IN DROP -p tcp -dport 3002
    """))  # fmt: skip
    return fw


def test_trace_names_the_deciding_rules_config_line(rules: Firewall) -> None:
    fw = rules
    run = TraceRun(fw, "--proto", "tcp", "--dport", "3001", "--count", "1", "--json",
                   "--timeout", "30")  # fmt: skip
    try:
        assert len(trace_tables(fw.topo.host.ns)) == 2  # inet and bridge
        fw.check({Pkt("tcp", 3001): "ACCEPT"})
        rc, out, err = run.finish()
    finally:
        run.kill()
    assert rc == 0, err
    (packet,) = [json.loads(line) for line in out.splitlines()]
    assert packet["packet"]["dport"] == 3001 and packet["packet"]["proto"] == 6
    assert packet["verdict"] == "accept"
    decided = packet["decided_by"]
    assert decided["origin"] == host_line(fw.tree, "3001"), json.dumps(packet, indent=1)
    assert (decided["table"], decided["chain"]) == ("proxmox-firewall", "host-in")
    assert "tcp dport 3001" in decided["rule"] and "accept" in decided["rule"]
    chains = [step["chain"] for step in packet["path"]]
    assert chains.index("input") < chains.index("host-in")
    assert trace_tables(fw.topo.host.ns) == []


def test_trace_human_output_of_a_drop(rules: Firewall) -> None:
    fw = rules
    run = TraceRun(fw, "--proto", "tcp", "--dport", "3002", "--count", "1", "--timeout", "30")
    try:
        fw.check({Pkt("tcp", 3002): "DROP"})
        rc, out, err = run.finish()
    finally:
        run.kill()
    assert rc == 0, err
    where = str(fw.tree / host_line(fw.tree, "3002"))
    lines = out.splitlines()
    assert lines[0].startswith("trace ") and "-> 172.16.1.2:3002" in lines[0]
    assert any("host-in: tcp dport 3002" in ln and f"[{where}]" in ln for ln in lines)
    assert lines[-1].startswith("  => DROP by inet proxmox-firewall host-in rule ")
    assert lines[-1].endswith(f"[{where}]")
    assert trace_tables(fw.topo.host.ns) == []


def test_trace_filters_other_packets_out_and_times_out(rules: Firewall) -> None:
    fw = rules
    run = TraceRun(fw, "--proto", "tcp", "--dport", "3009", "--timeout", "2")
    try:
        fw.check({Pkt("tcp", 3001): "ACCEPT"})
        rc, out, err = run.finish()
    finally:
        run.kill()
    assert (rc, out) == (1, ""), err
    assert "no matching packet" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_trace_leaves_no_table_behind_when_stopped(rules: Firewall, sig: signal.Signals) -> None:
    fw = rules
    before = tables(fw.topo.host.ns)
    run = TraceRun(fw, "--proto", "tcp")
    try:
        assert len(trace_tables(fw.topo.host.ns)) == 2
        # the ip-netns-exec wrapper execs the CLI: the pid is the CLI's own
        run.proc.send_signal(sig)
        rc, _, err = run.finish()
    finally:
        run.kill()
    assert rc == 0, err
    assert trace_tables(fw.topo.host.ns) == []
    assert tables(fw.topo.host.ns) == before


def test_trace_after_a_killed_trace_removes_its_tables(rules: Firewall) -> None:
    fw = rules
    killed = TraceRun(fw, "--proto", "tcp")
    killed.kill()  # SIGKILL: no chance to clean up
    assert len(trace_tables(fw.topo.host.ns)) == 2
    run = TraceRun(fw, "--proto", "udp", "--timeout", "0.5")
    try:
        left = trace_tables(fw.topo.host.ns)
        assert len(left) == 2 and all(t.endswith(f"-{run.proc.pid}") for t in left)
        rc, _, err = run.finish()
    finally:
        run.kill()
    assert rc == 1, err
    assert trace_tables(fw.topo.host.ns) == []


def test_trace_rejects_contradicting_filters(rules: Firewall, tmp_path: Path) -> None:
    fw = rules
    proc = subprocess.run(cli_argv(fw.topo.host.ns, fw.tree, "trace", "--proto", "icmp",
                                   "--dport", "22", "--timeout", "1"),
                          capture_output=True, text=True, check=False, timeout=30)  # fmt: skip
    assert proc.returncode == 2
    assert "--dport needs a protocol with ports, not icmp" in proc.stderr
    assert trace_tables(fw.topo.host.ns) == []
