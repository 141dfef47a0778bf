"""The one path from /etc/pve to a compiled ruleset: read the tree, gather this machine's
facts, compile.

Every caller (``compile``, ``apply``, ``localnet``, ``status``, the daemon, the tests)
goes through here, so they all build the same :class:`CompileOptions` from the same
facts and arrive at the same ruleset (and hash). The one rule about the machine lives
here too: the local network is detected only when cluster.fw has no ``local_network``
alias (admin guide §13.5.1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from proxmox_fw.compile import (
    CompileMemo,
    CompileOptions,
    CompileResult,
    compile_config,
    firewall_active,
)
from proxmox_fw.compile.context import Cidr
from proxmox_fw.config.loader import load_config
from proxmox_fw.config.source import ConfigSource, DirectorySource
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import PveConfig
from proxmox_fw.system.altnames import interface_altnames
from proxmox_fw.system.gcpause import paused_gc
from proxmox_fw.system.localnet import (
    LocalNet,
    Resolver,
    corosync_hostnames,
    detect_local_network,
    resolve_hostname,
)

__all__ = [
    "HostFacts",
    "compile_dir",
    "compile_node",
    "firewall_enabled",
    "host_facts",
    "load_node",
    "needs_local_network",
]

Detector = Callable[[], LocalNet]


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What compiling needs from this machine, and what looking it up had to say."""

    options: CompileOptions
    local: LocalNet | None = None  # the detection used; None: cluster.fw sets local_network

    @property
    def warnings(self) -> tuple[str, ...]:
        """Local network detection problems (only when the detection is used)."""
        return self.local.warnings if self.local is not None else ()


def needs_local_network(cfg: PveConfig) -> bool:
    """Whether this node's network must be detected: only without a ``local_network``
    alias in cluster.fw (admin guide §13.5.1)."""
    return "local_network" not in cfg.cluster.aliases


def host_facts(
    cfg: PveConfig,
    *,
    detect_local: Detector | None = None,
    altnames: Mapping[str, str] | None = None,
    resolver: Resolver = resolve_hostname,
    honor_nftables_switch: bool = True,
) -> HostFacts:
    """The compile options for ``cfg`` on this machine.

    ``detect_local`` (default: :func:`detect_local_network` of the node) runs only when
    :func:`needs_local_network`; ``altnames`` None reads the interfaces' altnames;
    ``resolver`` places corosync links written as host names (and the node name).
    ``honor_nftables_switch`` False compiles even without host.fw ``nftables: 1``.
    """
    local: LocalNet | None = None
    if needs_local_network(cfg):
        local = (detect_local() if detect_local is not None
                 else detect_local_network(cfg.nodename, resolver))
    options = CompileOptions(
        honor_nftables_switch=honor_nftables_switch,
        local_network=local.detected if local is not None else None,
        altnames=dict(interface_altnames() if altnames is None else altnames),
        hostnames=corosync_hostnames(cfg, resolver),
    )
    return HostFacts(options, local)


def load_node(
    pve_dir: Path | str, nodename: str, diags: Diagnostics, source: ConfigSource | None = None
) -> PveConfig:
    """Read the tree under ``pve_dir`` (or ``source``) as node ``nodename``."""
    with paused_gc():
        return load_config(source or DirectorySource(Path(pve_dir)), nodename, diags)


def compile_node(
    cfg: PveConfig, facts: HostFacts, diags: Diagnostics | None = None,
    memo: CompileMemo | None = None,
) -> CompileResult:
    """Compile ``cfg`` with the facts of this machine (see :func:`host_facts`); ``memo``
    (the daemon's) reuses what did not change since its last compile."""
    with paused_gc():
        return compile_config(cfg, facts.options, diags, memo)


def firewall_enabled(cfg: PveConfig) -> bool:
    """Whether the configuration turns the firewall on here (cluster ``enable`` and host
    ``nftables``, admin guide §13.13.1)."""
    return firewall_active(cfg, CompileOptions())


def compile_dir(
    pve_dir: Path | str,
    nodename: str,
    *,
    honor_nftables_switch: bool = True,
    local_net: Cidr | None = None,
    altnames: Mapping[str, str] | None = None,
    resolver: Resolver = resolve_hostname,
) -> CompileResult:
    """Load and compile with fixed facts, nothing read from this machine's interfaces
    (tests and tools): ``local_net`` stands for the detected network."""
    diags = Diagnostics()
    cfg = load_node(pve_dir, nodename, diags)
    facts = host_facts(
        cfg,
        detect_local=lambda: LocalNet(nodename, detected=local_net),
        altnames=altnames or {},
        resolver=resolver,
        honor_nftables_switch=honor_nftables_switch,
    )
    return compile_node(cfg, facts, diags)
