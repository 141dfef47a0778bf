"""The daemon tests' fixtures (named namespace pair, small tree, daemons always stopped),
shared with the try-apply tests, which run with and without the daemon."""

from __future__ import annotations

from tests.unit.service.conftest import netns_pair, pve_tree, start_daemon

__all__ = ["netns_pair", "pve_tree", "start_daemon"]
