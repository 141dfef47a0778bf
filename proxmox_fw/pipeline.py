"""The read → compile path as one call, for the CLI, the daemon and the tests."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from proxmox_fw.compile import CompileOptions, CompileResult, compile_config
from proxmox_fw.config.loader import load_config
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.system.gcpause import paused_gc
from proxmox_fw.system.localnet import Resolver, corosync_hostnames, resolve_hostname

Cidr = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def compile_dir(
    pve_dir: Path | str,
    nodename: str,
    *,
    honor_nftables_switch: bool = True,
    local_net: Cidr | None = None,
    altnames: dict[str, str] | None = None,
    resolver: Resolver = resolve_hostname,
) -> CompileResult:
    """Load the tree under ``pve_dir`` as node ``nodename`` and compile it.

    ``local_net`` is this node's network (see :mod:`proxmox_fw.system.localnet`); it is only used
    when cluster.fw has no ``local_network`` alias.
    """
    diags = Diagnostics()
    with paused_gc():
        cfg = load_config(DirectorySource(Path(pve_dir)), nodename, diags)
        opts = CompileOptions(
            honor_nftables_switch=honor_nftables_switch,
            local_network=local_net,
            altnames=dict(altnames or {}),
            hostnames=corosync_hostnames(cfg, resolver),
        )
        return compile_config(cfg, opts, diags)
