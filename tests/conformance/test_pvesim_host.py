"""The host-side cases of the pve-sim suites, as real packets through the real kernel.

Every case whose endpoints are both the host or its uplink (``host``, ``outside``) runs
against the inet table compiled from the suite's tree and applied with the product's own
apply path inside the host namespace. Cases on ``tests/conformance/inapplicable.toml`` are
not run; each has its reason there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import pvesim
from tests.harness.probe import last_trace

LOCAL_NET = ipaddress.ip_interface("172.16.1.2/24")  # forced by the pve-sim harness too

INAPPLICABLE = pvesim.load_inapplicable()
HOST_CASES = [c for c in pvesim.all_cases() if pvesim.host_side(c)]
RUN = [c for c in HOST_CASES if c.id not in INAPPLICABLE]


def apply_suite(pve_dir: Path, topo: pvesim.Topology) -> None:
    """compile_dir + apply_ruleset inside the host namespace, as `apply` does."""

    def in_host() -> tuple[bool, str]:
        from proxmox_fw.nft.apply import apply_ruleset
        from proxmox_fw.nft.client import NftClient
        from proxmox_fw.nft.features import probe_features
        from proxmox_fw.pipeline import compile_dir

        # pve-sim trees were written for the iptables firewall: no `nftables: 1` in host.fw.
        res = compile_dir(pve_dir, "pve1", honor_nftables_switch=False,
                          local_net=ipaddress.ip_interface(LOCAL_NET.network))
        unexpected = [str(d) for d in res.diagnostics
                      if d.severity != "info" and "test-errors" not in str(pve_dir)
                      and not pvesim.unresolved_ring_name(d)]
        assert unexpected == [], unexpected
        out = apply_ruleset(res.ruleset, NftClient(), probe_features())
        return out.ok, out.error or ""

    ok, error = topo.ns("host").run(in_host)
    assert ok, error


@pytest.fixture(scope="module")
def topo(pve_sim_host: pvesim.Topology) -> Iterator[pvesim.Topology]:
    yield pve_sim_host


@pytest.mark.netns
@pytest.mark.parametrize("case", RUN, ids=lambda c: c.id)
def test_host_case(case: pvesim.Case, topo: pvesim.Topology) -> None:
    pvesim.ensure_applied(topo, case.suite, apply_suite)
    got = pvesim.run_case(case, topo)
    assert got == case.action, f"{case}: got {got}; trace: {last_trace(topo)}"


def test_inapplicable_list_is_sound() -> None:
    """Every listed id names a real case and has a reason; the counts are printed."""
    all_ids = pvesim.all_cases()
    assert pvesim.unknown_ids(INAPPLICABLE, all_ids) == []
    listed_host = [c for c in HOST_CASES if c.id in INAPPLICABLE]
    print(f"\npve-sim host side: {len(HOST_CASES)} cases, {len(RUN)} run, "
          f"{len(listed_host)} inapplicable")
    assert len(RUN) + len(listed_host) == len(HOST_CASES)
