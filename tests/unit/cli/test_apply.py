"""`apply` refuses to touch the kernel when part of the configuration cannot be read."""

from __future__ import annotations

from pathlib import Path

from cli.apply import EXIT_FAILED, apply_config
from proxmox_fw.pipeline import compile_dir


class _Untouchable:
    """Any call means the kernel would have been changed: fail the test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the kernel was touched ({name})")


def test_unreadable_cluster_fw_keeps_previous_ruleset(tmp_path: Path) -> None:
    (tmp_path / "firewall" / "cluster.fw").mkdir(parents=True)  # exists, cannot be read
    result = compile_dir(tmp_path, "pve1")
    assert result.config is not None
    assert result.config.unreadable == ["firewall/cluster.fw"]
    assert any("cannot read file" in d.message for d in result.diagnostics)
    assert apply_config(result, client=_Untouchable()) == EXIT_FAILED  # type: ignore[arg-type]


def test_missing_files_are_not_unreadable(tmp_path: Path) -> None:
    result = compile_dir(tmp_path, "pve1")
    assert result.config is not None
    assert result.config.unreadable == []
