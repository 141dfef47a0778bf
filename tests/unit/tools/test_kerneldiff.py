"""``proxmox-firewall diff`` against a real kernel: a namespace where the product applied
a configuration, then the configuration edited."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.tools.kerneldiff import compare
from proxmox_fw.tools.listing import ListedObject, ListedRule, ListedTable, element_text

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "cli.main"]
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PVE_LOG": "error"}

CLUSTER = """\
[OPTIONS]
enable: 1

[ALIASES]
local_network 192.0.2.0/24

[IPSET admins]
10.0.0.0/8

[RULES]
IN SSH(ACCEPT) -source +admins
IN ACCEPT -p tcp -dport 443
IN ACCEPT -p udp -dport 53
"""


@pytest.fixture
def worker() -> Iterator[NetnsWorker]:
    with NetnsWorker() as w:
        yield w


def pve_tree(tmp_path: Path, cluster: str = CLUSTER) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "firewall").mkdir(exist_ok=True)
    (tmp_path / "nodes" / "pve1").mkdir(parents=True, exist_ok=True)
    (tmp_path / "firewall" / "cluster.fw").write_text(cluster)
    (tmp_path / "nodes" / "pve1" / "host.fw").write_text("[OPTIONS]\nnftables: 1\n")
    (tmp_path / ".vmlist").write_text('{"version": 1, "ids": {}}\n')
    return tmp_path


def cli(worker: NetnsWorker, pve: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command run inside the worker's namespace (a child inherits it)."""
    cmd = [*CLI, "--pve-dir", str(pve), "--nodename", "pve1", *args]
    return worker.call(lambda: subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                              env=ENV, check=False))  # fmt: skip


def diff_json(worker: NetnsWorker, pve: Path) -> tuple[int, Any]:
    res = cli(worker, pve, "diff", "--json")
    assert res.returncode in (0, 1), res.stderr
    return res.returncode, json.loads(res.stdout)


@pytest.mark.netns
def test_nothing_after_apply_and_one_chain_after_a_one_rule_edit(
    worker: NetnsWorker, tmp_path: Path
) -> None:
    pve = pve_tree(tmp_path)
    code, doc = diff_json(worker, pve)
    assert code == 1
    assert [(c["kind"], c["name"], c["change"]) for c in doc["changes"]] == [
        ("table", "proxmox-firewall", "added")]
    assert cli(worker, pve, "apply", "--no-side-effects").returncode == 0

    code, doc = diff_json(worker, pve)
    assert (code, doc["changes"]) == (0, [])

    (pve / "firewall" / "cluster.fw").write_text(CLUSTER.replace("-dport 443", "-dport 8443"))
    res = cli(worker, pve, "diff")
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        "chain inet proxmox-firewall cluster-in: 1 rule added, 1 removed",
        f"  - {pve}/firewall/cluster.fw:12: tcp dport 443 accept",
        f"  + {pve}/firewall/cluster.fw:12: tcp dport 8443 accept",
    ]
    code, doc = diff_json(worker, pve)
    assert code == 1
    assert doc["changes"] == [{
        "kind": "chain", "table": "inet proxmox-firewall", "name": "cluster-in",
        "change": "changed", "declaration": False,
        "rules_added": [{"origin": "firewall/cluster.fw:12", "rule": "tcp dport 8443 accept"}],
        "rules_removed": [{"origin": "firewall/cluster.fw:12", "rule": "tcp dport 443 accept"}],
        "elements_added": [], "elements_removed": []}]  # fmt: skip


@pytest.mark.netns
def test_set_elements_and_new_chains_are_named(worker: NetnsWorker, tmp_path: Path) -> None:
    pve = pve_tree(tmp_path)
    assert cli(worker, pve, "apply", "--no-side-effects").returncode == 0
    edited = CLUSTER.replace("10.0.0.0/8\n", "10.0.0.0/8\n172.16.0.0/12\n") + (
        "\n[group web]\nIN ACCEPT -p tcp -dport 80\n")
    (pve / "firewall" / "cluster.fw").write_text(edited)
    res = cli(worker, pve, "diff")
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[:2] == ["set inet proxmox-firewall v4-dc/admins: 1 element added, 0 removed",
                         "  + 172.16.0.0/12"]  # fmt: skip
    assert "chain inet proxmox-firewall group-web-in: added" in lines
    assert f"  + {pve}/firewall/cluster.fw:17: tcp dport 80 accept" in lines


