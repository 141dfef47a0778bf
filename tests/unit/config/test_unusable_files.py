"""Readable garbage is not "firewall off" (issue 10, item 3).

A byte order mark is stripped; a file whose content yields no valid section, or only
lines that fail, counts as unreadable (``PveConfig.unreadable``: ``apply`` keeps the
previous ruleset, the daemon its last good parse). Only a file that really says
``enable: 0`` disables the firewall.
"""

from __future__ import annotations

import codecs
import json
import random
from pathlib import Path

import pytest

from proxmox_fw.config.loader import ParseCache, load_config
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import PveConfig
from proxmox_fw.parse.unusable import UNUSABLE

CLUSTER = "firewall/cluster.fw"
HOST = "nodes/pve1/host.fw"
GUEST_FW = "firewall/100.fw"
GUEST_CONF = "nodes/pve1/qemu-server/100.conf"
VNET = "sdn/firewall/vnet1.fw"
COROSYNC = "corosync.conf"

GOOD: dict[str, str] = {
    CLUSTER: "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 22\n",
    HOST: "[OPTIONS]\nnftables: 1\n",
    ".vmlist": json.dumps({"ids": {"100": {"node": "pve1", "type": "qemu"}}}),
    GUEST_FW: "[OPTIONS]\nenable: 1\n",
    GUEST_CONF: "memory: 512\nnet0: virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1\n",
    VNET: "[OPTIONS]\nenable: 1\n",
    "sdn/.running-config": json.dumps({"zones": {"ids": {"z1": {"type": "simple"}}},
                                       "vnets": {"ids": {"vnet1": {"zone": "z1"}}}}),
    COROSYNC: "nodelist {\n  node {\n    name: pve1\n    ring0_addr: 10.0.0.1\n  }\n}\n",
}
CHECKED = [CLUSTER, HOST, GUEST_FW, GUEST_CONF, VNET, COROSYNC]


def _random(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


GARBAGE: dict[str, bytes] = {
    **{f"random-{seed}": _random(seed, 64 << (seed % 6)) for seed in range(12)},
    "nul-bytes": b"\0" * 4096,
    "binary-with-newlines": b"\x7fELF\x02\x01\x01\0\n\0\0\n\xff\xfe\n",
    "utf16-text": "[OPTIONS]\nenable: 1\n".encode("utf-16"),
    "json": b'{"ids": {"100": {"node": "pve1"}}}\n',
    "shell-script": b"#!/bin/sh\necho hello\nexit 0\n",
    "one-garbage-line": b"\xde\xad\xbe\xef",
}


def write(root: Path, files: dict[str, str], overrides: dict[str, bytes]) -> DirectorySource:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(overrides.get(rel, text.encode()))
    return DirectorySource(root)


def load(root: Path, overrides: dict[str, bytes],
         cache: ParseCache | None = None) -> tuple[PveConfig, Diagnostics]:
    diags = Diagnostics()
    return load_config(write(root, GOOD, overrides), "pve1", diags, cache), diags


def test_the_good_tree_is_usable(tmp_path: Path) -> None:
    cfg, diags = load(tmp_path, {})
    assert cfg.unreadable == [] and not [d for d in diags if d.severity is Severity.ERROR]
    assert cfg.cluster.options.enable and cfg.host.options.nftables


@pytest.mark.parametrize("path", CHECKED)
@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_counts_as_unreadable(path: str, name: str, tmp_path: Path) -> None:
    cfg, diags = load(tmp_path, {path: GARBAGE[name]})
    assert cfg.unreadable == [path]
    assert any(d.file == path and d.severity is Severity.ERROR and UNUSABLE in d.message
               for d in diags)


# Cut-off copies of a real file with nothing valid left; a cut that leaves a valid line
# is usable and left to the daemon's settle check (tests/unit/service).
_CUT = {
    CLUSTER: ["[OPT", "[OPTIONS", "[OPTIONS]x", "enable: 1"],
    HOST: ["[RUL", "[OPTIONS] nftables: 1"],
    GUEST_FW: ["[OPTIONS"],
    GUEST_CONF: ["memo", "memory"],
    COROSYNC: ["nodelist", "nodelist {{"],
}


@pytest.mark.parametrize(("path", "text"), [(p, t) for p, ts in _CUT.items() for t in ts])
def test_cut_off_files_count_as_unreadable(path: str, text: str, tmp_path: Path) -> None:
    cfg, _ = load(tmp_path, {path: text.encode()})
    assert cfg.unreadable == [path]


@pytest.mark.parametrize("path", CHECKED)
def test_a_byte_order_mark_is_stripped(path: str, tmp_path: Path) -> None:
    cfg, diags = load(tmp_path, {path: codecs.BOM_UTF8 + GOOD[path].encode()})
    plain, plain_diags = load(tmp_path / "plain", {})
    assert cfg == plain and [str(d) for d in diags] == [str(d) for d in plain_diags]


def test_a_bom_in_json_inputs_is_stripped(tmp_path: Path) -> None:
    cfg, diags = load(tmp_path, {".vmlist": codecs.BOM_UTF8 + GOOD[".vmlist"].encode()})
    assert set(cfg.guests) == {100} and not list(diags)


@pytest.mark.parametrize("text", [
    "", "\n\n", "# only a comment\n", "[OPTIONS]\n", "[OPTIONS]\n# nothing set\n",
    "[OPTIONS]\nenable: 1\nbogus line\n",  # one bad line among good ones costs that line
    "[RULES]\nIN ACCEPT -dport 80\n",  # a valid section with only a bad rule: the rule goes
])
def test_empty_or_partly_bad_files_stay_usable(text: str, tmp_path: Path) -> None:
    cfg, _ = load(tmp_path, {CLUSTER: text.encode()})
    assert cfg.unreadable == []


def test_only_a_real_enable_0_disables(tmp_path: Path) -> None:
    cfg, diags = load(tmp_path, {CLUSTER: b"\xef\xbb\xbf[OPTIONS]\nenable: 0\n"})
    assert cfg.unreadable == [] and not cfg.cluster.options.enable
    assert not list(diags)


def test_parse_cache_serves_the_last_usable_parse(tmp_path: Path) -> None:
    cache = ParseCache()
    good, _ = load(tmp_path, {}, cache)
    for name, data in GARBAGE.items():
        cfg, diags = load(tmp_path, {CLUSTER: data}, cache)
        assert cfg.unreadable == [], name
        assert cfg.cluster is good.cluster
        fallback = [d for d in diags if "last good content" in d.message]
        assert len(fallback) == 1 and fallback[0].file == CLUSTER
        assert fallback[0].severity is Severity.WARNING and UNUSABLE in fallback[0].message
    # a usable change replaces the last good parse, and SIGHUP (forget) keeps it
    cfg, _ = load(tmp_path, {CLUSTER: b"[OPTIONS]\nenable: 1\npolicy_in: REJECT\n"}, cache)
    cache.forget()
    again, _ = load(tmp_path, {CLUSTER: GARBAGE["random-3"]}, cache)
    assert again.cluster == cfg.cluster and again.cluster.options.policy_in == "REJECT"


def test_without_a_last_good_parse_garbage_stays_unreadable(tmp_path: Path) -> None:
    cfg, _ = load(tmp_path, {HOST: GARBAGE["random-1"]}, ParseCache())
    assert cfg.unreadable == [HOST]
