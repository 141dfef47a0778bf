"""Host options with crafted packets: ``nosmurfs``, ``tcpflags``, ``protection_synflood``,
``nf_conntrack_allow_invalid``, ``ndp`` and ``nf_conntrack_helpers`` (IPv4 and IPv6 where
the option has a v6 side).

Packets sockets cannot make (bad TCP flags, a broadcast source, a flood of SYNs) are
written raw onto ``outside``'s interface; the host's trace names the chain that decided.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.behaviour.hostlib import HOST4, HOST6, Firewall, Pkt, cluster_fw, host_fw
from tests.harness import rawpkt
from tests.harness.nflog import NflogReader
from tests.harness.rawpkt import ACK, FIN, PSH, RST, SYN, URG, Injector, Outcome
from tests.harness.timing import FALLBACK_TIMEOUT
from tests.harness.topology import Topology

pytestmark = pytest.mark.netns

OPEN = "IN ACCEPT -p tcp -dport 80\nIN ACCEPT -p udp -dport 80\n"
SRC = {4: "100.100.1.50", 6: "fd00:100:100:1::50"}
HOST = {4: HOST4, 6: HOST6}
FAMILIES = pytest.mark.parametrize("ver", [4, 6], ids=["v4", "v6"])


@pytest.fixture
def inj(host_topo: Topology) -> Iterator[Injector]:
    yield Injector(host_topo, "outside")


class Sender:
    """Raw TCP segments from one source to the host's port 80, a fresh sport each."""

    def __init__(self, inj: Injector, src: str, dst: str) -> None:
        self.inj, self.src, self.dst = inj, src, dst
        self.sport = 30000
        inj.prepare(src, dst)

    def tcp(self, flags: int, *, sport: int | None = None, dport: int = 80) -> Outcome:
        if sport is None:
            self.sport += 1
            sport = self.sport
        seg = rawpkt.tcp(self.src, self.dst, sport, dport, flags)
        return self.inj.inject(rawpkt.ip_packet(self.src, self.dst, 6, seg),
                               rawpkt.tcp_flow(self.src, self.dst, sport, dport))  # fmt: skip


def where(out: Outcome) -> tuple[str | None, str | None]:
    return out.verdict, out.chain


# -- nosmurfs ---------------------------------------------------------------------------

SMURF_SRC = "172.16.1.255"  # the broadcast address of the host's vmbr0 network


def _smurf(inj: Injector) -> Outcome:
    """udp from the subnet's broadcast address (IPv4 only: IPv6 has no broadcast, and a
    multicast source never gets past the kernel's own input checks)."""
    udp = rawpkt.udp(SMURF_SRC, HOST4, 5000, 80)
    return inj.inject(rawpkt.ip_packet(SMURF_SRC, HOST4, 17, udp),
                      rawpkt.udp_flow(SMURF_SRC, HOST4, 5000, 80))  # fmt: skip


@pytest.mark.parametrize(("option", "want"), [
    ("", ("DROP", "log-drop-smurfs")),  # on by default
    ("nosmurfs: 1\n", ("DROP", "log-drop-smurfs")),
    ("nosmurfs: 0\n", ("ACCEPT", "host-in")),
])  # fmt: skip
def test_nosmurfs(fw: Firewall, inj: Injector, option: str, want: tuple[str, str]) -> None:
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw(OPEN, option))
    out = _smurf(inj)
    assert where(out) == want, out.describe()


def test_nosmurfs_spares_dhcp_discover(fw: Firewall, inj: Injector) -> None:
    """Source 0.0.0.0 (a DHCP discover to 255.255.255.255) is not a smurf."""
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw("IN ACCEPT -p udp -dport 67\n"))
    bcast = "255.255.255.255"
    out = inj.inject(rawpkt.ip_packet("0.0.0.0", bcast, 17, rawpkt.udp("0.0.0.0", bcast, 68, 67)),
                     rawpkt.udp_flow("0.0.0.0", bcast, 68, 67),
                     dst_mac=rawpkt.BROADCAST_MAC)  # fmt: skip
    assert where(out) == ("ACCEPT", "host-in"), out.describe()


