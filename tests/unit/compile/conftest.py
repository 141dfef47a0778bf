"""Build a PveConfig from .fw texts so compiler tests read like configuration."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from proxmox_fw.compile import CompileOptions, CompileResult, compile_config
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import PveConfig
from proxmox_fw.parse.fwfile import parse_cluster_fw, parse_host_fw

CLUSTER = "firewall/cluster.fw"
HOST = "nodes/pve1/host.fw"

Compile = Callable[..., CompileResult]


@pytest.fixture
def compile_texts() -> Compile:
    def run(cluster: str = "[OPTIONS]\nenable: 1\n", host: str = "[OPTIONS]\nnftables: 1\n",
            local_network: str | None = "192.168.10.0/24") -> CompileResult:
        diags = Diagnostics()
        cfg = PveConfig(
            nodename="pve1",
            cluster=parse_cluster_fw(cluster, CLUSTER, diags),
            host=parse_host_fw(host, HOST, diags),
        )
        opts = CompileOptions(
            local_network=ipaddress.ip_interface(local_network) if local_network else None
        )
        return compile_config(cfg, opts, diags)

    return run
