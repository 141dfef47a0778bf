"""Logging (admin guide §13.9): per-rule ``-log <level>``, the policies' ``log_level_*``,
``nolog`` and ``log_ratelimit``, read back from NFLOG group 0 of the host namespace.

Each logged packet must arrive with the prefix ``:0:<logid>:<chain>: <VERDICT>: `` that
pvefw-logger parses, and logging must not change the verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.behaviour.hostlib import Firewall, Pkt, cluster_fw, host_fw, v4v6
from tests.harness.nflog import LogMessage, NflogReader
from tests.harness.topology import Topology

pytestmark = pytest.mark.netns

LOGIDS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "warn": 4, "notice": 5,
          "info": 6, "debug": 7}  # fmt: skip
PROTO = {"tcp": 6, "udp": 17}


@pytest.fixture
def nflog(host_topo: Topology) -> Iterator[NflogReader]:
    reader = NflogReader(host_topo.host.ns)
    try:
        yield reader
    finally:
        reader.close()


def about(pkt: Pkt) -> Callable[[LogMessage], bool]:
    def match(m: LogMessage) -> bool:
        p = m.packet
        return (p is not None and p.proto == PROTO[pkt.proto] and p.dport == pkt.port
                and (p.version == 6) == pkt.v6)  # fmt: skip

    return match


def send_and_log(fw: Firewall, nflog: NflogReader, pkt: Pkt) -> tuple[str, list[str]]:
    """The verdict of ``pkt`` and the prefixes of the log messages about it.

    A log statement runs (and, with queue threshold 1, its message is queued on the
    reader's socket) before the packet reaches the verdict the probe observes, so no
    waiting is needed, also not to be sure that nothing was logged.
    """
    nflog.read()
    verdict = fw.send(pkt)
    match = about(pkt)
    return verdict, [m.prefix for m in nflog.read() if match(m)]


@pytest.mark.parametrize("level", list(LOGIDS))
def test_rule_log_level(fw: Firewall, nflog: NflogReader, level: str) -> None:
    fw.apply(
        cluster_fw("policy_in: DROP\npolicy_out: DROP\nlog_ratelimit: 0\n"),
        host_fw(f"""\
            IN ACCEPT -p tcp -dport 80 -log {level}
            IN DROP -p tcp -dport 81 -log {level}
            IN REJECT -p udp -dport 82 -log {level}
            OUT ACCEPT -p tcp -dport 83 -log {level}
        """),
    )
    n = LOGIDS[level]
    rule = f'tcp dport 80 log prefix ":0:{n}:host-in: ACCEPT: " group 0'
    assert rule in fw.chain("host-in")
    for v6 in (False, True):
        assert send_and_log(fw, nflog, Pkt("tcp", 80, v6=v6)) == (
            "ACCEPT", [f":0:{n}:host-in: ACCEPT: "])
        assert send_and_log(fw, nflog, Pkt("tcp", 81, v6=v6)) == (
            "DROP", [f":0:{n}:host-in: DROP: "])
        assert send_and_log(fw, nflog, Pkt("udp", 82, v6=v6)) == (
            "REJECT", [f":0:{n}:host-in: REJECT: "])
        assert send_and_log(fw, nflog, Pkt("tcp", 83, v6=v6, src="host", dst="outside")) == (
            "ACCEPT", [f":0:{n}:host-out: ACCEPT: "])  # fmt: skip


def test_nolog_adds_no_log_rule(fw: Firewall, nflog: NflogReader) -> None:
    fw.apply(cluster_fw("policy_in: DROP\nlog_ratelimit: 0\n"),
             host_fw("IN ACCEPT -p tcp -dport 80 -log nolog\nIN ACCEPT -p tcp -dport 81\n"))
    assert " log " not in fw.chain("host-in")
    for pkt in [*v4v6(Pkt("tcp", 80)), *v4v6(Pkt("tcp", 81))]:
        assert send_and_log(fw, nflog, pkt) == ("ACCEPT", [])


def test_group_rule_log(fw: Firewall, nflog: NflogReader) -> None:
    fw.apply(
        cluster_fw("policy_in: DROP\nlog_ratelimit: 0\n",
                   "[group grp]\nIN ACCEPT -p tcp -dport 84 -log info\n"),
        host_fw("GROUP grp\n"),
    )
    for pkt in v4v6(Pkt("tcp", 84)):
        assert send_and_log(fw, nflog, pkt) == ("ACCEPT", [":0:6:group-grp-in: ACCEPT: "])


def test_policy_log_levels(fw: Firewall, nflog: NflogReader) -> None:
    """``log_level_in/out/forward`` of host.fw log the cluster policies."""
    fw.apply(
        cluster_fw("policy_in: DROP\npolicy_out: REJECT\npolicy_forward: DROP\n"
                   "log_ratelimit: 0\n"),
        host_fw(options="log_level_in: info\nlog_level_out: warning\nlog_level_forward: err\n"),
    )
    for v6 in (False, True):
        assert send_and_log(fw, nflog, Pkt("tcp", 90, v6=v6)) == (
            "DROP", [":0:6:cluster-in: DROP: "])
        assert send_and_log(fw, nflog, Pkt("tcp", 91, v6=v6, src="host", dst="outside")) == (
            "REJECT", [":0:4:cluster-out: REJECT: "])
        assert send_and_log(fw, nflog, Pkt("udp", 92, v6=v6, dst="far")) == (
            "DROP", [":0:3:cluster-forward: DROP: "])  # fmt: skip


def test_policy_without_log_level_logs_nothing(fw: Firewall, nflog: NflogReader) -> None:
    fw.apply(cluster_fw("policy_in: DROP\nlog_ratelimit: 0\n"))
    assert " log " not in fw.chain("cluster-in")
    for pkt in v4v6(Pkt("tcp", 90)):
        assert send_and_log(fw, nflog, pkt) == ("DROP", [])


def test_log_ratelimit_limits_logging_not_traffic(fw: Firewall, nflog: NflogReader) -> None:
    """``log_ratelimit`` is a ``limit`` in front of the log statement: of 5 quick
    packets with rate 1/minute and burst 2, all are accepted and 2 are logged."""
    fw.apply(cluster_fw("policy_in: DROP\nlog_ratelimit: 1,rate=1/minute,burst=2\n"),
             host_fw("IN ACCEPT -p tcp -dport 80 -log debug\n"))  # fmt: skip
    assert ('tcp dport 80 limit rate 1/minute burst 2 packets '
            'log prefix ":0:7:host-in: ACCEPT: " group 0') in fw.chain("host-in")  # fmt: skip
    nflog.read()
    verdicts = [fw.send(Pkt("tcp", 80)) for _ in range(5)]
    logged = [m for m in nflog.read() if about(Pkt("tcp", 80))(m)]
    assert verdicts == ["ACCEPT"] * 5
    assert len(logged) == 2, logged


@pytest.mark.parametrize(("option", "limit"), [
    ("", "limit rate 1/second log"),  # the default: 1/second, burst 5 (nft omits burst 5)
    ("log_ratelimit: 1,rate=10/second,burst=20\n", "limit rate 10/second burst 20 packets log"),
    ("log_ratelimit: 0\n", None),
])  # fmt: skip
def test_log_ratelimit_rule(fw: Firewall, option: str, limit: str | None) -> None:
    fw.apply(cluster_fw(option), host_fw("IN ACCEPT -p tcp -dport 80 -log info\n"))
    chain = fw.chain("host-in")
    if limit is None:
        assert 'tcp dport 80 log prefix ":0:6:host-in: ACCEPT: " group 0' in chain
        assert "limit" not in chain
    else:
        assert f'tcp dport 80 {limit} prefix ":0:6:host-in: ACCEPT: " group 0' in chain
