"""The guest table ``bridge proxmox-firewall-guests``: VM/CT ports and vnet firewalls.

Present only when some guest or vnet firewall is enabled (upstream deletes it otherwise).
Guest chains are entered by port name through ``vm-map-in``/``vm-map-out`` and always end
in their policy verdict.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable

from proxmox_fw.compile.context import CompileOptions
from proxmox_fw.compile.host import firewall_active, management_entries
from proxmox_fw.compile.ipsets import (
    Entry,
    add_sets,
    cluster_ipset_sets,
    resolve_entries,
    sdn_entries,
)
from proxmox_fw.compile.loglevel import log_statements
from proxmox_fw.compile.memo import CompileMemo, Inputs
from proxmox_fw.compile.refs import RefScope
from proxmox_fw.compile.rules import RuleTarget, compile_rule, verdict_stmt
from proxmox_fw.compile.vnets import vnet_chain
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import (
    Direction,
    Guest,
    GuestOptions,
    LogLevel,
    Nic,
    PveConfig,
    Rule,
    SecurityGroup,
)
from proxmox_fw.nft import expr as x
from proxmox_fw.nft.objects import BRIDGE, FILLED_CHAINS, GUEST_TABLE, Chain, Json, Table

VLAN_TPIDS = (0x8100, 0x88A8)  # 802.1Q and 802.1ad tags
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD


def guests_needed(cfg: PveConfig, opts: CompileOptions) -> bool:
    if not firewall_active(cfg, opts):
        return False
    return any(guest_enabled(g) for g in cfg.guests.values()) or any(
        v.options.enable for v in cfg.vnets.values()
    )


def guest_enabled(guest: Guest) -> bool:
    return guest.fw.present and guest.fw.options.enable


def firewalled_nics(guest: Guest) -> list[Nic]:
    return [n for n in sorted(guest.nics.values(), key=lambda n: n.index) if n.firewall]


def link_local(mac: str) -> ipaddress.IPv6Interface:
    """The EUI-64 link-local address NDP uses (admin guide §13.6.3, §13.11)."""
    octets = [int(o, 16) for o in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return ipaddress.IPv6Interface(f"fe80::{':'.join(groups)}/128")


def compile_guests(
    cfg: PveConfig, opts: CompileOptions, diags: Diagnostics, memo: CompileMemo | None = None
) -> Table:
    memo = memo if memo is not None else CompileMemo(enabled=False)
    table = Table(BRIDGE, GUEST_TABLE)
    if not guests_needed(cfg, opts):
        table.enabled = False
        return table
    for name in FILLED_CHAINS[BRIDGE]:
        table.chain(name)
    for name in ("vm-map-in", "vm-map-out", "bridge-map"):
        table.map(name)
    if not cfg.host.options.nf_conntrack_allow_invalid:
        table.chain("invalid-conntrack").add([x.drop()], cfg.host.file)

    sdn = sdn_entries(cfg.sdn, cfg.ipam)
    dc_scope = RefScope(cfg.cluster, sdn_sets=frozenset(sdn))
    for name, entries in sdn.items():
        add_sets(table, f"sdn/{name}", entries)
    add_sets(table, "dc/management", management_entries(cfg, opts, dc_scope, diags))
    if "blacklist" not in cfg.cluster.ipsets:
        add_sets(table, "dc/blacklist", [])
    for key, ipset in cfg.cluster.ipsets.items():
        if key != "management":
            cluster_ipset_sets(table, key, ipset, dc_scope, diags, memo)

    groups = frozenset(cfg.cluster.groups)
    ratelimit = cfg.cluster.options.log_ratelimit
    for group in cfg.cluster.groups.values():
        rules = _guest_group_rules(group)
        for direction in Direction:
            chain = table.chain(f"group-{group.name}-{direction.value}")
            tgt = RuleTarget(chain.name, direction, dc_scope, ratelimit,
                             iface_key=_iface_key(direction), iface_map=lambda _n: None,
                             reject=_reject(direction))
            for rule in rules:
                chain.rules.extend(compile_rule(rule, tgt, diags))

    # A guest's piece reads its own files, cluster.fw (aliases, ipsets, groups, options)
    # and the names of the SDN sets.
    sdn_names = tuple(sdn)
    for vmid in sorted(cfg.guests):
        guest = cfg.guests[vmid]
        if guest_enabled(guest):
            inputs = Inputs(same=(guest.fw, cfg.cluster, *guest.nics.values()),
                            equal=(guest.kind, guest.node, tuple(guest.nics), sdn_names))
            memo.piece(("guest", vmid), inputs, table, diags,
                       functools.partial(_guest_piece, cfg, guest, groups, sdn))
    for name in sorted(cfg.vnets):
        vnet = cfg.vnets[name]
        if vnet.options.enable:
            # Reached from the bridge forward hook, where the kernel refuses reject.
            vnet_chain(table, cfg, vnet, dc_scope, groups, diags, reject=x.drop)
            table.map("bridge-map").elements.append(
                (x.concat(vnet.name, vnet.name), x.jump(f"bridge-{vnet.name}"))
            )
    return table


def _guest_group_rules(group: SecurityGroup) -> list[Rule]:
    """The group's rules as the guest table uses them.

    A group chain is shared by every guest, so an interface in a group rule cannot be a
    guest's ``netN``: it names a host interface, which no guest port matches. Such a rule is
    left out here (the parser warned at its line; the host table applies it).
    """
    return [rule for rule in group.rules if rule.iface is None]


def _iface_key(direction: Direction) -> str:
    # Towards the guest the frame leaves through the guest's port (oifname); from the guest
    # it enters through it (iifname).
    return "oifname" if direction is Direction.IN else "iifname"


def _reject(direction: Direction) -> Callable[[], Json]:
    # The kernel allows a bridge reject only on the prerouting/input path; guest IN runs in
    # postrouting, so REJECT there is a drop (admin guide §13.13, as upstream). Running the IN
    # rules early, in prerouting by destination MAC, is no way out: the bridge has not
    # chosen the egress port yet, so such a reject also answers for a guest the frame
    # would never reach (a stopped VM, another VLAN), and host-originated or routed
    # frames never pass a bridge prerouting hook at all.
    if direction is Direction.OUT:
        return lambda: x.jump("do-reject")
    return x.drop


def _guest_piece(cfg: PveConfig, guest: Guest, groups: frozenset[str],
                 sdn: dict[str, list[Entry]], table: Table, diags: Diagnostics) -> None:
    _guest(table, cfg, guest, groups, sdn, diags)


def _guest(
    table: Table,
    cfg: PveConfig,
    guest: Guest,
    groups: frozenset[str],
    sdn: dict[str, list[Entry]],
    diags: Diagnostics,
) -> None:
    vmid = guest.vmid
    opts = guest.fw.options
    fwfile = guest.fw.file
    scope = RefScope(cfg.cluster, guest.fw, vmid, frozenset(sdn))
    nics = firewalled_nics(guest)
    ports = {n.key: guest.port_name(n.index) for n in nics}

    # The ipfilter sets of firewalled NICs are built by _ipfilter; any other ipset (also an
    # ``ipfilter-netN`` of a NIC without firewall) is plain, and must exist for rules
    # referencing it, or nft rejects the whole batch.
    ipfilter_sets = {f"ipfilter-{n.key}" for n in nics}
    for key, ipset in guest.fw.ipsets.items():
        if key not in ipfilter_sets:
            add_sets(table, f"guest-{vmid}/{key}", resolve_entries(ipset, scope, diags),
                     ipset.comment)

    out = table.chain(f"guest-{vmid}-out")
    inn = table.chain(f"guest-{vmid}-in")
    inn.add([x.jump("pre-vm-in")], fwfile)

    for nic in nics:
        if nic.unparsed:  # fail closed (see Nic.unparsed)
            out.add([x.match(x.meta("iifname"), ports[nic.key]), x.drop()], str(nic.origin))
    if opts.macfilter:
        for nic in nics:
            if nic.mac:
                port = x.match(x.meta("iifname"), ports[nic.key])
                mac = nic.mac.lower()
                out.add([port, x.match(x.payload("ether", "saddr"), mac, "!="), x.drop()],
                        str(nic.origin))
                out.add([port, x.match(x.meta("protocol"), "arp"),
                         x.match(x.payload("arp", "saddr ether"), mac, "!="), x.drop()],
                        str(nic.origin))
    if opts.layer2_protocols is not None:
        out.add(_layer2_filter(opts.layer2_protocols), fwfile)
    out.add([x.jump("allow-dhcp-out" if opts.dhcp else "block-dhcp-out")], fwfile)
    inn.add([x.jump("allow-dhcp-in" if opts.dhcp else "block-dhcp-in")], fwfile)
    # DHCP (from 0.0.0.0) passes before the ipfilter, as in pve-firewall; NDP and RA only
    # after it: the set holds the link-local address so that NDP passes it (admin guide §13.6.3),
    # so NDP cannot bypass the anti-spoofing filter.
    # The MAC filter above holds for every frame, and vital ICMP is accepted only after the
    # MAC and IP filters: accepting an ICMP error or a packet of a known connection first
    # let a guest send frames with a foreign source MAC, which the bridge then learnt on
    # the guest's port. Packets of accepted connections still skip the IP filter, as in
    # pve-firewall (its conntrack rule precedes the tap chains).
    out.add([x.jump("pre-vm-out")], fwfile)
    for nic in nics:
        _ipfilter(table, out, guest, nic, ports[nic.key], scope, diags)
    out.add([x.jump("allow-icmp")], fwfile)
    out.add([x.match(x.meta("protocol"), "arp", "!="),
             x.match(x.ct("state"), x.set_literal(["invalid"]), "in"),
             x.jump("invalid-conntrack")], fwfile)
    out.add([x.jump("allow-ndp-out" if opts.ndp else "block-ndp-out")], fwfile)
    inn.add([x.jump("allow-ndp-in" if opts.ndp else "block-ndp-in")], fwfile)
    out.add([x.jump("allow-ra-out" if opts.radv else "block-ra-out")], fwfile)
    out.add([x.match(x.meta("protocol"), "arp"), x.accept()], fwfile)

    ratelimit = cfg.cluster.options.log_ratelimit
    for direction, chain in ((Direction.IN, inn), (Direction.OUT, out)):
        chain.add([x.mangle(x.ct("mark"), vmid)], fwfile)
        accept = _accept_stmt(opts)
        tgt = RuleTarget(
            chain=chain.name,
            direction=direction,
            scope=scope,
            ratelimit=ratelimit,
            vmid=vmid,
            iface_key=_iface_key(direction),
            iface_map=ports.get,
            reject=_reject(direction),
            groups=groups,
            accept=accept,
        )
        for rule in guest.fw.rules:
            chain.rules.extend(compile_rule(rule, tgt, diags))
        policy = opts.policy_in if direction is Direction.IN else opts.policy_out
        level = opts.log_level_in if direction is Direction.IN else opts.log_level_out
        logs = log_statements(ratelimit, vmid, level or LogLevel.NOLOG, chain.name, policy)
        if logs:
            chain.add(logs, fwfile)
        chain.add([x.counter(), verdict_stmt(policy, tgt)], fwfile)

    if ports:
        for port in ports.values():
            table.map("vm-map-in").elements.append((port, x.goto(inn.name)))
            table.map("vm-map-out").elements.append((port, x.goto(out.name)))


def _layer2_filter(allowed: list[int]) -> Json:
    """``layer2_protocols``: the guest may send only these ethertypes, plus IPv4 and IPv6,
    which pve-firewall's ebtables accepted before this filter (the IP rules judge them).

    ``ether type`` is the outer type as ebtables saw it: a VLAN-tagged frame is 802_1Q
    (0x8100) or S-TAG (0x88a8) whatever it carries, so tagged frames pass only when that
    is listed; their inner packet still meets the IP filter, which drops stacked tags.
    """
    types = sorted({ETH_P_IP, ETH_P_IPV6, *allowed})
    return [x.match(x.payload("ether", "type"), x.set_literal(list(types)), "!="), x.drop()]


def _accept_stmt(opts: GuestOptions) -> Callable[[], Json] | None:
    """With ``ips: 1`` accepted traffic goes to NFQUEUE (admin guide §13.10.2); ``bypass`` keeps it
    flowing when no IPS listens."""
    if not opts.ips:
        return None
    lo, hi = opts.ips_queues or (0, 0)
    return lambda: x.queue(lo, hi, bypass=True, fanout=hi > lo)


def _ipfilter(
    table: Table,
    out: Chain,
    guest: Guest,
    nic: Nic,
    port: str,
    scope: RefScope,
    diags: Diagnostics,
) -> None:
    """Drop traffic from the NIC whose source is not in its ``ipfilter-netN`` set.

    The set is active when defined, or implicitly with ``ipfilter: 1`` (admin guide §13.6.3); it
    always also holds the MAC's link-local address and, for containers, their configured
    addresses.
    """
    ipset = guest.fw.ipsets.get(f"ipfilter-{nic.key}")
    if ipset is None and not guest.fw.options.ipfilter:
        return
    entries: list[Entry] = resolve_entries(ipset, scope, diags) if ipset else []
    if nic.mac:
        entries.append((link_local(nic.mac), False))
    for addr in (nic.ip, nic.ip6):
        if addr is not None:
            entries.append((ipaddress.ip_interface(addr.ip), False))
    base = f"guest-{guest.vmid}/ipfilter-{nic.key}"
    add_sets(table, base, entries)
    origin = str(ipset.origin) if ipset else str(nic.origin)
    iif = x.match(x.meta("iifname"), port)
    # The kernel moves one VLAN tag into metadata before the bridge; a frame that still
    # carries one (stacked tags) hides its IP header from the matches below, so it would
    # pass unchecked: the filter cannot vouch for it, drop it.
    out.add([iif, x.match(x.meta("protocol"), x.set_literal(list(VLAN_TPIDS))), x.drop()],
            origin)
    for fam, v in (("ip", "v4"), ("ip6", "v6")):
        left = x.payload(fam, "saddr")
        out.add([iif, x.match(left, x.set_ref(f"{v}-{base}"), "!="), x.drop()], origin)
        out.add([iif, x.match(left, x.set_ref(f"{v}-{base}-nomatch")), x.drop()], origin)
    arp_left = x.payload("arp", "saddr ip")
    out.add([iif, x.match(x.meta("protocol"), "arp"),
             x.match(arp_left, x.set_ref(f"v4-{base}"), "!="), x.drop()], origin)
