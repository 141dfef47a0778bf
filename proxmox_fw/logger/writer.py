"""The log file and the bounded queue in front of it.

Packets are read and formatted on the main thread; a writer thread appends the finished
lines, so a slow disk never stalls the netlink socket. The queue holds a fixed number of
entries (pvefw-logger: 512 of at most 508 bytes); what does not fit is counted by the
caller and reported as ``skipped N log entries (queue full)``.

The file is opened ``O_APPEND`` with mode 0644 and reopened on request (SIGHUP after
logrotate moved it) by the writer thread itself between two writes: every line goes
whole into exactly one of the two files.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path

MAX_WRITE = 256 * 1024
"""Entries are written together up to this many bytes per ``write``."""


class LogFile:
    """The append-only log file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def reopen(self) -> None:
        """Open the path anew (a rotated file keeps what it has) and close the old one."""
        fd = self._open()
        os.close(self.fd)
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def close(self) -> None:
        os.close(self.fd)


class Writer:
    """A bounded entry queue drained into a :class:`LogFile` by one thread."""

    def __init__(self, logfile: LogFile, capacity: int) -> None:
        self.file = logfile
        self.capacity = capacity
        self.error: OSError | None = None
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._reopen = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, entry: bytes) -> None:
        """Queue one entry; the caller has checked the length (see ``Daemon.admit``)."""
        with self._cond:
            self._queue.append(entry)
            self._cond.notify()

    def request_reopen(self) -> None:
        with self._cond:
            self._reopen = True
            self._cond.notify()

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()

    def _take(self) -> tuple[bytes, bool, bool]:
        with self._cond:
            while not (self._queue or self._reopen or self._stop):
                self._cond.wait()
            size, batch = 0, []
            while self._queue and size < MAX_WRITE:
                entry = self._queue.popleft()
                batch.append(entry)
                size += len(entry)
            reopen, self._reopen = self._reopen, False
            done = self._stop and not self._queue
            return b"".join(batch), reopen, done

    def _run(self) -> None:
        while True:
            data, reopen, done = self._take()
            try:
                if reopen:
                    self.file.reopen()
                if data:
                    self.file.write(data)
            except OSError as err:
                self.error = err
                return
            if done:
                return

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
