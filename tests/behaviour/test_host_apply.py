"""What ``apply`` does besides loading rules, what ``compile`` must not do, bad lines,
and the switches that remove the tables.

The CLI runs as the operator runs it, ``ip netns exec <host> proxmox-firewall ...``, in
a private mount namespace with a tmpfs on ``/var/lib``: the sysctls land in the test
namespace's ``/proc/sys/net/netfilter``, and ``/var/lib/pve-firewall/log_nf_conntrack``
in the tmpfs, never on this machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.behaviour.hostlib import (
    NODE,
    Firewall,
    Pkt,
    apply_tree,
    cluster_fw,
    has_table,
    host_fw,
    v4v6,
    write_tree,
)
from tests.harness.netns import NetNs

pytestmark = pytest.mark.netns

CLI = Path(sys.executable).parent / "proxmox-firewall"
NETFILTER = "net/netfilter/"
TIMEOUT_KEY = NETFILTER + "nf_conntrack_tcp_timeout_established"
SYN_RECV_KEY = NETFILTER + "nf_conntrack_tcp_timeout_syn_recv"
MAX_KEY = NETFILTER + "nf_conntrack_max"
HOST_TABLE, GUEST_TABLE = "inet proxmox-firewall", "bridge proxmox-firewall-guests"


@dataclass(slots=True)
class CliRun:
    rc: int
    stdout: str
    stderr: str
    var_lib: dict[str, str]  # files the command left in /var/lib -> their content


def run_cli(ns: NetNs, tree: Path, work: Path, command: str) -> CliRun:
    """``proxmox-firewall --pve-dir tree --nodename pve1 <command>`` in ``ns``, with a
    throwaway /var/lib; also returns what it wrote there."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) for a private /var/lib")
    out, err, files = work / "stdout", work / "stderr", work / "var-lib"
    script = (
        'mount -t tmpfs pfwt-var-lib /var/lib || exit 99\n'
        f'ip netns exec "$1" "$2" --pve-dir "$3" --nodename {NODE} {command} >"$4" 2>"$5"\n'
        'rc=$?\n'
        'for f in $(find /var/lib -type f); do printf "%s=%s\\n" "$f" "$(cat "$f")"; done >"$6"\n'
        'exit $rc\n'
    )  # fmt: skip
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
         ns.name, str(CLI), str(tree), str(out), str(err), str(files)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 99, proc.stderr
    written = dict(line.split("=", 1) for line in files.read_text().splitlines() if "=" in line)
    return CliRun(proc.returncode, out.read_text(), err.read_text(), written)


SYSCTL_OPTIONS = """\
nf_conntrack_tcp_timeout_established: 7875
nf_conntrack_tcp_timeout_syn_recv: 45
log_nf_conntrack: 1
"""


def test_apply_writes_conntrack_sysctls(fw: Firewall) -> None:
    """The timeouts land in the namespace's /proc/sys/net/netfilter, the logger flag in
    /var/lib/pve-firewall; ``nf_conntrack_max`` (read-only outside the initial
    namespace) costs a warning, not the apply. The loaded rules work, and the CLI's own
    detection of the local network (172.16.1.0/24 on vmbr0) feeds management access."""
    ns = fw.topo.host.ns
    ns.sysctls({TIMEOUT_KEY: "432000", SYN_RECV_KEY: "60"})
    max_before = ns.read_sysctl(MAX_KEY)
    tree = write_tree(fw.tree, cluster_fw("policy_in: DROP\n"),
                      host_fw("IN ACCEPT -p tcp -dport 80\n",
                              SYSCTL_OPTIONS + "nf_conntrack_max: 131072\n"))  # fmt: skip
    run = run_cli(ns, tree, fw.tmp, "apply")
    assert run.rc == 0, run.stderr
    assert ns.read_sysctl(TIMEOUT_KEY) == "7875"
    assert ns.read_sysctl(SYN_RECV_KEY) == "45"
    assert ns.read_sysctl(MAX_KEY) == max_before
    assert "nf_conntrack_max" in run.stderr, run.stderr
    assert run.var_lib == {"/var/lib/pve-firewall/log_nf_conntrack": "1"}
    assert has_table(ns, "inet", "proxmox-firewall")
    fw.check({**dict.fromkeys(v4v6(Pkt("tcp", 80)), "ACCEPT@host-in"),
              **dict.fromkeys(v4v6(Pkt("tcp", 81)), "DROP@cluster-in"),
              Pkt("tcp", 8006, source="172.16.1.5"): "ACCEPT@accept-management",
              Pkt("tcp", 8006, source="172.16.2.5"): "DROP@cluster-in"})  # fmt: skip


