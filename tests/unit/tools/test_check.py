"""``proxmox-firewall check``: a corpus of broken and suspicious configurations with the
exact report and exit code, run as an operator runs it (subprocess), the parse part as
an unprivileged user, the kernel part as root in a throwaway namespace."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxmox_fw.nft import expr as x
from proxmox_fw.nft.features import KernelFeatures
from proxmox_fw.nft.objects import Rule
from proxmox_fw.pipeline import compile_dir
from proxmox_fw.tools.check import kernel_problems

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "cli.main"]
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PVE_LOG": "warn",
       "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip

HEAD = "[OPTIONS]\nenable: 1\n\n[ALIASES]\nlocal_network 192.0.2.0/24\n"
HOST = "[OPTIONS]\nnftables: 1\n"
VMLIST = '{"version": 1, "ids": {"100": {"node": "pve1", "type": "qemu", "version": 1}}}\n'
VM_CONF = "net0: virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1\n"


def as_user(cmd: list[str]) -> list[str]:
    """Unprivileged: root drops to nobody (a real uid switch, not a faked euid)."""
    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture
def pve() -> Iterator[Path]:
    """A pve tree any user can read (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="check-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def write(pve: Path, files: dict[str, str]) -> None:
    base = {"firewall/cluster.fw": HEAD, "nodes/pve1/host.fw": HOST, ".vmlist": VMLIST,
            "nodes/pve1/qemu-server/100.conf": VM_CONF}  # fmt: skip
    for rel, text in {**base, **files}.items():
        path = pve / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for p in [path.parent, *path.parent.parents]:
            if p == pve:
                break
            p.chmod(0o755)
        path.write_text(text)
        path.chmod(0o644)


def check(pve: Path, *args: str, user: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [*CLI, "--pve-dir", str(pve), "--nodename", "pve1", "check", *args]
    return subprocess.run(as_user(cmd) if user else cmd, capture_output=True, text=True,
                          cwd=ROOT, env=ENV, check=False)


# (files, expected report lines with {d} for the pve dir, exit code)
CORPUS: dict[str, tuple[dict[str, str], list[str], int]] = {
    "clean": ({
        "firewall/cluster.fw": HEAD + "[IPSET admins]\n10.0.0.0/8\n!10.1.0.0/16\n\n"
                               "[RULES]\nIN SSH(ACCEPT) -source +admins\n"
                               "IN ACCEPT -p tcp -dport 8006\n",
    }, [], 0),
    "errors are what would be skipped": ({
        "firewall/cluster.fw": HEAD + "[RULES]\nIN BOGUS\nIN ACCEPT -p tcp -dport 99999\n"
                               "IN ACCEPT -source nosuchalias\nIN ACCEPT -source 10.0.0.1 "
                               "-dest 2001:db8::1\nIN ACCEPT -p tcp -dport 22\n",
        "nodes/pve1/host.fw": HOST + "log_level_in: loud\n",
    }, [
        "{d}/firewall/cluster.fw:7: error: unknown action 'BOGUS' (use ACCEPT, DROP, REJECT "
        "or Macro(...))",
        "{d}/firewall/cluster.fw:8: error: port 99999 out of range (0-65535)",
        "{d}/firewall/cluster.fw:9: error: rule skipped: no such alias 'nosuchalias'",
        "{d}/firewall/cluster.fw:10: error: source and destination mix IPv4 and IPv6 "
        "addresses",
        "{d}/nodes/pve1/host.fw:3: error: bad value for option 'log_level_in': 'loud' is not "
        "a log level (use one of nolog, emerg, alert, crit, err, warning, notice, info, "
        "debug)",
    ], 2),
    "unused aliases, ipsets and groups": ({
        "firewall/cluster.fw": HEAD + "spare 10.9.9.9\nused 10.8.8.8\n\n"
                               "[IPSET lonely]\n10.2.2.2\n\n[IPSET refs]\nused\n\n"
                               "[group web]\nIN ACCEPT -p tcp -dport 80\n\n"
                               "[RULES]\nIN ACCEPT -source +refs\n",
        "firewall/100.fw": "[OPTIONS]\nenable: 1\n\n[ALIASES]\nmine 10.7.7.7\n\n"
                           "[IPSET ipfilter-net0]\n10.7.7.7\n",
    }, [
        "{d}/firewall/100.fw:5: warning: alias 'mine' is not used by any rule or ipset",
        "{d}/firewall/cluster.fw:6: warning: alias 'spare' is not used by any rule or ipset",
        "{d}/firewall/cluster.fw:9: warning: ipset 'lonely' is not used by any rule",
        "{d}/firewall/cluster.fw:15: warning: security group 'web' is not used by any rule",
    ], 1),
    "shadowed rules": ({
        "firewall/cluster.fw": HEAD + "[RULES]\n"
                               "IN ACCEPT -p tcp -dport 22\n"            # 7
                               "IN ACCEPT -p tcp -dport 22 -log info\n"  # 8: duplicate
                               "IN DROP -p tcp -dport 1:1024\n"          # 9
                               "IN ACCEPT -p tcp -dport 80 -source 10.0.0.0/24\n"  # 10: shadowed
                               "IN ACCEPT -p udp -dport 80\n"            # 11: other protocol
                               "IN DROP -source 10.0.0.0/8\n"            # 12
                               "IN HTTP(ACCEPT) -source 10.1.2.0/24\n"   # 13: shadowed (by 9)
                               "OUT ACCEPT -p tcp -dport 22\n"           # 14: other chain
                               "|IN DROP -p udp\n"                       # 15: disabled
                               "IN ACCEPT -p udp -dport 53\n"            # 16: not shadowed
                               "IN ACCEPT -i eth0 -p tcp -dport 5000\n"  # 17: -i narrower
                               "IN ACCEPT -p tcp -dport 5000\n"          # 18: not shadowed
                               "IN ACCEPT -source 10.3.0.0/16 -p udp -dport 9\n",  # 19: by 12
    }, [
        "{d}/firewall/cluster.fw:8: warning: rule never matches: the rule on line 7 matches "
        "the same packets and comes first",
        "{d}/firewall/cluster.fw:10: warning: rule never matches: the rule on line 9 (DROP) "
        "matches every packet it does and comes first",
        "{d}/firewall/cluster.fw:13: warning: rule never matches: the rule on line 9 (DROP) "
        "matches every packet it does and comes first",
        "{d}/firewall/cluster.fw:19: warning: rule never matches: the rule on line 12 (DROP) "
        "matches every packet it does and comes first",
    ], 1),
    "rules that can never match": ({
        "firewall/cluster.fw": HEAD + "[IPSET empty]\n\n[IPSET only6]\n2001:db8::1\n\n"
                               "[IPSET onlynomatch]\n!10.0.0.1\n\n"
                               "[RULES]\nIN ACCEPT -source +empty\n"
                               "IN ACCEPT -p icmp -source +only6\n"
                               "IN ACCEPT -source 10.0.0.0/8 -dest +only6\n"
                               "IN ACCEPT -dest +onlynomatch\n"
                               "IN ACCEPT -source +only6\n",
    }, [
        "{d}/firewall/cluster.fw:12: warning: nomatch entry '10.0.0.1' changes nothing: no "
        "entry of ipset 'onlynomatch' contains it",
        "{d}/firewall/cluster.fw:15: warning: rule can never match: ipset '+empty' is empty",
        "{d}/firewall/cluster.fw:16: warning: rule can never match: ipset '+only6' has no "
        "IPv4 entries",
        "{d}/firewall/cluster.fw:17: warning: rule can never match: ipset '+only6' has no "
        "IPv4 entries",
        "{d}/firewall/cluster.fw:18: warning: rule can never match: ipset '+onlynomatch' is "
        "empty",
    ], 1),
    "nomatch entries": ({
        "firewall/cluster.fw": HEAD + "net 10.5.0.0/16\n\n[IPSET s]\n10.0.0.0/8\n!10.1.0.0/16\n"
                               "!192.168.5.1\n!2001:db8::/64\n!net\n!10.1.2.0/24\n10.1.3.0/24\n"
                               "!10.1.3.4\n\n[RULES]\nIN ACCEPT -source +s\n",
    }, [
        "{d}/firewall/cluster.fw:11: warning: nomatch entry '192.168.5.1' changes nothing: no "
        "entry of ipset 's' contains it",
        "{d}/firewall/cluster.fw:12: warning: nomatch entry '2001:db8::/64' changes nothing: "
        "no entry of ipset 's' contains it",
        "{d}/firewall/cluster.fw:14: warning: nomatch entry '10.1.2.0/24' changes nothing: it "
        "lies inside the nomatch entry of line 10",
    ], 1),
    "options and rules the Proxmox VE API refuses": ({
        "firewall/cluster.fw": "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\n\n[ALIASES]\n"
                               "local_network 192.0.2.0/24\n\n[RULES]\nFORWARD REJECT -p udp\n",
        "nodes/pve1/host.fw": HOST + "nf_conntrack_max: 1000\n"
                              "nf_conntrack_tcp_timeout_established: 7875\n"
                              "nf_conntrack_tcp_timeout_syn_recv: 120\n",
        "sdn/firewall/vnet0.fw": "[OPTIONS]\nenable: 1\npolicy_forward: REJECT\n",
        "sdn/.running-config": '{"zones": {"ids": {"z0": {"type": "simple"}}}, '
                               '"vnets": {"ids": {"vnet0": {"zone": "z0"}}}}',
    }, [
        "{d}/firewall/cluster.fw:3: warning: policy_in: ACCEPT lets every packet that no rule "
        "drops reach the host (admin guide §13.8.1)",
        "{d}/firewall/cluster.fw:9: warning: REJECT in a FORWARD rule rejects routed traffic "
        "here and is a DROP for bridged vnet traffic (the kernel cannot reject there); "
        "pve-firewall refuses this rule",
        "{d}/nodes/pve1/host.fw:3: warning: nf_conntrack_max: 1000 is outside what the "
        "Proxmox VE API accepts (32768 or more)",
        "{d}/nodes/pve1/host.fw:5: warning: nf_conntrack_tcp_timeout_syn_recv: 120 is "
        "outside what the Proxmox VE API accepts (30 to 60)",
        "{d}/sdn/firewall/vnet0.fw:3: warning: option 'policy_forward': REJECT is a DROP "
        "here (the kernel cannot reject bridged traffic); pve-firewall refuses it, keeping the "
        "default ACCEPT",
    ], 1),
}


@pytest.mark.parametrize("case", list(CORPUS))
def test_corpus_without_root(pve: Path, case: str) -> None:
    files, expected, code = CORPUS[case]
    write(pve, files)
    res = check(pve)
    assert res.stdout.splitlines() == [e.format(d=pve) for e in expected], res.stderr
    assert res.returncode == code
    if os.geteuid() == 0:  # really ran unprivileged: the kernel part was left out
        assert "not checked with the kernel (needs root)" in res.stderr


def test_json_lists_the_problems(pve: Path) -> None:
    files, _, _ = CORPUS["shadowed rules"]
    write(pve, files)
    res = check(pve, "--json")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["kernel_checked"] is False
    assert doc["problems"][0] == {
        "file": "firewall/cluster.fw", "line": 8, "severity": "warning",
        "message": "rule never matches: the rule on line 7 matches the same packets and "
                   "comes first"}  # fmt: skip
    assert [p["line"] for p in doc["problems"]] == [8, 10, 13, 19]


@pytest.mark.netns
def test_as_root_the_kernel_checks_the_ruleset_too(pve: Path) -> None:
    files, _, _ = CORPUS["clean"]
    write(pve, files)
    res = check(pve, "--json", user=False)
    assert res.returncode == 0, res.stdout
    assert json.loads(res.stdout) == {"problems": [], "kernel_checked": True}


@pytest.mark.netns
def test_kernel_refusal_is_reported_at_the_rule_origin(pve: Path) -> None:
    """A rule the kernel refuses (a jump to a chain that does not exist) is found in the
    batch and reported at the config line its comment names; the rest is fine."""
    files, _, _ = CORPUS["clean"]
    write(pve, files)
    rs = compile_dir(pve, "pve1", local_net=ipaddress.ip_interface("192.0.2.0/24")).ruleset
    rs.host.chains["host-in"].rules.append(Rule([x.jump("no-such-chain")],
                                                "firewall/cluster.fw:9"))
    assert [str(d) for d in kernel_problems(rs)] == [
        "firewall/cluster.fw:9: error: the kernel refuses this rule: Could not process rule: "
        "No such file or directory"]


@pytest.mark.netns
def test_kernel_without_bridge_features_is_named(pve: Path) -> None:
    write(pve, {"firewall/100.fw": "[OPTIONS]\nenable: 1\n"})
    rs = compile_dir(pve, "pve1", local_net=ipaddress.ip_interface("192.0.2.0/24")).ruleset
    found = [str(d) for d in kernel_problems(rs, KernelFeatures(bridge_meta=False))]
    assert found == [
        "kernel: warning: the guest table cannot be loaded on this kernel, which lacks "
        'CONFIG_NFT_BRIDGE_META (bridge "meta ibrname/obrname"); apply loads the host '
        "table alone and exits 3"]