def test_smurf_log_level(fw: Firewall, inj: Injector) -> None:
    fw.apply(cluster_fw("policy_in: DROP\nlog_ratelimit: 0\n"),
             host_fw(OPEN, "smurf_log_level: info\n"))  # fmt: skip
    reader = NflogReader(fw.topo.host.ns)
    try:
        out = _smurf(inj)
        logged = reader.wait(lambda m: m.packet is not None and m.packet.src == SMURF_SRC,
                             FALLBACK_TIMEOUT)  # fmt: skip
    finally:
        reader.close()
    assert where(out) == ("DROP", "log-drop-smurfs"), out.describe()
    assert [m.prefix for m in logged if m.packet and m.packet.src == SMURF_SRC] == [
        ":0:6:log-smurfs: DROP: "
    ]


# -- tcpflags -----------------------------------------------------------------------------

BAD_FLAGS = {"syn+fin": SYN | FIN, "null": 0, "syn+rst": SYN | RST, "fin+psh+urg": FIN | PSH | URG}


@FAMILIES
@pytest.mark.parametrize("tcpflags", [1, 0])
def test_tcpflags_bad_combinations(fw: Firewall, inj: Injector, ver: int,
                                   tcpflags: int) -> None:  # fmt: skip
    """Illegal flag combinations are dropped by ``block-invalid-tcp``; without the option
    they reach the rules (conntrack calls them invalid, so invalid packets are let through
    with ``nf_conntrack_allow_invalid: 1`` to see the option's own effect)."""
    fw.apply(cluster_fw("policy_in: DROP\n"),
             host_fw(OPEN, f"tcpflags: {tcpflags}\nnf_conntrack_allow_invalid: 1\n"))  # fmt: skip
    send = Sender(inj, SRC[ver], HOST[ver])
    want = ("DROP", "log-drop-invalid-tcp") if tcpflags else ("ACCEPT", "host-in")
    got = {name: send.tcp(flags) for name, flags in BAD_FLAGS.items()}
    assert {n: where(o) for n, o in got.items()} == dict.fromkeys(BAD_FLAGS, want), [
        o.describe() for o in got.values()
    ]


@FAMILIES
@pytest.mark.parametrize("tcpflags", [1, 0])
def test_tcpflags_syn_from_port_zero(fw: Firewall, inj: Injector, ver: int,
                                     tcpflags: int) -> None:  # fmt: skip
    """A SYN from source port 0 is valid to conntrack, so only ``tcpflags`` stops it."""
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw(OPEN, f"tcpflags: {tcpflags}\n"))
    out = Sender(inj, SRC[ver], HOST[ver]).tcp(SYN, sport=0)
    want = ("DROP", "log-drop-invalid-tcp") if tcpflags else ("ACCEPT", "host-in")
    assert where(out) == want, out.describe()


def test_tcpflags_with_default_invalid_handling(fw: Firewall, inj: Injector) -> None:
    """With the default ``nf_conntrack_allow_invalid: 0`` an illegal combination is
    already dropped as conntrack-invalid in ``default-in``, before ``option-in`` (as
    upstream and the iptables firewall order it): dropped either way."""
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw(OPEN, "tcpflags: 1\n"))
    out = Sender(inj, SRC[4], HOST4).tcp(SYN | FIN)
    assert where(out) == ("DROP", "invalid-conntrack"), out.describe()


def test_tcp_flags_log_level(fw: Firewall, inj: Injector) -> None:
    fw.apply(cluster_fw("policy_in: DROP\nlog_ratelimit: 0\n"),
             host_fw(OPEN, "tcpflags: 1\ntcp_flags_log_level: debug\n"))  # fmt: skip
    reader = NflogReader(fw.topo.host.ns)
    try:
        out = Sender(inj, SRC[4], HOST4).tcp(SYN, sport=0)
        logged = reader.wait(lambda m: m.packet is not None and m.packet.sport == 0,
                             FALLBACK_TIMEOUT)  # fmt: skip
    finally:
        reader.close()
    assert where(out) == ("DROP", "log-drop-invalid-tcp"), out.describe()
    assert [m.prefix for m in logged if m.packet and m.packet.sport == 0] == [
        ":0:7:log-invalid-tcp: DROP: "
    ]


# -- protection_synflood ----------------------------------------------------------------


