"""Every log prefix the compiler emits parses with the logger's prefix rule (admin guide
§13.9): host, cluster and guest rules and policies, vnets, the tcpflags/smurfs options and
security groups, long names included, and the chain it names leads back to one chain."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from proxmox_fw.compile.loglevel import log_chain_label
from proxmox_fw.logger.format import MAX_CHAIN_LEN, Prefix
from proxmox_fw.logger.format import parse_prefix as parse_bytes
from proxmox_fw.nft.objects import Table
from tests.unit.compile.test_guests import G, build

SHORT, LONG, LONG_TWIN = "web", "averyveryverylongname", "averyveryverylongnamf"
HUGE = "g" + "x" * 70
GROUPS = (SHORT, LONG, LONG_TWIN, HUGE)


def _group(name: str) -> str:
    return (f"[group {name}]\nIN ACCEPT -p tcp -dport 80 -log info\n"
            f"OUT DROP -p tcp -dport 25 -log err\nFORWARD REJECT -p udp -dport 53 -log debug\n")


CLUSTER = (
    "[OPTIONS]\nenable: 1\npolicy_in: DROP\npolicy_out: REJECT\npolicy_forward: DROP\n"
    "[RULES]\nIN ACCEPT -p tcp -dport 22 -log notice\n"
    + "".join(f"GROUP {g}\n" for g in GROUPS)
    + "\n" + "".join(_group(g) for g in GROUPS)
)
HOST = (
    "[OPTIONS]\nnftables: 1\nlog_level_in: info\nlog_level_out: warning\n"
    "log_level_forward: debug\ntcpflags: 1\ntcp_flags_log_level: crit\nnosmurfs: 1\n"
    "smurf_log_level: alert\n[RULES]\nIN DROP -p tcp -dport 23 -log emerg\n"
    "FORWARD ACCEPT -p icmp -log info\n"
)
GUEST = (
    "[OPTIONS]\nenable: 1\nlog_level_in: info\nlog_level_out: err\npolicy_out: REJECT\n"
    "[RULES]\nIN ACCEPT -p tcp -dport 443 -log info\nOUT REJECT -p tcp -dport 25 -log debug\n"
    + "".join(f"GROUP {g}\n" for g in GROUPS)
)
VNET = "[OPTIONS]\nenable: 1\nlog_level_forward: info\n[RULES]\nFORWARD DROP -p tcp -log err\n"


def parse_prefix(prefix: str) -> Prefix:
    """The prefix as the logger splits it (its own function, on the bytes nft sends)."""
    return parse_bytes(prefix.encode())


def log_prefixes(table: Table) -> Iterator[tuple[str, str]]:
    """(chain, prefix) of every log statement in ``table``."""
    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "log" in node and isinstance(node["log"], dict):
                yield node["log"]["prefix"]
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)

    for chain in table.chains.values():
        for rule in chain.rules:
            for prefix in walk(rule.expr):
                yield chain.name, prefix


def test_every_emitted_prefix_parses_and_names_its_chain() -> None:
    res = build({100: G(fw=GUEST), 999999999: G(fw=GUEST)}, cluster=CLUSTER, host=HOST,
                vnets={"vnet1": VNET, "averyveryverylongvnetname": VNET})
    assert not [d for d in res.diagnostics if "log" in str(d)], list(res.diagnostics)
    found: list[tuple[str, str, str]] = []
    for table in res.ruleset.tables:
        found += [(table.family, chain, prefix) for chain, prefix in log_prefixes(table)]

    chains_of_label: dict[str, set[str]] = defaultdict(set)
    for family, chain, prefix in found:
        p = parse_prefix(prefix)
        assert p.chain != "-", f"{family} {chain}: {prefix!r} falls back to VMID 0, chain '-'"
        assert p.chain == log_chain_label(chain)
        assert len(p.chain) <= MAX_CHAIN_LEN
        assert p.rest in ("ACCEPT: ", "DROP: ", "REJECT: "), prefix
        if chain.startswith("guest-"):
            assert p.vmid == int(chain.split("-")[1]), prefix
        else:
            assert p.vmid == 0, prefix
        chains_of_label[p.chain].add(chain)
    # One label, one chain: a line in the log leads back to where it was logged.
    assert all(len(c) == 1 for c in chains_of_label.values()), chains_of_label

    where = {(family, chain) for family, chain, _ in found}
    for family in ("inet", "bridge"):
        for g in GROUPS:
            for d in ("in", "out", "forward"):
                assert (family, f"group-{g}-{d}") in where
        for vnet in ("vnet1", "averyveryverylongvnetname"):
            assert (family, f"bridge-{vnet}") in where
    for chain in ("host-in", "host-forward", "cluster-in", "cluster-out", "cluster-forward",
                  "log-invalid-tcp", "log-smurfs"):
        assert ("inet", chain) in where
    for vmid in (100, 999999999):
        for d in ("in", "out"):
            assert ("bridge", f"guest-{vmid}-{d}") in where
    levels = {parse_prefix(prefix).level for _, _, prefix in found}
    assert levels == set(range(8))


def test_long_names_keep_their_start_and_direction() -> None:
    a = log_chain_label(f"group-{LONG}-forward")
    b = log_chain_label(f"group-{LONG_TWIN}-forward")
    assert a != b and len(a) == len(b) == MAX_CHAIN_LEN
    assert a.startswith("group-averyve~") and a.endswith("-forward")
    assert log_chain_label(f"group-{LONG}-in").endswith("-in")
    assert log_chain_label(f"group-{LONG}-forward") == a  # stable across compilations
    # Names the logger already accepts are left alone (the 18-character names pve-firewall
    # allows fit "group-<name>-out" exactly).
    for name in ("host-in", "guest-999999999-out", f"group-{'n' * 18}-out"):
        assert log_chain_label(name) == name


def test_characters_the_rule_forbids_are_replaced() -> None:
    label = log_chain_label("odd name:x")
    assert parse_prefix(f":0:6:{label}: DROP: ").chain == label and ":" not in label
