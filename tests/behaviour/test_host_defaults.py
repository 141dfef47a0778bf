"""The default rules of admin guide §13.8.1 under a DROP (or REJECT) input policy, IPv4 and IPv6.

Still allowed: loopback, established connections, IGMP, the management ports from the
``management`` ipset and ``local_network``, corosync from the cluster network only,
multicast within it, and the vital ICMP types. Dropped without logging, by ``drop-noise``
right before the logged policy: the SMB/NetBIOS/UPnP/DNS-reply noise and broadcast or
multicast not from the cluster; a host rule still opens SMB. The ``blacklist`` ipset is
dropped before management access.
"""

from __future__ import annotations

import contextlib
import select
import socket

import pytest

from tests.behaviour.hostlib import (
    HOST4,
    HOST6,
    Firewall,
    Pkt,
    cluster_fw,
    corosync_conf,
    host_fw,
    probe_events,
    v4v6,
)
from tests.harness import rawpkt
from tests.harness.nflog import LogMessage, NflogReader
from tests.harness.nftrace import NF_ACCEPT, NF_DROP, TRACETYPE_RULE
from tests.harness.timing import FALLBACK_TIMEOUT

pytestmark = pytest.mark.netns

ACC, DROP, NOISE = "ACCEPT@host-in", "DROP@cluster-in", "DROP@drop-noise"
MGMT = "ACCEPT@accept-management"


