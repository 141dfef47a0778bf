"""Fixtures of the host behaviour tests: one pve-sim host topology per module (plus a
``far`` zone on vmbr1, so traffic from ``outside`` is routed through the host's forward
hook), and a :class:`~tests.behaviour.hostlib.Firewall` per test that re-applies its own
configuration to it. A module whose DROPs needed the fallback timeout instead of the
trace fails at teardown: that would be slow and could hide a wrong verdict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.behaviour.hostlib import Firewall
    from tests.harness.topology import Topology

FAR_MAC = "02:00:00:00:01:03"


@pytest.fixture(scope="module")
def host_topo() -> Iterator[Topology]:
    from tests.harness.topology import pve_sim_topology

    topo = pve_sim_topology(include_guests=False)
    topo.add_port("far", bridge="vmbr1", host_ifname="eth1", mac=FAR_MAC)
    with topo:
        yield topo
        from tests.harness.probe import probe_stats

        sent, fallbacks = probe_stats(topo)
        assert fallbacks == 0, f"{fallbacks} of {sent} probes were decided by the timeout"


@pytest.fixture
def fw(host_topo: Topology, tmp_path: Path) -> Firewall:
    from tests.behaviour.hostlib import Firewall

    return Firewall(host_topo, tmp_path)
