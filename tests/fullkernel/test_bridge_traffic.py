"""Namespaces, a bridge and veths work in the VM, and bridged TCP hits bridge chains."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from .netutil import ip_batch, nft, nft_json, socket_in

pytestmark = pytest.mark.fullkernel

TABLE = "fk-traffic"
PORT = 5555


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """Namespaces A (10.99.0.1) and B (10.99.0.2), each a veth port of bridge fkbr0."""
    a, b = f"fk{os.getpid()}a", f"fk{os.getpid()}b"
    try:
        ip_batch(
            f"netns add {a}\nnetns add {b}\n"
            "link add fkbr0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0\n"
            f"link add fka0 type veth peer name eth0 netns {a}\n"
            f"link add fkb0 type veth peer name eth0 netns {b}\n"
            "link set fka0 master fkbr0 up\nlink set fkb0 master fkbr0 up\nlink set fkbr0 up\n"
        )
        for ns, addr in ((a, "10.99.0.1"), (b, "10.99.0.2")):
            ip_batch(f"link set lo up\naddr add {addr}/24 dev eth0\nlink set eth0 up\n", ns)
        yield a, b
    finally:
        # Namespaces take their veth ends along; the root ends die with their peers.
        for ns in (a, b):
            if os.path.exists(f"/run/netns/{ns}"):
                ip_batch(f"netns del {ns}\n")
        if os.path.exists("/sys/class/net/fkbr0"):
            ip_batch("link del fkbr0\n")


@pytest.fixture
def counting_table() -> Iterator[None]:
    rc, _, err = nft(f"""
        table bridge {TABLE} {{
            counter syn {{ }}
            counter est-orig {{ }}
            counter est-reply {{ }}
            chain through {{
                type filter hook forward priority 0; policy accept;
                tcp dport {PORT} ct state new counter name "syn"
                tcp dport {PORT} ct state established counter name "est-orig"
                tcp sport {PORT} ct state established counter name "est-reply"
            }}
        }}
    """)
    assert rc == 0, err
    yield
    nft(f"delete table bridge {TABLE}")


def _packets(name: str) -> int:
    (obj,) = [o for o in nft_json(f"list counter bridge {TABLE} {name}") if "counter" in o]
    return int(obj["counter"]["packets"])


def test_tcp_through_bridge_chain(pair: tuple[str, str], counting_table: None) -> None:
    a, b = pair
    server = socket_in(b, socket.AF_INET, socket.SOCK_STREAM)
    client = socket_in(a, socket.AF_INET, socket.SOCK_STREAM)
    with server, client:
        server.settimeout(20)
        client.settimeout(20)
        server.bind(("10.99.0.2", PORT))
        server.listen(1)
        client.connect(("10.99.0.2", PORT))
        conn, peer = server.accept()
        with conn:
            assert peer[0] == "10.99.0.1"
            client.sendall(b"ping")
            assert conn.recv(4) == b"ping"
            conn.sendall(b"pong")
            assert client.recv(4) == b"pong"
    # Bridge conntrack classified the flow: one new SYN, then established both ways
    # (ACK + data from the client; SYN-ACK + data from the server).
    assert _packets("syn") == 1
    assert _packets("est-orig") >= 2
    assert _packets("est-reply") >= 2
