"""Helpers of the guest behaviour tests (``test_guest_*.py``), which run in the VM.

- an ``/etc/pve`` tree written from a dict of file texts, compiled and applied with the
  product's own path inside a topology's host namespace;
- the guest table as the kernel lists it (chains, sets, map keys, a chain's rules);
- raw Ethernet frames (DHCP from 0.0.0.0, ARP, a spoofed source MAC, a stray TCP reset)
  for what :func:`tests.harness.probe.probe` cannot send, and whether they arrive.

Whether a raw frame arrives is decided with a *sentinel*: a frame the firewall lets
through on the same path is sent right after it; once the sentinel is seen, the frame
under test would have been seen before it (frames of one sender keep their order through
the veth and the bridge), so a drop is known without waiting for a timeout.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.harness.timing import FALLBACK_TIMEOUT
from tests.harness.topology import Topology, Zone

LOCAL_NET = ipaddress.ip_interface("172.16.1.0/24")
GUEST_TABLE = ("bridge", "proxmox-firewall-guests")
ETH_P_ALL = 0x0003
ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0800, 0x0806, 0x86DD
BROADCAST = "ff:ff:ff:ff:ff:ff"


# -- config trees and applying them ----------------------------------------------------


def vmlist(guests: dict[int, str]) -> str:
    """``.vmlist`` for guests on node pve1 (vmid -> "qemu" | "lxc")."""
    ids = {str(v): {"node": "pve1", "type": kind, "version": 1} for v, kind in guests.items()}
    return json.dumps({"version": 1, "ids": ids})


def sdn_running_config(*vnets: str) -> str:
    """An SDN running config defining ``vnets`` in one simple zone: vnet firewall files
    apply only to vnets the SDN configuration defines."""
    return json.dumps({"zones": {"ids": {"z1": {"type": "simple"}}},
                       "vnets": {"ids": {v: {"zone": "z1"} for v in vnets}}})


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path relative to the tree -> text) under a fresh ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def apply_tree(topo: Topology, pve_dir: Path, refused: int = 0) -> None:
    """Compile ``pve_dir`` as node pve1 and apply it in the host namespace, as `apply`
    does; the tree must compile without warnings (but for ``refused`` lines said to be
    refused by pve-firewall) and both tables must load."""

    def in_host() -> tuple[list[str], bool, str, list[str], list[str]]:
        from proxmox_fw.nft.apply import apply_ruleset
        from proxmox_fw.nft.client import NftClient
        from proxmox_fw.nft.features import probe_features
        from proxmox_fw.pipeline import compile_dir

        res = compile_dir(pve_dir, "pve1", honor_nftables_switch=False, local_net=LOCAL_NET)
        problems = [str(d) for d in res.diagnostics if d.severity != "info"]
        out = apply_ruleset(res.ruleset, NftClient(), probe_features())
        return problems, out.ok, out.error, out.applied_tables, out.missing_features

    problems, ok, error, applied, missing = topo.host.ns.run(in_host)
    said = [p for p in problems if "pve-firewall refuses" in p]
    assert len(said) == refused and len(problems) == refused, problems
    assert ok, error
    assert missing == [], missing
    assert " ".join(GUEST_TABLE) in applied, applied


def one_guest_topology(outside_mac: str, vm_mac: str) -> Topology:
    """vmbr0 (172.16.1.2/24) with the uplink ``outside`` on eth0 and VM 100 on
    tap100i0; enter it to build it."""
    t = Topology()
    t.add_bridge("vmbr0", mac="02:00:00:00:00:10", addresses=("172.16.1.2/24",))
    t.add_port("outside", bridge="vmbr0", host_ifname="eth0", mac=outside_mac)
    t.add_port("vm100", bridge="vmbr0", host_ifname="tap100i0", mac=vm_mac)
    return t


def guest_table(topo: Topology) -> list[dict[str, Any]]:
    """The guest table's objects as ``nft -j list table`` gives them ([] when absent)."""

    def in_host() -> list[dict[str, Any]]:
        from proxmox_fw.nft.client import NftClient, listing_items

        result = NftClient().list_table_json(*GUEST_TABLE)
        return listing_items(result.output) if result.ok else []

    return topo.host.ns.run(in_host)


def names_of(items: list[dict[str, Any]], kind: str) -> set[str]:
    return {str(o[kind]["name"]) for o in items if kind in o}


def map_keys(items: list[dict[str, Any]], name: str) -> set[str]:
    for o in items:
        if "map" in o and o["map"]["name"] == name:
            return {json.dumps(e[0]) if not isinstance(e[0], str) else e[0]
                    for e in o["map"].get("elem", [])}  # fmt: skip
    raise AssertionError(f"no map {name}")


