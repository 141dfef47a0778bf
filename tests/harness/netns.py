"""Named network namespaces that belong to this test run and are always removed.

Every name carries a per-process tag (``pfwt<pid>``), and only names this process created
are ever deleted: other runs and other programs on the machine keep theirs. Cleanup runs in
fixture finalizers, in ``atexit`` and on SIGTERM; running pytest under
``unshare --mount --propagation private`` with a tmpfs on ``/run/netns`` additionally makes
even a ``kill -9`` leak nothing (see ``tests/harness/__init__.py``).

Code runs inside a namespace on a worker thread that ``setns``-ed into it (the product's
:class:`~proxmox_fw.nft.netns.NetnsWorker`): sockets and libnftables contexts created there
stay bound to the namespace and can then be used from any thread.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import os
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, TypeVar

import nftables

from proxmox_fw.nft.netns import NetnsWorker

T = TypeVar("T")

RUN_TAG = f"pfwt{os.getpid()}"
NETNS_DIR = "/run/netns"
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

# Set before any interface exists, so every interface created later inherits them:
# no DAD delay, no router solicitations, no ICMP rate limit (else REJECT replies stop
# after a few probes), no reverse-path filter (probe sources are arbitrary).
BASE_SYSCTLS: dict[str, str] = {
    "net/ipv6/conf/all/accept_dad": "0",
    "net/ipv6/conf/default/accept_dad": "0",
    "net/ipv6/conf/all/router_solicitations": "0",
    "net/ipv6/conf/default/router_solicitations": "0",
    "net/ipv6/conf/all/accept_ra": "0",
    "net/ipv6/conf/default/accept_ra": "0",
    "net/ipv4/icmp_ratelimit": "0",
    "net/ipv6/icmp/ratelimit": "0",
    "net/ipv4/conf/all/rp_filter": "0",
    "net/ipv4/conf/default/rp_filter": "0",
}

_lock = threading.Lock()
_created: dict[str, NetNs] = {}
_serial = itertools.count(1)


class CommandError(RuntimeError):
    """An ``ip``/``bridge`` command failed; the message carries its input and stderr."""


def unique_prefix() -> str:
    """A namespace-name prefix no other topology of this run (or other run) uses."""
    return f"{RUN_TAG}x{next(_serial)}"


def run_tool(argv: list[str], stdin: str | None = None) -> str:
    """Run an iproute2 tool; a failure raises with the full command and its stderr."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shown = " ".join(argv) + (f" <<EOF\n{stdin}EOF" if stdin else "")
        raise CommandError(f"{shown}\nexit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


class NetNs:
    """A named namespace created by this run, with a worker thread living inside it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = os.path.join(NETNS_DIR, name)
        self._worker: NetnsWorker | None = None
        self._nft: nftables.Nftables | None = None

    # -- code inside the namespace ---------------------------------------------------
    @property
    def worker(self) -> NetnsWorker:
        if self._worker is None:
            self._worker = NetnsWorker(self.path)
        return self._worker

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a thread inside this namespace."""
        return self.worker.call(fn, *args)

    def socket(self, family: int, type_: int, proto: int = 0) -> socket.socket:
        """A socket of this namespace, usable from any thread afterwards."""
        return self.run(socket.socket, family, type_, proto)

    def nftables(self) -> nftables.Nftables:
        """A libnftables context bound to this namespace (JSON output on)."""
        return self.run(_new_nftables)

    def nft(self, commands: str | dict[str, Any]) -> str:
        """Run nft text or a JSON document here; raise on error, return the output."""
        if self._nft is None:
            self._nft = self.nftables()
        ctx = self._nft
        if isinstance(commands, str):
            rc, out, err = ctx.cmd(commands)
        else:
            rc, out, err = ctx.json_cmd(commands)
            out = "" if out is None else str(out)
        if rc != 0:
            raise CommandError(f"nft in {self.name} failed: {err.strip()}\n{commands}")
        return str(out)

    def if_index(self, ifname: str) -> int:
        return self.run(socket.if_nametoindex, ifname)

    def sysctl(self, key: str, value: str | int) -> None:
        """Write ``/proc/sys/<key>`` ('net/ipv4/ip_forward' or dotted) in this namespace."""
        self.run(_write_sysctl, key, str(value))

    def sysctls(self, values: dict[str, str]) -> None:
        self.run(_write_sysctls, values)

    def read_sysctl(self, key: str) -> str:
        return self.run(_read_sysctl, key)

    # -- iproute2 -----------------------------------------------------------------------
    def ip(self, *args: str) -> str:
        return run_tool(["ip", "-n", self.name, *args])

    def ip_batch(self, lines: Iterable[str], tool: str = "ip") -> None:
        """Run many ``ip`` (or ``bridge``) commands in this namespace in one process."""
        text = "".join(f"{line}\n" for line in lines)
        if text:
            run_tool([tool, "-n", self.name, "-batch", "-"], stdin=text)

    # -- lifetime -------------------------------------------------------------------------
    def close_worker(self) -> None:
        self._nft = None
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def _new_nftables() -> nftables.Nftables:
    ctx = nftables.Nftables()
    ctx.set_json_output(True)
    return ctx


def _sysctl_path(key: str) -> str:
    return "/proc/sys/" + (key.replace(".", "/") if "/" not in key else key)


def _write_sysctl(key: str, value: str) -> None:
    with open(_sysctl_path(key), "w") as fh:
        fh.write(value)


def _write_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        _write_sysctl(key, value)


def _read_sysctl(key: str) -> str:
    with open(_sysctl_path(key)) as fh:
        return fh.read().strip()


def _prepare(sysctls: dict[str, str]) -> None:
    _write_sysctls(sysctls)
    set_link_up("lo")


def set_link_up(ifname: str) -> None:
    """Bring an interface of the calling thread's namespace up (no ``ip`` process)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", ifname.encode(), 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", ifname.encode(), flags | IFF_UP))


def create_namespaces(names: Iterable[str]) -> list[NetNs]:
    """Create namespaces (one ``ip`` process), register them for cleanup, prepare them.

    Each gets the base sysctls and loopback up; a name that already exists is an error,
    never adopted, so a run can only ever delete what it made itself.
    """
    names = list(names)
    for name in names:
        if not name.startswith(RUN_TAG):
            raise ValueError(f"namespace {name!r} lacks this run's tag {RUN_TAG!r}")
        if os.path.exists(os.path.join(NETNS_DIR, name)):
            raise CommandError(f"namespace {name} already exists")
    made: list[NetNs] = []
    try:
        try:
            run_tool(["ip", "-batch", "-"], stdin="".join(f"netns add {n}\n" for n in names))
        finally:
            # register whatever exists now, so a half-failed batch is still cleaned up
            for name in names:
                if os.path.exists(os.path.join(NETNS_DIR, name)):
                    ns = NetNs(name)
                    with _lock:
                        _created[name] = ns
                    made.append(ns)
        for ns in made:
            ns.run(_prepare, BASE_SYSCTLS)
    except BaseException:
        for ns in made:
            delete_namespace(ns)
        raise
    return made


def delete_namespace(ns: NetNs) -> None:
    """Remove a namespace this run created (a no-op for anything else)."""
    with _lock:
        owned = _created.pop(ns.name, None)
    if owned is None:
        return
    owned.close_worker()
    if os.path.exists(owned.path):
        with contextlib.suppress(CommandError):
            run_tool(["ip", "netns", "delete", owned.name])


def created_names() -> list[str]:
    """Names this process created and has not deleted yet."""
    with _lock:
        return sorted(_created)


def existing_run_names() -> list[str]:
    """Names in /run/netns carrying this run's tag (what a leak check looks at)."""
    try:
        entries = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if e.startswith(RUN_TAG))


def delete_all() -> None:
    """Remove every namespace this process still owns (atexit / signal path)."""
    with _lock:
        owned = list(_created.values())
    for ns in owned:
        delete_namespace(ns)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    delete_all()
    raise SystemExit(128 + signum)


atexit.register(delete_all)
if threading.current_thread() is threading.main_thread() and (
    signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
):
    signal.signal(signal.SIGTERM, _on_sigterm)
