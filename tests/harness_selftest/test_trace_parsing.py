"""The trace decoder and the DROP decision, on hand-built events (no kernel needed)."""

from __future__ import annotations

import ipaddress
import struct

from tests.harness.nftrace import (
    NF_ACCEPT,
    NF_DROP,
    TRACETYPE_POLICY,
    TRACETYPE_RULE,
    DropTracker,
    Flow,
    Packet,
    TraceEvent,
    parse_packet,
    signed_verdict,
)


def ipv4(src: str, dst: str, proto: int) -> bytes:
    return (
        struct.pack("!BBHHHBBH", 0x45, 0, 40, 1, 0, 64, proto, 0)
        + ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
    )


def ipv6(src: str, dst: str, nexthdr: int) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, 20, nexthdr, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
    )


def tcp(sport: int, dport: int) -> bytes:
    return struct.pack("!HHIIHHHH", sport, dport, 1, 0, 0x5002, 1024, 0, 0)


def verdict_attr(code: int) -> bytes:
    return struct.pack("=HH", 8, 1) + struct.pack("!I", code & 0xFFFFFFFF)


FLOW = Flow(4, "10.0.0.1", "10.0.0.2", 6, sport=40000, dport=22)
SYN = Packet(4, "10.0.0.1", "10.0.0.2", 6, sport=40000, dport=22)
RST = Packet(4, "10.0.0.2", "10.0.0.1", 6, sport=22, dport=40000)


def event(trace_id: int, pkt: Packet | None, *, verdict: int | None = None) -> TraceEvent:
    return TraceEvent(trace_id, 1, "t", "c", TRACETYPE_RULE, verdict, None, pkt)


def test_parse_ipv4_tcp() -> None:
    pkt = parse_packet(ipv4("10.0.0.1", "10.0.0.2", 6), tcp(40000, 22))
    assert pkt == SYN


def test_parse_ipv6_icmp_error_sees_inner_protocol() -> None:
    # ICMPv6 port unreachable quoting a UDP packet: type 1 code 4, 4 unused bytes, inner hdr
    inner = ipv6("fd00::1", "fd00::2", 17)
    transport = struct.pack("!BBHI", 1, 4, 0, 0) + inner[:12]
    pkt = parse_packet(ipv6("fd00::2", "fd00::1", 58), transport)
    assert pkt is not None
    assert (pkt.src, pkt.dst, pkt.icmp_type, pkt.icmp_code) == ("fd00::2", "fd00::1", 1, 4)
    assert pkt.inner_proto == 17
    assert pkt.is_icmp_error


def test_parse_without_network_header() -> None:
    assert parse_packet(None, None) is None
    assert parse_packet(b"\x45\x00", None) is None


def test_verdict_codes() -> None:
    assert signed_verdict(verdict_attr(NF_DROP)) == NF_DROP
    assert signed_verdict(verdict_attr(NF_ACCEPT)) == NF_ACCEPT
    assert signed_verdict(verdict_attr(-1)) == -1  # NFT_CONTINUE
    assert signed_verdict(verdict_attr((13 << 16) | NF_DROP)) == NF_DROP  # drop with errno


def test_dropped_means_rule_drop_or_drop_policy() -> None:
    assert event(1, SYN, verdict=NF_DROP).dropped
    assert not event(1, SYN, verdict=NF_ACCEPT).dropped
    assert not event(1, SYN, verdict=-1).dropped
    policy = TraceEvent(1, 1, "t", "c", TRACETYPE_POLICY, None, NF_DROP, None)
    assert policy.dropped


def test_flow_direction() -> None:
    assert FLOW.direction(SYN) == "away"
    assert FLOW.direction(RST) == "toward"
    other_port = Packet(4, "10.0.0.1", "10.0.0.2", 6, sport=40001, dport=22)
    assert FLOW.direction(other_port) is None
    unreach = Packet(4, "10.0.0.9", "10.0.0.1", 1, icmp_type=3, icmp_code=13, inner_proto=6)
    assert FLOW.direction(unreach) == "toward"
    unreach_udp = Packet(4, "10.0.0.9", "10.0.0.1", 1, icmp_type=3, icmp_code=3, inner_proto=17)
    assert FLOW.direction(unreach_udp) is None


def test_plain_drop_is_final() -> None:
    tracker = DropTracker(FLOW)
    tracker.feed(event(7, SYN, verdict=-1))
    assert not tracker.dropped_for_good
    tracker.feed(event(7, None, verdict=NF_DROP))  # later events carry no headers
    assert tracker.dropped_for_good


def test_reject_is_not_taken_for_a_drop() -> None:
    # the reset is traced before the rejecting rule's own NF_DROP verdict
    tracker = DropTracker(FLOW)
    tracker.feed(event(7, SYN, verdict=-1))
    tracker.feed(event(8, RST, verdict=-1))
    tracker.feed(event(8, None, verdict=NF_ACCEPT))
    tracker.feed(event(7, None, verdict=NF_DROP))
    assert not tracker.dropped_for_good


def test_reject_whose_reset_is_dropped_is_a_drop() -> None:
    tracker = DropTracker(FLOW)
    tracker.feed(event(7, SYN, verdict=-1))
    tracker.feed(event(8, RST, verdict=-1))
    tracker.feed(event(8, None, verdict=NF_DROP))
    tracker.feed(event(7, None, verdict=NF_DROP))
    assert tracker.dropped_for_good


def test_unrelated_drops_are_ignored() -> None:
    tracker = DropTracker(FLOW)
    stranger = Packet(4, "10.9.9.9", "10.0.0.2", 6, sport=40000, dport=22)
    tracker.feed(event(9, stranger, verdict=NF_DROP))
    assert not tracker.dropped_for_good
    assert tracker.seen == 0
