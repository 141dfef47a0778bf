"""The log daemon (admin guide §13.9) on real packets: the product's rules applied in the
host namespace, crafted frames sent from ``outside``, ``proxmox-firewall logger`` running
inside the host namespace and writing its own file.

Lines are compared whole against the format of pvefw-logger (only the time is taken
from the line, after checking it). "Nothing else was logged" is decided by a marker
packet sent last through a logged rule: the kernel delivers one group's messages in
order and the daemon writes them in order, so once the marker's line is in the file,
every earlier packet's line is too.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxmox_fw.nfnetlink import NfnlSocket
from tests.behaviour.hostlib import HOST4, HOST6, Firewall, Pkt, cluster_fw, host_fw
from tests.harness import rawpkt
from tests.harness.logdaemon import LoggerProcess, eventually, fields
from tests.harness.packets import checksum
from tests.harness.topology import BRIDGE_MACS, OUTSIDE_MAC, Topology

pytestmark = pytest.mark.netns

SRC4, SRC6 = "100.100.1.60", "fd00:100:100:1::60"
MAC4 = f"{BRIDGE_MACS['vmbr0']}:{OUTSIDE_MAC}:08:00"
MAC6 = f"{BRIDGE_MACS['vmbr0']}:{OUTSIDE_MAC}:86:dd"
NO_LIMIT = "policy_in: DROP\nlog_ratelimit: 0\n"
TIME = "%d/%b/%Y:%H:%M:%S %z"


@pytest.fixture
def inj(host_topo: Topology) -> rawpkt.Injector:
    inj = rawpkt.Injector(host_topo, "outside")
    inj.prepare(SRC4, HOST4)
    inj.prepare(SRC6, HOST6)
    return inj


StartLogger = Callable[..., LoggerProcess]


@pytest.fixture
def start_logger(host_topo: Topology, tmp_path: Path) -> Iterator[StartLogger]:
    """Start loggers in the host namespace; all of them are stopped at the end."""
    started: list[LoggerProcess] = []

    def start(*args: str) -> LoggerProcess:
        proc = LoggerProcess(host_topo.host.ns, tmp_path, *args)
        started.append(proc)
        proc.wait_started()
        return proc

    yield start
    for proc in started:
        proc.stop()


def ipv4(proto: int, l4: bytes, *, tos: int = 0, ttl: int = 64, ident: int = 4660,
         src: str = SRC4) -> bytes:  # fmt: skip
    head = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(l4), ident, 0x4000, ttl, proto,
                       0, socket.inet_aton(src), socket.inet_aton(HOST4))  # fmt: skip
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + l4


def tcp4(sport: int, dport: int, *, tos: int = 0, ttl: int = 64, ident: int = 4660) -> bytes:
    segment = rawpkt.tcp(SRC4, HOST4, sport, dport, rawpkt.SYN, seq=123456)
    return ipv4(6, segment, tos=tos, ttl=ttl, ident=ident)


def udp4(sport: int, dport: int) -> bytes:
    return ipv4(17, rawpkt.udp(SRC4, HOST4, sport, dport, b"hello"))


def icmp4_echo(ident: int, seq: int) -> bytes:
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ping"
    return ipv4(1, msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:])


def icmp6_echo(ident: int, seq: int) -> bytes:
    msg = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + b"ping"
    pseudo = (ipaddress.IPv6Address(SRC6).packed + ipaddress.IPv6Address(HOST6).packed
              + struct.pack("!IxxxB", len(msg), 58))  # fmt: skip
    msg = msg[:2] + struct.pack("!H", checksum(pseudo + msg)) + msg[4:]
    return rawpkt.ip_packet(SRC6, HOST6, 58, msg)


def tcp6(sport: int, dport: int) -> bytes:
    return rawpkt.ip_packet(SRC6, HOST6, 6, rawpkt.tcp(SRC6, HOST6, sport, dport, rawpkt.SYN))


def stamp(line: str) -> str:
    """The line's time (fields 4 and 5), checked to be now in the local zone."""
    text = " ".join(line.split(" ")[3:5])
    when = dt.datetime.strptime(text, TIME)
    now = dt.datetime.now().astimezone()
    assert abs((now - when).total_seconds()) < 60, line
    assert when.utcoffset() == now.utcoffset(), line
    return text


def only(lines: list[str], needle: str) -> str:
    found = [ln for ln in lines if needle in ln]
    assert len(found) == 1, (needle, found)
    return found[0]