def test_compile_writes_nothing(fw: Firewall) -> None:
    """``compile`` prints the commands and changes neither sysctls, files nor rules."""
    ns = fw.topo.host.ns
    fw.apply(cluster_fw(enable=0))  # no table in the namespace
    ns.sysctls({TIMEOUT_KEY: "432000", SYN_RECV_KEY: "60"})
    tree = write_tree(fw.tree, cluster_fw(), host_fw("IN ACCEPT -p tcp -dport 80\n",
                                                     SYSCTL_OPTIONS))  # fmt: skip
    run = run_cli(ns, tree, fw.tmp, "compile")
    assert run.rc == 0, run.stderr
    assert '"nftables"' in run.stdout and "nf_conntrack_tcp_timeout" not in run.stdout
    assert ns.read_sysctl(TIMEOUT_KEY) == "432000"
    assert ns.read_sysctl(SYN_RECV_KEY) == "60"
    assert run.var_lib == {}
    assert not has_table(ns, "inet", "proxmox-firewall")


BAD_HOST_RULES = """\
IN ACCEPT -p tcp -dport 7001
IN ACCEPT -p tcp -dport 99999
IN ACCEPT -p tcp -dport 7002
IN FOO -p tcp -dport 7003
IN ACCEPT -source +nosuchset -p tcp -dport 7004
IN ACCEPT -p tcp -dport 7005 -bogus 1
IN ACCEPT -p tcp -dport 7006
"""


def test_bad_lines_cost_only_themselves(fw: Firewall) -> None:
    """Each broken rule is reported with its line and skipped; the others apply."""
    done = fw.apply(cluster_fw("policy_in: DROP\n"), host_fw(BAD_HOST_RULES),
                    allow_diagnostics=True)  # fmt: skip
    # host.fw: [OPTIONS], nftables, (empty), [RULES], then the rules from line 5
    bad_lines = {f"nodes/{NODE}/host.fw:{n}" for n in (6, 8, 9, 10)}
    reported = {d.split(": ", 1)[0] for d in done.diagnostics if "host.fw" in d}
    assert reported == bad_lines, done.diagnostics
    cases: dict[Pkt, str] = {}
    for port, want in ((7001, "ACCEPT"), (7002, "ACCEPT"), (7003, "DROP"), (7004, "DROP"),
                       (7005, "DROP"), (7006, "ACCEPT")):  # fmt: skip
        cases |= dict.fromkeys(v4v6(Pkt("tcp", port)), want)
    fw.check(cases)


BAD_CLUSTER = """\
[ALIASES]
good4 100.100.30.0/24
bad4 300.1.1.1
good6 fd00:100:30::/64

[IPSET web]
100.100.31.0/24
999.1.1.1/8
nosuchalias
fd00:100:31::/64

[RULES]
IN ACCEPT -source good4 -p tcp -dport 7101
IN ACCEPT -source bad4 -p tcp -dport 7102
IN ACCEPT -source +web -p tcp -dport 7103
IN ACCEPT -source good6 -p tcp -dport 7104
"""


