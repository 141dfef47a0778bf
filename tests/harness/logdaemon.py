"""The log daemon as a subprocess inside the host namespace of a test topology, and
helpers to read its file.

``ip netns exec`` runs it in the namespace, as an operator would; every start is paired
with a stop (SIGTERM, then SIGKILL) in the fixture that made it, so no logger outlives
its test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.harness.netns import NetNs
from tests.harness.process import terminate

CLI = Path(sys.executable).parent / "proxmox-firewall"
STARTED = "starting pvefw logger"


def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class LoggerProcess:
    """``proxmox-firewall logger`` writing ``work/fw.log``, lock and pid under ``work/run``."""

    def __init__(self, ns: NetNs, work: Path, *args: str) -> None:
        self.ns = ns
        self.work = work
        self.log_file = work / "fw.log"
        self.run_dir = work / "run"
        self.flag = work / "log_nf_conntrack"
        self.stderr_path = work / f"logger-{time.monotonic_ns()}.err"
        env = {**os.environ, "PVE_LOG": "info"}
        env.pop("JOURNAL_STREAM", None)
        env.pop("INVOCATION_ID", None)
        self._err = open(self.stderr_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, str(CLI), "logger", "--log-file",
             str(self.log_file), "--run-dir", str(self.run_dir), "--conntrack-flag",
             str(self.flag), *args],
            stdout=subprocess.DEVNULL, stderr=self._err, env=env,
        )  # fmt: skip

    def wait_started(self, timeout: float = 30.0) -> None:
        eventually(lambda: STARTED in self.text() or self.proc.poll() is not None,
                   "the logger to start", timeout)  # fmt: skip
        assert self.proc.poll() is None, self.stderr()

    def text(self, path: Path | None = None) -> str:
        p = path or self.log_file
        return p.read_text(errors="surrogateescape") if p.exists() else ""

    def lines(self, path: Path | None = None) -> list[str]:
        return self.text(path).splitlines()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_for(self, needle: str, count: int = 1, timeout: float = 10.0,
                 path: Path | None = None) -> list[str]:  # fmt: skip
        """The lines containing ``needle`` once there are ``count`` of them."""
        def found() -> list[str]:
            return [ln for ln in self.lines(path) if needle in ln]

        eventually(lambda: len(found()) >= count, f"{count} line(s) with {needle!r}", timeout)
        return found()

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not go; returns the exit code."""
        try:
            return terminate(self.proc)
        finally:
            self._err.close()


def fields(line: str) -> dict[str, str]:
    """``KEY=value`` words of a packet line (flags as ``FLAG: ''``); a key that occurs
    twice (LEN of IP and UDP) keeps the first, the second is ``KEY#2``."""
    out: dict[str, str] = {}
    for word in line.split(" ")[6:]:
        key, _, value = word.partition("=")
        if not key:
            continue
        out[key if key not in out else f"{key}#2"] = value
    return out
