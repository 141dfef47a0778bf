"""Our whole ``compile`` output for the upstream integration test's input, against upstream's.

Both tables are compared mechanically by :mod:`tests.conformance.upstream_compare`. Every
difference must be either fixed or listed below with its reason; each entry matches one
difference exactly, and an entry that no longer matches anything fails the test too (the
list must not go stale). Run ``python -m tests.conformance.upstream_compare`` for the
report.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conformance.upstream_compare import (
    TREE,
    Deliberate,
    Difference,
    compare,
    compare_fixture,
    explain,
    format_report,
    our_commands,
    read_tables,
    rule_text,
    skeleton_chains,
    upstream_commands,
)

pytestmark = pytest.mark.skipif(
    not (TREE / "expected.json").is_file(), reason=f"conformance data not found at {TREE}"
)

# --- the deliberate differences, with their reasons ----------------------------------------

STALE_CHAINS = (
    "upstream deletes the guest-/group- chains of an earlier run that `nft list chains` "
    "showed at load time (existing-chains.json); our apply replaces both tables whole in "
    "one transaction, so a stale chain cannot survive and needs no delete"
)
BLACKLIST = (
    "admin guide §13.6.2: traffic from the standard ipset 'blacklist' is dropped by every host's "
    "and guest's firewall; the sets always exist so the skeleton can reference them"
)
COROSYNC = (
    "admin guide §13.8.1: corosync (udp 5405-5412) is accepted from the cluster network only; the "
    "set holds the corosync.conf link addresses (README 'Behaviour'), upstream accepts any"
)
LOCAL_NETWORK = (
    "pve-firewall (where the seed is silent): the host may reach the management ports of "
    "local_network (22, 3128, 5900-5999, 8006) whatever its output policy; the set holds it"
)
DROP_NOISE = (
    "admin guide §13.8.1: SMB/UPnP/DNS-reply noise is dropped unlogged as part of a DROP/REJECT "
    "input policy, after the user's rules rather than before them (README 'Behaviour')"
)
SYNFLOOD = (
    "upstream serializes the set statement's 'stmt' as an object; nft 1.0.6 then silently "
    "installs the update without the limit (notes §6.1) and newer nft rejects the batch. "
    "Ours is the list libnftables expects: same limit, really installed"
)
HELPER_DEAD_ACCEPT = (
    "upstream's `ct state == [new, established]` is an exact compare against the OR of "
    "both bits and never matches (notes §6.2, runtime-verified); the dead rule is gone on "
    "purpose (README 'Behaviour': the helper option does not open the control port)"
)
HELPER_MATCH_ACCEPT = (
    "upstream's `ct helper \"<name>\" accept`: README 'Behaviour' - the helper option only "
    "attaches the helper; the control port is opened by the operator's own rule and the "
    "related data connections are accepted by conntrack in default-in. Packets of "
    "established helper connections are already accepted there too, so nothing is lost"
)
HELPER_SET = (
    "same helper assignment, restated: the kernel assigns a helper only to a connection "
    "that is not yet confirmed (so 'ct state new' excludes nothing it would act on), and a "
    "helper object of l3proto ip assigns nothing to an IPv6 connection (so 'meta nfproto "
    "ipv4' excludes nothing either)"
)
IPFILTER_ARP_IN = (
    "dead upstream rule: inbound ARP is accepted in pre-vm-in before any guest rule (notes "
    "§6.3), so an ARP check in guest-<vmid>-in can never run; it is left out"
)
IPFILTER_STACKED_VLAN = (
    "anti-spoofing fix (measured in the VM): the kernel moves one VLAN tag into metadata "
    "before the bridge, but a frame with stacked tags hides its IP header from the ipfilter "
    "matches and passed unchecked; the filtered NIC drops such frames"
)
IPFILTER_ORDER = (
    "the guest's DHCP rule comes before the ipfilter, as in pve-firewall (Firewall.pm "
    "ruleset_create_vm_chain: the DHCP rule goes to PVEFW-SET-ACCEPT-MARK before the MAC and "
    "IP filters): a guest whose ipfilter is active can still get a lease, its DHCP discover "
    "comes from 0.0.0.0; upstream's order drops it. NDP and RA stay after the ipfilter"
)
IPFILTER_IMPLICIT = (
    "admin guide §13.6.3 / pve-firewall: an ipfilter-netN set implicitly holds the NIC's EUI-64 "
    "link-local address and, for containers, their configured ip/ip6; upstream uses an "
    "explicit set as written, so this empty v6 set drops all IPv6 from the NIC, NDP included"
)
GUEST_OUT_FILTERS_FIRST = (
    "admin guide §13.6.3: the MAC filter holds for every frame the guest sends and the IP filter "
    "for every packet that is not part of an accepted connection (as in pve-firewall), so "
    "vital ICMP is accepted in guest-<vmid>-out after both filters (upstream: `jump "
    "allow-icmp` in vm-out, ahead of the guest chain), and pre-vm-out accepts "
    "established/related after the MAC filter (upstream: first) while invalid packets are "
    "dropped after the vital ICMP. Upstream's order accepts an ICMP error or a packet of a "
    "known connection with a foreign source MAC, and the bridge learns that MAC on the "
    "guest's port (tests/fullkernel/test_audit_guest_spoofing.py)"
)
GROUP_FORWARD_IFACE = (
    "upstream silently ignores a GROUP with -i in the forward direction (rule.rs:223-225), "
    "dropping the group's FORWARD rules for all traffic; in the inet forward hook "
    "`iifname` is the routed packet's input interface, so we keep the reference as written "
    "(group-network1-forward is empty here)"
)

# (name, protocol, port, IPv4 only), from upstream's ct_helper.json
HELPERS = (
    ("amanda", "udp", 10080, False), ("ftp", "tcp", 21, False), ("irc", "tcp", 6667, True),
    ("netbios-ns", "udp", 137, True), ("pptp", "tcp", 1723, True), ("sane", "tcp", 6566, False),
    ("sip", "udp", 5060, False), ("snmp", "udp", 161, True), ("tftp", "udp", 69, False),
)


def _helper_entries() -> list[Deliberate]:
    out: list[Deliberate] = []
    for name, proto, port, v4 in HELPERS:
        match = f"meta l4proto == {proto} th dport == {port}"
        family = "[ip]" if v4 else ""
        setter = f'ct helper set "helper-{name}-{proto}"'
        ours = (f"ct state == new meta l4proto == {proto} "
                + ("meta nfproto == ipv4 " if v4 else "") + f"th dport == {port} {setter}")
        out += [
            Deliberate(Difference("inet", "missing-rule", "ct-in",
                                  f"ct state == [established, new] {match} accept"),
                       HELPER_DEAD_ACCEPT),
            Deliberate(Difference("inet", "missing-rule", "ct-in",
                                  f"ct helper{family} == {name} accept"), HELPER_MATCH_ACCEPT),
            Deliberate(Difference("inet", "missing-rule", "ct-in", f"{match} {setter}"),
                       HELPER_SET),
            Deliberate(Difference("inet", "extra-rule", "ct-in", ours), HELPER_SET),
        ]
    return out


def _stale_chain_entries() -> list[Deliberate]:
    names = ("group-network1-in", "group-network1-out", "guest-800001-in", "guest-800001-out",
             "guest-90001-in", "guest-90001-out", "guest-90002-in", "guest-90002-out")
    return [Deliberate(Difference("bridge", "delete-chain", n), STALE_CHAINS) for n in names]


def _set_entries(family: str, names: tuple[str, ...], reason: str) -> list[Deliberate]:
    return [Deliberate(Difference(family, "extra-set", n), reason) for n in names]


_BLACKLIST_SETS = ("v4-dc/blacklist", "v4-dc/blacklist-nomatch", "v6-dc/blacklist",
                   "v6-dc/blacklist-nomatch")
_SYNFLOOD_UP = "update @{v}-synflood-limit {{ {f} saddr stmt-as-object(limit rate over " \
    "400/second burst 1337) }} drop"
_SYNFLOOD_OURS = "update @{v}-synflood-limit {{ {f} saddr limit rate over 400/second burst " \
    "1337 }} drop"

DELIBERATE: list[Deliberate] = [
    *_stale_chain_entries(),
    *_set_entries("bridge", _BLACKLIST_SETS, BLACKLIST),
    *_set_entries("inet", _BLACKLIST_SETS, BLACKLIST),
    *_set_entries("inet", ("v4-cluster-network", "v6-cluster-network"), COROSYNC),
    *_set_entries("inet", ("v4-local-network", "v6-local-network"), LOCAL_NETWORK),
    Deliberate(Difference("inet", "extra-rule", "cluster-in", "jump drop-noise"), DROP_NOISE),
    *[Deliberate(Difference("inet", kind, "ratelimit-synflood", text.format(v=v, f=f)),
                 SYNFLOOD)
      for v, f in (("v4", "ip"), ("v6", "ip6"))
      for kind, text in (("missing-rule", _SYNFLOOD_UP), ("extra-rule", _SYNFLOOD_OURS))],
    *_helper_entries(),
    *[Deliberate(Difference("bridge", "missing-rule", "guest-100-in",
                            f"arp daddr ip != @v4-guest-100/ipfilter-{nic} "
                            f"meta oifname == veth100i{nic[-1]} drop"), IPFILTER_ARP_IN)
      for nic in ("net1", "net3")],
    Deliberate(Difference("bridge", "order", "guest-100-out",
                          "moved: jump allow-dhcp-out"),
               IPFILTER_ORDER),
    *[Deliberate(Difference("bridge", "extra-rule", "guest-100-out",
                            f"meta iifname == veth100i{n} meta protocol == {{33024, 34984}} drop"),
                 IPFILTER_STACKED_VLAN)
      for n in (1, 3)],
    Deliberate(Difference("bridge", "order", "guest-101-out", "moved: jump pre-vm-out"),
               GUEST_OUT_FILTERS_FIRST),
    *[Deliberate(Difference("bridge", "extra-rule", f"guest-{vmid}-out", text),
                 GUEST_OUT_FILTERS_FIRST)
      for vmid in (100, 101)
      for text in ("jump allow-icmp",
                   "ct state == invalid meta protocol != arp jump invalid-conntrack")],
    Deliberate(Difference("bridge", "set-elements", "v6-guest-100/ipfilter-net1",
                          "only upstream []; only ours ['fd80::1234', "
                          "'fe80::be24:11ff:fe4d:b0ff']"), IPFILTER_IMPLICIT),
    Deliberate(Difference("inet", "extra-rule", "cluster-forward",
                          "meta iifname == eth0 jump group-network1-forward"),
               GROUP_FORWARD_IFACE),
]


# --- the comparison of the fixture -----------------------------------------------------------


def test_no_unexplained_difference_with_upstream() -> None:
    result = explain(compare_fixture(), DELIBERATE)
    report = format_report(result)
    print(report)  # shown with -s / -rP, and on failure
    assert not result.unexplained, report
    assert not result.unused, report


def test_deliberate_entries_are_unique() -> None:
    diffs = [d.diff for d in DELIBERATE]
    assert len(diffs) == len(set(diffs))


def test_both_tables_were_read() -> None:
    """A sanity check of the reader against upstream's counts (notes §5)."""
    up = read_tables(upstream_commands())
    assert sum(len(r) for r in up["inet"].rules.values()) == 66
    assert sum(len(r) for r in up["bridge"].rules.values()) == 49
    assert (len(up["inet"].sets), len(up["bridge"].sets)) == (28, 40)
    assert len(up["inet"].ct_helpers) == 9
    assert sum(sum(c.values()) for c in up["bridge"].map_elements.values()) == 4
    assert not up["inet"].unknown and not up["bridge"].unknown
    ours = read_tables(our_commands())
    assert not ours["inet"].unknown and not ours["bridge"].unknown


