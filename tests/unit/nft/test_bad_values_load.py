"""Each bad value of issue 10 (item 2a) costs only itself: the configuration still
compiles, and the ruleset loads into a real kernel (a throwaway namespace) with the rest
of the configuration in it. Before the checks, each one made libnftables refuse the whole
ruleset or raised a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.apply import apply_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.pipeline import compile_dir
from tests.unit.nft.nft_testlib import list_host, objects_of

pytestmark = pytest.mark.netns

HUGE = "9" * 5000
CLUSTER = """\
[OPTIONS]
enable: 1

[IPSET keep] {comment}
198.51.100.0/24

[RULES]
IN ACCEPT -p tcp -dport 2222 -source +keep
IN ACCEPT -p tcp -dport {port}
"""
BASE: dict[str, Any] = {
    "firewall/cluster.fw": CLUSTER.format(comment="# fine", port="22"),
    "nodes/pve1/host.fw": "[OPTIONS]\nnftables: 1\n",
    ".vmlist": json.dumps({"ids": {"100": {"node": "pve1", "type": "qemu"},
                                   "101": {"node": "pve1", "type": "lxc"}}}),
    "firewall/100.fw": "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 80\n",
    "firewall/101.fw": "[OPTIONS]\nenable: 1\n",
    "nodes/pve1/qemu-server/100.conf":
        "net0: virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1,tag=5\n",
    "nodes/pve1/lxc/101.conf":
        "net0: name=eth0,hwaddr=BC:24:11:00:02:00,bridge=vmbr0,firewall=1,ip=10.0.0.101/24\n",
    "corosync.conf": "nodelist {\n node {\n  name: pve1\n  nodeid: 1\n  ring0_addr: 10.0.0.1\n"
                     " }\n}\n",
    "sdn/.running-config": json.dumps({
        "zones": {"ids": {"z1": {"type": "vlan"}}},
        "vnets": {"ids": {"vnet1": {"zone": "z1", "tag": 7}}},
        "subnets": {"ids": {"z1-10.9.0.0-24": {"vnet": "vnet1"}}}}),
    "sdn/pve-ipam-state.json": json.dumps({"zones": {"z1": {"subnets": {"10.9.0.0/24": {
        "ips": {"10.9.0.50": {"vmid": "100"}}}}}}}),
    "sdn/firewall/vnet1.fw": "[OPTIONS]\nenable: 1\n[RULES]\nFORWARD ACCEPT -p tcp -dport 443\n",
}


def _ipam(vmid: Any) -> str:
    return json.dumps({"zones": {"z1": {"subnets": {"10.9.0.0/24": {"ips": {
        "10.9.0.50": {"vmid": "100"}, "10.9.0.51": {"vmid": vmid}}}}}}})


def _sdn_tag(tag: Any) -> str:
    doc = json.loads(BASE["sdn/.running-config"])
    doc["vnets"]["ids"]["vnet1"]["tag"] = tag
    return json.dumps(doc)


# name -> files replaced or added (bytes keys: file names that are not UTF-8)
BAD: dict[str, dict[Any, str]] = {
    "ipset-comment-nul": {"firewall/cluster.fw": CLUSTER.format(comment="# a\0b", port="22")},
    "ipset-comment-escape": {"firewall/cluster.fw": CLUSTER.format(comment="# \x1b[31m",
                                                                   port="22")},
    "ipset-comment-300-bytes": {"firewall/cluster.fw": CLUSTER.format(comment="# " + "é" * 150,
                                                                      port="22")},
    "rule-port-5000-digits": {"firewall/cluster.fw": CLUSTER.format(comment="", port=HUGE)},
    "rule-port-unicode": {"firewall/cluster.fw": CLUSTER.format(comment="", port="²²")},
    "vnet-name-16-bytes": {"sdn/firewall/éééééééé.fw": "[OPTIONS]\nenable: 1\n"
                           "policy_forward: DROP\n"},
    "vnet-name-not-utf8": {b"sdn/firewall/v\xffnet.fw": "[OPTIONS]\nenable: 1\n"},
    "ipam-vmid-300-digits": {"sdn/pve-ipam-state.json": _ipam("9" * 300)},
    "ipam-vmid-huge-number": {"sdn/pve-ipam-state.json": _ipam(10**300)},
    "ipam-vmid-unicode": {"sdn/pve-ipam-state.json": _ipam("²")},
    "nic-tag-unicode": {"nodes/pve1/qemu-server/100.conf":
                        "net0: virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1,tag=²\n"},
    "nic-bridge-16-bytes": {"nodes/pve1/qemu-server/100.conf":
                            "net0: virtio=BC:24:11:00:01:00,bridge=éééééééé,firewall=1\n"},
    "sdn-tag-unicode": {"sdn/.running-config": _sdn_tag("²")},
    "sdn-tag-huge": {"sdn/.running-config": _sdn_tag(10**300)},
    "corosync-nodeid-unicode": {"corosync.conf": BASE["corosync.conf"].replace("1\n", "²\n", 1)},
    "corosync-link-5000-digits": {"corosync.conf": BASE["corosync.conf"].replace(
        "ring0_addr", f"ring{HUGE}_addr: 10.0.0.9\n  ring0_addr")},
    "vmlist-5000-digit-number": {".vmlist": BASE[".vmlist"].replace('"lxc"}',
                                                                    f'"lxc", "version": {HUGE}}}')},
    "option-5000-digits": {"nodes/pve1/host.fw": f"[OPTIONS]\nnftables: 1\n"
                           f"protection_synflood_rate: {HUGE}\nnf_conntrack_max: {HUGE}\n"},
    "largest-vmid": {".vmlist": json.dumps({"ids": {
        "999999999": {"node": "pve1", "type": "lxc"}, "100": {"node": "pve1", "type": "qemu"}}}),
        "firewall/999999999.fw": "[OPTIONS]\nenable: 1\n",
        "nodes/pve1/lxc/999999999.conf": "net31: name=eth0,hwaddr=BC:24:11:00:02:01,"
                                         "bridge=vmbr0,firewall=1,ip=10.0.0.9/24\n"},
}


def write(root: Path, files: dict[Any, str]) -> None:
    for rel, text in files.items():
        path = bytes(root) + b"/" + (rel if isinstance(rel, bytes) else rel.encode())
        Path(path.decode("utf-8", "surrogateescape")).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(text.encode())


def load(worker: NetnsWorker, root: Path) -> tuple[Any, list[dict[str, Any]]]:
    result = compile_dir(root, "pve1")
    features = probe_features()
    applied = worker.call(lambda: apply_ruleset(result.ruleset, NftClient(), features))
    assert applied.ok, applied.error
    return result, worker.call(lambda: list_host(NftClient()))


def _rule_comments(items: list[dict[str, Any]]) -> set[str]:
    return {i["rule"].get("comment", "") for i in items if "rule" in i}


def test_the_base_tree_loads(worker: NetnsWorker, tmp_path: Path) -> None:
    write(tmp_path, BASE)
    result, items = load(worker, tmp_path)
    assert not [d for d in result.diagnostics if d.severity == "error"]
    assert "v4-dc/keep" in objects_of(items, "set")
    assert {"firewall/cluster.fw:8", "firewall/cluster.fw:9"} <= _rule_comments(items)


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_costs_only_itself(name: str, worker: NetnsWorker, tmp_path: Path) -> None:
    write(tmp_path, {**BASE, **BAD[name]})
    result, items = load(worker, tmp_path)
    # the rest of the configuration is in the kernel
    assert "v4-dc/keep" in objects_of(items, "set")
    assert "firewall/cluster.fw:8" in _rule_comments(items)
    # and the bad piece was reported with its file
    bad_files = {(k if isinstance(k, str) else k.decode("utf-8", "replace")) for k in BAD[name]}
    reported = {d.file for d in result.diagnostics}
    assert name == "largest-vmid" or any(
        f.replace("\ufffd", "\\udcff") in reported for f in bad_files), \
        [str(d) for d in result.diagnostics]


def test_all_bad_values_at_once(worker: NetnsWorker, tmp_path: Path) -> None:
    files: dict[Any, str] = dict(BASE)
    for name in sorted(BAD):
        if name.startswith(("ipam", "sdn-tag", "ipset", "rule")):
            continue  # one file each: the same file cannot be bad in every way at once
        files.update(BAD[name])
    files.update(BAD["ipam-vmid-300-digits"])
    files.update(BAD["sdn-tag-unicode"])
    files.update(BAD["ipset-comment-nul"])
    write(tmp_path, files)
    _, items = load(worker, tmp_path)
    assert "v4-dc/keep" in objects_of(items, "set")
