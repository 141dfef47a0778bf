"""``proxmox-firewall logger``: the main loop of the firewall log daemon.

One thread waits in ``select`` on the NFLOG socket, the conntrack socket (while conntrack
logging is on) and the signal pipe, formats what arrives and hands it to the
:class:`~proxmox_fw.logger.writer.Writer`. Once a second it stats the
``log_nf_conntrack`` flag file that the rule daemon rewrites on every apply, so turning
``log_nf_conntrack`` on or off in host.fw takes effect without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from proxmox_fw import log
from proxmox_fw.compile.sysctl import LOG_NF_CONNTRACK
from proxmox_fw.logger.conntrack import ConntrackEvents
from proxmox_fw.logger.ctformat import format_conntrack
from proxmox_fw.logger.format import format_packet, format_status
from proxmox_fw.logger.nflog import NflogSocket
from proxmox_fw.logger.writer import LogFile, Writer
from proxmox_fw.service.signals import SignalWaiter

DEFAULT_LOG_FILE = Path("/var/log/pve-firewall.log")
DEFAULT_RUN_DIR = Path("/run")
LOCK_NAME = "lock/pvefw-logger.lck"  # /run/lock/pvefw-logger.lck, shared with pvefw-logger
PID_NAME = "pvefw-logger.pid"
QUEUE_SIZE = 512
FLAG_CHECK_INTERVAL = 1.0


class LoggerError(RuntimeError):
    """The daemon cannot start (lock held, file or socket cannot be opened)."""


@dataclass(frozen=True, slots=True)
class LoggerOptions:
    log_file: Path = DEFAULT_LOG_FILE
    group: int = 0
    run_dir: Path = DEFAULT_RUN_DIR
    queue_size: int = QUEUE_SIZE
    conntrack_flag: Path = Path(LOG_NF_CONNTRACK)
    force_conntrack: bool = False
    lock_timeout: float = 10.0

    @property
    def lock_path(self) -> Path:
        return self.run_dir / LOCK_NAME

    @property
    def pid_path(self) -> Path:
        return self.run_dir / PID_NAME


def acquire_lock(path: Path, timeout: float) -> int:
    """An exclusive flock on ``path`` (retried once a second, as pvefw-logger does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + timeout
    warned = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LoggerError(f"unable to acquire lock '{path}': another logger runs"
                                  ) from None  # fmt: skip
            if not warned:
                log.get().warning(f"unable to acquire lock '{path}' - trying again")
                warned = True
            time.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))


def interface_name(index: int) -> str | None:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return None


