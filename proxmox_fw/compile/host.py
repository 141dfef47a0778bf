"""The host table ``inet proxmox-firewall``: cluster and host rules, options, sets.

Fills the chains the skeleton declares empty (``cluster-in``, ``option-in``, ...) and
creates the group chains and sets the rules need.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from proxmox_fw.compile.context import Cidr, CompileOptions, IpAddr
from proxmox_fw.compile.ctinfo import helper_defs
from proxmox_fw.compile.ipsets import (
    Entry,
    add_sets,
    cluster_ipset_sets,
    element,
    resolve_entries,
    sdn_entries,
)
from proxmox_fw.compile.loglevel import log_statements
from proxmox_fw.compile.memo import CompileMemo
from proxmox_fw.compile.refs import RefScope
from proxmox_fw.compile.rules import RuleTarget, compile_rule, verdict_stmt
from proxmox_fw.compile.vnets import vnet_chain
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import Direction, LogLevel, PveConfig, SecurityGroup, Verdict
from proxmox_fw.nft import expr as x
from proxmox_fw.nft.objects import FILLED_CHAINS, HOST_TABLE, INET, CtHelper, Set, Table

DEFAULT_ORIGIN = "default"


def firewall_active(cfg: PveConfig, opts: CompileOptions) -> bool:
    """Upstream's master switch: cluster ``enable`` and host ``nftables`` (notes §1.3)."""
    if not cfg.cluster.options.enable:
        return False
    return cfg.host.options.nftables or not opts.honor_nftables_switch


def compile_host(
    cfg: PveConfig, opts: CompileOptions, diags: Diagnostics, memo: CompileMemo | None = None
) -> Table:
    memo = memo if memo is not None else CompileMemo(enabled=False)
    table = Table(INET, HOST_TABLE)
    if not firewall_active(cfg, opts) or not cfg.host.options.enable:
        table.enabled = False
        return table
    for name in FILLED_CHAINS[INET]:
        table.chain(name)
    table.map("bridge-map")

    sdn = sdn_entries(cfg.sdn, cfg.ipam)
    scope = RefScope(cfg.cluster, sdn_sets=frozenset(sdn))
    for name, entries in sdn.items():
        add_sets(table, f"sdn/{name}", entries)
    add_sets(table, "dc/management", management_entries(cfg, opts, scope, diags))
    _local_network_sets(table, cfg, opts)
    _cluster_network_sets(table, cfg, opts, diags)
    if "blacklist" not in cfg.cluster.ipsets:
        add_sets(table, "dc/blacklist", [])
    for key, ipset in cfg.cluster.ipsets.items():
        if key == "management":
            continue
        cluster_ipset_sets(table, key, ipset, scope, diags, memo)

    groups = frozenset(cfg.cluster.groups)
    ratelimit = cfg.cluster.options.log_ratelimit
    altnames = opts.altnames

    def target(chain: str, direction: Direction) -> RuleTarget:
        return RuleTarget(
            chain=chain,
            direction=direction,
            scope=scope,
            ratelimit=ratelimit,
            iface_key="oifname" if direction is Direction.OUT else "iifname",
            iface_map=lambda n: altnames.get(n, n),
            groups=groups,
        )

    for group in cfg.cluster.groups.values():
        _group_chains(table, group, target, diags)
    _ct_helpers(table, cfg, diags)
    _host_options(table, cfg)

    for direction in Direction:
        chain = table.chain(f"host-{direction.value}")
        tgt = target(chain.name, direction)
        for rule in cfg.host.rules:
            chain.rules.extend(compile_rule(rule, tgt, diags))
        chain = table.chain(f"cluster-{direction.value}")
        tgt = target(chain.name, direction)
        for rule in cfg.cluster.rules:
            chain.rules.extend(compile_rule(rule, tgt, diags))
        _policy(table, cfg, direction, tgt)

    for name in sorted(cfg.vnets):
        vnet = cfg.vnets[name]
        if vnet.options.enable:
            vnet_chain(table, cfg, vnet, scope, groups, diags, reject=lambda: x.jump("do-reject"))
            table.map("bridge-map").elements.append((vnet.name, x.jump(f"bridge-{vnet.name}")))
    return table


