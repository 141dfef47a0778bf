"""``.vmlist``: the cluster's guest list."""

from __future__ import annotations

import json

import pytest

from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import VmListEntry
from proxmox_fw.parse.vmlist import parse_vmlist
from tests.unit.helpers import CONFORMANCE, only

F = ".vmlist"


def parse(text: str) -> tuple[list[VmListEntry], Diagnostics]:
    diags = Diagnostics()
    return parse_vmlist(text, F, diags), diags


def doc(ids: object) -> str:
    return json.dumps({"version": 3, "ids": ids})


def test_entries_sorted_by_vmid() -> None:
    entries, diags = parse(doc({
        "201": {"node": "pve2", "type": "lxc", "version": 1},
        "100": {"node": "pve1", "type": "qemu", "version": 4},
    }))
    assert not diags.items
    assert [(e.vmid, e.node, e.kind) for e in entries] == [(100, "pve1", "qemu"),
                                                           (201, "pve2", "lxc")]


def test_missing_ids_means_no_guests() -> None:
    entries, diags = parse('{"version": 1}')
    assert entries == [] and not diags.items


@pytest.mark.parametrize(
    ("ids", "words"),
    [
        ({"abc": {"node": "pve1", "type": "qemu"}}, "invalid VMID"),
        ({"0100": {"node": "pve1", "type": "qemu"}}, "invalid VMID"),
        ({"101": {"node": "pve1", "type": "docker"}}, "unknown guest type"),
        ({"101": {"type": "qemu"}}, "node"),
        ({"101": {"node": 5, "type": "qemu"}}, "node"),
        ({"101": ["pve1", "qemu"]}, "expected an object"),
    ],
)
def test_bad_entry_is_skipped_others_kept(ids: dict[str, object], words: str) -> None:
    good = {"100": {"node": "pve1", "type": "lxc", "version": 1}}
    entries, diags = parse(doc({**good, **ids}))
    d = only(diags, Severity.ERROR)
    assert d.file == F and words in d.message
    assert [e.vmid for e in entries] == [100]


@pytest.mark.parametrize(
    ("text", "line"),
    [("{\n  \"ids\": {\n    \"100\": \n}", 4), ("[1, 2]", None), ("", 1)],
)
def test_garbage_file_is_one_error(text: str, line: int | None) -> None:
    entries, diags = parse(text)
    assert entries == []
    d = only(diags, Severity.ERROR)
    assert (d.file, d.line) == (F, line)


def test_ids_of_wrong_type() -> None:
    entries, diags = parse('{"version": 1, "ids": [100]}')
    assert entries == []
    assert "ids" in only(diags, Severity.ERROR).message


def test_pve_sim_vmlist() -> None:
    path = CONFORMANCE / "pve-sim/test-basic1/pve/.vmlist"
    if not path.exists():
        pytest.skip("conformance data not available")
    entries, diags = parse(path.read_text())
    assert not diags.items
    assert [(e.vmid, e.kind) for e in entries] == [
        (100, "qemu"), (101, "qemu"), (110, "qemu"), (200, "lxc"), (201, "lxc")
    ]
