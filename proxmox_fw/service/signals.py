"""Wake the daemon's sleep on signals instead of sleeping through them.

Upstream notices SIGTERM only between 5 s sleeps. Here the C-level handler writes the
signal number into a pipe (``signal.set_wakeup_fd``) and the loop sleeps in ``select`` on
that pipe, so a signal ends the sleep at once. The Python-level handlers do nothing: all
decisions are taken in the loop, never inside a handler (no locks, no I/O there).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Iterable
from types import FrameType, TracebackType


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Replace the default action (exit, KeyboardInterrupt); the pipe carries the news."""


class SignalWaiter:
    """Install handlers for ``signals`` (main thread only) and wait for them."""

    def __init__(self, signals: Iterable[signal.Signals]) -> None:
        self._signals = list(signals)
        self._rfd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_handlers: dict[signal.Signals, object] = {}
        self._old_wakeup = -1
        self._queue: list[signal.Signals] = []

    def __enter__(self) -> SignalWaiter:
        self._old_wakeup = signal.set_wakeup_fd(self._wfd, warn_on_full_buffer=False)
        for sig in self._signals:
            self._old_handlers[sig] = signal.signal(sig, _ignore)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._old_wakeup)
        for fd in (self._rfd, self._wfd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def fileno(self) -> int:
        """The pipe to ``select`` on beside other descriptors; then ``wait(0)``."""
        return self._rfd

    def wait(self, timeout: float) -> list[signal.Signals]:
        """Signals received since the last wait; blocks up to ``timeout`` s for the first."""
        self._drain()
        if not self._queue:
            with contextlib.suppress(InterruptedError):
                select.select([self._rfd], [], [], max(timeout, 0.0))
            self._drain()
        received, self._queue = self._queue, []
        return received

    def pending(self) -> list[signal.Signals]:
        """Signals received since the last wait, without waiting or consuming them."""
        self._drain()
        return list(self._queue)

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._rfd, 64)
            except BlockingIOError:
                return
            if not data:
                return
            for num in data:
                with contextlib.suppress(ValueError):
                    sig = signal.Signals(num)
                    if sig in self._signals:
                        self._queue.append(sig)
