"""Node name lookup reads /etc/hosts only: no DNS traffic while building the firewall."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from proxmox_fw.system.localnet import resolve_hostname


def _hosts(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hosts"
    path.write_text(text)
    return str(path)


def test_name_found_with_and_without_domain(tmp_path: Path) -> None:
    hosts = _hosts(tmp_path, "127.0.0.1 localhost\n192.168.2.100 pve1.example.com pve1\n"
                             "# 10.0.0.1 pve1\nfd00::100 PVE1.example.com  # comment\n")
    assert resolve_hostname("pve1", hosts) == [
        ipaddress.ip_address("192.168.2.100"), ipaddress.ip_address("fd00::100")]


def test_unknown_name_raises_oserror(tmp_path: Path) -> None:
    hosts = _hosts(tmp_path, "127.0.0.1 localhost\n")
    with pytest.raises(OSError, match="not in"):
        resolve_hostname("pve1", hosts)


def test_missing_hosts_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot read"):
        resolve_hostname("pve1", str(tmp_path / "nope"))