@FAMILIES
def test_synflood_limits_only_the_flooding_source(fw: Firewall, inj: Injector,
                                                  ver: int) -> None:  # fmt: skip
    """Rate 2/s, burst 3: of 10 quick SYNs from one source the first few pass and the
    rest are dropped in ``ratelimit-synflood``; another source's SYN and a normal
    connection from a third still get through (upstream dropped all new traffic)."""
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw(OPEN, (
        "protection_synflood: 1\nprotection_synflood_rate: 2\nprotection_synflood_burst: 3\n"
    )))  # fmt: skip
    flood = Sender(inj, SRC[ver], HOST[ver])
    fates = [where(flood.tcp(SYN)) for _ in range(10)]
    passed = [f for f in fates if f == ("ACCEPT", "host-in")]
    limited = [f for f in fates if f == ("DROP", "ratelimit-synflood")]
    assert 3 <= len(passed) <= 4 and len(passed) + len(limited) == 10, fates
    assert fates[:3] == [("ACCEPT", "host-in")] * 3, fates
    other = {4: "100.100.1.51", 6: "fd00:100:100:1::51"}[ver]
    assert where(Sender(inj, other, HOST[ver]).tcp(SYN)) == ("ACCEPT", "host-in")
    third = {4: "100.100.1.52", 6: "fd00:100:100:1::52"}[ver]
    fw.check({Pkt("tcp", 80, source=third): "ACCEPT@host-in",
              Pkt("udp", 80, source=SRC[ver]): "ACCEPT@host-in"})  # fmt: skip


def test_synflood_default_rate_keeps_new_connections_working(fw: Firewall) -> None:
    """With the default rate (200/s, burst 1000) ordinary new connections are accepted:
    the protection is no blanket drop of new inbound traffic."""
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw(OPEN, "protection_synflood: 1\n"))
    fw.check({Pkt("tcp", 80, v6=v6): "ACCEPT@host-in" for v6 in (False, True)}
             | {Pkt("tcp", 22, source="172.16.1.5"): "ACCEPT@accept-management"})  # fmt: skip


# -- nf_conntrack_allow_invalid --------------------------------------------------------


@FAMILIES
@pytest.mark.parametrize("allow", [0, 1])
def test_conntrack_invalid(fw: Firewall, inj: Injector, host_topo: Topology, ver: int,
                           allow: int) -> None:  # fmt: skip
    """Packets conntrack calls invalid (a lone FIN; a lone ACK with
    ``nf_conntrack_tcp_loose`` off in the namespace; an unsolicited echo reply) are
    dropped in ``invalid-conntrack`` unless ``nf_conntrack_allow_invalid: 1``."""
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw(
        OPEN + "IN ACCEPT -p icmp -icmp-type echo-reply\n"
        "IN ACCEPT -p icmpv6 -icmp-type echo-reply\n",
        f"nf_conntrack_allow_invalid: {allow}\n"))  # fmt: skip
    want = ("ACCEPT", "host-in") if allow else ("DROP", "invalid-conntrack")
    send = Sender(inj, SRC[ver], HOST[ver])
    ns, key = host_topo.host.ns, "net/netfilter/nf_conntrack_tcp_loose"
    loose = ns.read_sysctl(key)
    ns.sysctl(key, 0)
    try:
        got = {"fin": send.tcp(FIN), "ack": send.tcp(ACK)}
    finally:
        ns.sysctl(key, loose)
    assert {n: where(o) for n, o in got.items()} == {"fin": want, "ack": want}, [
        o.describe() for o in got.values()
    ]
    icmp = "icmpv6" if ver == 6 else "icmp"
    fw.check({Pkt(icmp, "echo-reply"): "@".join(want)})


# -- ndp ---------------------------------------------------------------------------------

NDP_IN = ["neighbor-solicitation", "neighbor-advertisement", "router-advertisement"]


@pytest.mark.parametrize("ndp", [1, 0])
def test_ndp(fw: Firewall, ndp: int) -> None:
    """Neighbour discovery to and from the host: accepted under DROP policies with
    ``ndp: 1`` (the default), dropped in ``block-ndp-*`` with ``ndp: 0``."""
    fw.apply(cluster_fw("policy_in: DROP\npolicy_out: DROP\n"), host_fw(options=f"ndp: {ndp}\n"))
    cases = {Pkt("icmpv6", t): "ACCEPT@allow-ndp-in" if ndp else "DROP@block-ndp-in"
             for t in NDP_IN}  # fmt: skip
    cases[Pkt("icmpv6", "neighbor-solicitation", src="host", dst="outside")] = (
        "ACCEPT@allow-ndp-out" if ndp else "DROP@block-ndp-out"
    )
    fw.check(cases)


