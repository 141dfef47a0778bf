"""Reading a configuration file that may be hostile.

Anyone who can write below ``/etc/pve`` can put a FIFO there (``read()`` blocks for
ever), a link to ``/dev/zero`` (read until memory runs out) or a link to ``/etc/shadow``
(its lines would be quoted in the log as "bad lines"). Only regular files that stay
inside the configuration directory are read, and only up to :data:`MAX_FILE_BYTES`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

# Far above any real configuration (a 100k-entry ipset is about 2 MB; pmxcfs keeps every
# file in RAM), low enough that no single file can exhaust memory.
MAX_FILE_BYTES: Final = 64 << 20
_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK: Final = 1 << 20
_KINDS: Final = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"),
)


class RefusedFile(OSError):
    """A path that is not read: not a regular file, too large, or leading outside."""


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, with every link resolved, is ``root`` or below it."""
    return _below(os.path.realpath(path), os.path.realpath(root))


def _below(real: str, top: str) -> bool:
    """Whether resolved ``real`` is resolved ``top`` or below it: a prefix on a path
    boundary (``Path.parents`` costs the daemon ~0.3 ms per file, two files per guest)."""
    return real == top or real.startswith(top if top.endswith("/") else top + "/")


def read_regular(path: Path, root: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, which must resolve inside ``root``.

    Links inside ``root`` (pmxcfs' ``local`` -> ``nodes/<node>``) are followed; one that
    leaves it is refused before anything is opened. The target is checked before it is
    opened (opening a FIFO or a device can block or have effects) and again after (it
    may have been swapped meanwhile); it is opened without blocking and without
    following a last link, and never read beyond ``limit`` bytes.
    """
    real, top = os.path.realpath(path), os.path.realpath(root)
    if not _below(real, top):
        raise RefusedFile(f"refused: it leads to {real}, outside the configuration directory")
    _check(os.stat(real), limit)
    fd = os.open(real, _OPEN_FLAGS)
    try:
        _check(os.fstat(fd), limit)
        opened = _fd_path(fd)
        # The kernel's name of the open file has no links left to resolve.
        if opened is not None and not _below(str(opened), top):
            raise RefusedFile("refused: replaced by a file outside the configuration "
                              "directory while being opened")
        data = _read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise RefusedFile(f"refused: larger than {limit} bytes")
    return data


def _check(st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise RefusedFile(f"refused: {kind}, not a regular file")
    if st.st_size > limit:
        raise RefusedFile(f"refused: {st.st_size} bytes, larger than {limit}")


def _fd_path(fd: int) -> Path | None:
    """What the kernel says ``fd`` is (None without /proc)."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


def _read_at_most(fd: int, count: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < count:
        chunk = os.read(fd, min(_CHUNK, count - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
