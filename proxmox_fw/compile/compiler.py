"""The whole compile: config models → desired ruleset (both tables) and side effects."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxmox_fw.compile.context import CompileOptions
from proxmox_fw.compile.guests import compile_guests
from proxmox_fw.compile.host import compile_host, firewall_active
from proxmox_fw.compile.memo import CompileMemo
from proxmox_fw.compile.sysctl import side_effects
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import PveConfig
from proxmox_fw.nft.objects import Ruleset


@dataclass(slots=True)
class CompileResult:
    ruleset: Ruleset
    diagnostics: Diagnostics
    # Files to write when applying (sysctls, log_nf_conntrack): path -> content.
    side_effects: dict[str, str] = field(default_factory=dict)
    config: PveConfig | None = None


def compile_config(
    cfg: PveConfig, opts: CompileOptions, diags: Diagnostics | None = None,
    memo: CompileMemo | None = None,
) -> CompileResult:
    """``memo`` (the daemon's) reuses the pieces whose inputs did not change."""
    diags = diags if diags is not None else Diagnostics()
    rs = Ruleset(host=compile_host(cfg, opts, diags, memo),
                 guests=compile_guests(cfg, opts, diags, memo))
    if memo is not None:
        memo.sweep()
    effects = side_effects(cfg) if firewall_active(cfg, opts) else {}
    return CompileResult(rs, diags, effects, cfg)