def test_bad_options_aliases_and_entries_cost_only_themselves(fw: Firewall) -> None:
    """A bad option value keeps that option's default, a bad alias or ipset entry is
    left out; the good aliases, entries, rules and options still work."""
    done = fw.apply(
        cluster_fw("policy_in: MAYBE\n", BAD_CLUSTER),
        host_fw(options="tcpflags: maybe\nndp: 0\n"),
        allow_diagnostics=True,
    )
    reported = {d.split(": ", 1)[0] for d in done.diagnostics}
    assert reported == {"firewall/cluster.fw:3", "firewall/cluster.fw:7",
                        "firewall/cluster.fw:12", "firewall/cluster.fw:13",
                        "firewall/cluster.fw:18", f"nodes/{NODE}/host.fw:3"}, done.diagnostics
    fw.check({
        Pkt("tcp", 7101, source="100.100.30.5"): "ACCEPT@cluster-in",
        Pkt("tcp", 7102, source="100.100.30.5"): "DROP@cluster-in",  # policy: the default
        Pkt("tcp", 7103, source="100.100.31.5"): "ACCEPT@cluster-in",
        Pkt("tcp", 7103, source="fd00:100:31::5"): "ACCEPT@cluster-in",
        Pkt("tcp", 7103, source="100.100.32.5"): "DROP@cluster-in",
        Pkt("tcp", 7104, source="fd00:100:30::5"): "ACCEPT@cluster-in",
        Pkt("icmpv6", "neighbor-solicitation"): "DROP@block-ndp-in",  # ndp: 0 applied
    })  # fmt: skip


def test_bad_lines_via_cli(fw: Firewall) -> None:
    """The CLI applies too (exit 0) and names the file and line of each bad rule."""
    tree = write_tree(fw.tree, cluster_fw("policy_in: DROP\n"), host_fw(BAD_HOST_RULES))
    run = run_cli(fw.topo.host.ns, tree, fw.tmp, "apply")
    assert run.rc == 0, run.stderr
    for n in (6, 8, 9, 10):
        assert f"host.fw:{n}" in run.stderr, run.stderr
    fw.check({Pkt("tcp", 7006): "ACCEPT", Pkt("tcp", 7003): "DROP"})


def _loaded(fw: Firewall) -> None:
    fw.apply(cluster_fw("policy_in: DROP\n"))
    assert has_table(fw.topo.host.ns, "inet", "proxmox-firewall")
    fw.check(dict.fromkeys(v4v6(Pkt("tcp", 9)), "DROP"))


def test_host_enable_0_removes_host_table(fw: Firewall) -> None:
    _loaded(fw)
    done = fw.apply(cluster_fw("policy_in: DROP\n"), host_fw(options="enable: 0\n"))
    assert HOST_TABLE in done.deleted and HOST_TABLE not in done.applied
    assert not has_table(fw.topo.host.ns, "inet", "proxmox-firewall")
    fw.check(dict.fromkeys(v4v6(Pkt("tcp", 9)), "ACCEPT"))


@pytest.mark.parametrize("how", ["enable: 0", "no cluster.fw", "no nftables: 1"])
def test_cluster_switch_removes_both_tables(fw: Firewall, how: str) -> None:
    _loaded(fw)
    if how == "enable: 0":
        done = fw.apply(cluster_fw("policy_in: DROP\n", enable=0))
    elif how == "no cluster.fw":
        write_tree(fw.tree, None, host_fw())
        done = apply_tree(fw.topo, fw.tree)
    else:
        done = fw.apply(cluster_fw("policy_in: DROP\n"), "[OPTIONS]\nenable: 1\n")
    assert {HOST_TABLE, GUEST_TABLE} <= set(done.deleted) and done.applied == []
    assert not has_table(fw.topo.host.ns, "inet", "proxmox-firewall")
    fw.check(dict.fromkeys(v4v6(Pkt("tcp", 9)), "ACCEPT"))
