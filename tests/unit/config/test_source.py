"""DirectorySource: reading, listing and fingerprinting a pve directory."""

from __future__ import annotations

import os
from pathlib import Path

from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics, Severity
from tests.unit.helpers import only


def make(tmp_path: Path, files: dict[str, bytes]) -> DirectorySource:
    for rel, data in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return DirectorySource(tmp_path)


def test_read_existing_and_missing(tmp_path: Path) -> None:
    src = make(tmp_path, {"firewall/cluster.fw": b"[OPTIONS]\nenable: 1\n"})
    diags = Diagnostics()
    assert src.read("firewall/cluster.fw", diags) == "[OPTIONS]\nenable: 1\n"
    assert src.read("firewall/100.fw", diags) is None
    assert src.read("nodes/pve1/host.fw", diags) is None  # missing directory
    assert src.read("firewall/cluster.fw/x", diags) is None  # a file used as directory
    assert not diags.items


def test_unreadable_file_is_an_error_not_an_exception(tmp_path: Path) -> None:
    (tmp_path / "firewall" / "cluster.fw").mkdir(parents=True)  # EISDIR on read
    diags = Diagnostics()
    assert DirectorySource(tmp_path).read("firewall/cluster.fw", diags) is None
    d = only(diags, Severity.ERROR)
    assert d.file == "firewall/cluster.fw" and "cannot read" in d.message


def test_path_escaping_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pve").mkdir()
    (tmp_path / "secret").write_text("x")
    src = DirectorySource(tmp_path / "pve")
    diags = Diagnostics()
    assert src.read("../secret", diags) is None
    assert src.read("/etc/hostname", diags) is None
    assert src.list_dir("..", diags) == []
    assert [d.severity for d in diags] == [Severity.ERROR] * 3


def test_invalid_utf8_replaced_with_warning_on_its_line(tmp_path: Path) -> None:
    src = make(tmp_path, {"firewall/100.fw": b"[OPTIONS]\n\nenable: 1 # caf\xe9\n"})
    diags = Diagnostics()
    text = src.read("firewall/100.fw", diags)
    assert text == "[OPTIONS]\n\nenable: 1 # caf\ufffd\n"
    d = only(diags, Severity.WARNING)
    assert (d.file, d.line) == ("firewall/100.fw", 3)


def test_read_without_diagnostics_is_silent(tmp_path: Path) -> None:
    (tmp_path / "x.fw").mkdir()
    assert DirectorySource(tmp_path).read("x.fw") is None


def test_list_dir(tmp_path: Path) -> None:
    src = make(tmp_path, {"sdn/firewall/b.fw": b"", "sdn/firewall/a.fw": b""})
    diags = Diagnostics()
    assert src.list_dir("sdn/firewall", diags) == ["a.fw", "b.fw"]
    assert src.list_dir("sdn/missing", diags) == []
    assert src.list_dir("sdn/firewall/a.fw", diags) == []
    assert not diags.items


def test_fingerprint_changes_on_edit_create_and_delete(tmp_path: Path) -> None:
    src = make(tmp_path, {"firewall/cluster.fw": b"a"})
    paths = ["firewall/cluster.fw", "firewall/100.fw", "firewall"]
    os.utime(tmp_path / "firewall", ns=(0, 0))  # timestamps are coarse: start from the past
    first = src.fingerprint(paths)
    assert first == src.fingerprint(paths)  # stable while nothing changes
    assert first[1] == ("firewall/100.fw", None)

    cluster = tmp_path / "firewall/cluster.fw"
    st = cluster.stat()
    cluster.write_bytes(b"b")  # same size: mtime (forced) must tell
    os.utime(cluster, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = src.fingerprint(paths)
    assert second[0] != first[0]
    assert second[1] == first[1]

    (tmp_path / "firewall/100.fw").write_bytes(b"")
    third = src.fingerprint(paths)
    assert third[1][1] is not None
    assert third[2] != second[2]  # the directory changed too: a new entry

    (tmp_path / "firewall/100.fw").unlink()
    assert src.fingerprint(paths)[1] == ("firewall/100.fw", None)


def test_fingerprint_sees_atomic_replace(tmp_path: Path) -> None:
    """pmxcfs-style writers replace files by rename: same size and mtime, new inode."""
    src = make(tmp_path, {"f": b"one", "g": b"two"})
    st = (tmp_path / "f").stat()
    before = src.fingerprint(["f"])
    os.utime(tmp_path / "g", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(tmp_path / "g", tmp_path / "f")
    after = src.fingerprint(["f"])
    assert before[0][1] is not None and after[0][1] is not None
    assert before[0][1][:2] == after[0][1][:2]  # mtime and size equal ...
    assert before != after  # ... the inode tells
