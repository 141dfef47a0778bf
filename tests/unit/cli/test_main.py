"""The `proxmox-firewall` command as an operator runs it (subprocess, real arguments)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "cli.main"]
EXAMPLE = ROOT / "examples" / "pve"
UPSTREAM = ROOT.parent / "shared" / "conformance" / "upstream-integration" / "pve"


def run(*args: str, netns: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [*CLI, *args]
    if netns:
        cmd = ["unshare", "--net", *cmd]  # a throwaway network namespace
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PVE_LOG": "warn"})


@pytest.fixture
def bad_cluster(tmp_path: Path) -> Path:
    (tmp_path / "firewall").mkdir()
    (tmp_path / "firewall" / "cluster.fw").write_text(
        "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 22\nIN FOO -p tcp\n"
        "IN ACCEPT -p tcp -dport 99999\n")
    return tmp_path


def test_compile_keeps_good_rule_and_warns_per_bad_line(bad_cluster: Path) -> None:
    res = run("--pve-dir", str(bad_cluster), "--nodename", "pve1", "compile")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    rules = [c["add"]["rule"] for c in doc["nftables"] if "rule" in c.get("add", {})]
    assert any(r.get("comment") == "firewall/cluster.fw:4" for r in rules)
    about_cluster = [ln for ln in res.stderr.splitlines() if "cluster.fw" in ln]
    assert len(about_cluster) == 2
    assert "cluster.fw:5: unknown action 'FOO'" in about_cluster[0]
    assert "cluster.fw:6: port 99999 out of range" in about_cluster[1]


def test_global_options_come_from_the_environment(bad_cluster: Path) -> None:
    res = subprocess.run([*CLI, "compile"], capture_output=True, text=True, cwd=ROOT, check=False,
                         env={"PATH": "/usr/bin:/bin", "PROXMOX_FW_PVE_DIR": str(bad_cluster),
                              "PROXMOX_FW_NODENAME": "pve1"})
    assert res.returncode == 0
    assert "firewall/cluster.fw:4" in res.stdout


def test_compile_all_tables_prints_the_guest_table() -> None:
    res = run("--pve-dir", str(UPSTREAM), "--nodename", "pve1", "compile", "--all-tables")
    assert res.returncode == 0, res.stderr
    families = {next(iter(next(iter(c.values())).values()))["family"]
                for c in json.loads(res.stdout)["nftables"]}
    assert families == {"inet", "bridge"}


def test_compile_is_compact_when_piped_and_indented_on_request() -> None:
    """Piped output is one line (json's C encoder); --indent gives the same document."""
    args = ("--pve-dir", str(UPSTREAM), "--nodename", "pve1", "compile", "--all-tables")
    compact, indented = run(*args), run(*args, "--indent")
    assert compact.returncode == 0 and indented.returncode == 0, compact.stderr
    assert compact.stdout.count("\n") == 1
    assert indented.stdout.count("\n") > 100
    assert json.loads(compact.stdout) == json.loads(indented.stdout)


def test_skeleton_prints_nft_text() -> None:
    res = run("skeleton", "--all-tables")
    assert res.returncode == 0
    assert "table inet proxmox-firewall {" in res.stdout
    assert "table bridge proxmox-firewall-guests {" in res.stdout


def test_localnet_shows_local_network_and_management() -> None:
    res = run("--pve-dir", str(EXAMPLE), "--nodename", "pve1", "localnet")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[0] == "local hostname: pve1"
    assert "management ipset:" in lines
    assert "  198.51.100.7" in lines


def test_unknown_command_is_a_usage_error() -> None:
    assert run("frobnicate").returncode == 2


@pytest.mark.netns
def test_apply_host_only_config_exits_0(tmp_path: Path) -> None:
    (tmp_path / "firewall").mkdir()
    (tmp_path / "firewall" / "cluster.fw").write_text("[OPTIONS]\nenable: 1\n")
    (tmp_path / "nodes" / "pve1").mkdir(parents=True)
    (tmp_path / "nodes" / "pve1" / "host.fw").write_text("[OPTIONS]\nnftables: 1\n")
    res = run("--pve-dir", str(tmp_path), "--nodename", "pve1", "apply", netns=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.netns
def test_apply_with_guests_names_missing_kernel_features() -> None:
    res = run("--pve-dir", str(EXAMPLE), "--nodename", "pve1", "apply", netns=True)
    from proxmox_fw.nft.features import probe_features

    if probe_features().guest_table_supported:
        assert res.returncode == 0, res.stderr
    else:
        assert res.returncode == 3, res.stderr
        assert "CONFIG_NF_CONNTRACK_BRIDGE" in res.stderr
        assert "host table applied" in res.stderr


@pytest.mark.netns
def test_documented_pipe_into_nft_loads(tmp_path: Path) -> None:
    """Seed §13.13.3: `skeleton | nft -f -` then `compile | nft -j -f -`, here in a fresh
    network namespace with the real nft binary (the product itself never runs it)."""
    args = ("--pve-dir", str(UPSTREAM), "--nodename", "pve1")
    skel = run("skeleton")
    comp = run(*args, "compile")
    assert skel.returncode == 0 and comp.returncode == 0, skel.stderr + comp.stderr
    (tmp_path / "skel.nft").write_text(skel.stdout)
    (tmp_path / "rules.json").write_text(comp.stdout)
    script = (f"nft -f {tmp_path / 'skel.nft'} && nft -j -f {tmp_path / 'rules.json'} && "
              "nft list chain inet proxmox-firewall cluster-in")
    res = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert 'comment "firewall/cluster.fw:24"' in res.stdout
