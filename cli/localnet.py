"""``localnet``: what admin guide §13.5.1 shows, plus the management ipset in effect."""

from __future__ import annotations

from pathlib import Path

from proxmox_fw.compile.host import management_entries
from proxmox_fw.compile.ipsets import element
from proxmox_fw.compile.refs import RefScope
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.pipeline import host_facts, load_node
from proxmox_fw.system.localnet import describe, detect_local_network


def localnet_report(pve_dir: Path, nodename: str) -> str:
    diags = Diagnostics()
    cfg = load_node(pve_dir, nodename, diags)
    local = detect_local_network(nodename)  # shown even where an alias overrides it
    alias = cfg.cluster.aliases.get("local_network")
    lines = describe(local, alias.cidr if alias is not None else None)
    facts = host_facts(cfg, detect_local=lambda: local)
    entries = management_entries(cfg, facts.options, RefScope(cfg.cluster), Diagnostics())
    lines.append("management ipset:")
    for entry, nomatch in entries:
        el = element(entry)
        text = el if isinstance(el, str) else _fmt(el)
        lines.append(f"  {'!' if nomatch else ''}{text}")
    for w in local.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines) + "\n"


def _fmt(el: object) -> str:
    if isinstance(el, dict) and "prefix" in el:
        return f"{el['prefix']['addr']}/{el['prefix']['len']}"
    if isinstance(el, dict) and "range" in el:
        lo, hi = el["range"]
        return f"{lo}-{hi}"
    return str(el)
