"""`proxmox-firewall log` as an operator runs it: real files, real rotation, subprocess."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.unit.logger import samples

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "cli.main", "log"]
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PVE_LOG": "warn", "TZ": "UTC"}


def line(vmid: int, day: int, hms: str, verdict: str = "DROP", dpt: int = 22) -> str:
    chain = "host-in" if vmid == 0 else f"guest-{vmid}-in"
    return (f"{vmid} 6 {chain} {day:02d}/Dec/2026:{hms} +0000 {verdict}: IN=eth0 "
            f"SRC=192.0.2.{vmid % 250 + 1} DST=192.0.2.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 "
            f"ID=1 DF PROTO=TCP SPT=40000 DPT={dpt} SEQ=1 ACK=0 WINDOW=64240 SYN ")


OLDEST = [line(100, 2, "08:00:00"), line(0, 2, "13:00:00"), line(100, 2, "13:00:01")]
OLDER = [line(100, 3, "09:00:00"), line(101, 3, "09:30:00"), samples.CONNTRACK]
CURRENT = [samples.STATUS, line(100, 4, "10:00:00"), line(1000, 4, "10:00:01"),
           line(100, 4, "11:00:00", "ACCEPT", 80)]


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    with gzip.open(tmp_path / "pve-firewall.log.2.gz", "wb") as fh:
        fh.write("".join(x + "\n" for x in OLDEST).encode())
    (tmp_path / "pve-firewall.log.1").write_text("".join(x + "\n" for x in OLDER))
    (tmp_path / "pve-firewall.log").write_text("".join(x + "\n" for x in CURRENT))
    return tmp_path


def run(logdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--file", str(logdir / "pve-firewall.log"), *args],
                          capture_output=True, text=True, cwd=ROOT, env=ENV, check=False,
                          timeout=60)


def out_lines(res: subprocess.CompletedProcess[str]) -> list[str]:
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_without_a_window_only_the_current_file(logdir: Path) -> None:
    assert out_lines(run(logdir)) == CURRENT
    assert out_lines(run(logdir, "--vmid", "100")) == [CURRENT[1], CURRENT[3]]
    assert out_lines(run(logdir, "--vmid", "0")) == [samples.STATUS]
    assert out_lines(run(logdir, "--vmid", "10")) == []  # "1000 ..." is not guest 10


def test_vmid_and_time_across_rotated_and_gzipped_files(logdir: Path) -> None:
    got = out_lines(run(logdir, "--vmid", "100", "--since", "2026-12-02 12:00"))
    assert got == [OLDEST[2], OLDER[0], CURRENT[1], CURRENT[3]]
    got = out_lines(run(logdir, "--since", "2026-12-02T13:00:00+00:00",
                        "--until", "2026-12-04 10:00:00"))
    assert got == [OLDEST[1], OLDEST[2], OLDER[0], OLDER[1], samples.STATUS, CURRENT[1]]
    # A line without a time (conntrack) counts as the epoch, as in the API.
    got = out_lines(run(logdir, "--until", "2026-12-03"))
    assert got == [*OLDEST, samples.CONNTRACK]


def test_epoch_seconds_like_the_api(logdir: Path) -> None:
    since = str(int(datetime(2026, 12, 4, 10, 0, 1, tzinfo=UTC).timestamp()))
    assert out_lines(run(logdir, "--since", since)) == [CURRENT[2], CURRENT[3]]


def test_start_and_limit(logdir: Path) -> None:
    assert out_lines(run(logdir, "--start", "1", "--limit", "2")) == CURRENT[1:3]
    assert out_lines(run(logdir, "--limit", "1", "--since", "0")) == OLDEST[:1]


def test_json_fields(logdir: Path) -> None:
    docs = [json.loads(x) for x in out_lines(run(logdir, "--json"))]
    assert [d["kind"] for d in docs] == ["status", "packet", "packet", "packet"]
    assert docs[0] == {"kind": "status", "vmid": 0, "loglevel": 5, "chain": "-",
                       "time": "2026-12-04T00:00:05+00:00",
                       "message": "starting pvefw logger", "line": samples.STATUS}
    d = docs[3]
    assert (d["vmid"], d["loglevel"], d["chain"], d["time"], d["policy"]) == (
        100, 6, "guest-100-in", "2026-12-04T11:00:00+00:00", "ACCEPT")
    assert d["fields"]["SRC"] == "192.0.2.101" and d["fields"]["PROTO"] == "TCP"
    assert d["l4"]["DPT"] == "80" and d["flags"] == ["DF", "SYN"]
    assert d["line"] == CURRENT[3]


def test_json_of_an_upstream_guest_line(tmp_path: Path) -> None:
    (tmp_path / "pve-firewall.log").write_text(samples.GUEST_UDP + "\n")
    [doc] = [json.loads(x) for x in out_lines(run(tmp_path, "--json"))]
    assert doc["time"] == "2026-12-04T01:00:00+01:00"
    assert doc["fields"]["mark"] == "100" and doc["l4"] == {"SPT": "5353", "DPT": "53",
                                                             "LEN": "36"}


def test_errors(logdir: Path, tmp_path: Path) -> None:
    res = run(logdir, "--since", "someday")
    assert res.returncode == 2 and "--since: 'someday' is not a time" in res.stderr
    res = run(logdir, "--follow", "--until", "now")
    assert res.returncode == 2 and "--follow" in res.stderr
    missing = tmp_path / "nowhere"
    res = run(missing)
    assert res.returncode == 1 and str(missing / "pve-firewall.log") in res.stderr


# --- --follow -----------------------------------------------------------------------


class Follower:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.sel = selectors.DefaultSelector()
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        self.sel.register(proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def lines(self, n: int, timeout: float = 15.0) -> list[str]:
        """The next ``n`` lines; fails after ``timeout`` seconds."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while self.buf.count(b"\n") < n:
            left = deadline - time.monotonic()
            assert left > 0, f"got only {self.buf!r}"
            if self.sel.select(left):
                chunk = self.proc.stdout.read()
                assert chunk, f"log --follow ended: {self.buf!r}"
                self.buf += chunk
        *got, self.buf = self.buf.split(b"\n", n)
        return [g.decode() for g in got[:n]] if len(got) >= n else []

    def quiet(self, seconds: float) -> bytes:
        """Whatever is printed within ``seconds`` (expected: nothing)."""
        assert self.proc.stdout is not None
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.sel.select(left):
                self.buf += self.proc.stdout.read() or b""
        return self.buf