def test_guest_in_reject_is_drop_on_both_sides() -> None:
    """100.fw ``IN REJECT -p udp --dport 443``: not a difference, the same drop in both."""
    rule = "meta l4proto == udp th dport == 443 drop"
    assert rule in read_tables(upstream_commands())["bridge"].rules["guest-100-in"]
    assert rule in read_tables(our_commands())["bridge"].rules["guest-100-in"]


# --- the comparer itself -------------------------------------------------------------------

SKEL = {"inet": skeleton_chains("inet"), "bridge": skeleton_chains("bridge")}


def _rule_cmd(chain: str, expr: list[Any], family: str = "bridge") -> dict[str, Any]:
    table = "proxmox-firewall" if family == "inet" else "proxmox-firewall-guests"
    return {"add": {"rule": {"family": family, "table": table, "chain": chain, "expr": expr}}}


def test_upstream_against_itself_has_no_difference() -> None:
    up = upstream_commands()
    assert compare(up, copy.deepcopy(up), SKEL) == []


def test_a_changed_verdict_is_found() -> None:
    up = upstream_commands()
    ours = copy.deepcopy(up)
    rule = next(c["add"]["rule"] for c in ours if "rule" in c.get("add", {})
                and c["add"]["rule"]["chain"] == "guest-101-in"
                and c["add"]["rule"]["expr"][-1] == {"accept": None})
    rule["expr"][-1] = {"drop": None}
    kinds = sorted((d.kind, d.where) for d in compare(up, ours, SKEL))
    assert kinds == [("extra-rule", "guest-101-in"), ("missing-rule", "guest-101-in")]


