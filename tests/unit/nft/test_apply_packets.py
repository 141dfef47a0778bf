"""One real-packet check of the applied host table: drop by policy, accept by rule.

Two anonymous namespaces joined by a veth pair: "node" runs the firewall and a TCP
listener, "peer" connects to it. Both namespaces end with their worker threads.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from proxmox_fw.nft.apply import apply_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.nft.objects import Ruleset

pytestmark = pytest.mark.netns

NODE_IP, PEER_IP, PORT = "10.99.0.1", "10.99.0.2", 8000


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def pair() -> Iterator[tuple[NetnsWorker, NetnsWorker]]:
    node, peer = NetnsWorker(), NetnsWorker()
    try:
        node.call(ip, "link", "add", "fw0", "type", "veth", "peer", "name", "fw1", "netns",
                  str(peer.tid))  # fmt: skip
        for worker, dev, addr in ((node, "fw0", NODE_IP), (peer, "fw1", PEER_IP)):
            worker.call(ip, "addr", "add", f"{addr}/24", "dev", dev)
            worker.call(ip, "link", "set", dev, "up")
            worker.call(ip, "link", "set", "lo", "up")
        yield node, peer
    finally:
        node.close()
        peer.close()


def listen() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((NODE_IP, PORT))
    s.listen(8)
    return s


def connect(timeout: float = 5.0) -> str:
    """ACCEPT (handshake done), REJECT (refused) or DROP (no answer within ``timeout``).

    An expected ACCEPT gets a generous timeout (it returns as soon as the handshake is
    done, so a busy machine cannot turn it into a false DROP); an expected DROP a short one.
    """
    try:
        with socket.create_connection((NODE_IP, PORT), timeout=timeout):
            return "ACCEPT"
    except ConnectionRefusedError:
        return "REJECT"
    except TimeoutError:
        return "DROP"


def ruleset(*cluster_in: list[dict[str, Any]]) -> Ruleset:
    """Only the host table, with the given rules in cluster-in."""
    rs = Ruleset()
    rs.guests.enabled = False
    chain = rs.host.chain("cluster-in", in_skeleton=True)
    for i, expr in enumerate(cluster_in):
        chain.add(expr, f"firewall/cluster.fw:{i + 1}")
    return rs


DPORT = {
    "match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": PORT}
}


def test_policy_drop_then_accept_rule(pair: tuple[NetnsWorker, NetnsWorker]) -> None:
    node, peer = pair
    server = node.call(listen)
    try:
        assert peer.call(connect) == "ACCEPT"  # the topology works without a firewall

        def apply(rs: Ruleset) -> None:
            result = apply_ruleset(rs, NftClient(), probe_features())
            assert result.ok, result.error

        node.call(apply, ruleset([{"drop": None}]))
        assert peer.call(connect, 0.5) == "DROP"

        node.call(apply, ruleset([DPORT, {"accept": None}], [{"drop": None}]))
        assert peer.call(connect) == "ACCEPT"
    finally:
        server.close()


def udp_listen() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", PORT))
    s.settimeout(0.5)
    return s


def send_udp(dest: str, token: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.sendto(token, (dest, PORT))


def received(server: socket.socket) -> list[bytes]:
    got = []
    try:
        while True:
            got.append(server.recv(64))
    except TimeoutError:
        return got


def test_drop_noise_drops_broadcast_but_not_unicast(
    pair: tuple[NetnsWorker, NetnsWorker],
) -> None:
    """drop-noise classifies with `fib daddr type`: check it on real packets."""
    node, peer = pair
    server = node.call(udp_listen)
    try:

        def apply(rs: Ruleset) -> None:
            result = apply_ruleset(rs, NftClient(), probe_features())
            assert result.ok, result.error

        node.call(apply, ruleset([{"accept": None}]))
        peer.call(send_udp, "10.99.0.255", b"bcast-1")
        peer.call(send_udp, NODE_IP, b"ucast-1")
        assert sorted(node.call(received, server)) == [b"bcast-1", b"ucast-1"]

        node.call(apply, ruleset([{"jump": {"target": "drop-noise"}}], [{"accept": None}]))
        peer.call(send_udp, "10.99.0.255", b"bcast-2")
        peer.call(send_udp, NODE_IP, b"ucast-2")
        assert node.call(received, server) == [b"ucast-2"]
    finally:
        server.close()
