"""``/etc/pve/.vmlist``: which guests exist, of which kind, on which node.

pmxcfs writes ``{"version": n, "ids": {"<vmid>": {"node", "type", "version"}}}``.
One bad entry is reported and skipped; the other guests still load.
"""

from __future__ import annotations

import re
from typing import Any, get_args

from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import GuestKind, VmListEntry
from proxmox_fw.parse.jsondoc import get_object, join, load_json_object, type_name

# Canonical decimal only: "0100" would name other files than "100" does.
_VMID_RE = re.compile(r"[1-9][0-9]{0,8}")
_KINDS: tuple[str, ...] = get_args(GuestKind)


def parse_vmlist(text: str, file: str, diags: Diagnostics) -> list[VmListEntry]:
    """All guests of the cluster, in ascending vmid order."""
    doc = load_json_object(text, file, diags)
    if doc is None:
        return []
    entries: list[VmListEntry] = []
    for key, raw in get_object(doc, "ids", "", file, diags).items():
        entry = _entry(key, raw, file, diags)
        if entry is not None:
            entries.append(entry)
    return sorted(entries, key=lambda e: e.vmid)


def _entry(key: str, raw: Any, file: str, diags: Diagnostics) -> VmListEntry | None:
    path = join("ids", key)
    if not _VMID_RE.fullmatch(key):
        diags.error(file, None, f"{path}: invalid VMID {key!r}, guest skipped")
        return None
    if not isinstance(raw, dict):
        diags.error(file, None, f"{path}: expected an object, got {type_name(raw)}; skipped")
        return None
    node = raw.get("node")
    if not isinstance(node, str) or not node:
        diags.error(file, None, f"{path}.node: missing or not a string, guest skipped")
        return None
    kind = raw.get("type")
    if kind not in _KINDS:
        diags.error(file, None, f"{path}.type: unknown guest type {kind!r}, guest skipped")
        return None
    return VmListEntry(vmid=int(key), node=node, kind=kind)
