"""The daemon's watch on its tables in the kernel: were they deleted, replaced or edited
by hand since its last commit?

Cheap in the common case: each poll lists the tables (their handles) and reads the ruleset
generation (one netlink request, :mod:`proxmox_fw.nft.generation`). Only when some
transaction happened since are our tables listed tersely (no set elements) and their shape
compared with the one after our commit. Either difference means: re-apply in full.
"""

from __future__ import annotations

from proxmox_fw.nft.apply import table_handles
from proxmox_fw.nft.client import JsonRunner
from proxmox_fw.nft.generation import ruleset_generation, shape_digest


class KernelWatch:
    """What the last commit left in the kernel, to tell when someone else changed it."""

    def __init__(self, client: JsonRunner) -> None:
        self.client = client
        self._handles: dict[str, int] = {}  # "inet proxmox-firewall" → table handle
        self._generation: int | None = None  # ruleset generation after our last commit
        self._shape: str | None = None  # shape_digest of our tables after it

    def committed(self, labels: list[str]) -> None:
        """Remember the tables ``labels`` as our last commit left them."""
        handles = table_handles(self.client) or {}
        self._handles = {label: handles[label] for label in labels if label in handles}
        self._generation = ruleset_generation()
        self._shape = self._tables_shape()

    def forget(self) -> None:
        """Nothing of ours is known to be in the kernel (nothing to watch)."""
        self._handles = {}

    def drift(self) -> str | None:
        """Why our tables are no longer what we committed, or None (also when that
        cannot be told: a failed listing is answered by the next apply)."""
        if not self._handles:
            return None
        now = table_handles(self.client)
        if now is None:
            return None
        lost = [label for label, handle in self._handles.items() if now.get(label) != handle]
        if lost:
            return "firewall tables removed or replaced outside the daemon: " + ", ".join(lost)
        # Any transaction bumps the ruleset generation; only then can our tables have been
        # edited by hand, and only then are they listed (tersely) and compared.
        generation = ruleset_generation()
        if generation is None or generation == self._generation:
            return None
        self._generation = generation
        shape = self._tables_shape()
        if shape is not None and self._shape is not None and shape != self._shape:
            return "firewall rules changed outside the daemon"
        return None

    def _tables_shape(self) -> str | None:
        """Digest of our tables' chains, rules and set/map declarations (no elements, no
        counters); None when the client cannot list (loop tests) or a listing fails."""
        lister = getattr(self.client, "list_table_terse", None)
        if lister is None:
            return None
        parts: list[str] = []
        for label in sorted(self._handles):
            family, name = label.split(" ", 1)
            res = lister(family, name)
            if not res.ok:
                return None
            parts.append(shape_digest(res.output))
        return "|".join(parts)