def marker(inj: rawpkt.Injector, log: LoggerProcess, sport: int, dport: int = 8080) -> None:
    """Send one more logged SYN and wait until its line is written."""
    inj.send(tcp4(sport, dport))
    log.wait_for(f" SPT={sport} DPT={dport} ")


def test_lines_field_by_field(fw: Firewall, inj: rawpkt.Injector,
                              start_logger: StartLogger) -> None:  # fmt: skip
    fw.apply(cluster_fw(NO_LIMIT), host_fw("""\
        IN ACCEPT -p tcp -dport 8080 -log info
        IN DROP -p udp -dport 5000 -log warning
        IN ACCEPT -p icmp -icmp-type echo-request -log debug
        IN ACCEPT -p icmpv6 -icmp-type echo-request -log err
        IN REJECT -p tcp -dport 8443 -log notice
    """))
    log = start_logger()
    inj.send(tcp4(40001, 8080, tos=0xB8, ttl=61, ident=777))
    inj.send(udp4(40002, 5000))
    inj.send(icmp4_echo(0x4242, 7))
    inj.send(icmp6_echo(0x4343, 9))
    inj.send(tcp6(40003, 8443))
    marker(inj, log, 40999)
    lines = log.lines()

    tcp = only(lines, " SPT=40001 ")
    assert tcp == (
        f"0 6 host-in {stamp(tcp)} ACCEPT: IN=vmbr0 MAC={MAC4} SRC={SRC4} DST={HOST4} LEN=40 "
        "TOS=0x18 PREC=0xA0 TTL=61 ID=777 DF PROTO=TCP SPT=40001 DPT=8080 SEQ=123456 ACK=0 "
        "WINDOW=65535 SYN ")
    udp = only(lines, " SPT=40002 ")
    assert udp == (
        f"0 4 host-in {stamp(udp)} DROP: IN=vmbr0 MAC={MAC4} SRC={SRC4} DST={HOST4} LEN=33 "
        "TOS=0x00 PREC=0x00 TTL=64 ID=4660 DF PROTO=UDP SPT=40002 DPT=5000 LEN=13")
    icmp = only(lines, " PROTO=ICMP ")
    assert icmp == (
        f"0 7 host-in {stamp(icmp)} ACCEPT: IN=vmbr0 MAC={MAC4} SRC={SRC4} DST={HOST4} LEN=32 "
        "TOS=0x00 PREC=0x00 TTL=64 ID=4660 DF PROTO=ICMP TYPE=8 CODE=0 ID=16962 SEQ=7 ")
    icmp6 = only(lines, " PROTO=ICMPV6 ")
    assert icmp6 == (
        f"0 3 host-in {stamp(icmp6)} ACCEPT: IN=vmbr0 MAC={MAC6} SRC={SRC6} DST={HOST6} "
        "LEN=12 TC=0 FLOWLBL=0 HOPLIMIT=64 PROTO=ICMPV6 TYPE=128 CODE=0 ID=17219 SEQ=9 ")
    tcp6_line = only(lines, " SPT=40003 ")
    assert tcp6_line == (
        f"0 5 host-in {stamp(tcp6_line)} REJECT: IN=vmbr0 MAC={MAC6} SRC={SRC6} DST={HOST6} "
        "LEN=20 TC=0 FLOWLBL=0 HOPLIMIT=64 PROTO=TCP SPT=40003 DPT=8443 SEQ=1000 ACK=0 "
        "WINDOW=65535 SYN ")
    packet_lines = [ln for ln in lines if not ln.startswith("0 5 - ")]
    assert len(packet_lines) == 6, packet_lines  # five packets and the marker
    assert fields(tcp)["DPT"] == "8080"


def test_nolog_and_unlogged_policy_write_nothing(fw: Firewall, inj: rawpkt.Injector,
                                                 start_logger: StartLogger) -> None:  # fmt: skip
    fw.apply(cluster_fw(NO_LIMIT), host_fw("""\
        IN ACCEPT -p tcp -dport 8081 -log nolog
        IN ACCEPT -p tcp -dport 8082
        IN ACCEPT -p tcp -dport 8080 -log info
    """))
    log = start_logger()
    inj.send(tcp4(41001, 8081))
    inj.send(tcp4(41002, 8082))
    inj.send(udp4(41003, 9))  # the DROP policy, no log_level_in
    marker(inj, log, 41999)
    assert [ln for ln in log.lines() if not ln.startswith("0 5 - ")] == [
        only(log.lines(), " SPT=41999 ")]


