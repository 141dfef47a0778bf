"""Every pve-sim case, as real packets through both tables in Debian's stock kernel.

The guest table (bridge conntrack/reject/meta) only loads in the full-kernel VM, so this
is where the cases between guests, the uplink and the host meet the real ruleset: one
``pve_sim_topology(include_guests=True)`` for the whole module, each suite's tree compiled
and applied once with the product's own path inside its host namespace, then every
expanded case of the suite probed. Cases on ``tests/conformance/inapplicable.toml`` are
not sent; each has its reason there. One test per suite keeps the VM's per-test overhead
small; its failure lists every case that went wrong with the trace of its packets.

The counts (expanded cases, run, inapplicable, passed) are recorded on each report and
summed up in the terminal summary by ``tests/conformance/conftest.py``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import pvesim
from tests.harness.probe import last_trace, probe_stats
from tests.harness.topology import Topology

LOCAL_NET = ipaddress.ip_interface("172.16.1.0/24")  # the pve-sim topology's local_network
EXPECTED_SUITES = 13  # the conformance README: 13 suites, 142 case lines
EXPECTED_LINES = 142
COUNTS_PROPERTY = "pvesim-full"  # read by tests/conformance/conftest.py

INAPPLICABLE = pvesim.load_inapplicable()
SUITES = pvesim.suites()


def apply_suite(pve_dir: Path, topo: Topology) -> None:
    """compile_dir + apply_ruleset inside the host namespace; both tables must load."""

    def in_host() -> tuple[bool, str, list[str], list[str], bool]:
        from proxmox_fw.nft.apply import apply_ruleset
        from proxmox_fw.nft.client import NftClient
        from proxmox_fw.nft.features import probe_features
        from proxmox_fw.pipeline import compile_dir

        # pve-sim trees were written for the iptables firewall: no `nftables: 1` in host.fw.
        res = compile_dir(pve_dir, "pve1", honor_nftables_switch=False, local_net=LOCAL_NET)
        unexpected = [
            str(d)
            for d in res.diagnostics
            if d.severity != "info" and "test-errors" not in str(pve_dir)
            and not pvesim.unresolved_ring_name(d)
        ]
        out = apply_ruleset(res.ruleset, NftClient(), probe_features())
        return (
            out.ok,
            out.error,
            unexpected,
            out.missing_features,
            not res.ruleset.guests.enabled
            or "bridge proxmox-firewall-guests" in out.applied_tables,
        )

    ok, error, unexpected, missing, guests_loaded = topo.ns("host").run(in_host)
    assert unexpected == [], unexpected
    assert ok, error
    assert missing == [] and guests_loaded, f"the guest table was not loaded: {missing}"


@pytest.fixture(scope="module")
def topo(pve_sim_full: Topology) -> Iterator[Topology]:
    yield pve_sim_full


def _describe(case: pvesim.Case) -> str:
    port = f":{case.dport}" if case.dport is not None else ""
    kind = " multicast" if case.multicast else ""
    return f"{case.proto}{kind} {case.source} -> {case.dest}{port}"


@pytest.mark.fullkernel
@pytest.mark.netns
@pytest.mark.parametrize("suite", SUITES)
def test_suite(suite: str, topo: Topology, record_property: Callable[[str, object], None]) -> None:
    cases = pvesim.load_cases(suite)
    run = [c for c in cases if c.id not in INAPPLICABLE]
    pvesim.ensure_applied(topo, suite, apply_suite)
    failures: list[str] = []
    for case in run:
        try:
            got = pvesim.run_case(case, topo)
        except pvesim.ProbeError as exc:
            failures.append(f"{case.id} ({_describe(case)}): cannot be sent: {exc}")
            continue
        if got != case.action:
            trace = "\n      ".join(last_trace(topo)) or "(no trace)"
            failures.append(
                f"{case.id} ({_describe(case)}): expected {case.action}, "
                f"got {got}; trace:\n      {trace}"
            )
    counts = {
        "suite": suite,
        "cases": len(cases),
        "run": len(run),
        "inapplicable": len(cases) - len(run),
        "passed": len(run) - len(failures),
    }
    record_property(COUNTS_PROPERTY, json.dumps(counts))
    probes, fallbacks = probe_stats(topo)
    print(f"{suite}: {counts}; {probes} probes so far, {fallbacks} DROPs by timeout")
    assert not failures, f"{len(failures)} of {len(run)} cases failed:\n" + "\n".join(failures)


def test_every_case_is_run_or_listed() -> None:
    """All 13 suites are there, and each expanded case is either sent or listed.

    Runs on the host (no kernel needed): without it, a missing conformance directory
    would leave ``test_suite`` with nothing to run and nothing to say.
    """
    assert len(SUITES) == EXPECTED_SUITES, SUITES
    lines = sum(
        1
        for suite in SUITES
        for text in (pvesim.suite_dir(suite) / "cases.jsonl").read_text().splitlines()
        if text.strip()
    )
    assert lines == EXPECTED_LINES
    cases = pvesim.all_cases(SUITES)
    assert pvesim.unknown_ids(INAPPLICABLE, cases) == []
    run = [c for c in cases if c.id not in INAPPLICABLE]
    listed = [c for c in cases if c.id in INAPPLICABLE]
    assert len(run) + len(listed) == len(cases)
    print(
        f"\npve-sim: {lines} case lines, {len(cases)} expanded cases, "
        f"{len(run)} run in the full kernel, {len(listed)} inapplicable"
    )
