"""Fixtures shared by every test directory.

Kernel tests (marker ``netns``) get private network namespaces from ``tests.harness``;
the harness is imported lazily so tests that need no namespace (and the full-kernel VM,
where every import is slow) do not pay for it. Run the suite through the wrapper in
``tests/harness/__init__.py`` to make namespace leaks impossible even on ``kill -9``.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.harness.topology import Topology

pytest_plugins = ["tests.fullkernel_plugin"]

CAN_NETNS = os.geteuid() == 0 and shutil.which("ip") is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs root, iproute2 and network namespaces")
    for item in items:
        if item.get_closest_marker("netns") is not None and not CAN_NETNS:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session) -> None:
    import sys

    netns = sys.modules.get("tests.harness.netns")
    if netns is None:
        return  # no test of this session touched a namespace
    netns.delete_all()
    left = netns.existing_run_names()
    if left:
        warnings.warn(f"network namespaces left behind: {left}", stacklevel=1)


@pytest.fixture
def topology_factory() -> Iterator[Callable[..., Topology]]:
    """Build topologies (``factory(topo)`` builds a declared one and returns it).

    Every topology handed to the factory is destroyed when the test ends, pass or fail.
    """
    made: list[Topology] = []

    def build(topo: Topology) -> Topology:
        made.append(topo)
        return topo.build()

    try:
        yield build
    finally:
        for topo in reversed(made):
            topo.destroy()


@pytest.fixture(scope="module")
def pve_sim_host() -> Iterator[Topology]:
    """The pve-sim topology without guests (host, outside, nfvm), one per module."""
    from tests.harness.topology import pve_sim_topology

    with pve_sim_topology(include_guests=False) as topo:
        yield topo


@pytest.fixture(scope="module")
def pve_sim_full() -> Iterator[Topology]:
    """The pve-sim topology with every guest NIC of the suites, one per module."""
    from tests.harness.topology import pve_sim_topology

    with pve_sim_topology(include_guests=True) as topo:
        yield topo