def test_missing_set_element_map_element_and_chain_are_found() -> None:
    up = upstream_commands()

    def dropped(c: dict[str, Any]) -> bool:
        add, flush = c.get("add", {}), c.get("flush", {})
        return (add.get("element", {}).get("name") in ("v4-dc/network1", "vm-map-in")
                or "guest-101-out" in (add.get("chain", {}).get("name"),
                                       flush.get("chain", {}).get("name"),
                                       add.get("rule", {}).get("chain")))

    ours = [c for c in copy.deepcopy(up) if not dropped(c)]
    found = {(d.family, d.kind, d.where) for d in compare(up, ours, SKEL)}
    assert ("inet", "set-elements", "v4-dc/network1") in found
    assert ("bridge", "set-elements", "v4-dc/network1") in found
    assert ("bridge", "missing-map-element", "vm-map-in") in found
    assert ("bridge", "missing-chain", "guest-101-out") in found
    assert ("bridge", "missing-rule", "guest-101-out") in found


def test_dangling_jump_and_order_are_found() -> None:
    a = [_rule_cmd("c", [{"jump": {"target": "allow-dhcp-in"}}]),
         _rule_cmd("c", [{"drop": None}])]
    b = [*reversed(a), _rule_cmd("c", [{"jump": {"target": "nowhere"}}])]
    found = compare(a, b, {"bridge": {"c", "allow-dhcp-in"}})
    assert [d.kind for d in found if d.where == "c" and d.kind == "order"] == ["order"]
    assert Difference("bridge", "dangling-jump", "c", "nowhere") in found


