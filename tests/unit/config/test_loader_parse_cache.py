"""The daemon's parse cache: same text → same result and diagnostics, new text → parsed."""

from __future__ import annotations

from pathlib import Path

from proxmox_fw.config.loader import ParseCache, load_config
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics

CLUSTER = "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 22\nIN FOO\n"


def _tree(root: Path, cluster: str) -> DirectorySource:
    (root / "firewall").mkdir(parents=True, exist_ok=True)
    (root / "firewall" / "cluster.fw").write_text(cluster)
    return DirectorySource(root)


def test_unchanged_file_is_not_parsed_again_but_reports_again(tmp_path: Path) -> None:
    source = _tree(tmp_path, CLUSTER)
    cache = ParseCache()
    d1, d2 = Diagnostics(), Diagnostics()
    first = load_config(source, "pve1", d1, cache)
    second = load_config(source, "pve1", d2, cache)
    assert second.cluster is first.cluster  # served from the cache
    assert [str(d) for d in d2] == [str(d) for d in d1]
    assert any(d.line == 5 for d in d2)


def test_changed_file_is_parsed_again(tmp_path: Path) -> None:
    source = _tree(tmp_path, CLUSTER)
    cache = ParseCache()
    first = load_config(source, "pve1", Diagnostics(), cache)
    _tree(tmp_path, CLUSTER.replace("22", "23"))
    second = load_config(source, "pve1", Diagnostics(), cache)
    assert second.cluster is not first.cluster
    assert second.cluster.rules[0].dport is not None
    assert second.cluster.rules[0].dport[0].lo == 23


def test_without_cache_every_load_parses(tmp_path: Path) -> None:
    source = _tree(tmp_path, CLUSTER)
    a = load_config(source, "pve1", Diagnostics())
    b = load_config(source, "pve1", Diagnostics())
    assert a.cluster is not b.cluster
    assert a.cluster == b.cluster