@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
def test_loopback(fw: Firewall, v6: bool) -> None:
    """A connection over ``lo`` works with both policies DROP, by ``iifname "lo"``."""
    fw.apply(cluster_fw("policy_in: DROP\npolicy_out: DROP\n"))
    ns = fw.topo.host.ns
    fam, addr = (socket.AF_INET6, "::1") if v6 else (socket.AF_INET, "127.0.0.1")
    srv = ns.socket(fam, socket.SOCK_STREAM)
    cli = ns.socket(fam, socket.SOCK_STREAM)
    try:
        srv.bind((addr, 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        fw.topo.tracer.ensure()
        fw.topo.tracer.drain()
        cli.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            cli.connect((addr, port))
        select.select([], [cli], [], FALLBACK_TIMEOUT)
        assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        # the SYN was traced before the SYN-ACK made the socket writable
        decided = [fw.rule(ev.chain, ev.rule_handle) for ev in fw.topo.tracer.read()
                   if ev.chain == "default-in" and ev.type == TRACETYPE_RULE
                   and ev.verdict in (NF_ACCEPT, NF_DROP)]  # fmt: skip
        assert decided and all('iifname "lo" accept' in d for d in decided), decided
    finally:
        cli.close()
        srv.close()


@pytest.mark.parametrize("way", ["out", "in"])
def test_established_replies(fw: Firewall, way: str) -> None:
    """Answers to an accepted connection pass the other direction's DROP policy: the
    SYN-ACK meets the conntrack rule of ``default-in`` (host's own connection) or
    ``default-out`` (a connection to the host)."""
    fw.apply(cluster_fw("policy_in: DROP\npolicy_out: DROP\n"),
             host_fw("IN ACCEPT -p tcp -dport 80\nOUT ACCEPT -p tcp -dport 80\n"))
    pkts = v4v6(Pkt("tcp", 80, src="host", dst="outside") if way == "out" else Pkt("tcp", 80))
    chain = "default-in" if way == "out" else "default-out"
    for pkt in pkts:
        assert fw.send(pkt) == "ACCEPT", fw.decided()
        replies = [fw.rule(ev.chain, ev.rule_handle) for ev in probe_events(fw.topo)
                   if ev.chain == chain and ev.verdict == NF_ACCEPT]  # fmt: skip
        assert any("ct state vmap" in r for r in replies), (pkt, replies)


def test_igmp(fw: Firewall) -> None:
    """IGMP (IPv4 only: IPv6 has MLD inside ICMPv6) is accepted under DROP."""
    fw.apply(cluster_fw("policy_in: DROP\n"))
    inj = rawpkt.Injector(fw.topo, "outside")
    src = "100.100.1.30"
    inj.prepare(src, HOST4)
    out = inj.inject(rawpkt.ip_packet(src, HOST4, 2, rawpkt.igmp_report("239.1.1.1")),
                     lambda p: p.proto == 2 and p.src == src)  # fmt: skip
    assert out.verdict == "ACCEPT", out.describe()
    assert fw.outcome(out) == "default-in: meta l4proto igmp accept", out.describe()
    # control: other traffic from the same source does meet the DROP policy
    assert fw.send(Pkt("udp", 9, source=src)) == "DROP"


def test_igmp_out(fw: Firewall) -> None:
    """The host's own IGMP (a membership report when a socket joins a group) leaves under
    ``policy_out: DROP``, by ``meta l4proto igmp accept`` in ``default-out``."""
    fw.apply(cluster_fw("policy_out: DROP\n"))
    ns = fw.topo.host.ns
    ifindex = ns.run(socket.if_nametoindex, "vmbr0")
    sock = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fw.topo.tracer.ensure()
        fw.topo.tracer.drain()
        group, local = socket.inet_aton("239.7.7.7"), socket.inet_aton(HOST4)
        mreqn = group + local + ifindex.to_bytes(4, "little")  # struct ip_mreqn
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        out = rawpkt.wait_decision(fw.topo, lambda p: p.proto == 2)
        assert fw.outcome(out) == "default-out: meta l4proto igmp accept", out.describe()
    finally:
        sock.close()


MANAGEMENT = """\
[IPSET management]
198.51.100.0/24
!198.51.100.128/25
fd00:99::/64
!fd00:99::80/121
"""


def test_management_ports_from_management_and_detected_network(fw: Firewall) -> None:
    """22, 3128, 5900-5999 and 8006 from the ``management`` ipset (minus its ``!``
    entries) and the detected local network 172.16.1.0/24, nothing else."""
    fw.apply(cluster_fw("policy_in: DROP\n", MANAGEMENT))
    cases: dict[Pkt, str] = {}
    for src in ("172.16.1.5", "198.51.100.7", "fd00:99::5"):
        cases |= {Pkt("tcp", p, source=src): MGMT for p in (22, 3128, 5900, 5999, 8006)}
        cases |= {Pkt("tcp", p, source=src): DROP for p in (21, 5899, 6000, 8007)}
        cases[Pkt("udp", 8006, source=src)] = DROP
    for src in ("100.100.1.2", "198.51.100.200", "172.16.2.5", "fd00:99::85", "fd00:98::5",
                "fd00:16:1::5"):  # fmt: skip
        cases |= {Pkt("tcp", p, source=src): DROP for p in (22, 8006)}
    fw.check(cases)


@pytest.mark.parametrize("alias", ["10.9.0.0/16", "fd00:16:1::/64"])
def test_management_local_network_alias(fw: Firewall, alias: str) -> None:
    """A ``local_network`` alias replaces the detected network (admin guide §13.5.1)."""
    fw.apply(cluster_fw("policy_in: DROP\n", f"[ALIASES]\nlocal_network {alias}\n"))
    inside = "10.9.1.1" if "." in alias else "fd00:16:1::5"
    fw.check({Pkt("tcp", 8006, source=inside): MGMT, Pkt("tcp", 22, source=inside): MGMT,
              Pkt("tcp", 8006, source="172.16.1.5"): DROP})  # fmt: skip


COROSYNC = corosync_conf(
    ("pve1", {"ring0_addr": "172.16.1.2", "ring1_addr": "fd00:16:1::2"}),
    ("pve2", {"ring0_addr": "172.16.1.3", "ring1_addr": "fd00:16:1::3"}),
)


def test_corosync_only_from_cluster_network(fw: Firewall) -> None:
    """udp 5405-5412 from the other node's link addresses; not from the rest of the local
    network, not from outside; multicast only to those ports and only from a node (seed
    §13.8.1): other multicast is noise, multicast to corosync's ports from elsewhere meets
    the logged policy."""
    fw.apply(cluster_fw("policy_in: DROP\n"), corosync=COROSYNC)
    cases: dict[Pkt, str] = {}
    for peer, stranger, group in (("172.16.1.3", "172.16.1.9", "239.192.1.1"),
                                  ("fd00:16:1::3", "fd00:16:1::9", "ff15::5405")):  # fmt: skip
        cases |= {
            Pkt("udp", 5405, source=peer): "ACCEPT@default-in",
            Pkt("udp", 5412, source=peer): "ACCEPT@default-in",
            Pkt("udp", 5413, source=peer): DROP, Pkt("tcp", 5405, source=peer): DROP,
            Pkt("udp", 5405, source=stranger): DROP,
            Pkt("udp", 5405, v6=":" in peer): DROP,
            Pkt("udp", 5405, source=peer, dest=group, multicast=True): "ACCEPT@default-in",
            Pkt("udp", 5412, source=peer, dest=group, multicast=True): "ACCEPT@default-in",
            Pkt("udp", 9999, source=peer, dest=group, multicast=True): NOISE,
            Pkt("udp", 5404, source=peer, dest=group, multicast=True): NOISE,
            Pkt("udp", 5405, source=stranger, dest=group, multicast=True): DROP,
        }  # fmt: skip
    fw.check(cases)


def test_cluster_traffic_out_under_drop_policy(fw: Firewall) -> None:
    """``policy_out: DROP`` still lets the host reach the management ports of its local
    network, corosync peers and corosync multicast (admin guide §13.8.1: "for all hosts in the
    cluster"); other destinations meet the policy."""
    fw.apply(cluster_fw("policy_out: DROP\n"), corosync=COROSYNC)

    def out(proto: str, port: int, dest: str, multicast: bool = False) -> Pkt:
        return Pkt(proto, port, dest=dest, multicast=multicast, src="host", dst="outside")

    cases = {out("tcp", p, "172.16.1.5"): "ACCEPT@default-out" for p in (22, 3128, 5900, 8006)}
    cases |= {
        out("tcp", 8007, "172.16.1.5"): "DROP@cluster-out",
        out("tcp", 22, "100.200.3.4"): "DROP@cluster-out",
        out("udp", 5405, "172.16.1.3"): "ACCEPT@default-out",
        out("udp", 5412, "fd00:16:1::3"): "ACCEPT@default-out",
        out("udp", 5405, "172.16.1.9"): "DROP@cluster-out",
        out("udp", 5405, "fd00:16:1::9"): "DROP@cluster-out",
        out("udp", 5405, "239.192.1.1", multicast=True): "ACCEPT@default-out",
        out("udp", 5405, "ff15::5405", multicast=True): "ACCEPT@default-out",
        out("udp", 9999, "239.192.1.1", multicast=True): "DROP@cluster-out",
    }  # fmt: skip
    fw.check(cases)


def test_no_corosync_conf_no_corosync(fw: Firewall) -> None:
    """Without corosync.conf there is no cluster network: corosync ports stay closed."""
    fw.apply(cluster_fw("policy_in: DROP\n"))
    fw.check({Pkt("udp", 5405, source="172.16.1.3"): DROP,
              Pkt("udp", 5405, source="fd00:16:1::3"): DROP})  # fmt: skip


@pytest.mark.parametrize("policy", ["DROP", "REJECT"])
def test_vital_icmp(fw: Firewall, policy: str) -> None:
    """ICMP 3, 4, 11 and ICMPv6 1-4 pass even without a connection they belong to;
    other types meet the policy."""
    fw.apply(cluster_fw(f"policy_in: {policy}\n"))
    vital = "ACCEPT@allow-icmp"
    cases = {Pkt("icmp", t): vital
             for t in ("destination-unreachable", "source-quench", "time-exceeded")}
    cases |= {Pkt("icmpv6", t): vital for t in (1, 2, 3, 4)}
    cases |= {Pkt("icmp", t): policy for t in ("echo-request", 13)}
    cases |= {Pkt("icmpv6", t): policy for t in ("echo-request", 139)}
    # an error type that is not vital and quotes no connection is invalid to conntrack
    cases[Pkt("icmp", "parameter-problem")] = "DROP@invalid-conntrack"
    fw.check(cases)


NOISE_PKTS = [
    *v4v6(Pkt("tcp", 43)), *v4v6(Pkt("tcp", 135)), *v4v6(Pkt("tcp", 139)),
    *v4v6(Pkt("tcp", 445)), *v4v6(Pkt("udp", 135)), *v4v6(Pkt("udp", 137)),
    *v4v6(Pkt("udp", 138)), *v4v6(Pkt("udp", 139)), *v4v6(Pkt("udp", 445)),
    *v4v6(Pkt("udp", 1900)), *v4v6(Pkt("udp", 5000, sport=137)),
    *v4v6(Pkt("udp", 65535, sport=137)), *v4v6(Pkt("udp", 4000, sport=53)),
    Pkt("udp", 4000, dest="239.1.2.3", multicast=True),
    Pkt("udp", 4000, dest="ff0e::4000", multicast=True),
]  # fmt: skip
NOT_NOISE = [
    *v4v6(Pkt("tcp", 44)), *v4v6(Pkt("udp", 136)), *v4v6(Pkt("udp", 1899)),
    *v4v6(Pkt("udp", 1023, sport=137)), *v4v6(Pkt("tcp", 4000, sport=53)),
    # corosync's ports are not noise, not even multicast from outside the cluster network
    Pkt("udp", 5405, dest="239.1.2.3", multicast=True),
    Pkt("udp", 5412, dest="ff0e::4000", multicast=True),
]  # fmt: skip


def _about(m: LogMessage, pkt: Pkt) -> bool:
    p, proto = m.packet, {"tcp": 6, "udp": 17}[pkt.proto]
    return (p is not None and p.proto == proto and p.dport == pkt.port
            and (pkt.sport is None or p.sport == pkt.sport))  # fmt: skip


def _expect(pkt: Pkt, policy: str) -> str:
    # The kernel never answers a multicast destination, so REJECT's reject is a drop there.
    return "DROP@do-reject" if pkt.multicast and policy == "REJECT" else policy


RAW_NOISE_PORT = 4002


def _raw_noise(fw: Firewall) -> list[str]:
    """Noise only raw frames can carry; each must be dropped by ``drop-noise``: UDP to the
    IPv4 broadcast and to vmbr0's IPv6 subnet-router anycast address (the host forwards,
    so it has one), and TCP segments that are no bare SYN and belong to no connection
    (admin guide §13.8.1: "TCP connections with invalid connection state")."""
    inj = rawpkt.Injector(fw.topo, "outside")
    port = RAW_NOISE_PORT
    wrong = []
    for src, dst, mac in (("100.100.1.31", "172.16.1.255", rawpkt.BROADCAST_MAC),
                          ("fd00:100:100:1::31", "fd00:16:1::", None)):  # fmt: skip
        inj.prepare(src, HOST6 if ":" in src else HOST4)
        out = inj.inject(rawpkt.ip_packet(src, dst, 17, rawpkt.udp(src, dst, 4001, port)),
                         rawpkt.udp_flow(src, dst, 4001, port), dst_mac=mac)  # fmt: skip
        if (out.verdict, out.chain) != ("DROP", "drop-noise"):
            wrong.append(f"udp to {dst}: {out.describe()}")
    for src, dst in (("100.100.1.32", HOST4), ("fd00:100:100:1::32", HOST6)):
        inj.prepare(src, dst)
        # conntrack picks a lone ACK up as a new connection (drop-noise drops it), while it
        # calls a lone FIN or RST invalid (dropped, unlogged, before any rule)
        for flags, chain in ((rawpkt.ACK, "drop-noise"), (rawpkt.PSH | rawpkt.ACK, "drop-noise"),
                             (rawpkt.FIN | rawpkt.ACK, "invalid-conntrack"),
                             (rawpkt.RST, "invalid-conntrack")):  # fmt: skip
            out = inj.inject(rawpkt.ip_packet(src, dst, 6, rawpkt.tcp(src, dst, 4001, port,
                                                                      flags)),
                             rawpkt.tcp_flow(src, dst, 4001, port))  # fmt: skip
            if (out.verdict, out.chain) != ("DROP", chain):
                wrong.append(f"tcp flags {flags:#x} to {dst}: {out.describe()}")
    return wrong


@pytest.mark.parametrize("policy", ["DROP", "REJECT"])
def test_noise_dropped_without_logging(fw: Firewall, policy: str) -> None:
    """With ``log_level_in`` set, the noise is dropped in ``drop-noise`` and logged
    nowhere, while its neighbours meet the logged policy (no log rate limit, so every
    logged packet shows)."""
    fw.apply(cluster_fw(f"policy_in: {policy}\nlog_ratelimit: 0\n"),
             host_fw(options="log_level_in: info\n"))
    reader = NflogReader(fw.topo.host.ns)
    try:
        fw.check({**dict.fromkeys(NOISE_PKTS, NOISE),
                  **{p: _expect(p, policy) for p in NOT_NOISE}})  # fmt: skip
        assert _raw_noise(fw) == []
        last = NOT_NOISE[-1]
        logged = reader.wait(lambda m: _about(m, last), FALLBACK_TIMEOUT)
    finally:
        reader.close()
    prefix = f":0:6:cluster-in: {policy}: "
    assert all(any(_about(m, p) and m.prefix == prefix for m in logged) for p in NOT_NOISE)
    noisy = [m for m in logged if any(_about(m, p) for p in NOISE_PKTS)
             or (m.packet is not None and m.packet.dport == RAW_NOISE_PORT)]  # fmt: skip
    assert noisy == []


def test_noise_accepted_under_accept_policy(fw: Firewall) -> None:
    fw.apply(cluster_fw("policy_in: ACCEPT\n"))
    fw.check(dict.fromkeys([*v4v6(Pkt("tcp", 445)), *v4v6(Pkt("udp", 137))], "ACCEPT"))


def test_host_rule_opens_smb(fw: Firewall) -> None:
    """A user rule comes before the noise filter: ``IN ACCEPT -p tcp -dport 445`` opens
    SMB (upstream rejected it in ``default-in`` before any user rule)."""
    fw.apply(cluster_fw("policy_in: DROP\n"), host_fw("IN ACCEPT -p tcp -dport 445\n"))
    fw.check({**dict.fromkeys(v4v6(Pkt("tcp", 445)), ACC),
              **dict.fromkeys(v4v6(Pkt("tcp", 139)), NOISE)})  # fmt: skip


def test_blacklist_before_management(fw: Firewall) -> None:
    """Blacklisted sources are dropped in ``default-in`` before management access and
    user rules; the blacklist's ``!`` entries and other management hosts still pass."""
    fw.apply(
        cluster_fw("policy_in: DROP\n", """\
            [IPSET management]
            100.64.0.0/16
            fd00:64::/48

            [IPSET blacklist]
            100.64.0.0/24
            !100.64.0.7
            fd00:64::/64
            !fd00:64::7
        """),
        host_fw("IN ACCEPT -p tcp -dport 80\n"),
    )
    black = "DROP@default-in"
    cases: dict[Pkt, str] = {}
    for banned, spared, other in (("100.64.0.5", "100.64.0.7", "100.64.1.5"),
                                  ("fd00:64::5", "fd00:64::7", "fd00:64:0:1::5")):  # fmt: skip
        cases |= {
            Pkt("tcp", 22, source=banned): black, Pkt("tcp", 80, source=banned): black,
            Pkt("tcp", 8006, source=banned): black,
            Pkt("tcp", 22, source=spared): MGMT, Pkt("tcp", 80, source=spared): ACC,
            Pkt("tcp", 22, source=other): MGMT,
        }  # fmt: skip
    fw.check(cases)  # the only drop rules of default-in are the blacklist's