def management_entries(
    cfg: PveConfig, opts: CompileOptions, scope: RefScope, diags: Diagnostics
) -> list[Entry]:
    """The ``management`` ipset plus ``local_network`` (admin guide §13.5.1, §13.6.1)."""
    entries: list[Entry] = []
    ipset = cfg.cluster.ipsets.get("management")
    if ipset is not None:
        entries.extend(resolve_entries(ipset, scope, diags))
    net = local_network(cfg, opts)
    if net is not None:
        entries.append((net, False))
    else:
        diags.warning(
            cfg.cluster.file, None,
            "local network could not be detected and no 'local_network' alias is set: "
            "management access is limited to the 'management' ipset",
        )
    return entries


def _link_addresses(addr: str, opts: CompileOptions) -> list[IpAddr]:
    try:
        return [ipaddress.ip_address(addr)]
    except ValueError:
        return list(opts.hostnames.get(addr.lower(), ()))


def local_network(cfg: PveConfig, opts: CompileOptions) -> Cidr | None:
    """``local_network``: the cluster alias if defined, else the detected network."""
    alias = cfg.cluster.aliases.get("local_network")
    return alias.cidr if alias is not None else opts.local_network


def _local_network_sets(table: Table, cfg: PveConfig, opts: CompileOptions) -> None:
    net = local_network(cfg, opts)
    for v6, typ in ((False, "ipv4_addr"), (True, "ipv6_addr")):
        name = "v6-local-network" if v6 else "v4-local-network"
        elems = [element(net)] if net is not None and (net.version == 6) == v6 else []
        table.sets[name] = Set(name, typ, ["interval"], True, elems)


def _cluster_network_sets(
    table: Table, cfg: PveConfig, opts: CompileOptions, diags: Diagnostics
) -> None:
    """Corosync peers on the links this node uses (admin guide §13.8.1: corosync only from the
    cluster network). Link addresses written as host names use the addresses the caller
    looked up for them (``opts.hostnames``, from /etc/hosts)."""
    local = next((n for n in cfg.corosync.nodes if n.name == cfg.nodename), None)
    v4: list[object] = []
    v6: list[object] = []
    if local is not None:
        for node in cfg.corosync.nodes:
            for link, addr in node.links.items():
                if link not in local.links:
                    continue
                addresses = _link_addresses(addr, opts)
                for ip in addresses:
                    (v4 if ip.version == 4 else v6).append(str(ip))
                if not addresses:
                    diags.warning("corosync.conf", None,
                                  f"node {node.name} link {link}: cannot resolve '{addr}' "
                                  "(not in /etc/hosts); corosync from it is not accepted")
    elif cfg.corosync.present:
        diags.warning("corosync.conf", None,
                      f"node '{cfg.nodename}' is not in the nodelist; no corosync peers")
    table.sets["v4-cluster-network"] = Set("v4-cluster-network", "ipv4_addr", ["interval"], True,
                                           sorted(set(v4), key=str))
    table.sets["v6-cluster-network"] = Set("v6-cluster-network", "ipv6_addr", ["interval"], True,
                                           sorted(set(v6), key=str))


def _group_chains(
    table: Table,
    group: SecurityGroup,
    target: Callable[[str, Direction], RuleTarget],
    diags: Diagnostics,
) -> None:
    for direction in Direction:
        chain = table.chain(f"group-{group.name}-{direction.value}")
        tgt = target(chain.name, direction)
        tgt.groups = frozenset()  # groups do not nest
        for rule in group.rules:
            chain.rules.extend(compile_rule(rule, tgt, diags))