class FlagFile:
    """The ``log_nf_conntrack`` switch: first byte ``1`` means on; re-read on change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self.value = False
        self.changed()

    def changed(self) -> bool:
        """Whether the switch flipped since the last call (one ``stat`` when unchanged)."""
        try:
            st = self.path.stat()
            key: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key == self._key:
            return False
        self._key = key
        try:
            with self.path.open("rb") as fh:
                value = fh.read(1) == b"1"
        except OSError:
            value = False
        flipped, self.value = value != self.value, value
        return flipped


class Daemon:
    def __init__(self, opts: LoggerOptions, writer: Writer) -> None:
        self.opts = opts
        self.writer = writer
        self.skipped = 0
        self.conntrack: ConntrackEvents | None = None
        self.log = log.get("proxmox-firewall-logger")

    # -- the queue, with pvefw-logger's accounting ----------------------------------------
    def admit(self) -> bool:
        """Whether one more entry fits; a pending skip count is written first when the
        queue has room for it and the entry, otherwise the entry is counted as skipped."""
        cap = self.writer.capacity
        if self.skipped:
            if len(self.writer) >= cap - 1:
                self.skipped += 1
                return False
            count, self.skipped = self.skipped, 0
            self.status(3, f"skipped {count} log entries (queue full)")
            return True
        if len(self.writer) >= cap:
            self.skipped += 1
            return False
        return True

    def status(self, level: int, message: str) -> None:
        """One of the daemon's own lines, to the file and to its diagnostics."""
        diag = {3: self.log.error, 4: self.log.warning}.get(level, self.log.info)
        diag(message)
        if self.admit():
            self.writer.push(format_status(level, message, int(time.time())))

    def flush_skipped(self) -> None:
        if self.skipped and len(self.writer) < self.writer.capacity - 1:
            count, self.skipped = self.skipped, 0
            self.status(3, f"skipped {count} log entries (queue full)")

    # -- sources -----------------------------------------------------------------------------
    def read_nflog(self, nflog: NflogSocket) -> None:
        got = nflog.receive()
        self.skipped += got.lost
        now = int(time.time())
        for pkt in got.packets:
            if self.admit():
                self.writer.push(format_packet(pkt, interface_name, now))

    def read_conntrack(self) -> None:
        assert self.conntrack is not None
        try:
            events, overrun = self.conntrack.receive()
        except OSError as err:
            self.status(3, f"error catching nfct: {err.strerror or err}")
            self.set_conntrack(False)
            return
        if overrun:
            self.status(3, "nfct_catch returned ENOBUFS: conntrack information may be incomplete")
        now = int(time.time())
        for ev in events:
            if self.admit():
                self.writer.push(format_conntrack(ev, now))

    def set_conntrack(self, on: bool) -> None:
        if on and self.conntrack is None:
            try:
                self.conntrack = ConntrackEvents()
            except OSError as err:
                self.log.error(f"cannot subscribe to conntrack events: {err.strerror or err}")
                return
            self.log.info("conntrack logging on")
        elif not on and self.conntrack is not None:
            self.conntrack.close()
            self.conntrack = None
            self.log.info("conntrack logging off")

    # -- the loop ----------------------------------------------------------------------------
    def serve(self, nflog: NflogSocket, sigs: SignalWaiter, flag: FlagFile) -> int:
        next_check = time.monotonic() + FLAG_CHECK_INTERVAL
        while True:
            fds: list[int] = [nflog.fileno(), sigs.fileno()]
            if self.conntrack is not None:
                fds.append(self.conntrack.fileno())
            timeout = max(next_check - time.monotonic(), 0.0)
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                ready = []
            if nflog.fileno() in ready:
                self.read_nflog(nflog)
            if self.conntrack is not None and self.conntrack.fileno() in ready:
                self.read_conntrack()
            if not self.writer.alive:
                err = self.writer.error
                self.log.error(f"writing log failed, stopping daemon - {err}")
                return 1
            for sig in sigs.wait(0) if sigs.fileno() in ready else []:
                if sig == signal.SIGHUP:
                    self.log.info(f"reopening {self.opts.log_file}")
                    self.writer.request_reopen()
                else:
                    self.status(5, "received terminate request (signal)")
                    return 0
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + FLAG_CHECK_INTERVAL
                if flag.changed() and not self.opts.force_conntrack:
                    self.set_conntrack(flag.value)
                self.flush_skipped()


def run(opts: LoggerOptions) -> int:
    """The daemon until SIGTERM/SIGINT: 0 then, 1 when it cannot start or write."""
    logger = log.get("proxmox-firewall-logger")
    try:
        lock_fd = acquire_lock(opts.lock_path, opts.lock_timeout)
    except (LoggerError, OSError) as err:
        logger.error(str(err))
        return 1
    try:
        return _run_locked(opts)
    finally:
        os.close(lock_fd)


def _run_locked(opts: LoggerOptions) -> int:
    logger = log.get("proxmox-firewall-logger")
    try:
        logfile = LogFile(opts.log_file)
    except OSError as err:
        logger.error(f"unable to open file '{opts.log_file}': {err.strerror or err}")
        return 1
    try:
        nflog = NflogSocket(opts.group)
    except OSError as err:
        logfile.close()
        logger.error(f"unable to bind NFLOG group {opts.group}: {err.strerror or err}")
        return 1
    writer = Writer(logfile, opts.queue_size)
    daemon = Daemon(opts, writer)
    opts.pid_path.write_text(f"{os.getpid()}\n")
    writer.start()
    code = 1
    try:
        with SignalWaiter([signal.SIGTERM, signal.SIGINT, signal.SIGHUP]) as sigs:
            flag = FlagFile(opts.conntrack_flag)
            # Subscribed before the start line, so every flow after that line is seen.
            daemon.set_conntrack(opts.force_conntrack or flag.value)
            daemon.status(5, "starting pvefw logger")
            code = daemon.serve(nflog, sigs, flag)
            if code == 0:
                daemon.flush_skipped()
                daemon.status(5, "stopping pvefw logger")
    finally:
        daemon.set_conntrack(False)
        nflog.close()
        writer.stop()
        with contextlib.suppress(OSError):
            logfile.close()
        with contextlib.suppress(OSError):
            opts.pid_path.unlink()
    if writer.error is not None and code == 0:
        print(f"writing log failed - {writer.error}", file=sys.stderr)
        return 1
    return code
