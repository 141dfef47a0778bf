"""load_config: which files are read, what a missing or broken one means, real trees."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from proxmox_fw.config.loader import load_config, watched_paths
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import PveConfig
from tests.unit.helpers import CONFORMANCE, errors, only

VMLIST = {
    "version": 5,
    "ids": {
        "100": {"node": "pve1", "type": "qemu", "version": 1},
        "101": {"node": "pve1", "type": "qemu", "version": 2},
        "200": {"node": "pve1", "type": "lxc", "version": 3},
        "300": {"node": "pve2", "type": "qemu", "version": 4},
    },
}

TREE: dict[str, str] = {
    "firewall/cluster.fw": "[OPTIONS]\nenable: 1\n\n[ALIASES]\nlocal_network 10.0.0.0/24\n",
    "nodes/pve1/host.fw": "[OPTIONS]\nnftables: 1\n",
    "corosync.conf": "nodelist {\n  node {\n    name: pve1\n    ring0_addr: 10.0.0.1\n  }\n}\n",
    ".vmlist": json.dumps(VMLIST),
    "firewall/100.fw": "[OPTIONS]\nenable: 1\n",
    "firewall/300.fw": "[OPTIONS]\nenable: 1\n",
    "nodes/pve1/qemu-server/100.conf": "net0: virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1\n",
    "nodes/pve1/qemu-server/101.conf": "net0: virtio=BC:24:11:00:01:01,bridge=vmbr0\n",
    "nodes/pve1/lxc/200.conf": "net0: name=eth0,hwaddr=BC:24:11:00:02:00,ip=10.0.0.200/24\n",
    "nodes/pve2/qemu-server/300.conf": "net0: virtio=BC:24:11:00:03:00,bridge=vmbr0\n",
    "sdn/.running-config": json.dumps({
        "zones": {"ids": {"z1": {"type": "simple"}}},
        "vnets": {"ids": {"vnet1": {"zone": "z1"}}},
        "subnets": {"ids": {"z1-10.9.0.0-24": {"vnet": "vnet1", "gateway": "10.9.0.1"}}},
    }),
    "sdn/pve-ipam-state.json": json.dumps({"zones": {"z1": {"subnets": {"10.9.0.0/24": {
        "ips": {"10.9.0.50": {"vmid": "100", "mac": "BC:24:11:00:01:00"}}}}}}}),
    "priv/ipam.db": json.dumps({"zones": {"z1": {"subnets": {"10.9.0.0/24": {
        "ips": {"10.9.0.99": {"vmid": "999", "mac": "BC:24:11:00:09:09"}}}}}}}),
    "sdn/firewall/vnet1.fw": "[OPTIONS]\nenable: 1\n",
    "sdn/firewall/README": "not a firewall file\n",
}


def write_tree(root: Path, files: dict[str, str]) -> DirectorySource:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return DirectorySource(root)


def load(root: Path, files: dict[str, str], node: str = "pve1") -> tuple[PveConfig, Diagnostics]:
    diags = Diagnostics()
    return load_config(write_tree(root, files), node, diags), diags


def test_full_tree(tmp_path: Path) -> None:
    cfg, diags = load(tmp_path, TREE)
    assert not diags.items, [str(d) for d in diags]
    assert cfg.nodename == "pve1"
    assert cfg.cluster.present and cfg.cluster.options.enable
    assert "local_network" in cfg.cluster.aliases
    assert cfg.host.present and cfg.host.options.nftables
    assert cfg.corosync.present and cfg.corosync.nodes[0].links == {0: "10.0.0.1"}
    # guests of this node only; 300 lives on pve2
    assert sorted(cfg.guests) == [100, 101, 200]
    g100, g101, g200 = cfg.guests[100], cfg.guests[101], cfg.guests[200]
    assert (g100.kind, g100.fw.present, g100.fw.options.enable) == ("qemu", True, True)
    assert g100.nics[0].mac == "BC:24:11:00:01:00" and g100.nics[0].firewall
    assert g100.nics[0].origin.file == "nodes/pve1/qemu-server/100.conf"
    # no .fw: kept, firewall disabled by default
    assert (g101.fw.present, g101.fw.options.enable, list(g101.nics)) == (False, False, [0])
    assert g200.kind == "lxc" and g200.nics[0].ip == ipaddress.ip_interface("10.0.0.200/24")
    assert [str(s.cidr) for s in cfg.sdn.vnets["vnet1"].subnets] == ["10.9.0.0/24"]
    # the current IPAM file wins over the legacy one
    assert cfg.ipam.guest_ips == {100: [ipaddress.ip_address("10.9.0.50")]}
    assert list(cfg.vnets) == ["vnet1"] and cfg.vnets["vnet1"].options.enable


def test_empty_directory_means_defaults(tmp_path: Path) -> None:
    cfg, diags = load(tmp_path, {})
    d = only(diags)
    assert (d.file, d.severity) == (".vmlist", Severity.WARNING)
    assert cfg == PveConfig(nodename="pve1")
    assert not cfg.cluster.present and not cfg.cluster.options.enable
    assert not cfg.host.present and cfg.host.options.enable and not cfg.host.options.nftables
    assert not cfg.corosync.present and not cfg.sdn.present and not cfg.ipam.present


def test_host_fw_falls_back_to_local(tmp_path: Path) -> None:
    files = {k: v for k, v in TREE.items() if k != "nodes/pve1/host.fw"}
    files["local/host.fw"] = "[OPTIONS]\nnftables: 1\ntcpflags: 1\n"
    cfg, diags = load(tmp_path, files)
    assert not diags.items
    assert cfg.host.present and cfg.host.options.tcpflags
    assert cfg.host.file == "local/host.fw"


def test_node_host_fw_preferred_over_local(tmp_path: Path) -> None:
    files = {**TREE, "local/host.fw": "[OPTIONS]\ntcpflags: 1\n"}
    cfg, _ = load(tmp_path, files)
    assert cfg.host.options.nftables and not cfg.host.options.tcpflags
    assert cfg.host.file == "nodes/pve1/host.fw"


def test_each_fw_file_knows_where_it_was_read(tmp_path: Path) -> None:
    """Rules made from options cite the file they came from, so it is in the model."""
    files = {k: v for k, v in TREE.items() if k != "nodes/pve1/host.fw"}
    cfg, _ = load(tmp_path, files)
    assert (cfg.cluster.file, cfg.host.file) == ("firewall/cluster.fw", "local/host.fw")
    assert not cfg.host.present  # missing: the node's own directory, by its other name
    assert [cfg.guests[v].fw.file for v in (100, 101)] == ["firewall/100.fw", "firewall/101.fw"]
    assert cfg.vnets["vnet1"].file == "sdn/firewall/vnet1.fw"


def test_legacy_ipam_used_when_current_missing(tmp_path: Path) -> None:
    files = {k: v for k, v in TREE.items() if k != "sdn/pve-ipam-state.json"}
    cfg, diags = load(tmp_path, files)
    assert not diags.items
    assert cfg.ipam.present and list(cfg.ipam.guest_ips) == [999]


def test_guest_fw_without_conf(tmp_path: Path) -> None:
    files = {k: v for k, v in TREE.items() if k != "nodes/pve1/qemu-server/100.conf"}
    cfg, diags = load(tmp_path, files)
    d = only(diags)
    assert (d.file, d.severity) == ("firewall/100.fw", Severity.WARNING)
    assert "qemu-server/100.conf" in d.message
    assert cfg.guests[100].fw.present and cfg.guests[100].nics == {}


def test_other_node_sees_its_own_guests(tmp_path: Path) -> None:
    cfg, diags = load(tmp_path, TREE, node="pve2")
    assert not diags.items
    assert list(cfg.guests) == [300]
    assert cfg.guests[300].fw.present and cfg.guests[300].nics[0].mac == "BC:24:11:00:03:00"
    assert not cfg.host.present  # nodes/pve2/host.fw does not exist


def test_garbage_inputs_cost_only_themselves(tmp_path: Path) -> None:
    files = {
        **TREE,
        ".vmlist": "{\"ids\": {",
        "sdn/.running-config": "[]",
        "sdn/pve-ipam-state.json": "{\"zones\": 5}",
        "corosync.conf": "nodelist {\n  what is this\n",
    }
    cfg, diags = load(tmp_path, files)
    assert sorted((d.file, d.line) for d in diags if d.severity == Severity.ERROR) == [
        (".vmlist", 1), ("corosync.conf", 1), ("corosync.conf", 2),
        ("sdn/.running-config", None), ("sdn/pve-ipam-state.json", None),
    ]
    assert cfg.guests == {} and not cfg.sdn.present
    assert cfg.ipam.present and cfg.ipam.guest_ips == {}  # the legacy file is not consulted
    assert cfg.corosync.present and cfg.corosync.nodes == []
    # everything else still loaded
    assert cfg.cluster.options.enable and cfg.host.options.nftables and "vnet1" in cfg.vnets


def test_bad_nic_line_names_file_and_line(tmp_path: Path) -> None:
    files = {**TREE, "nodes/pve1/qemu-server/100.conf":
             "net0: virtio=BC:24:11:00:01:00\nnet1: virtio=nonsense\n"}
    cfg, diags = load(tmp_path, files)
    d = only(diags)
    assert (d.file, d.line, d.severity) == ("nodes/pve1/qemu-server/100.conf", 2, Severity.ERROR)
    assert [n.unparsed for n in cfg.guests[100].nics.values()] == [False, True]


def test_unreadable_cluster_fw(tmp_path: Path) -> None:
    files = {k: v for k, v in TREE.items() if k != "firewall/cluster.fw"}
    (tmp_path / "firewall" / "cluster.fw").mkdir(parents=True)
    cfg, diags = load(tmp_path, files)
    d = only(diags)
    assert (d.file, d.severity) == ("firewall/cluster.fw", Severity.ERROR)
    assert not cfg.cluster.present and sorted(cfg.guests) == [100, 101, 200]


def test_vnet_files(tmp_path: Path) -> None:
    sdn = json.loads(TREE["sdn/.running-config"])
    sdn["vnets"]["ids"]["vnet2"] = {"zone": "z1"}
    files = {
        **TREE,
        "sdn/.running-config": json.dumps(sdn),
        "sdn/firewall/averyveryverylongname.fw": "[OPTIONS]\nenable: 1\n",
        "sdn/firewall/exactly15chars0.fw": "[OPTIONS]\nenable: 1\n",
        "sdn/firewall/vnet2.fw": "",
    }
    cfg, diags = load(tmp_path, files)
    d = only(diags, Severity.ERROR)
    assert d.file == "sdn/firewall/averyveryverylongname.fw"
    d = only(diags, Severity.WARNING)  # a valid bridge name, but no vnet of the SDN config
    assert d.file == "sdn/firewall/exactly15chars0.fw" and "not a vnet" in d.message
    assert sorted(cfg.vnets) == ["vnet1", "vnet2"]
    assert cfg.vnets["vnet2"].name == "vnet2" and not cfg.vnets["vnet2"].options.enable


def test_watched_paths_track_every_input(tmp_path: Path) -> None:
    src = write_tree(tmp_path, TREE)
    cfg = load_config(src, "pve1", Diagnostics())
    paths = watched_paths(cfg)
    for rel in TREE:
        if rel.startswith("nodes/pve2/") or rel in ("firewall/300.fw", "sdn/firewall/README"):
            assert rel not in paths
        else:
            assert rel in paths, rel
    assert {"firewall/101.fw", "local/host.fw", "sdn/firewall"} <= set(paths)  # missing ones
    before = src.fingerprint(paths)
    conf = tmp_path / "nodes/pve1/lxc/200.conf"
    conf.write_text(conf.read_text() + "net1: name=eth1,hwaddr=BC:24:11:00:02:01\n")
    assert src.fingerprint(paths) != before
    before = src.fingerprint(paths)
    (tmp_path / "firewall/101.fw").write_text("[OPTIONS]\nenable: 1\n")
    assert src.fingerprint(paths) != before


# --- conformance trees ------------------------------------------------------------------

def conformance_tree(name: str) -> Path:
    path = CONFORMANCE / name / "pve"
    if not path.is_dir():
        pytest.skip("conformance data not available")
    return path


def test_upstream_integration_tree() -> None:
    diags = Diagnostics()
    cfg = load_config(DirectorySource(conformance_tree("upstream-integration")), "pve1", diags)
    # the Rust upstream's own test input has a range inside an address list
    assert [str(d) for d in diags] == [
        "firewall/100.fw:20: warning: -source: an address range inside a list is used as "
        "written here; pve-firewall refuses this rule"]
    assert cfg.cluster.present and cfg.cluster.options.enable
    assert cfg.host.present and cfg.host.options.nftables
    assert not cfg.corosync.present

    ct, vm = cfg.guests[100], cfg.guests[101]
    assert (ct.kind, vm.kind) == ("lxc", "qemu")
    assert ct.fw.present and vm.fw.present
    assert sorted(ct.nics) == [1, 2, 3] and vm.nics == {}
    assert ct.nics[3].ip == ipaddress.ip_interface("192.0.2.10/24")
    assert ct.port_name(3) == "veth100i3"

    assert cfg.ipam.guest_ips[101] == [ipaddress.ip_address("10.101.1.100"),
                                       ipaddress.ip_address("fd80::1000")]
    public = cfg.sdn.vnets["public"]
    assert [str(s.cidr) for s in public.subnets] == ["10.101.0.0/16", "fd80::/64"]
    assert [str(s.gateway) for s in public.subnets] == ["10.101.1.1", "fd80::1"]
    assert cfg.vnets == {}


PVE_SIM_SUITES = sorted(p.parent.name for p in (CONFORMANCE / "pve-sim").glob("*/pve"))

# The deliberate mistakes of the test-errors suites (file, line); nothing else may fail.
EXPECTED_ERRORS: dict[str, list[tuple[str, int | None]]] = {
    "test-errors1": [("firewall/100.fw", 8)],
    "test-errors2": [("firewall/100.fw", 7), ("firewall/100.fw", 8)],
    "test-errors3": [("nodes/pve1/host.fw", 4)],
}


@pytest.mark.parametrize("suite", PVE_SIM_SUITES)
def test_pve_sim_tree(suite: str) -> None:
    diags = Diagnostics()
    root = conformance_tree(f"pve-sim/{suite}")
    cfg = load_config(DirectorySource(root), "pve1", diags)
    assert [(d.file, d.line) for d in diags if d.severity == Severity.ERROR] == \
        EXPECTED_ERRORS.get(suite, []), errors(diags)
    # the non-.fw inputs are all clean
    assert not [str(d) for d in diags if not d.file.endswith(".fw")]

    assert cfg.cluster.present
    assert [n.name for n in cfg.corosync.nodes] == ["prox1", "prox2", "prox3", "pve1"]
    pve1 = cfg.corosync.nodes[3]
    assert pve1.links == {0: "172.16.1.2", 1: "172.16.2.2", 2: "pve1"}
    assert cfg.corosync.transport == "udp"

    assert sorted(cfg.guests) == [100, 101, 110, 200, 201]
    vm100 = cfg.guests[100]
    assert [(n.model, n.bridge, n.firewall) for n in vm100.nics.values()] == [
        ("e1000", "vmbr0", True), ("e1000", "vmbr1", True), ("e1000", "vmbr2", True)
    ]
    assert vm100.nics[0].mac == "0E:0B:38:B8:B3:21"
    assert cfg.guests[110].nics[0].bridge == "vmbr1"
    ct200, ct201 = cfg.guests[200], cfg.guests[201]
    assert (ct200.kind, ct200.nics[0].ip) == ("lxc", ipaddress.ip_interface("10.0.200.1/24"))
    assert ct201.nics[0].ip == ipaddress.ip_interface("10.0.200.2/24")
    assert ct200.nics[0].mac == "0E:18:24:41:2C:43"
    # a guest firewall file is "present" exactly when the suite has one
    for vmid, guest in cfg.guests.items():
        assert guest.fw.present == (root / f"firewall/{vmid}.fw").exists()


def test_pve_sim_suites_found() -> None:
    if not (CONFORMANCE / "pve-sim").is_dir():
        pytest.skip("conformance data not available")
    assert len(PVE_SIM_SUITES) == 13


def test_non_numeric_vmid_never_becomes_a_path(tmp_path: Path) -> None:
    """vmids come from .vmlist keys; only canonical numbers are turned into paths."""
    files = {**TREE, ".vmlist": json.dumps({"version": 1, "ids": {
        "../../etc": {"node": "pve1", "type": "qemu", "version": 1},
        "100": {"node": "pve1", "type": "qemu", "version": 1}}})}
    cfg, diags = load(tmp_path, files)
    assert list(cfg.guests) == [100]
    assert only(diags, Severity.ERROR).file == ".vmlist"
