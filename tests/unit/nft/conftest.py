"""Fixtures for the nft layer: throwaway network namespaces that cannot leak.

Every namespace here is anonymous (a thread that called ``unshare``): it has no name in
/run/netns and disappears when its worker thread ends, or with the process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from proxmox_fw.nft.netns import NetnsError, NetnsWorker


def _can_unshare() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        NetnsWorker().close()
    except NetnsError:
        return False
    return True


CAN_UNSHARE = _can_unshare()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs root and network namespaces")
    for item in items:
        if "netns" in item.keywords and not CAN_UNSHARE:
            item.add_marker(skip)


@pytest.fixture
def worker() -> Iterator[NetnsWorker]:
    """A thread in a fresh, empty network namespace."""
    w = NetnsWorker()
    try:
        yield w
    finally:
        w.close()
