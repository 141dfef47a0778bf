"""Fixtures of the daemon tests: named namespaces (``ip netns exec`` needs a name), a
peer namespace for traffic, and daemons that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.unit.service.daemonlib import DaemonProcess, write_tree

if TYPE_CHECKING:
    from tests.harness.netns import NetNs


@pytest.fixture
def pve_tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "pve")


@pytest.fixture
def netns_pair() -> Iterator[tuple[NetNs, NetNs]]:
    """(host, peer): two namespaces joined by a veth, 192.0.2.1 (host) ↔ 192.0.2.2."""
    from tests.harness.netns import create_namespaces, delete_namespace, unique_prefix

    prefix = unique_prefix()
    host, peer = create_namespaces([f"{prefix}h", f"{prefix}p"])
    try:
        host.ip("link", "add", "h0", "type", "veth", "peer", "name", "p0", "netns", peer.name)
        host.ip("addr", "add", "192.0.2.1/24", "dev", "h0")
        host.ip("link", "set", "h0", "up")
        peer.ip("addr", "add", "192.0.2.2/24", "dev", "p0")
        peer.ip("link", "set", "p0", "up")
        yield host, peer
    finally:
        delete_namespace(peer)
        delete_namespace(host)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(ns: NetNs, pve_dir: Path, **kwargs: Any) -> DaemonProcess:
        work = tmp_path / f"daemon{len(started)}"
        work.mkdir()
        daemon = DaemonProcess(ns, pve_dir, work, **kwargs)
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()