@pytest.fixture
def follower(logdir: Path) -> Iterator[tuple[Follower, Path]]:
    proc = subprocess.Popen([*CLI, "--file", str(logdir / "pve-firewall.log"), "--follow",
                             "--vmid", "100"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=ENV)
    try:
        yield Follower(proc), logdir / "pve-firewall.log"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_open(pid: int, path: Path, timeout: float = 30.0) -> None:
    """Until process ``pid`` has ``path`` open (seen in /proc/<pid>/fd)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fds = Path(f"/proc/{pid}/fd")
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == str(path) for fd in fds.iterdir()):
                return
        time.sleep(0.05)
    pytest.fail(f"log --follow did not open {path}")


def append(path: Path, *lines: str) -> None:
    with open(path, "a") as fh:
        fh.write("".join(x + "\n" for x in lines))


def test_follow_prints_appended_lines_and_survives_rotation(
        follower: tuple[Follower, Path]) -> None:
    f, log = follower
    wait_open(f.proc.pid, log)  # what the file holds by then is not printed
    first, other = line(100, 4, "12:00:00"), line(101, 4, "12:00:01")
    append(log, other, first)
    assert f.lines(1) == [first]
    # logrotate: the file is renamed and a new one created; the logger writes one more
    # line to the old file before SIGHUP makes it reopen, then writes to the new one.
    log.rename(log.with_name("pve-firewall.log.1"))
    log.write_text("")
    time.sleep(0.6)
    late, fresh = line(100, 4, "12:00:02"), line(100, 4, "12:00:03")
    append(log.with_name("pve-firewall.log.1"), late)
    append(log, fresh)
    assert f.lines(2) == [late, fresh]
    # A second rotation, this time the old file is compressed and removed at once.
    log.rename(log.with_name("pve-firewall.log.1.tmp"))
    log.with_name("pve-firewall.log.1.tmp").unlink()
    time.sleep(0.6)
    append(log, line(100, 4, "12:00:04"))
    assert f.lines(1) == [line(100, 4, "12:00:04")]
    assert f.quiet(0.8) == b"", "a line was printed twice"


def test_follow_with_since_starts_in_the_rotated_files(logdir: Path) -> None:
    proc = subprocess.Popen([*CLI, "--file", str(logdir / "pve-firewall.log"), "--follow",
                             "--json", "--since", "2026-12-03"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=ENV)
    try:
        f = Follower(proc)
        got = [json.loads(x)["line"] for x in f.lines(6)]
        assert got == [OLDER[0], OLDER[1], *CURRENT]
        append(logdir / "pve-firewall.log", line(7, 5, "00:00:00"))
        assert json.loads(f.lines(1)[0])["vmid"] == 7
    finally:
        proc.terminate()
        proc.wait(timeout=10)
