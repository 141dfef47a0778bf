"""Vnet (SDN bridge) firewall chains ``bridge-<vnet>``, built alike in both tables."""

from __future__ import annotations

from collections.abc import Callable

from proxmox_fw.compile.loglevel import log_statements
from proxmox_fw.compile.refs import RefScope
from proxmox_fw.compile.rules import RuleTarget, compile_rule, verdict_stmt
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import Direction, PveConfig, VnetFw
from proxmox_fw.nft import expr as x
from proxmox_fw.nft.objects import Chain, Json, Table


def vnet_chain(
    table: Table,
    cfg: PveConfig,
    vnet: VnetFw,
    scope: RefScope,
    groups: frozenset[str],
    diags: Diagnostics,
    reject: Callable[[], Json],
) -> Chain:
    """``bridge-<vnet>``: conntrack first, the FORWARD rules, then the logged policy."""
    chain = table.chain(f"bridge-{vnet.name}")
    origin = vnet.file
    chain.add([x.jump("before-bridge")], origin)
    ratelimit = cfg.cluster.options.log_ratelimit
    tgt = RuleTarget(chain.name, Direction.FORWARD, scope, ratelimit,
                     iface_map=lambda _n: None, reject=reject, groups=groups)
    for rule in vnet.rules:
        chain.rules.extend(compile_rule(rule, tgt, diags))
    policy = vnet.options.policy_forward
    logs = log_statements(ratelimit, 0, vnet.options.log_level_forward, chain.name, policy)
    if logs:
        chain.add(logs, origin)
    chain.add([x.counter(), verdict_stmt(policy, tgt)], origin)
    return chain
