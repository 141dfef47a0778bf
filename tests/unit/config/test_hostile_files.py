"""Hostile files under the pve directory (issue 10, item 7).

A FIFO, a device, a socket, a huge file or a link leading out of the directory in place
of any input is reported and counts as unreadable -- nothing blocks, nothing outside is
opened or quoted -- while links that stay inside (pmxcfs' ``local``) keep working.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from proxmox_fw.config.loader import load_config
from proxmox_fw.config.safefile import MAX_FILE_BYTES, RefusedFile, read_regular
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.service.inputs import LastGoodSource

ROOT = Path(__file__).resolve().parents[3]
SECRET = "root:$6$SECRET-HASH-LINE:19000:0:99999:7:::"
HANG_GUARD = 20.0  # seconds: a hang guard, not a timing claim

GOOD = {
    "firewall/cluster.fw": "[OPTIONS]\nenable: 1\n",
    "nodes/pve1/host.fw": "[OPTIONS]\nnftables: 1\n",
    ".vmlist": json.dumps({"ids": {"100": {"node": "pve1", "type": "qemu"}}}),
    "firewall/100.fw": "[OPTIONS]\nenable: 1\n",
    "nodes/pve1/qemu-server/100.conf": "net0: virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1\n",
    "corosync.conf": "nodelist {\n  node {\n    name: pve1\n    ring0_addr: 10.0.0.1\n  }\n}\n",
    "sdn/firewall/vnet1.fw": "[OPTIONS]\nenable: 1\n",
    "sdn/.running-config": json.dumps({"zones": {"ids": {"z1": {"type": "simple"}}},
                                       "vnets": {"ids": {"vnet1": {"zone": "z1"}}}}),
}
TARGETS = list(GOOD)


def tree(tmp_path: Path) -> Path:
    root = tmp_path / "pve"
    for rel, text in GOOD.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "shadow").write_text(SECRET + "\n")
    return root


def _fifo(path: Path, tmp: Path) -> None:
    os.mkfifo(path)


def _zero_link(path: Path, tmp: Path) -> None:
    path.symlink_to("/dev/zero")


def _zero_device(path: Path, tmp: Path) -> None:
    os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's own node, inside


def _secret_link(path: Path, tmp: Path) -> None:
    path.symlink_to(tmp / "shadow")


def _secret_relative_link(path: Path, tmp: Path) -> None:
    depth = len(path.relative_to(tmp).parts) - 1
    path.symlink_to("../" * depth + "shadow")


def _chain_out(path: Path, tmp: Path) -> None:
    """inside -> inside -> outside"""
    hop = tmp / "pve" / "hop"
    hop.symlink_to(tmp / "shadow")
    path.symlink_to(hop)


def _dir_link_out(path: Path, tmp: Path) -> None:
    """the file sits in a linked directory that leads outside"""
    outside = tmp / "elsewhere"
    outside.mkdir()
    (outside / path.name).write_text(SECRET + "\n")
    parent = path.parent
    for child in parent.iterdir():
        if child.is_file() and child != path:
            (outside / child.name).write_bytes(child.read_bytes())
    os.rename(parent, tmp / "moved")
    parent.symlink_to(outside)


def _socket(path: Path, tmp: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def _directory(path: Path, tmp: Path) -> None:
    path.mkdir()


def _sparse_huge(path: Path, tmp: Path) -> None:
    with open(path, "wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)


def _dangling_out(path: Path, tmp: Path) -> None:
    path.symlink_to(tmp / "no-such-file")


HOSTILE: dict[str, Callable[[Path, Path], None]] = {
    "fifo": _fifo, "link-to-dev-zero": _zero_link, "device-inside": _zero_device,
    "link-to-secret": _secret_link, "relative-link-out": _secret_relative_link,
    "link-chain-out": _chain_out, "dir-link-out": _dir_link_out, "socket": _socket,
    "directory": _directory, "huge-sparse-file": _sparse_huge, "dangling-link-out": _dangling_out,
}


def _load_with_guard(root: Path) -> tuple[object, Diagnostics]:
    diags = Diagnostics()
    out: list[object] = []
    worker = threading.Thread(target=lambda: out.append(load_config(DirectorySource(root),
                                                                    "pve1", diags)),
                              daemon=True)
    worker.start()
    worker.join(HANG_GUARD)
    assert out, "load_config blocked on a hostile file"
    return out[0], diags


# (a top-level file has no directory of its own to link away)
CASES = [(kind, target) for kind in sorted(HOSTILE) for target in TARGETS
         if kind != "dir-link-out" or "/" in target]


@pytest.mark.parametrize(("kind", "target"), CASES)
def test_hostile_file_is_unreadable_and_never_quoted(kind: str, target: str,
                                                     tmp_path: Path) -> None:
    root = tree(tmp_path)
    path = root / target
    path.unlink()
    HOSTILE[kind](path, tmp_path)
    cfg, diags = _load_with_guard(root)
    # a directory linked away takes its other files along
    expected = [target, *(t for t in TARGETS if kind == "dir-link-out" and t != target
                          and Path(t).parent == Path(target).parent)]
    if kind == "dir-link-out" and target.startswith("sdn/firewall/"):
        expected = ["sdn/firewall"]  # not even listed: the vnet files are unknown
    assert sorted(cfg.unreadable) == sorted(expected)  # type: ignore[attr-defined]
    refused = [d for d in diags if d.file == expected[0] and d.severity is Severity.ERROR]
    assert refused and all("refused" in d.message for d in refused), [str(d) for d in diags]
    assert not any("SECRET" in str(d) for d in diags)


def test_links_inside_the_directory_keep_working(tmp_path: Path) -> None:
    """pmxcfs' ``local`` -> ``nodes/<node>``, a relative and an absolute file link, a
    directory link, and the root itself reached through a link."""
    root = tree(tmp_path)
    (root / "local").symlink_to("nodes/pve1")
    (root / "nodes" / "pve1" / "host.fw").rename(root / "host.fw.real")
    (root / "nodes" / "pve1" / "host.fw").symlink_to("../../host.fw.real")
    (root / "firewall" / "100.fw").rename(root / "guest.real")
    (root / "firewall" / "100.fw").symlink_to(root / "guest.real")
    (root / "sdn" / "firewall").rename(root / "vnets")
    (root / "sdn" / "firewall").symlink_to("../vnets")
    (tmp_path / "pve-link").symlink_to(root)
    for top in (root, tmp_path / "pve-link"):
        source = DirectorySource(top)
        diags = Diagnostics()
        cfg = load_config(source, "pve1", diags)
        assert cfg.unreadable == [] and not list(diags), [str(d) for d in diags]
        assert cfg.host.options.nftables and cfg.guests[100].fw.options.enable
        assert set(cfg.vnets) == {"vnet1"}
        assert source.read("local/host.fw") == GOOD["nodes/pve1/host.fw"]


def test_size_cap_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_regular(path, tmp_path, limit=100) == b"x" * 100
    with pytest.raises(RefusedFile, match="larger than 99"):
        read_regular(path, tmp_path, limit=99)


def test_a_file_growing_past_the_cap_while_read_is_cut(tmp_path: Path) -> None:
    """/proc-like files report size 0; the read itself stops at the cap."""
    with pytest.raises(RefusedFile, match="larger than"):
        read_regular(Path("/proc/self/status"), Path("/proc"), limit=10)
    assert read_regular(Path("/proc/self/status"), Path("/proc"), limit=1 << 20)


def test_vnet_directory_leading_outside_is_not_listed(tmp_path: Path) -> None:
    root = tree(tmp_path)
    (root / "sdn" / "firewall").rename(tmp_path / "vnets-outside")
    (root / "sdn" / "firewall").symlink_to(tmp_path / "vnets-outside")
    diags = Diagnostics()
    assert DirectorySource(root).list_dir("sdn/firewall", diags) == []
    assert any("outside" in d.message for d in diags)


@pytest.mark.parametrize("kind", ["fifo", "link-to-dev-zero", "link-to-secret"])
def test_compile_command_does_not_hang_or_leak(kind: str, tmp_path: Path) -> None:
    root = tree(tmp_path)
    path = root / "firewall" / "cluster.fw"
    path.unlink()
    HOSTILE[kind](path, tmp_path)
    res = subprocess.run([sys.executable, "-m", "cli.main", "--pve-dir", str(root),
                          "--nodename", "pve1", "compile"], capture_output=True, text=True,
                         cwd=ROOT, check=False, timeout=HANG_GUARD * 3,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PVE_LOG": "warn"})
    assert res.returncode == 0, res.stderr
    assert "cluster.fw" in res.stderr and "cannot read file: refused" in res.stderr
    assert "SECRET" not in res.stderr + res.stdout


def test_daemon_keeps_the_last_good_vnet_listing(tmp_path: Path) -> None:
    root = tree(tmp_path)
    source = LastGoodSource(DirectorySource(root))
    assert source.list_dir("sdn/firewall") == ["vnet1.fw"]
    (root / "sdn" / "firewall").rename(tmp_path / "vnets-outside")
    (root / "sdn" / "firewall").symlink_to(tmp_path / "vnets-outside")
    diags = Diagnostics()
    assert source.list_dir("sdn/firewall", diags) == ["vnet1.fw"]
    assert [d.severity for d in diags] == [Severity.WARNING]
    assert "last good listing" in diags.items[0].message
    # its files are refused all the same: the loader reports them unreadable
    cfg = load_config(source, "pve1", Diagnostics())
    assert cfg.unreadable == ["sdn/firewall/vnet1.fw"]
