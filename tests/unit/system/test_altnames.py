"""Altnames of host interfaces map to kernel names, read from a real namespace."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import subprocess, json
subprocess.run(["ip", "link", "add", "vethA", "type", "veth", "peer", "name", "vethB"], check=True)
subprocess.run(["ip", "link", "property", "add", "dev", "vethA", "altname", "uplink-long"],
               check=True)
from proxmox_fw.system.altnames import interface_altnames
print(json.dumps(interface_altnames()))
"""


@pytest.mark.netns
def test_altnames_from_netlink() -> None:
    out = subprocess.run(["unshare", "--net", sys.executable, "-c", SCRIPT], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == '{"uplink-long": "vethA"}'


def test_host_rule_with_altname_matches_kernel_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from proxmox_fw.pipeline import compile_dir

    (tmp_path / "firewall").mkdir()
    (tmp_path / "firewall" / "cluster.fw").write_text(
        "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -i uplink-long -p tcp -dport 22\n")
    res = compile_dir(tmp_path, "pve1", honor_nftables_switch=False,
                      altnames={"uplink-long": "vethA"})
    first = res.ruleset.host.chains["cluster-in"].rules[0].expr[0]
    assert first == {"match": {"op": "==", "left": {"meta": {"key": "iifname"}},
                               "right": "vethA"}}
