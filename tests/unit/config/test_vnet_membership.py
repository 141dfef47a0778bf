"""A vnet firewall file applies only to a vnet the SDN configuration defines (issue 10,
item 5): ``sdn/firewall/vmbr0.fw`` with ``policy_forward: DROP`` must not turn the
uplink into a firewalled "vnet" and cut the node off.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.config.loader import load_config
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.nft.apply import apply_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.pipeline import compile_dir

SDN = json.dumps({"zones": {"ids": {"z1": {"type": "simple"}}},
                  "vnets": {"ids": {"vnet1": {"zone": "z1"}}}})
DROP_ALL = "[OPTIONS]\nenable: 1\npolicy_forward: DROP\n"
NOT_VNETS = ["vmbr0", "eno1", "bond0", "vmbr0.100", "VNET1", "vnet10", "vnet", "lo"]


def tree(root: Path, vnet_files: list[str], sdn: str | None = SDN) -> Path:
    files = {"firewall/cluster.fw": "[OPTIONS]\nenable: 1\n",
             "nodes/pve1/host.fw": "[OPTIONS]\nnftables: 1\n",
             **{f"sdn/firewall/{name}.fw": DROP_ALL for name in vnet_files}}
    if sdn is not None:
        files["sdn/.running-config"] = sdn
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def load(root: Path) -> tuple[Any, Diagnostics]:
    diags = Diagnostics()
    return load_config(DirectorySource(root), "pve1", diags), diags


@pytest.mark.parametrize("name", NOT_VNETS)
def test_a_file_for_another_bridge_is_ignored_with_a_warning(name: str, tmp_path: Path) -> None:
    cfg, diags = load(tree(tmp_path, [name, "vnet1"]))
    assert list(cfg.vnets) == ["vnet1"]
    (warning,) = [d for d in diags if d.file.startswith("sdn/")]
    assert warning.file == f"sdn/firewall/{name}.fw" and "not a vnet" in warning.message
    assert cfg.unreadable == []


def test_without_sdn_no_file_applies(tmp_path: Path) -> None:
    cfg, diags = load(tree(tmp_path, ["vnet1", "vmbr0"], sdn=None))
    assert cfg.vnets == {}
    assert sorted(d.file for d in diags if d.severity is Severity.WARNING
                  and "not a vnet" in d.message) == ["sdn/firewall/vmbr0.fw",
                                                      "sdn/firewall/vnet1.fw"]


def test_an_unusable_sdn_file_keeps_every_vnet_file(tmp_path: Path) -> None:
    """Which vnets exist is unknown: the stricter choice keeps the files, and the SDN file
    counts as unreadable (apply keeps the previous ruleset, the daemon the last good)."""
    cfg, _ = load(tree(tmp_path, ["vnet1", "vmbr0"], sdn='{"zones": {"ids": {'))
    assert sorted(cfg.vnets) == ["vmbr0", "vnet1"]
    assert cfg.unreadable == ["sdn/.running-config"]


@pytest.mark.netns
def test_the_uplink_file_leaves_no_trace_in_the_kernel(tmp_path: Path) -> None:
    root = tree(tmp_path, ["vmbr0", "vnet1"])
    result = compile_dir(root, "pve1")
    features = probe_features()
    worker = NetnsWorker()
    try:
        applied = worker.call(lambda: apply_ruleset(result.ruleset, NftClient(), features))
        assert applied.ok, applied.error
        listing = worker.call(lambda: NftClient().list_table_json("inet", "proxmox-firewall"))
    finally:
        worker.close()
    assert listing.ok
    text = json.dumps(listing.output)
    assert "vmbr0" not in text
    assert "bridge-vnet1" in text  # the real vnet's chain is there
