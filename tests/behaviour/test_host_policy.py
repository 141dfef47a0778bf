"""Cluster policies as the sender sees them, IPv4 and IPv6 (admin guide §13.8.1).

``policy_in``/``policy_out`` DROP (nothing comes back), REJECT (a reset for TCP, an ICMP
error for UDP and ICMP) and ACCEPT, probed from ``outside`` to the host and from the host
to ``outside``; ``policy_forward`` on traffic the host routes from ``outside`` (vmbr0)
to ``far`` (vmbr1).
"""

from __future__ import annotations

import pytest

from tests.behaviour.hostlib import Firewall, Pkt, cluster_fw, host_fw, probe_events, v4v6

pytestmark = pytest.mark.netns

POLICIES = ["DROP", "REJECT", "ACCEPT"]
# Port 9 is opened by no default rule; icmp is an echo request.
IN = [*v4v6(Pkt("tcp", 9)), *v4v6(Pkt("udp", 9)), *v4v6(Pkt("icmp", "echo-request"))]
OUT = [*v4v6(Pkt("tcp", 9, src="host", dst="outside")),
       *v4v6(Pkt("udp", 9, src="host", dst="outside")),
       *v4v6(Pkt("icmp", "echo-request", src="host", dst="outside"))]  # fmt: skip
FORWARD = [*v4v6(Pkt("tcp", 9, dst="far")), *v4v6(Pkt("udp", 9, dst="far")),
           *v4v6(Pkt("icmp", "echo-request", dst="far"))]  # fmt: skip


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_in(fw: Firewall, policy: str) -> None:
    fw.apply(cluster_fw(f"policy_in: {policy}\n"))
    fw.check(dict.fromkeys(IN, policy))


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_out(fw: Firewall, policy: str) -> None:
    """The host's own new connections meet ``policy_out`` (replies come in as
    established, so ``policy_in: DROP`` does not interfere)."""
    fw.apply(cluster_fw(f"policy_in: DROP\npolicy_out: {policy}\n"))
    fw.check(dict.fromkeys(OUT, policy))


def test_policy_in_drop_decided_by_cluster_in(fw: Firewall) -> None:
    """The DROP is the compiled ``cluster-in`` policy rule, not the base chain's."""
    fw.apply(cluster_fw("policy_in: DROP\n"))
    fw.check({p: "DROP@cluster-in" for p in IN})


def test_reject_answer_passes_a_drop_output_policy(fw: Firewall) -> None:
    """The reset / ICMP error a REJECT sends is related traffic (or a vital ICMP type), so
    ``policy_out: DROP`` does not swallow it: the sender still sees REJECT."""
    fw.apply(cluster_fw("policy_in: REJECT\npolicy_out: DROP\n"))
    fw.check(dict.fromkeys(IN, "REJECT"))


def test_policy_defaults(fw: Firewall) -> None:
    """No policy options: IN is DROP, OUT is ACCEPT (notes §3.1)."""
    fw.apply(cluster_fw())
    fw.check({**dict.fromkeys(IN, "DROP"), **dict.fromkeys(OUT, "ACCEPT")})


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_forward(fw: Firewall, policy: str) -> None:
    """Routed traffic through the host meets ``policy_forward`` (input stays DROP)."""
    fw.apply(cluster_fw(f"policy_forward: {policy}\n"))
    fw.check(dict.fromkeys(FORWARD, policy))


def test_forward_rules_before_forward_policy(fw: Firewall) -> None:
    """Host and cluster FORWARD rules open routed traffic through a DROP policy."""
    fw.apply(
        cluster_fw("policy_forward: DROP\n", "[RULES]\nFORWARD ACCEPT -p udp -dport 9\n"),
        host_fw("FORWARD ACCEPT -p tcp -dport 9\n"),
    )
    fw.check({
        **{p: "ACCEPT" for p in FORWARD if p.proto != "icmp" and p.proto != "icmpv6"},
        **{p: "DROP" for p in FORWARD if p.proto in ("icmp", "icmpv6")},
    })  # fmt: skip


# What a REJECT sends back (do-reject): a reset for TCP, port-unreachable for UDP,
# host-prohibited (v4) / admin-prohibited (v6) for anything else.
REJECT_ANSWER = {
    ("tcp", False): "tcp", ("tcp", True): "tcp",
    ("udp", False): "icmp 3/3", ("udp", True): "icmpv6 1/4",
    ("icmp", False): "icmp 3/10", ("icmpv6", True): "icmpv6 1/1",
}  # fmt: skip


def answers(fw: Firewall, pkt: Pkt) -> set[str]:
    """What came back towards the sender of the last probe, as the trace saw it."""
    seen: set[str] = set()
    for ev in probe_events(fw.topo):
        p = ev.packet
        if p is None:
            continue
        if p.is_icmp_error:
            seen.add(f"{'icmpv6' if p.proto == 58 else 'icmp'} {p.icmp_type}/{p.icmp_code}")
        elif p.proto == 6 and p.sport == pkt.port:
            seen.add("tcp")
    return seen


@pytest.mark.parametrize("way", ["in", "out"])
def test_reject_answer_kind(fw: Firewall, way: str) -> None:
    """REJECT answers TCP with a reset and UDP/ICMP with the ICMP error of its kind."""
    fw.apply(cluster_fw("policy_in: REJECT\npolicy_out: REJECT\n"))
    wrong = []
    for pkt in IN if way == "in" else OUT:
        got = fw.send(pkt)
        kind = answers(fw, pkt)
        want = REJECT_ANSWER[(pkt.proto, pkt.v6)]
        if got != "REJECT" or kind != {want}:
            wrong.append(f"{pkt}: {got}, answered by {kind or 'nothing'}, want {want}")
    assert wrong == [], wrong