def test_ratelimit_limits_lines(fw: Firewall, inj: rawpkt.Injector,
                                start_logger: StartLogger) -> None:  # fmt: skip
    """log_ratelimit burst 3: of ten quick packets three are logged (each rule has its own
    limit, so the marker goes through another rule)."""
    fw.apply(cluster_fw("policy_in: DROP\nlog_ratelimit: 1,rate=1/minute,burst=3\n"),
             host_fw("IN ACCEPT -p tcp -dport 8083 -log info\n"
                     "IN ACCEPT -p tcp -dport 8080 -log info\n"))  # fmt: skip
    log = start_logger()
    for sport in range(42000, 42010):
        inj.send(tcp4(sport, 8083))
    marker(inj, log, 42999)
    assert len([ln for ln in log.lines() if " DPT=8083 " in ln]) == 3


def test_policy_drop_lines(fw: Firewall, inj: rawpkt.Injector,
                           start_logger: StartLogger) -> None:  # fmt: skip
    fw.apply(cluster_fw(NO_LIMIT), host_fw(options="log_level_in: info\n"))
    log = start_logger()
    inj.send(udp4(43001, 9))
    inj.send(udp4(43002, 9))
    last = log.wait_for(" SPT=43002 ")[0]
    first = only(log.lines(), " SPT=43001 ")
    for sport, line in ((43001, first), (43002, last)):
        assert line == (
            f"0 6 cluster-in {stamp(line)} DROP: IN=vmbr0 MAC={MAC4} SRC={SRC4} DST={HOST4} "
            f"LEN=33 TOS=0x00 PREC=0x00 TTL=64 ID=4660 DF PROTO=UDP SPT={sport} DPT=9 LEN=13")


def test_second_logger_does_not_start(fw: Firewall, start_logger: StartLogger,
                                      tmp_path: Path, host_topo: Topology) -> None:  # fmt: skip
    first = start_logger()
    second = LoggerProcess(host_topo.host.ns, tmp_path, "--lock-timeout", "0")
    try:
        assert second.proc.wait(10) == 1
    finally:
        second.stop()
    assert "unable to acquire lock" in second.stderr()
    assert first.proc.poll() is None
    assert (first.run_dir / "lock/pvefw-logger.lck").exists()
    assert (first.run_dir / "pvefw-logger.pid").read_text() == f"{first.proc.pid}\n"
    assert first.log_file.stat().st_mode & 0o777 == 0o644


def test_rotation_by_sighup_loses_and_duplicates_nothing(
    fw: Firewall, inj: rawpkt.Injector, start_logger: StartLogger
) -> None:
    """The file is moved away mid-stream and the daemon told with SIGHUP; every packet is
    in exactly one of the two files, and the new file is in use afterwards."""
    fw.apply(cluster_fw(NO_LIMIT), host_fw("IN ACCEPT -p udp -dport 7000 -log info\n"
                                           "IN ACCEPT -p tcp -dport 8080 -log info\n"))
    log = start_logger()
    rotated = log.log_file.with_name("fw.log.1")
    sports = list(range(20000, 20600))
    for i, sport in enumerate(sports):
        if i == 300:
            log.log_file.rename(rotated)
            log.signal(signal.SIGHUP)
        inj.send(udp4(sport, 7000))
        time.sleep(0.0005)
    marker(inj, log, 44999)
    seen: list[int] = []
    for path in (rotated, log.log_file):
        seen += [int(m) for m in re.findall(r" SPT=(\d+) DPT=7000 ", log.text(path))]
    assert sorted(seen) == sports
    assert log.text(rotated) and " DPT=7000 " in log.text(log.log_file)
    assert "starting pvefw logger" in log.text(rotated)
    assert " SPT=44999 " in log.text(log.log_file)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_flood_keeps_memory_bounded_and_counts_what_it_skipped(
    fw: Firewall, inj: rawpkt.Injector, start_logger: StartLogger
) -> None:
    """120000 packets arrive while the daemon is stopped (SIGSTOP), more than twice what
    its socket holds, so the kernel drops many; then it catches up through a queue of 8
    entries, which overflows too. Every packet is either a line or counted in a
    ``skipped N log entries (queue full)`` line (the kernel's drops are found as gaps in
    the NFLOG sequence numbers), and resident memory stays within a few MiB of what the
    daemon needed at rest."""
    fw.apply(cluster_fw(NO_LIMIT), host_fw("IN DROP -p udp -dport 7001 -log info\n"
                                           "IN ACCEPT -p tcp -dport 8080 -log info\n"))
    log = start_logger("--queue-size", "8")
    pid = log.proc.pid
    rest = _rss_kib(pid)
    peak = [rest]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], _rss_kib(pid))
            except (OSError, AssertionError):
                return
            time.sleep(0.01)

    total = 120_000
    frame = udp4(45001, 7001)
    sampler = threading.Thread(target=sample)
    log.signal(signal.SIGSTOP)
    try:
        for _ in range(total):
            inj.send(frame)
    finally:
        log.signal(signal.SIGCONT)
    sampler.start()
    try:
        # The marker itself may be skipped while the backlog drains: repeat it.
        markers = [0]

        def marked() -> bool:
            inj.send(tcp4(45999, 8080))
            markers[0] += 1
            return " SPT=45999 " in log.text()

        eventually(marked, "the marker after the flood", timeout=60)
    finally:
        done.set()
        sampler.join()
    text = log.text()
    logged = text.count(" DPT=7001 ")
    skipped = sum(int(n) for n in re.findall(r" skipped (\d+) log entries \(queue full\)", text))
    assert skipped > 0 and logged > 0, (logged, skipped)
    # Markers sent before one got through are among the skipped entries, or logged later.
    assert total <= logged + skipped <= total + markers[0], (logged, skipped, markers[0])
    assert peak[0] - rest < 16 * 1024, (rest, peak[0])