def _ct_helpers(table: Table, cfg: PveConfig, diags: Diagnostics) -> None:
    """Attach conntrack helpers to new connections on their ports.

    Only the helper is attached: the control port itself is opened by the operator's own
    rule (admin guide §13.10.1), and the connections the helper expects are ``related`` and already
    accepted in ``default-in``.
    """
    defs = helper_defs()
    ct_in = table.chain("ct-in")
    for name in cfg.host.options.nf_conntrack_helpers:
        d = defs.get(name)
        if d is None:
            diags.warning(cfg.host.file, None,
                          f"unknown conntrack helper '{name}' ignored")
            continue
        obj = f"helper-{d.name}-{d.proto}"
        table.ct_helpers[obj] = CtHelper(obj, d.name, d.proto, "ip" if not d.v6 else "inet")
        rule = [x.match(x.meta("l4proto"), d.proto),
                x.match(x.payload("th", "dport"), d.port),
                x.match(x.ct("state"), x.set_literal(["new"]), "in")]
        if not d.v6:
            rule.insert(0, x.match(x.meta("nfproto"), "ipv4"))
        ct_in.add([*rule, x.ct_helper_set(obj)], DEFAULT_ORIGIN)


def _host_options(table: Table, cfg: PveConfig) -> None:
    o = cfg.host.options
    ratelimit = cfg.cluster.options.log_ratelimit
    opt_in = table.chain("option-in")
    opt_out = table.chain("option-out")
    origin = cfg.host.file
    opt_in.add([x.jump("allow-ndp-in" if o.ndp else "block-ndp-in")], origin)
    opt_out.add([x.jump("allow-ndp-out" if o.ndp else "block-ndp-out")], origin)
    if o.protection_synflood:
        opt_in.add([x.jump("block-synflood")], origin)
        rl = table.chain("ratelimit-synflood")
        for fam, sname in (("ip", "v4-synflood-limit"), ("ip6", "v6-synflood-limit")):
            lim = x.limit(o.protection_synflood_rate, "second", o.protection_synflood_burst,
                          inverse=True)
            rl.add([x.set_update(sname, x.payload(fam, "saddr"), [lim]), x.drop()], origin)
    if o.tcpflags:
        opt_in.add([x.jump("block-invalid-tcp")], origin)
        logs = log_statements(ratelimit, 0, o.tcp_flags_log_level, "log-invalid-tcp",
                              Verdict.DROP)
        if logs:
            table.chain("log-invalid-tcp").add(logs, origin)
    if o.nosmurfs:
        opt_in.add([x.jump("block-smurfs")], origin)
        logs = log_statements(ratelimit, 0, o.smurf_log_level, "log-smurfs", Verdict.DROP)
        if logs:
            table.chain("log-smurfs").add(logs, origin)
    if not o.nf_conntrack_allow_invalid:
        table.chain("invalid-conntrack").add([x.drop()], origin)


def _policy(table: Table, cfg: PveConfig, direction: Direction, tgt: RuleTarget) -> None:
    """End of ``cluster-<dir>``: noise dropped unlogged, then the logged policy verdict."""
    copts = cfg.cluster.options
    hopts = cfg.host.options
    policy = {
        Direction.IN: copts.policy_in,
        Direction.OUT: copts.policy_out,
        Direction.FORWARD: copts.policy_forward,
    }[direction]
    level = {
        Direction.IN: hopts.log_level_in,
        Direction.OUT: hopts.log_level_out,
        Direction.FORWARD: hopts.log_level_forward,
    }[direction]
    chain = table.chain(f"cluster-{direction.value}")
    origin = cfg.cluster.file
    if policy is not Verdict.ACCEPT and direction is Direction.IN:
        chain.add([x.jump("drop-noise")], origin)
    logs = log_statements(copts.log_ratelimit, 0, level or LogLevel.NOLOG, chain.name, policy)
    if logs:
        chain.add(logs, origin)
    chain.add([x.counter(), verdict_stmt(policy, tgt)], origin)
