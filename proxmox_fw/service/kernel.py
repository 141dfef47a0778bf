"""The daemon's watch on its tables in the kernel: were they deleted, replaced or edited
by hand since its last commit?

Each poll costs one netlink request whatever the size of the ruleset: the ruleset
generation, which every committed transaction (anyone's) moves. Only when it moved are our
two tables read (:mod:`proxmox_fw.nft.kernelstate`: by name, without set elements, never
through libnftables, so other programs' tables cannot disturb it) and compared with the
snapshot taken after our commit: a table gone or with a new handle, or a different shape
(chains, rules, set declarations, flags), means: re-apply in full.
"""

from __future__ import annotations

from proxmox_fw.nft.kernelstate import KernelReader, KernelSnapshot, TableNames


def _names(labels: list[str]) -> TableNames:
    return tuple((family, name) for family, _, name in (label.partition(" ") for label in labels))


class KernelWatch:
    """What the last commit left in the kernel, to tell when someone else changed it."""

    def __init__(self, reader: KernelReader) -> None:
        self.reader = reader
        self._tables: TableNames = ()  # what our last commit loaded
        self._snapshot: KernelSnapshot | None = None  # them, as of a generation after it

    def committed(self, labels: list[str]) -> None:
        """Remember the tables ``labels`` ("inet proxmox-firewall") as our last commit
        left them. A snapshot that cannot be taken now is taken by the next poll."""
        self._tables = _names(labels)
        self._snapshot = self.reader.snapshot(self._tables) if self._tables else None

    def forget(self) -> None:
        """Nothing of ours is known to be in the kernel (nothing to watch)."""
        self._tables = ()
        self._snapshot = None

    def drift(self) -> str | None:
        """Why our tables are no longer what we committed, or None (also when that
        cannot be told: a failed read is answered by the next poll or apply)."""
        if not self._tables:
            return None
        before = self._snapshot
        if before is None:
            self._snapshot = self.reader.snapshot(self._tables)
            return None
        generation = self.reader.generation()
        if generation is None or generation == before.generation:
            return None  # no transaction at all since: nothing can differ
        now = self.reader.snapshot(self._tables)
        if now is None:
            return None
        self._snapshot = now
        then, handles = before.handles(), now.handles()
        lost = [label for label, handle in then.items() if handles.get(label) != handle]
        if lost:
            return "firewall tables removed or replaced outside the daemon: " + ", ".join(lost)
        edited = [label for label, shape in before.shapes.items()
                  if now.shapes[label].digest != shape.digest]
        if edited:
            return "firewall rules changed outside the daemon: " + ", ".join(edited)
        return None