def _flush_conntrack() -> None:
    """Delete every conntrack entry of this namespace (what ``conntrack -F`` does); the
    kernel reports each as a DESTROY event."""
    nl = NfnlSocket()
    try:
        nl.request((1 << 8) | 2, socket.AF_INET, 0)
    finally:
        nl.close()


def test_conntrack_events_follow_the_switch_without_restart(
    fw: Firewall, inj: rawpkt.Injector, start_logger: StartLogger, host_topo: Topology
) -> None:
    from proxmox_fw.compile.sysctl import LOG_NF_CONNTRACK, side_effects
    from proxmox_fw.pipeline import compile_dir

    def switch(on: int) -> None:
        """Write the flag as the rule daemon does for host.fw ``log_nf_conntrack``."""
        fw.apply(cluster_fw(NO_LIMIT), host_fw("IN ACCEPT -p tcp -dport 8080 -log info\n",
                                               options=f"log_nf_conntrack: {on}\n"))
        cfg = compile_dir(fw.tree, "pve1").config
        assert cfg is not None
        log.flag.write_text(side_effects(cfg)[LOG_NF_CONNTRACK] + "\n")

    log = start_logger()
    switch(1)
    eventually(lambda: "conntrack logging on" in log.stderr(), "conntrack logging on")
    assert fw.send(Pkt("tcp", 8080, source=SRC4, sport=46001)) == "ACCEPT"
    new = log.wait_for(" sport=46001 dport=8080 ")[0]
    assert new == (f"    [NEW] ipv4     2 tcp      6 {new.split()[5]} SYN_SENT src={SRC4} "
                   f"dst={HOST4} sport=46001 dport=8080 [UNREPLIED] src={HOST4} dst={SRC4} "
                   "sport=8080 dport=46001")  # fmt: skip
    assert new.split()[5].isdigit()
    host_topo.host.ns.run(_flush_conntrack)
    destroy = log.wait_for("[DESTROY] ipv4     2 tcp      6 ")
    ours = [ln for ln in destroy if f"src={SRC4} dst={HOST4} sport=46001 dport=8080 " in ln]
    assert len(ours) == 1, destroy
    assert f"src={HOST4} dst={SRC4} sport=8080 dport=46001 " in ours[0]
    assert not ours[0].endswith(" ")

    switch(0)
    eventually(lambda: "conntrack logging off" in log.stderr(), "conntrack logging off")
    assert fw.send(Pkt("tcp", 8080, source=SRC4, sport=46002)) == "ACCEPT"
    host_topo.host.ns.run(_flush_conntrack)
    marker(inj, log, 46999)
    assert "sport=46002" not in log.text()
    assert log.proc.poll() is None
