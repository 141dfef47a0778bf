"""The pve-sim loader, its defaults and ids, and every case's packet on the real topology."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import pvesim
from tests.harness.probe import TIME_SCALE, ProbeError, probe_stats
from tests.harness.pvesim import Case, load_cases, parse_case
from tests.harness.topology import Topology

ALL = pvesim.all_cases()
BY_ID = {c.id: c for c in ALL}


def test_every_suite_loads_with_unique_ids() -> None:
    assert len(pvesim.suites()) == 13
    assert len(BY_ID) == len(ALL)
    raw_lines = sum(
        len([t for t in (pvesim.suite_dir(s) / "cases.jsonl").read_text().splitlines() if t])
        for s in pvesim.suites()
    )
    assert raw_lines == 142  # README: 13 suites, 142 cases (before expansion)


def test_explicit_case_and_its_defaults() -> None:
    case = BY_ID["test-basic1:1"]  # ct200 -> host, dport 22, ACCEPT
    assert (case.src_zone, case.dst_zone, case.proto, case.dport) == ("ct200", "host", "tcp", 22)
    assert (case.source, case.dest) == ("100.100.1.2", "172.16.1.2")
    assert case.action == "ACCEPT" and not case.expanded and not case.multicast
    assert case.pve_dir == pvesim.PVE_SIM_ROOT / "test-basic1" / "pve"
    from_host = BY_ID["test-basic1:35"]  # host -> outside
    assert (from_host.source, from_host.dest) == ("172.16.1.2", "100.200.3.4")


def test_case_without_to_is_expanded() -> None:
    # test-group1 line 4: from host, source 192.168.2.1, no "to"
    ids = [c.id for c in ALL if c.suite == "test-group1" and c.line == 4]
    assert ids == [
        "test-group1:4:host->outside",
        "test-group1:4:host->nfvm",
        "test-group1:4:host->vm100",
        "test-group1:4:host->ct200",
    ]
    assert all(BY_ID[i].source == "192.168.2.1" for i in ids)
    assert BY_ID["test-group1:4:host->ct200"].dest == "100.200.3.4"


def test_case_without_from_is_expanded() -> None:
    cases = [c for c in ALL if c.suite == "test-unconfigured" and c.line == 1]  # to ct200
    assert [c.src_zone for c in cases] == ["host", "outside", "nfvm", "vm100"]
    assert {c.source for c in cases} == {"172.16.1.2", "100.100.1.2"}
    assert BY_ID["test-unconfigured:1:host->ct200"].source == "172.16.1.2"


def test_multicast_icmp_and_labels() -> None:
    mc = BY_ID["test-default-rules1:16"]
    assert mc.multicast and mc.dest == "239.192.158.83" and mc.proto == "udp"
    assert not BY_ID["test-default-rules1:15"].multicast
    icmp = BY_ID["test-basic1:25"]
    assert (icmp.proto, icmp.dport) == ("icmp", "host-unreachable")
    v6 = BY_ID["test-basic1:26"]  # icmpv6 without addresses: IPv6 defaults
    assert v6.v6 and ":" in v6.source and ":" in v6.dest
    assert BY_ID["test-basic1:16"].label == "vm2vm"


def test_parse_case_rejects_what_it_cannot_send() -> None:
    with pytest.raises(ValueError, match="unknown case keys"):
        parse_case("s", {"from": "host", "to": "outside", "action": "DROP", "line": 1, "x": 1})
    with pytest.raises(ValueError, match="unicast"):
        parse_case("s", {"to": "host", "action": "DROP", "line": 1, "srctype": "BROADCAST"})
    with pytest.raises(KeyError):
        parse_case("s", {"from": "host", "to": "outside", "action": "MAYBE", "line": 1})


def test_host_side() -> None:
    assert pvesim.host_side(BY_ID["test-basic1:32"])  # outside -> host
    assert pvesim.host_side(BY_ID["test-basic1:59"])  # vmbr0/eth0 -> host
    assert not pvesim.host_side(BY_ID["test-basic1:1"])  # ct200 -> host
    assert not pvesim.host_side(BY_ID["test-basic1:56"])  # outside -> nfvm


def test_project_inapplicable_list_names_real_cases() -> None:
    listed = pvesim.load_inapplicable()
    assert pvesim.unknown_ids(listed, ALL) == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('["test-basic1:1"]\nreason = ""\n', "empty reason"),
        ('["test-basic1:1"]\nwhy = "x"\n', "needs reason"),
        ('["test-basic1:1"]\nreason = "x"\nsection = "y"\n', "unknown keys"),
    ],
)
def test_inapplicable_format_errors(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "inapplicable.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        pvesim.load_inapplicable(path)


def test_inapplicable_entries(tmp_path: Path) -> None:
    path = tmp_path / "inapplicable.toml"
    path.write_text('["test-basic1:1"]\nreason = "because"\n["no-such:1"]\nreason = "typo"\n')
    listed = pvesim.load_inapplicable(path)
    assert listed == {"test-basic1:1": "because", "no-such:1": "typo"}
    assert pvesim.unknown_ids(listed, ALL) == ["no-such:1"]


def test_ensure_applied_applies_once_per_suite() -> None:
    calls: list[Path] = []
    topo = Topology()  # never built: the apply callable below touches nothing
    for suite in ["test-basic1", "test-basic1", "test-ipset1", "test-basic1"]:
        pvesim.ensure_applied(topo, suite, lambda pve, _t: calls.append(pve))
    assert [p.parent.name for p in calls] == ["test-basic1", "test-ipset1", "test-basic1"]
    assert all(p.name == "pve" and (p / ".vmlist").is_file() for p in calls)

    def failing(pve: Path, _t: Topology) -> None:
        raise RuntimeError("apply failed")

    with pytest.raises(RuntimeError):
        pvesim.ensure_applied(topo, "test-ipset2", failing)
    assert topo.applied_suite is None  # a failed apply is retried next time


# Cases whose packet cannot exist on a real network; the harness says so instead of guessing.
UNBUILDABLE = {
    "test-default-rules1:15",  # unicast to 239.192.158.83
    "test-default-rules1:33",
    "test-group1:7:host->outside",  # host sending from 127.0.0.1 to another machine
    "test-group1:7:host->nfvm",
    "test-group1:7:host->vm100",
    "test-group1:7:host->ct200",
}


def _run_all(topo: Topology) -> dict[str, str]:
    out: dict[str, str] = {}
    for case in ALL:
        try:
            out[case.id] = pvesim.run_case(case, topo)
        except ProbeError:
            out[case.id] = "unbuildable"
    return out


@pytest.mark.netns
def test_without_a_firewall_every_case_is_delivered(pve_sim_full: Topology) -> None:
    results = _run_all(pve_sim_full)
    assert {i for i, v in results.items() if v == "unbuildable"} == UNBUILDABLE
    assert {i: v for i, v in results.items() if v not in ("ACCEPT", "unbuildable")} == {}


DROP_ALL = """
table inet dropall {
  chain pre { type filter hook prerouting priority 0; policy drop; }
  chain out { type filter hook output priority 0; policy drop; }
}
table bridge dropall {
  chain pre { type filter hook prerouting priority 0; policy drop; }
}
"""


@pytest.mark.netns
def test_with_everything_dropped_every_case_drops_fast(pve_sim_full: Topology) -> None:
    pve_sim_full.host.ns.nft(DROP_ALL)
    try:
        start = time.monotonic()
        results = _run_all(pve_sim_full)
        elapsed = time.monotonic() - start
    finally:
        pve_sim_full.host.ns.nft("delete table inet dropall; delete table bridge dropall")
    assert {i: v for i, v in results.items() if v not in ("DROP", "unbuildable")} == {}
    assert probe_stats(pve_sim_full)[1] == 0
    assert elapsed < 0.1 * TIME_SCALE * len(results)


def test_case_type_is_frozen() -> None:
    case = load_cases("test-basic1")[0]
    assert isinstance(case, Case)
    with pytest.raises(AttributeError):
        case.line = 3  # type: ignore[misc]