def rules_of(items: list[dict[str, Any]], chain: str) -> list[list[dict[str, Any]]]:
    return [o["rule"]["expr"] for o in items if "rule" in o and o["rule"]["chain"] == chain]


def counted(rule: list[dict[str, Any]]) -> int:
    """The packets the rule's counter statement has seen."""
    for stmt in rule:
        if "counter" in stmt:
            return int(stmt["counter"]["packets"])
    raise AssertionError(f"rule has no counter: {rule}")


# -- raw frames ------------------------------------------------------------------------


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether(dst: str, src: str, ethertype: int, payload: bytes) -> bytes:
    frame = _mac(dst) + _mac(src) + struct.pack("!H", ethertype) + payload
    return frame + b"\0" * max(0, 60 - len(frame))


def ipv4(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(l4),
        0,
        0,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header[:10] + struct.pack("!H", _csum(header)) + header[12:] + l4


def ipv6(src: str, dst: str, next_header: int, l4: bytes, hop_limit: int = 64) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(l4), next_header, hop_limit)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + l4
    )


def _l4_checksum(src: str, dst: str, proto: int, segment: bytes) -> int:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, proto, len(segment))
    else:
        pseudo = s.packed + d.packed + struct.pack("!IxxxB", len(segment), proto)
    return _csum(pseudo + segment) or 0xFFFF


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 or IPv6 packet carrying one UDP datagram (checksum filled in)."""
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    seg = seg[:6] + struct.pack("!H", _l4_checksum(src, dst, 17, seg)) + seg[8:]
    if ipaddress.ip_address(src).version == 4:
        return ipv4(src, dst, 17, seg)
    return ipv6(src, dst, 17, seg)


def tcp(src: str, dst: str, sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    """An IPv4 or IPv6 packet carrying one TCP segment (flags: 0x02 SYN, 0x04 RST, ...)."""
    seg = struct.pack("!HHIIBBHHH", sport, dport, 0x1000, 0, 5 << 4, flags, 8192, 0, 0) + payload
    seg = seg[:16] + struct.pack("!H", _l4_checksum(src, dst, 6, seg)) + seg[18:]
    if ipaddress.ip_address(src).version == 4:
        return ipv4(src, dst, 6, seg)
    return ipv6(src, dst, 6, seg)


def arp_request(sha: str, spa: str, tpa: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, _mac(sha),
                       ipaddress.IPv4Address(spa).packed, b"\0" * 6,
                       ipaddress.IPv4Address(tpa).packed)  # fmt: skip


def ethertype_of(packet: bytes) -> int:
    """The ethertype for an IP packet built above."""
    return ETH_P_IP if packet[0] >> 4 == 4 else ETH_P_IPV6


def token() -> bytes:
    return b"pfwt" + os.urandom(12)


@contextmanager
def sniffing(zone: Zone) -> Iterator[socket.socket]:
    """A packet socket on the zone's interface: every frame that arrives there."""
    assert zone.ifname is not None
    sock = zone.ns.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.bind((zone.ifname, 0))
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()


def received(sock: socket.socket) -> list[bytes]:
    """Frames that came in (not the ones this namespace sent) since the last call."""
    out: list[bytes] = []
    while True:
        try:
            data, addr = sock.recvfrom(65536)
        except BlockingIOError:
            return out
        if addr[2] != socket.PACKET_OUTGOING:
            out.append(data)


def send_frames(zone: Zone, *frames: bytes) -> None:
    assert zone.ifname is not None
    sock = zone.ns.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.bind((zone.ifname, 0))
        for frame in frames:
            sock.send(frame)
    finally:
        sock.close()


def delivered(sender: Zone, receiver: Zone, frame: bytes, mark: bytes, sentinel: bytes,
              sentinel_mark: bytes) -> bool:  # fmt: skip
    """Whether ``frame`` (which carries ``mark``) reaches ``receiver``.

    ``sentinel`` (carrying ``sentinel_mark``) must pass the firewall on the same path; it
    is sent right after ``frame``, and its arrival ends the wait.
    """
    with sniffing(receiver) as rx:
        send_frames(sender, frame, sentinel)
        seen: list[bytes] = []
        deadline = time.monotonic() + FALLBACK_TIMEOUT
        while not any(sentinel_mark in f for f in seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"the sentinel frame from {sender.name} never reached "
                    f"{receiver.name}: the path itself is broken"
                )
            select.select([rx], [], [], remaining)
            seen += received(rx)
        return any(mark in f for f in seen)
