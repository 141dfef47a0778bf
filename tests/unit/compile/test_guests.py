"""Guest-table compilation (``bridge proxmox-firewall-guests``): config text → nft objects.

Configs are built from the same texts an operator writes (``<vmid>.fw`` and the guest's
``.conf``), so each test reads like the situation it checks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pytest

from proxmox_fw.compile import CompileOptions, CompileResult, compile_config
from proxmox_fw.compile.guests import link_local
from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import Guest, GuestKind, PveConfig, VnetFw
from proxmox_fw.nft.objects import Table
from proxmox_fw.nft.render import render_table_commands
from proxmox_fw.parse.fwfile import (
    parse_cluster_fw,
    parse_guest_fw,
    parse_host_fw,
    parse_vnet_fw,
)
from proxmox_fw.parse.guestconf import parse_guest_conf

CLUSTER_ON = "[OPTIONS]\nenable: 1\n"
HOST_ON = "[OPTIONS]\nnftables: 1\n"
MAC0 = "BC:24:11:49:8D:75"
MAC1 = "BC:24:11:49:8D:76"
LL0 = "fe80::be24:11ff:fe49:8d75"  # EUI-64 link-local of MAC0
VM_CONF = f"net0: virtio={MAC0},bridge=vmbr0,firewall=1\n"


@dataclass(frozen=True)
class G:
    """One guest: its kind, ``<vmid>.fw`` text (None: no file) and ``.conf`` text."""

    kind: GuestKind = "qemu"
    fw: str | None = "[OPTIONS]\nenable: 1\n"
    conf: str = VM_CONF


def build(
    guests: dict[int, G] | None = None,
    cluster: str = CLUSTER_ON,
    host: str = HOST_ON,
    vnets: dict[str, str] | None = None,
) -> CompileResult:
    """Compile a node whose inputs are the given texts (loader semantics: no .fw file means
    a guest firewall that is off)."""
    diags = Diagnostics()
    parsed: dict[int, Guest] = {}
    for vmid, g in (guests or {}).items():
        conf_dir = "qemu-server" if g.kind == "qemu" else "lxc"
        nics = parse_guest_conf(g.conf, f"nodes/pve1/{conf_dir}/{vmid}.conf", g.kind, diags)
        kwargs: dict[str, Any] = {}
        if g.fw is not None:
            kwargs["fw"] = parse_guest_fw(g.fw, f"firewall/{vmid}.fw", diags)
        parsed[vmid] = Guest(vmid=vmid, kind=g.kind, node="pve1", nics=nics, **kwargs)
    vnet_fws: dict[str, VnetFw] = {
        name: parse_vnet_fw(text, f"sdn/firewall/{name}.fw", name, diags)
        for name, text in (vnets or {}).items()
    }
    cfg = PveConfig(
        nodename="pve1",
        cluster=parse_cluster_fw(cluster, "firewall/cluster.fw", diags),
        host=parse_host_fw(host, "nodes/pve1/host.fw", diags),
        guests=parsed,
        vnets=vnet_fws,
    )
    opts = CompileOptions(local_network=ipaddress.ip_interface("192.168.10.0/24"))
    return compile_config(cfg, opts, diags)


def guest_table(guests: dict[int, G], **kw: Any) -> Table:
    res = build(guests, **kw)
    assert [str(d) for d in res.diagnostics] == []
    return res.ruleset.guests


def exprs(table: Table, chain: str) -> list[list[Any]]:
    return [r.expr for r in table.chains[chain].rules]


def m(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def pl(proto: str, fld: str) -> dict[str, Any]:
    return {"payload": {"protocol": proto, "field": fld}}


def jump(target: str) -> dict[str, Any]:
    return {"jump": {"target": target}}


def goto(target: str) -> dict[str, Any]:
    return {"goto": {"target": target}}


ACCEPT: dict[str, Any] = {"accept": None}
DROP: dict[str, Any] = {"drop": None}
DO_REJECT = jump("do-reject")


def user_rules(table: Table, chain: str) -> list[list[Any]]:
    """The rules after the ``ct mark set`` rule (config rules and the policy)."""
    rules = exprs(table, chain)
    mark = next(i for i, r in enumerate(rules) if "mangle" in r[0])
    return rules[mark + 1:]


def without_counter(expr: list[Any]) -> list[Any]:
    return [s for s in expr if "counter" not in s]


# --- chains and dispatch -----------------------------------------------------------------


def test_guest_chains_start_with_the_pre_vm_jump() -> None:
    t = guest_table({100: G()})
    assert exprs(t, "guest-100-in")[0] == [jump("pre-vm-in")]
    # OUT: the MAC filter comes first, for every frame; conntrack's accept only before the
    # ipfilter, vital ICMP after it (see tests/fullkernel/test_audit_guest_spoofing.py)
    out = exprs(t, "guest-100-out")
    dhcp = out.index([jump("allow-dhcp-out")])
    assert out[:dhcp] and all(r[-1] == DROP and "ether" in repr(r) for r in out[:dhcp])
    assert [r for r in out if r[-1] != DROP][:4] == [
        [jump("allow-dhcp-out")], [jump("pre-vm-out")], [jump("allow-icmp")],
        [m(meta("protocol"), "arp", "!="), m({"ct": {"key": "state"}}, {"set": ["invalid"]}, "in"),
         jump("invalid-conntrack")],
    ]
    assert not t.chains["guest-100-in"].in_skeleton  # created (and flushed) by the batch


def test_map_elements_only_for_nics_with_firewall() -> None:
    conf = (f"net0: virtio={MAC0},bridge=vmbr0,firewall=1\n"
            f"net1: virtio={MAC1},bridge=vmbr0\n"
            f"net2: e1000=BC:24:11:00:00:02,bridge=vmbr1,firewall=1\n"
            f"net3: virtio=BC:24:11:00:00:03,bridge=vmbr1,firewall=0\n")
    t = guest_table({100: G(conf=conf)})
    assert t.maps["vm-map-in"].elements == [("tap100i0", goto("guest-100-in")),
                                            ("tap100i2", goto("guest-100-in"))]
    assert t.maps["vm-map-out"].elements == [("tap100i0", goto("guest-100-out")),
                                             ("tap100i2", goto("guest-100-out"))]


def test_container_ports_are_veth() -> None:
    conf = f"net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr={MAC0},ip=dhcp,type=veth\n"
    t = guest_table({200: G(kind="lxc", conf=conf)})
    assert t.maps["vm-map-in"].elements == [("veth200i0", goto("guest-200-in"))]
    assert t.maps["vm-map-out"].elements == [("veth200i0", goto("guest-200-out"))]


def test_guest_without_firewalled_nic_has_chains_but_no_map_elements() -> None:
    t = guest_table({100: G(conf=f"net0: virtio={MAC0},bridge=vmbr0\n")})
    assert "guest-100-in" in t.chains and "guest-100-out" in t.chains
    assert t.maps["vm-map-in"].elements == [] and t.maps["vm-map-out"].elements == []
    # nft refuses an empty element list: nothing is added to the maps, they are only flushed
    cmds = render_table_commands(t)
    assert not [c for c in cmds if "element" in c.get("add", {})
                and c["add"]["element"]["name"].startswith("vm-map")]
    assert {"flush": {"map": {"family": "bridge", "table": "proxmox-firewall-guests",
                              "name": "vm-map-in"}}} in cmds


def test_several_guests_each_get_their_own_chains_and_ports() -> None:
    ct_conf = f"net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr={MAC1},type=veth\n"
    t = guest_table({101: G(), 200: G(kind="lxc", conf=ct_conf)})
    assert {"guest-101-in", "guest-101-out", "guest-200-in", "guest-200-out"} <= set(t.chains)
    assert t.maps["vm-map-out"].elements == [("tap101i0", goto("guest-101-out")),
                                             ("veth200i0", goto("guest-200-out"))]


# --- enable ------------------------------------------------------------------------------


def test_disabled_guest_produces_nothing() -> None:
    res = build({100: G(fw="[OPTIONS]\nenable: 0\n[RULES]\nIN ACCEPT -p tcp\n"),
                 101: G(conf=f"net0: virtio={MAC1},bridge=vmbr0,firewall=1\n")})
    t = res.ruleset.guests
    assert t.enabled
    assert not [c for c in t.chains if c.startswith("guest-100")]
    assert not [s for s in t.sets if "guest-100" in s]
    assert ("tap100i0", goto("guest-100-in")) not in t.maps["vm-map-in"].elements


def test_guest_without_fw_file_produces_nothing() -> None:
    res = build({100: G(fw=None), 101: G(conf=f"net0: virtio={MAC1},bridge=vmbr0,firewall=1\n")})
    t = res.ruleset.guests
    assert not [c for c in t.chains if c.startswith("guest-100")]
    assert [k for k, _ in t.maps["vm-map-in"].elements] == ["tap101i0"]


def test_guest_firewall_is_off_by_default() -> None:
    res = build({100: G(fw="[RULES]\nIN ACCEPT -p tcp\n")})
    assert not res.ruleset.guests.enabled


def test_table_is_disabled_without_enabled_guest_or_vnet() -> None:
    res = build({100: G(fw="[OPTIONS]\nenable: 0\n")})
    assert not res.ruleset.guests.enabled
    cmds = render_table_commands(res.ruleset.guests)
    assert cmds[-1] == {"delete": {"table": {"family": "bridge",
                                             "name": "proxmox-firewall-guests"}}}


def test_table_is_disabled_when_the_cluster_firewall_is_off() -> None:
    res = build({100: G()}, cluster="[OPTIONS]\nenable: 0\n")
    assert not res.ruleset.guests.enabled


def test_guest_table_does_not_need_the_host_firewall() -> None:
    res = build({100: G()}, host="[OPTIONS]\nnftables: 1\nenable: 0\n")
    assert not res.ruleset.host.enabled
    assert res.ruleset.guests.enabled
    assert "guest-100-in" in res.ruleset.guests.chains


# --- options -----------------------------------------------------------------------------


def test_macfilter_is_on_by_default() -> None:
    t = guest_table({100: G()})
    out = exprs(t, "guest-100-out")
    port = m(meta("iifname"), "tap100i0")
    assert [port, m(pl("ether", "saddr"), MAC0.lower(), "!="), DROP] in out
    assert [port, m(meta("protocol"), "arp"), m(pl("arp", "saddr ether"), MAC0.lower(), "!="),
            DROP] in out


def test_macfilter_covers_every_firewalled_nic_with_its_own_mac() -> None:
    conf = (f"net0: virtio={MAC0},bridge=vmbr0,firewall=1\n"
            f"net1: virtio={MAC1},bridge=vmbr0,firewall=1\n"
            f"net2: virtio=BC:24:11:00:00:02,bridge=vmbr0\n")
    out = exprs(guest_table({100: G(conf=conf)}), "guest-100-out")
    macs = [(r[0]["match"]["right"], r[1]["match"]["right"]) for r in out
            if len(r) == 3 and r[1]["match"]["left"] == pl("ether", "saddr")]
    assert macs == [("tap100i0", MAC0.lower()), ("tap100i1", MAC1.lower())]


def test_macfilter_off() -> None:
    t = guest_table({100: G(fw="[OPTIONS]\nenable: 1\nmacfilter: 0\n")})
    text = repr(exprs(t, "guest-100-out"))
    assert "ether" not in text and MAC0.lower() not in text


@pytest.mark.parametrize(
    ("options", "in_jumps", "out_jumps"),
    [
        ("", ["allow-dhcp-in", "allow-ndp-in"],
         ["allow-dhcp-out", "allow-ndp-out", "block-ra-out"]),
        ("dhcp: 0\nndp: 0\nradv: 1\n", ["block-dhcp-in", "block-ndp-in"],
         ["block-dhcp-out", "block-ndp-out", "allow-ra-out"]),
        ("dhcp: 1\nndp: 0\n", ["allow-dhcp-in", "block-ndp-in"],
         ["allow-dhcp-out", "block-ndp-out", "block-ra-out"]),
    ],
)
def test_dhcp_ndp_radv_choose_allow_or_block_chains(
    options: str, in_jumps: list[str], out_jumps: list[str]
) -> None:
    t = guest_table({100: G(fw=f"[OPTIONS]\nenable: 1\n{options}")})

    def option_jumps(chain: str) -> list[str]:
        return [r[0]["jump"]["target"] for r in exprs(t, chain)
                if len(r) == 1 and "jump" in r[0] and r[0]["jump"]["target"].startswith(
                    ("allow-", "block-")) and r[0]["jump"]["target"] != "allow-icmp"]

    assert option_jumps("guest-100-in") == in_jumps
    assert option_jumps("guest-100-out") == out_jumps


def test_arp_from_the_guest_is_accepted_after_the_filters() -> None:
    out = exprs(guest_table({100: G()}), "guest-100-out")
    arp = out.index([m(meta("protocol"), "arp"), ACCEPT])
    mac = next(i for i, r in enumerate(out) if m(pl("ether", "saddr"), MAC0.lower(), "!=") in r)
    assert mac < arp


def test_ct_mark_is_the_vmid_in_both_directions_before_the_rules() -> None:
    t = guest_table({100: G(fw="[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 22\n"
                                "OUT ACCEPT -p tcp -dport 80\n")})
    mark = [{"mangle": {"key": {"ct": {"key": "mark"}}, "value": 100}}]
    for chain, port in (("guest-100-in", 22), ("guest-100-out", 80)):
        rules = exprs(t, chain)
        assert rules.count(mark) == 1
        rule = next(i for i, r in enumerate(rules)
                    if m(pl("th", "dport"), port) in r)
        assert rules.index(mark) < rule


# --- rules -------------------------------------------------------------------------------


def test_iface_matches_the_guest_port_on_the_right_side() -> None:
    conf = (f"net0: virtio={MAC0},bridge=vmbr0,firewall=1\n"
            f"net1: virtio={MAC1},bridge=vmbr0,firewall=1\n")
    fw = ("[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -i net1 -p tcp -dport 22\n"
          "OUT DROP -i net0 -p tcp -dport 25\n")
    t = guest_table({100: G(fw=fw, conf=conf)})
    # towards the guest the frame leaves through its port, from the guest it enters by it
    assert without_counter(user_rules(t, "guest-100-in")[0]) == [
        m(meta("oifname"), "tap100i1"), m(meta("l4proto"), "tcp"), m(pl("th", "dport"), 22),
        ACCEPT]
    assert without_counter(user_rules(t, "guest-100-out")[0]) == [
        m(meta("iifname"), "tap100i0"), m(meta("l4proto"), "tcp"), m(pl("th", "dport"), 25),
        DROP]


def test_iface_of_an_unknown_nic_skips_the_rule_with_a_diagnostic() -> None:
    res = build({100: G(fw="[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -i net5 -p tcp\n")})
    diags = list(res.diagnostics)
    assert [d.line for d in diags] == [4]  # once: the OUT chain does not look at IN rules
    assert "net5" in str(diags[0])
    assert without_counter(user_rules(res.ruleset.guests, "guest-100-in")[0]) == [DROP]


def test_reject_is_drop_towards_the_guest_and_do_reject_from_it() -> None:
    fw = ("[OPTIONS]\nenable: 1\npolicy_in: REJECT\npolicy_out: REJECT\n[RULES]\n"
          "IN REJECT -p udp -dport 53\nOUT REJECT -p udp -dport 53\n")
    t = guest_table({100: G(fw=fw)})
    # guest IN runs from postrouting, where the kernel refuses a bridge reject
    assert [r[-1] for r in user_rules(t, "guest-100-in")] == [DROP, DROP]
    assert [r[-1] for r in user_rules(t, "guest-100-out")] == [DO_REJECT, DO_REJECT]


def test_default_policies_drop_in_and_accept_out() -> None:
    t = guest_table({100: G()})
    assert without_counter(exprs(t, "guest-100-in")[-1]) == [DROP]
    assert without_counter(exprs(t, "guest-100-out")[-1]) == [ACCEPT]


def test_policy_log_prefixes() -> None:
    fw = ("[OPTIONS]\nenable: 1\nlog_level_in: info\nlog_level_out: err\npolicy_out: REJECT\n")
    t = guest_table({100: G(fw=fw)})
    limit = {"limit": {"rate": 1, "per": "second", "burst": 5}}
    assert exprs(t, "guest-100-in")[-2] == [
        limit, {"log": {"prefix": ":100:6:guest-100-in: DROP: ", "group": 0}}]
    assert exprs(t, "guest-100-out")[-2] == [
        limit, {"log": {"prefix": ":100:3:guest-100-out: REJECT: ", "group": 0}}]
    assert without_counter(exprs(t, "guest-100-out")[-1]) == [DO_REJECT]


def test_no_policy_log_rule_without_log_level() -> None:
    t = guest_table({100: G()})
    assert "log" not in repr(exprs(t, "guest-100-in"))


def test_rule_log_uses_the_vmid_and_config_verdict() -> None:
    fw = "[OPTIONS]\nenable: 1\n[RULES]\nIN REJECT -p tcp -dport 23 -log debug\n"
    t = guest_table({100: G(fw=fw)})
    log_rule, verdict_rule = user_rules(t, "guest-100-in")[:2]
    assert log_rule[-1] == {"log": {"prefix": ":100:7:guest-100-in: REJECT: ", "group": 0}}
    assert verdict_rule[-1] == DROP


def test_rules_of_one_direction_stay_in_that_chain() -> None:
    fw = "[OPTIONS]\nenable: 1\n[RULES]\nOUT DROP -p tcp -dport 25\n"
    t = guest_table({100: G(fw=fw)})
    assert "dport" not in repr(user_rules(t, "guest-100-in"))
    assert "dport" in repr(user_rules(t, "guest-100-out"))


def test_disabled_rule_is_left_out() -> None:
    fw = "[OPTIONS]\nenable: 1\n[RULES]\n|IN ACCEPT -p tcp -dport 22\n"
    t = guest_table({100: G(fw=fw)})
    assert len(user_rules(t, "guest-100-in")) == 1  # only the policy


# --- ipsets and aliases ------------------------------------------------------------------


def test_guest_ipsets_are_scoped_by_vmid() -> None:
    fw = ("[OPTIONS]\nenable: 1\n[IPSET web]\n10.0.0.0/24\n!10.0.0.5\nfd00::/64\n"
          "[RULES]\nIN ACCEPT -source +web -p tcp -dport 443\n")
    t = guest_table({100: G(fw=fw)})
    # the exception is carved out of the set (hash:net nomatch: the longest prefix decides)
    assert t.sets["v4-guest-100/web"].elements == [{"range": ["10.0.0.0", "10.0.0.4"]},
                                                   {"range": ["10.0.0.6", "10.0.0.255"]}]
    assert t.sets["v4-guest-100/web-nomatch"].elements == ["10.0.0.5"]
    assert t.sets["v6-guest-100/web"].elements == [{"prefix": {"addr": "fd00::", "len": 64}}]
    assert t.sets["v6-guest-100/web-nomatch"].elements == []
    rules = user_rules(t, "guest-100-in")[:2]
    assert m(pl("ip", "saddr"), "@v4-guest-100/web") in rules[0]
    assert m(pl("ip", "saddr"), "@v4-guest-100/web-nomatch", "!=") in rules[0]
    assert m(pl("ip6", "saddr"), "@v6-guest-100/web") in rules[1]


def test_guest_alias_and_cluster_alias() -> None:
    cluster = CLUSTER_ON + "[ALIASES]\nnet2 172.16.200.0/24\n"
    fw = ("[OPTIONS]\nenable: 1\n[ALIASES]\nanalias 123.123.123.123\n"
          "[RULES]\nIN ACCEPT -source guest/analias -dest dc/net2\n")
    t = guest_table({100: G(fw=fw)}, cluster=cluster)
    assert without_counter(user_rules(t, "guest-100-in")[0]) == [
        m(pl("ip", "saddr"), "123.123.123.123"),
        m(pl("ip", "daddr"), {"prefix": {"addr": "172.16.200.0", "len": 24}}), ACCEPT]


def test_cluster_ipsets_and_management_exist_in_the_guest_table() -> None:
    cluster = CLUSTER_ON + "[IPSET trusted]\n10.1.0.0/16\n"
    fw = "[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -source +dc/trusted\n"
    t = guest_table({100: G(fw=fw)}, cluster=cluster)
    assert t.sets["v4-dc/trusted"].elements == [{"prefix": {"addr": "10.1.0.0", "len": 16}}]
    assert "v4-dc/management" in t.sets
    assert m(pl("ip", "saddr"), "@v4-dc/trusted") in user_rules(t, "guest-100-in")[0]


def test_missing_ipset_skips_the_rule_with_a_diagnostic() -> None:
    res = build({100: G(fw="[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -source +nope\n")})
    diags = list(res.diagnostics)
    assert len(diags) == 1 and "nope" in str(diags[0]) and diags[0].line == 4
    assert without_counter(user_rules(res.ruleset.guests, "guest-100-in")[0]) == [DROP]


# --- ipfilter ----------------------------------------------------------------------------

CT_CONF = (f"net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr={MAC0},"
           "ip=192.0.2.10/24,ip6=fd80::1235/64,type=veth\n")


def ipfilter_rules(t: Table, chain: str, port: str) -> list[list[Any]]:
    return ipfilter_rules_of(exprs(t, chain), port)


def ipfilter_rules_of(rules: list[list[Any]], port: str) -> list[list[Any]]:
    return [r for r in rules if r[0] == m(meta("iifname"), port) and "ipfilter" in repr(r)]


def test_link_local_is_the_eui64_address_of_the_mac() -> None:
    assert str(link_local(MAC0).ip) == LL0
    assert link_local(MAC0).network.prefixlen == 128
    assert str(link_local("00:00:00:00:00:01").ip) == "fe80::200:ff:fe00:1"


def test_explicit_ipfilter_set_is_active_even_with_ipfilter_off() -> None:
    fw = "[OPTIONS]\nenable: 1\nipfilter: 0\n[IPSET ipfilter-net0]\n10.0.0.5\n!10.0.0.6\n"
    t = guest_table({100: G(fw=fw)})
    assert t.sets["v4-guest-100/ipfilter-net0"].elements == ["10.0.0.5"]
    assert t.sets["v4-guest-100/ipfilter-net0-nomatch"].elements == ["10.0.0.6"]
    # the link-local address is always allowed, so NDP keeps working (admin guide §13.11)
    assert t.sets["v6-guest-100/ipfilter-net0"].elements == [LL0]
    port = m(meta("iifname"), "tap100i0")
    assert ipfilter_rules(t, "guest-100-out", "tap100i0") == [
        [port, m(pl("ip", "saddr"), "@v4-guest-100/ipfilter-net0", "!="), DROP],
        [port, m(pl("ip", "saddr"), "@v4-guest-100/ipfilter-net0-nomatch"), DROP],
        [port, m(pl("ip6", "saddr"), "@v6-guest-100/ipfilter-net0", "!="), DROP],
        [port, m(pl("ip6", "saddr"), "@v6-guest-100/ipfilter-net0-nomatch"), DROP],
        [port, m(meta("protocol"), "arp"),
         m(pl("arp", "saddr ip"), "@v4-guest-100/ipfilter-net0", "!="), DROP],
    ]


def test_explicit_ipfilter_set_of_a_container_gets_its_addresses() -> None:
    fw = "[OPTIONS]\nenable: 1\n[IPSET ipfilter-net0]\n10.0.0.5\n"
    t = guest_table({100: G(kind="lxc", fw=fw, conf=CT_CONF)})
    assert t.sets["v4-guest-100/ipfilter-net0"].elements == ["10.0.0.5", "192.0.2.10"]
    assert t.sets["v6-guest-100/ipfilter-net0"].elements == ["fd80::1235", LL0]


def test_implicit_ipfilter_of_a_container_holds_exact_addresses() -> None:
    t = guest_table({100: G(kind="lxc", fw="[OPTIONS]\nenable: 1\nipfilter: 1\n",
                            conf=CT_CONF)})
    # the configured address, not its network (upstream 1.2.0)
    assert t.sets["v4-guest-100/ipfilter-net0"].elements == ["192.0.2.10"]
    assert t.sets["v6-guest-100/ipfilter-net0"].elements == ["fd80::1235", LL0]
    assert t.sets["v4-guest-100/ipfilter-net0-nomatch"].elements == []
    assert len(ipfilter_rules(t, "guest-100-out", "veth100i0")) == 5


def test_implicit_ipfilter_of_a_vm_holds_only_the_link_local_address() -> None:
    t = guest_table({100: G(fw="[OPTIONS]\nenable: 1\nipfilter: 1\n")})
    assert t.sets["v4-guest-100/ipfilter-net0"].elements == []
    assert t.sets["v6-guest-100/ipfilter-net0"].elements == [LL0]


def test_container_with_dhcp_gets_only_the_link_local_address() -> None:
    conf = f"net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr={MAC0},ip=dhcp,ip6=auto,type=veth\n"
    t = guest_table({100: G(kind="lxc", fw="[OPTIONS]\nenable: 1\nipfilter: 1\n", conf=conf)})
    assert t.sets["v4-guest-100/ipfilter-net0"].elements == []
    assert t.sets["v6-guest-100/ipfilter-net0"].elements == [LL0]


def test_dhcp_passes_before_the_ipfilter_and_ndp_only_after_it() -> None:
    fw = "[OPTIONS]\nenable: 1\nipfilter: 1\nradv: 1\n"
    out = exprs(guest_table({100: G(fw=fw)}), "guest-100-out")
    first_filter = out.index(ipfilter_rules_of(out, "tap100i0")[0])
    last_filter = out.index(ipfilter_rules_of(out, "tap100i0")[-1])
    # a DHCP discover comes from 0.0.0.0, which no ipfilter set holds (as in pve-firewall)
    assert out.index([jump("allow-dhcp-out")]) < first_filter
    # NDP and RA from a spoofed source must not get around the filter
    assert last_filter < out.index([jump("allow-ndp-out")])
    assert last_filter < out.index([jump("allow-ra-out")])
    assert last_filter < out.index([m(meta("protocol"), "arp"), ACCEPT])


def test_no_ipfilter_without_option_or_set() -> None:
    t = guest_table({100: G()})
    assert not [s for s in t.sets if "ipfilter" in s]
    assert ipfilter_rules(t, "guest-100-out", "tap100i0") == []


def test_ipfilter_only_for_firewalled_nics() -> None:
    conf = (f"net0: virtio={MAC0},bridge=vmbr0,firewall=1\n"
            f"net1: virtio={MAC1},bridge=vmbr0\n")
    t = guest_table({100: G(fw="[OPTIONS]\nenable: 1\nipfilter: 1\n", conf=conf)})
    assert {s for s in t.sets if "ipfilter" in s} == {
        "v4-guest-100/ipfilter-net0", "v4-guest-100/ipfilter-net0-nomatch",
        "v6-guest-100/ipfilter-net0", "v6-guest-100/ipfilter-net0-nomatch"}
    assert "tap100i1" not in repr(exprs(t, "guest-100-out"))


def test_ipfilter_set_of_a_nic_without_firewall_is_a_plain_set() -> None:
    # A rule may reference it; the set must exist or nft rejects the whole batch.
    conf = (f"net0: virtio={MAC0},bridge=vmbr0,firewall=1\n"
            f"net1: virtio={MAC1},bridge=vmbr0\n")
    fw = ("[OPTIONS]\nenable: 1\n[IPSET ipfilter-net1]\n10.0.0.7\n"
          "[RULES]\nIN ACCEPT -source +ipfilter-net1\n")
    t = guest_table({100: G(fw=fw, conf=conf)})
    assert t.sets["v4-guest-100/ipfilter-net1"].elements == ["10.0.0.7"]
    assert t.sets["v6-guest-100/ipfilter-net1"].elements == []  # no link-local: not a filter
    assert "tap100i1" not in repr(exprs(t, "guest-100-out"))
    assert m(pl("ip", "saddr"), "@v4-guest-100/ipfilter-net1") in user_rules(t, "guest-100-in")[0]


# --- IPS ---------------------------------------------------------------------------------


def test_ips_turns_accepts_into_queue_with_bypass() -> None:
    fw = ("[OPTIONS]\nenable: 1\nips: 1\nips_queues: 2\n[RULES]\n"
          "IN ACCEPT -p tcp -dport 22\nIN DROP -p tcp -dport 23\n")
    t = guest_table({100: G(fw=fw)})
    queue = {"queue": {"num": 2, "flags": ["bypass"]}}
    assert [r[-1] for r in user_rules(t, "guest-100-in")] == [queue, DROP, DROP]
    assert exprs(t, "guest-100-out")[-1][-1] == queue  # the accept policy too


def test_ips_queue_range_fans_out() -> None:
    t = guest_table({100: G(fw="[OPTIONS]\nenable: 1\nips: 1\nips_queues: 0:3\n")})
    assert exprs(t, "guest-100-out")[-1][-1] == {
        "queue": {"num": {"range": [0, 3]}, "flags": ["bypass", "fanout"]}}


def test_without_ips_accept_stays_accept() -> None:
    t = guest_table({100: G(fw="[OPTIONS]\nenable: 1\nips_queues: 2\n")})
    assert exprs(t, "guest-100-out")[-1][-1] == ACCEPT


# --- security groups ---------------------------------------------------------------------

GROUP_CLUSTER = CLUSTER_ON + (
    "[group web]\nIN ACCEPT -p tcp -dport 80\nIN REJECT -p tcp -dport 81\n"
    "OUT REJECT -p tcp -dport 25\n"
)


def test_group_reference_jumps_to_the_group_chain_of_each_direction() -> None:
    fw = "[OPTIONS]\nenable: 1\n[RULES]\nGROUP web -i net0\n"
    t = guest_table({100: G(fw=fw)}, cluster=GROUP_CLUSTER)
    assert user_rules(t, "guest-100-in")[0] == [m(meta("oifname"), "tap100i0"),
                                                jump("group-web-in")]
    assert user_rules(t, "guest-100-out")[0] == [m(meta("iifname"), "tap100i0"),
                                                 jump("group-web-out")]


def test_group_chains_in_the_guest_table() -> None:
    t = guest_table({100: G()}, cluster=GROUP_CLUSTER)
    assert {"group-web-in", "group-web-out", "group-web-forward"} <= set(t.chains)
    # reject toward a guest (postrouting) is a drop; from a guest (prerouting) do-reject
    assert [r[-1] for r in exprs(t, "group-web-in")] == [ACCEPT, DROP]
    assert [r[-1] for r in exprs(t, "group-web-out")] == [DO_REJECT]
    assert exprs(t, "group-web-forward") == []


def test_group_rule_with_an_interface_is_host_only() -> None:
    cluster = CLUSTER_ON + "[group mgmt]\nIN ACCEPT -i eth0 -p tcp -dport 22\nIN DROP -p tcp\n"
    res = build({100: G()}, cluster=cluster)
    # a shared group chain cannot name a guest's netN; a host interface matches no guest port
    assert [r[-1] for r in exprs(res.ruleset.guests, "group-mgmt-in")] == [DROP]
    assert exprs(res.ruleset.host, "group-mgmt-in")[0][0] == m(meta("iifname"), "eth0")
    diags = list(res.diagnostics)
    # said at the line: pve-firewall refuses it
    assert [(d.line, d.severity) for d in diags] == [(4, Severity.WARNING)]
    assert "eth0" in diags[0].message and "pve-firewall refuses" in diags[0].message


def test_missing_group_is_a_diagnostic_and_the_rule_is_skipped() -> None:
    res = build({100: G(fw="[OPTIONS]\nenable: 1\n[RULES]\nGROUP nosuch\n")})
    diags = list(res.diagnostics)
    assert diags and all("nosuch" in str(d) and d.line == 4 for d in diags)
    assert {d.severity for d in diags} == {Severity.ERROR}
    t = res.ruleset.guests
    assert "nosuch" not in repr(exprs(t, "guest-100-in")) + repr(exprs(t, "guest-100-out"))


# --- conntrack ---------------------------------------------------------------------------


def test_invalid_conntrack_drops_unless_allowed() -> None:
    t = guest_table({100: G()})
    assert exprs(t, "invalid-conntrack") == [[DROP]]
    t = guest_table({100: G()}, host=HOST_ON + "nf_conntrack_allow_invalid: 1\n")
    assert exprs(t, "invalid-conntrack") == []


# --- layer2_protocols --------------------------------------------------------------------


def test_layer2_protocols_filter_follows_the_mac_filter() -> None:
    fw = "[OPTIONS]\nenable: 1\nlayer2_protocols: ARP,802_1Q,IPX\n"
    rules = exprs(guest_table({100: G(fw=fw)}), "guest-100-out")
    l2 = [m(pl("ether", "type"), {"set": [0x0800, 0x0806, 0x8100, 0x8137, 0x86DD]}, "!="), DROP]
    assert l2 in rules
    at = rules.index(l2)
    # after the MAC filter (every frame), before DHCP and the accept of established traffic
    assert any("ether" in repr(r) and "saddr" in repr(r) for r in rules[:at])
    assert rules[at + 1] == [jump("allow-dhcp-out")]


def test_no_layer2_filter_without_the_option() -> None:
    rules = exprs(guest_table({100: G()}), "guest-100-out")
    assert not any("'type'" in repr(r) for r in rules)
