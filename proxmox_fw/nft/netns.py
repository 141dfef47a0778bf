"""Run code inside a network namespace, on a dedicated thread.

``setns``/``unshare`` switch the network namespace of the calling *thread* only, so the
process itself never changes namespace: each call gets a fresh thread that switches, runs
the callable and ends. Netlink sockets (and therefore an ``NftClient``) created on that
thread keep talking to its namespace. A throwaway namespace made with ``unshare`` has no
name and no mount: it disappears with the thread (and with the process, even on kill -9),
so nothing can leak.

Python 3.11 has no ``os.setns``/``os.unshare``; libc is called through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int
_libc.unshare.argtypes = [ctypes.c_int]
_libc.unshare.restype = ctypes.c_int


class NetnsError(OSError):
    """Entering or creating a network namespace failed."""


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, f"{what}: {os.strerror(err)}")


def setns_current_thread(fd: int) -> None:
    """Move the calling thread into the network namespace behind ``fd``."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def unshare_current_thread() -> None:
    """Move the calling thread into a new, empty network namespace."""
    _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")


def netns_path(name_or_path: str) -> str:
    """``ip netns`` names live in /run/netns; anything with a slash is used as is."""
    return name_or_path if "/" in name_or_path else os.path.join("/run/netns", name_or_path)


def _run_on_thread(enter: Callable[[], None], fn: Callable[..., T], *args: Any) -> T:
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            enter()
            result.append(fn(*args))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=body, name="netns", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def run_in_netns(netns: str, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` inside the named (or /proc/.../ns/net path) namespace."""
    path = netns_path(netns)

    def enter() -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns_current_thread(fd)
        finally:
            os.close(fd)

    return _run_on_thread(enter, fn, *args)


def run_in_new_netns(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` inside a fresh anonymous namespace that ends with the call."""
    return _run_on_thread(unshare_current_thread, fn, *args)


_Call = tuple[Callable[[], Any], "queue.Queue[tuple[bool, Any]]"]  # (thunk, reply queue)


class NetnsWorker:
    """A thread that lives in its own namespace and runs calls sent to it.

    For work that spans several calls in one namespace (tests building a topology, a
    daemon keeping one ``NftClient``). With ``netns=None`` the namespace is a fresh
    anonymous one that disappears when the worker is closed. Subprocesses started from
    inside a call inherit the worker's namespace.
    """

    def __init__(self, netns: str | None = None) -> None:
        self._calls: queue.Queue[_Call | None] = queue.Queue()
        ready: queue.Queue[BaseException | int] = queue.Queue()
        self._thread = threading.Thread(
            target=self._serve, args=(netns, ready), name="netns-worker", daemon=True
        )
        self._thread.start()
        started = ready.get()
        if isinstance(started, BaseException):
            self._thread.join()
            raise started
        self.tid: int = started  # kernel thread id: /proc/<tid>/ns/net, `ip link ... netns <tid>`

    @property
    def ns_path(self) -> str:
        """A path usable with ``setns`` (and ``run_in_netns``) while the worker lives."""
        return f"/proc/{os.getpid()}/task/{self.tid}/ns/net"

    def _serve(self, netns: str | None, ready: queue.Queue[BaseException | int]) -> None:
        try:
            if netns is None:
                unshare_current_thread()
            else:
                fd = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
                try:
                    setns_current_thread(fd)
                finally:
                    os.close(fd)
        except BaseException as exc:
            ready.put(exc)
            return
        ready.put(threading.get_native_id())
        while True:
            item = self._calls.get()
            if item is None:
                return
            call, reply = item
            try:
                reply.put((True, call()))
            except BaseException as exc:
                reply.put((False, exc))

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread and return its result (or raise)."""
        if not self._thread.is_alive():
            raise NetnsError(0, "netns worker is closed")
        reply: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self._calls.put((lambda: fn(*args), reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """End the thread; an anonymous namespace goes away once nothing holds it."""
        if self._thread.is_alive():
            self._calls.put(None)
            self._thread.join()

    def __enter__(self) -> NetnsWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
