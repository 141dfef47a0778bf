"""Every ``.fw`` file of the shared conformance suites parses; only intended errors appear."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import (
    AliasRef,
    IcmpType,
    IpList,
    IpRange,
    IpsetRef,
    LogLevel,
    LogRateLimit,
    PortRange,
    Verdict,
)
from proxmox_fw.parse import parse_cluster_fw, parse_guest_fw, parse_host_fw, parse_vnet_fw

CONFORMANCE = (Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance").resolve()

# Lines the suites deliberately get wrong (file relative to the conformance dir).
INTENDED: dict[str, list[tuple[int, Severity]]] = {
    # "rule with dport but missing protocol - should be ignored"
    "pve-sim/test-errors1/pve/firewall/100.fw": [(8, Severity.ERROR)],
    # nonexistent alias/ipset with -dport but no -p: rejected at parse time already
    "pve-sim/test-errors2/pve/firewall/100.fw": [(7, Severity.ERROR), (8, Severity.ERROR)],
    "pve-sim/test-errors3/pve/nodes/pve1/host.fw": [(4, Severity.ERROR)],
    # "unknown option - should be skipped"
    "pve-sim/test-errors4/pve/firewall/100.fw": [(3, Severity.WARNING)],
    # a range inside an address list: Rust takes it, pve-firewall refuses it (said)
    "upstream-integration/pve/firewall/100.fw": [(20, Severity.WARNING)],
}


def _fw_files() -> list[Path]:
    return sorted(CONFORMANCE.rglob("*.fw")) if CONFORMANCE.is_dir() else []


def _parse(path: Path) -> tuple[Any, Diagnostics]:
    pve = next(p for p in path.parents if p.name == "pve")
    rel = str(path.relative_to(pve))
    text = path.read_text(encoding="utf-8")
    diags = Diagnostics()
    if path.name == "cluster.fw":
        return parse_cluster_fw(text, rel, diags), diags
    if path.name == "host.fw":
        return parse_host_fw(text, rel, diags), diags
    if rel.startswith("sdn/firewall/"):
        return parse_vnet_fw(text, rel, path.stem, diags), diags
    return parse_guest_fw(text, rel, diags), diags


pytestmark = pytest.mark.skipif(not CONFORMANCE.is_dir(),
                                reason=f"conformance data not found at {CONFORMANCE}")


def test_all_suites_are_present() -> None:
    suites = {p.relative_to(CONFORMANCE).parts[:2] for p in _fw_files()}
    assert ("upstream-integration", "pve") in suites
    assert len({s for s in suites if s[0] == "pve-sim"}) == 13
    assert all(str(f) in {str(p.relative_to(CONFORMANCE)) for p in _fw_files()}
               for f in INTENDED)


@pytest.mark.parametrize(
    "path", _fw_files(), ids=lambda p: str(p.relative_to(CONFORMANCE))
)
def test_conformance_file_parses(path: Path) -> None:
    model, diags = _parse(path)
    rel = str(path.relative_to(CONFORMANCE))
    got = [(d.line, d.severity) for d in diags if d.severity is not Severity.INFO]
    assert got == INTENDED.get(rel, []), [str(d) for d in diags]
    assert all(d.file == str(path.relative_to(next(p for p in path.parents
                                                  if p.name == "pve"))) for d in diags)
    if hasattr(model, "present"):
        assert model.present


def _load(rel: str) -> Any:
    model, _ = _parse(CONFORMANCE / rel)
    return model


def test_upstream_cluster_fw_contents() -> None:
    fw = _load("upstream-integration/pve/firewall/cluster.fw")
    assert fw.options.enable is True
    assert fw.options.log_ratelimit == LogRateLimit(enable=True, rate=2, burst=12)
    assert sorted(fw.aliases) == ["local_network", "network1", "network2"]
    assert fw.ipsets["network1"].entries[0].address == AliasRef(scope="dc", name="network1")
    assert fw.ipsets["management"].entries[0].address == ipaddress.ip_interface("127.0.0.1/8")
    kinds = [(r.kind, r.group, r.iface) for r in fw.rules]
    assert kinds[0] == ("group", "network1", "eth0")
    assert fw.rules[2].dest == IpsetRef(scope=None, name="network1")
    assert fw.rules[3].icmp_type == IcmpType(v6=True, type=3, code=0)
    assert fw.rules[4].icmp_type == IcmpType(v6=False, type=3, code=1)
    assert fw.rules[5].icmp_type == IcmpType(v6=False, type=10)
    assert [r.source for r in fw.groups["network1"].rules] == [
        AliasRef(scope="dc", name="network1"), AliasRef(scope=None, name="network1")
    ]


def test_upstream_guest_100_contents() -> None:
    fw = _load("upstream-integration/pve/firewall/100.fw")
    assert fw.options.policy_out is Verdict.REJECT
    assert fw.options.log_level_in is LogLevel.CRIT
    assert fw.options.macfilter is False
    rule = fw.rules[1]
    assert isinstance(rule.source, IpList)
    assert rule.source.entries[1] == IpRange(start=ipaddress.ip_address("127.0.0.1"),
                                             end=ipaddress.ip_address("127.255.255.0"))
    assert rule.dport == [PortRange(lo=123, hi=123), PortRange(lo=222, hi=333)]
    assert rule.sport == [PortRange(lo=80, hi=80)]
    assert fw.rules[2].icmp_type == IcmpType(v6=False, type=8)
    assert fw.rules[2].log is LogLevel.INFO


def test_upstream_host_fw_contents() -> None:
    fw = _load("upstream-integration/pve/nodes/pve1/host.fw")
    assert fw.options.nftables is True
    assert len(fw.options.nf_conntrack_helpers) == 9
    assert [r.macro for r in fw.rules[:3]] == ["DNS", "DHCPv6", "DHCPfwd"]
    assert fw.rules[3].icmp_type == IcmpType(v6=True, type=135)
    assert fw.rules[7].source == IpsetRef(scope="sdn", name="guest-ipam-101")


def test_pve_sim_specials() -> None:
    basic = _load("pve-sim/test-basic1/pve/firewall/100.fw")
    assert [r.icmp_type for r in basic.rules[1:3]] == [
        IcmpType(v6=False, type=0), IcmpType(v6=False, type=3, code=1)
    ]
    ipset1 = _load("pve-sim/test-ipset1/pve/firewall/cluster.fw")
    assert sorted(ipset1.ipsets) == ["blacklist", "dmzhosts", "management", "myipset"]
    assert ipset1.ipsets["myipset"].entries[3].address == AliasRef(scope=None,
                                                                   name="mynetworkalias")
    group1 = _load("pve-sim/test-group1/pve/firewall/cluster.fw")
    assert sorted(group1.groups) == ["group1", "group2", "group3"]
    assert len(group1.groups["group1"].rules) == 4
    errors1 = _load("pve-sim/test-errors1/pve/firewall/100.fw")
    assert [r.dport for r in errors1.rules] == [[PortRange(lo=82, hi=82)]]