# -- nf_conntrack_helpers ----------------------------------------------------------------


def test_helper_objects_and_rules(fw: Firewall) -> None:
    """Each helper becomes a ``ct helper`` object of its families and a ``ct helper set``
    rule for new connections to its port; v4-only helpers only for IPv4; an unknown
    helper is reported and left out."""
    done = fw.apply(cluster_fw(), host_fw(options="nf_conntrack_helpers: ftp,irc,nosuch,tftp\n"),
                    allow_diagnostics=True)
    assert [d for d in done.diagnostics if "nosuch" in d] != [], done.diagnostics
    text = fw.ruleset()
    for name, proto, l3 in (("ftp", "tcp", "inet"), ("irc", "tcp", "ip"),
                            ("tftp", "udp", "inet")):  # fmt: skip
        assert (f"ct helper helper-{name}-{proto} {{" in text
                and f'type "{name}" protocol {proto}\n\t\tl3proto {l3}\n' in text), name
    ct_in = fw.chain("ct-in")
    assert 'tcp dport 21 ct state new ct helper set "helper-ftp-tcp"' in ct_in
    assert 'meta nfproto ipv4 tcp dport 6667 ct state new ct helper set "helper-irc-tcp"' in ct_in
    assert 'udp dport 69 ct state new ct helper set "helper-tftp-udp"' in ct_in


def _ftp_passive(fw: Firewall, ver: int, data_port: int) -> str:
    """An FTP control connection to port 21 announcing passive mode on ``data_port``,
    then the data connection; returns the data connection's verdict."""
    topo = fw.topo
    src, dst = {4: "100.100.1.60", 6: "fd00:100:100:1::60"}[ver], HOST[ver]
    fam = socket.AF_INET6 if ver == 6 else socket.AF_INET
    fw.send(Pkt("tcp", 2100, source=src))  # places the addresses, routes and neighbours
    ctl = topo.host.ns.socket(fam, socket.SOCK_STREAM)
    cli = topo.zone("outside").ns.socket(fam, socket.SOCK_STREAM)
    conn: socket.socket | None = None
    try:
        ctl.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ctl.bind((dst, 21))
        ctl.listen(1)
        cli.settimeout(FALLBACK_TIMEOUT)
        ctl.settimeout(FALLBACK_TIMEOUT)
        cli.bind((src, 0))
        cli.connect((dst, 21))
        conn, _ = ctl.accept()
        # the helper reads server lines that start a segment after a newline: greet first
        conn.sendall(b"220 ready\r\n")
        cli.recv(100)
        cli.sendall(b"PASV\r\n" if ver == 4 else b"EPSV\r\n")
        conn.recv(100)
        if ver == 4:
            a = dst.replace(".", ",")
            reply = f"227 Entering Passive Mode ({a},{data_port >> 8},{data_port & 255}).\r\n"
        else:
            reply = f"229 Entering Extended Passive Mode (|||{data_port}|)\r\n"
        conn.sendall(reply.encode())
        cli.recv(200)
        return fw.send(Pkt("tcp", data_port, source=src))
    finally:
        for s in (cli, conn, ctl):
            if s is not None:
                s.close()


@FAMILIES
@pytest.mark.parametrize("helpers", ["ftp", ""])
def test_ftp_helper_data_connection(fw: Firewall, ver: int, helpers: str) -> None:
    """With the ftp helper the passive data connection is related and accepted in
    ``default-in`` through ``policy_in: DROP``; without it, it meets the policy. The
    control port itself is opened by the user's rule only."""
    fw.apply(cluster_fw("policy_in: DROP\n"),
             host_fw("IN ACCEPT -p tcp -dport 21\n", f"nf_conntrack_helpers: {helpers}\n"))
    got = _ftp_passive(fw, ver, 40000 + ver)
    if helpers:
        assert (got, fw.decided().split(":")[0]) == ("ACCEPT", "default-in"), fw.decided()
        assert "ct state vmap" in fw.decided()
    else:
        assert got == "DROP" and fw.decided().startswith("cluster-in:"), fw.decided()


def test_helper_does_not_open_control_port(fw: Firewall) -> None:
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw(options="nf_conntrack_helpers: ftp\n"))
    fw.check({Pkt("tcp", 21): "DROP@cluster-in", Pkt("tcp", 21, v6=True): "DROP@cluster-in"})
