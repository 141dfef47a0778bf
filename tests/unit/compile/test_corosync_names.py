"""Corosync links written as host names are looked up (in /etc/hosts), never dropped."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from proxmox_fw.pipeline import compile_dir
from proxmox_fw.system.localnet import resolve_hostname

COROSYNC = """nodelist {
  node {
    name: pve1
    ring0_addr: pve1
  }
  node {
    name: pve2
    ring0_addr: pve2.example.com
  }
  node {
    name: pve3
    ring0_addr: 10.0.0.3
  }
}
"""


def _tree(root: Path) -> Path:
    (root / "firewall").mkdir(parents=True)
    (root / "firewall" / "cluster.fw").write_text("[OPTIONS]\nenable: 1\n")
    (root / "corosync.conf").write_text(COROSYNC)
    return root


def test_names_resolve_through_the_hosts_file(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.1 pve1\n10.0.0.2 pve2.example.com pve2\n")
    res = compile_dir(_tree(tmp_path / "pve"), "pve1", honor_nftables_switch=False,
                      resolver=lambda name: resolve_hostname(name, str(hosts)))
    assert sorted(res.ruleset.host.sets["v4-cluster-network"].elements,
                  key=lambda a: ipaddress.ip_address(str(a))) == [
        "10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert not [d for d in res.diagnostics if d.file == "corosync.conf"]


def test_unresolvable_name_is_a_warning(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.1 pve1\n")
    res = compile_dir(_tree(tmp_path / "pve"), "pve1", honor_nftables_switch=False,
                      resolver=lambda name: resolve_hostname(name, str(hosts)))
    assert res.ruleset.host.sets["v4-cluster-network"].elements == ["10.0.0.1", "10.0.0.3"]
    warned = [d for d in res.diagnostics if d.file == "corosync.conf"]
    assert [(d.severity, "pve2.example.com" in d.message) for d in warned] == [
        ("warning", True)]