@pytest.mark.netns
def test_hand_edit_in_the_kernel_shows(worker: NetnsWorker, tmp_path: Path) -> None:
    """A rule someone added by hand is what an apply would remove."""
    pve = pve_tree(tmp_path)
    assert cli(worker, pve, "apply", "--no-side-effects").returncode == 0
    worker.call(lambda: subprocess.run(
        ["nft", "add rule inet proxmox-firewall host-in tcp dport 9999 accept"], check=True))
    res = cli(worker, pve, "diff")
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        "chain inet proxmox-firewall host-in: 0 rules added, 1 removed",
        "  - -: tcp dport 9999 accept"]


def test_compare_sets_and_tables() -> None:
    rule = ListedRule("firewall/cluster.fw:3", "tcp dport 22 accept", "r1")
    old = ListedTable("inet", "t", {("set", "s"): ListedObject("set", "s", "d", [],
                                                               {"a": "10.0.0.1", "b": "10.0.0.2"}),
                                    ("chain", "c"): ListedObject("chain", "c", "d", [rule])})
    new = ListedTable("inet", "t", {("set", "s"): ListedObject("set", "s", "d", [],
                                                               {"b": "10.0.0.2", "c": "10.0.0.3"}),
                                    ("chain", "c"): ListedObject("chain", "c", "d2", [rule])})
    changes = compare({"inet t": old}, {"inet t": new})
    assert [(c.kind, c.name, c.change, c.declaration, c.elements_added, c.elements_removed)
            for c in changes] == [
        ("set", "s", "changed", False, ["10.0.0.3"], ["10.0.0.1"]),
        ("chain", "c", "changed", True, [], []),
    ]  # fmt: skip
    gone = compare({"inet t": old}, {})
    assert [(c.kind, c.change, c.objects) for c in gone] == [("table", "removed", 2)]


def test_element_text() -> None:
    assert element_text({"prefix": {"addr": "10.0.0.0", "len": 8}}) == "10.0.0.0/8"
    assert element_text({"range": ["10.0.0.1", "10.0.0.9"]}) == "10.0.0.1-10.0.0.9"
    assert element_text([{"concat": ["vmbr0", "vmbr0"]}, {"jump": {"target": "bridge-x"}}]) == (
        "vmbr0 . vmbr0 : jump bridge-x")


@pytest.mark.netns
def test_nothing_after_the_daemons_incremental_updates(tmp_path: Path) -> None:
    """The daemon changes only what changed (flushed chains, elements one by one); the
    kernel then holds exactly what a fresh apply would load."""
    from tests.harness.netns import create_namespaces, delete_namespace, unique_prefix
    from tests.unit.service.daemonlib import CLI as DAEMON_CLI
    from tests.unit.service.daemonlib import DaemonProcess, age_tree, edit

    pve = pve_tree(tmp_path / "pve")
    age_tree(pve)
    (ns,) = create_namespaces([f"{unique_prefix()}d"])
    daemon: DaemonProcess | None = None

    def diff() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns.name, str(DAEMON_CLI), "--pve-dir",
                               str(pve), "--nodename", "pve1", "diff"], capture_output=True,
                              text=True, env=ENV, check=False)  # fmt: skip

    try:
        work = tmp_path / "daemon"
        work.mkdir()
        daemon = DaemonProcess(ns, pve, work)
        daemon.wait_applied(1)
        assert diff().returncode == 0
        edit(pve / "firewall" / "cluster.fw", CLUSTER.replace("-dport 443", "-dport 8443")
             .replace("10.0.0.0/8\n", "10.0.0.0/8\n172.16.0.0/12\n"))  # fmt: skip
        daemon.wait_applied(2)
        res = diff()
        assert (res.returncode, res.stdout) == (0, "no difference: the kernel holds what the "
                                                   "configuration compiles to\n"), res.stdout
    finally:
        if daemon is not None:
            daemon.stop()
        delete_namespace(ns)