@pytest.mark.parametrize(
    ("upstream", "ours"),
    [
        # host bits and /32
        ([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                     "right": {"prefix": {"addr": "172.16.0.1", "len": 32}}}}, {"accept": None}],
         [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                     "right": "172.16.0.1"}}, {"counter": None}, {"accept": None}]),
        ([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                     "right": {"prefix": {"addr": "192.168.0.1", "len": 24}}}}, {"drop": None}],
         [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                     "right": {"prefix": {"addr": "192.168.0.0", "len": 24}}}}, {"drop": None}]),
        # ICMP names, and the l4proto dependency of a payload match
        ([{"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}},
                     "right": "nd-neighbor-solicit"}}, {"accept": None}],
         [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "ipv6-icmp"}},
          {"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}},
                     "right": 135}}, {"accept": None}]),
        # 'in' a one-element set
        ([{"match": {"op": "==", "left": {"ct": {"key": "state"}}, "right": "new"}},
          {"accept": None}],
         [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": {"set": ["new"]}}},
          {"accept": None}]),
    ],
)
def test_equivalent_spellings_compare_equal(upstream: list[Any], ours: list[Any]) -> None:
    assert rule_text(upstream) == rule_text(ours)


def test_json_array_of_flags_is_not_a_set() -> None:
    dead = [{"match": {"op": "==", "left": {"ct": {"key": "state"}},
                       "right": ["new", "established"]}}, {"accept": None}]
    live = [{"match": {"op": "in", "left": {"ct": {"key": "state"}},
                       "right": {"set": ["new", "established"]}}}, {"accept": None}]
    assert rule_text(dead) != rule_text(live)
