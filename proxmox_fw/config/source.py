"""The I/O edge of the loader: where the ``/etc/pve`` files come from.

Everything above this module works on text and relative paths, so tests feed a directory
and the daemon feeds the real pmxcfs mount through the same :class:`ConfigSource`.
Reads never raise: a missing file is ``None`` (its meaning is the loader's business) and
an unreadable one is ``None`` plus an error diagnostic, so one broken file cannot stop
the rest of the configuration from loading. A FIFO, device, oversized file or a link
leading out of the directory is unreadable (:mod:`proxmox_fw.config.safefile`).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path, PurePosixPath
from typing import Protocol

from proxmox_fw.config.safefile import RefusedFile, inside, read_regular
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.textlines import strip_bom

# (mtime_ns, size, inode) of one path, or None while it does not exist / cannot be stat'ed.
FileStamp = tuple[int, int, int] | None
Fingerprint = tuple[tuple[str, FileStamp], ...]


class ConfigSource(Protocol):
    """Read access to a pve directory by path relative to it (``firewall/cluster.fw``)."""

    def read(self, relpath: str, diags: Diagnostics | None = None) -> str | None:
        """The file's text; None when missing or unreadable (the latter is reported)."""
        ...

    def list_dir(self, relpath: str, diags: Diagnostics | None = None) -> list[str]:
        """Sorted entry names of a directory; empty when it is missing or unreadable."""
        ...

    def exists(self, relpath: str) -> bool:
        """Whether the path exists, so a failed read can be told from a missing file."""
        ...

    def fingerprint(self, relpaths: list[str]) -> Fingerprint:
        """A cheap value that changes whenever one of the paths changes, appears or goes."""
        ...


class DirectorySource:
    """A :class:`ConfigSource` over a directory tree (``/etc/pve`` or a test copy)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # relpath → absolute path (None: outside the root), for the per-poll stats
        self._stat_paths: dict[str, str | None] = {}

    def _path(self, relpath: str) -> Path | None:
        """The absolute path, or None when ``relpath`` would leave the root."""
        rel = PurePosixPath(relpath)
        if rel.is_absolute() or ".." in rel.parts:
            return None
        return self.root / rel

    def read(self, relpath: str, diags: Diagnostics | None = None) -> str | None:
        path = self._path(relpath)
        if path is None:
            _report(diags, relpath, None, "path outside the configuration directory")
            return None
        try:
            data = read_regular(path, self.root)
        except FileNotFoundError:
            return None
        except RefusedFile as exc:
            _report(diags, relpath, None, f"cannot read file: {exc}")
            return None
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:  # a path component is a file: as good as missing
                return None
            _report(diags, relpath, None, f"cannot read file: {exc.strerror or exc}")
            return None
        return decode_text(data, relpath, diags)

    def list_dir(self, relpath: str, diags: Diagnostics | None = None) -> list[str]:
        path = self._path(relpath)
        if path is None:
            _report(diags, relpath, None, "path outside the configuration directory")
            return []
        if path.exists() and not inside(path, self.root):
            _report(diags, relpath, None, "cannot list directory: refused: it leads outside "
                    "the configuration directory")
            return []
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            _report(diags, relpath, None, f"cannot list directory: {exc.strerror or exc}")
            return []

    def exists(self, relpath: str) -> bool:
        # A dangling link counts as existing: it is unreadable, not a missing file that
        # would mean "firewall off".
        path = self._path(relpath)
        return path is not None and os.path.lexists(path)

    def fingerprint(self, relpaths: list[str]) -> Fingerprint:
        return tuple((rel, self._stamp(rel)) for rel in relpaths)

    def _stamp(self, relpath: str) -> FileStamp:
        # The daemon stats every watched file at each poll: a plain string path keeps that
        # at the cost of the stat itself, not of building a Path each time.
        try:
            path = self._stat_paths[relpath]
        except KeyError:
            resolved = self._path(relpath)
            path = self._stat_paths[relpath] = None if resolved is None else str(resolved)
        if path is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)


def decode_text(data: bytes, file: str, diags: Diagnostics | None) -> str:
    """UTF-8 text without a byte order mark; invalid bytes become U+FFFD with a warning
    naming the first bad line.

    Replacing instead of rejecting keeps the damage to the lines that hold the bad bytes:
    the parsers then see a malformed line (or a harmless comment) and skip only that.
    """
    try:
        return strip_bom(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        _report(diags, file, line, "invalid UTF-8; bad bytes replaced", warning=True)
        return strip_bom(data.decode("utf-8", errors="replace"))


def _report(
    diags: Diagnostics | None, file: str, line: int | None, message: str, warning: bool = False
) -> None:
    if diags is None:
        return
    if warning:
        diags.warning(file, line, message)
    else:
        diags.error(file, line, message)
