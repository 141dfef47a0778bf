"""local_network detection: the pure decision, fed with fake interface lists."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from proxmox_fw.model import IpAddr
from proxmox_fw.system.localnet import (
    IfAddress,
    LocalNet,
    choose_local_network,
    describe,
    detect_local_network,
)

ip = ipaddress.ip_address
iface = ipaddress.ip_interface

ADDRS: list[IfAddress] = [
    ("lo", iface("127.0.0.1/8")),
    ("lo", iface("::1/128")),
    ("eth9", iface("10.5.5.5/24")),
    ("vmbr0", iface("192.168.2.100/20")),
    ("vmbr0", iface("fe80::1/64")),
    ("vmbr0", iface("2001:db8::100/64")),
]


def test_seed_example() -> None:
    info = choose_local_network("example", [ip("192.168.2.100")], ADDRS, ["vmbr0"])
    assert info == LocalNet("example", ip("192.168.2.100"), iface("192.168.0.0/20"), "vmbr0")
    assert describe(info) == [
        "local hostname: example",
        "local IP address: 192.168.2.100",
        "network auto detect: 192.168.0.0/20",
        "using detected local_network: 192.168.0.0/20",
    ]


def test_user_defined_alias_wins_in_description() -> None:
    info = choose_local_network("example", [ip("192.168.2.100")], ADDRS)
    assert describe(info, iface("1.2.3.4/32"))[-1] == "using user defined local_network: 1.2.3.4/32"


def test_loopback_results_are_skipped() -> None:
    info = choose_local_network("n", [ip("127.0.1.1"), ip("2001:db8::100")], ADDRS)
    assert (info.local_ip, info.detected, info.warnings) == (
        ip("2001:db8::100"), iface("2001:db8::/64"), ()
    )


def test_configured_address_preferred_over_first_resolved() -> None:
    info = choose_local_network("n", [ip("203.0.113.7"), ip("10.5.5.5")], ADDRS)
    assert (info.local_ip, info.detected, info.interface) == (
        ip("10.5.5.5"), iface("10.5.5.0/24"), "eth9"
    )


def test_resolved_ip_inside_a_local_network_but_not_configured() -> None:
    info = choose_local_network("n", [ip("192.168.7.7")], ADDRS)
    assert (info.local_ip, info.detected) == (ip("192.168.7.7"), iface("192.168.0.0/20"))
    assert len(info.warnings) == 1 and "not configured" in info.warnings[0]


def test_resolved_ip_on_no_local_network() -> None:
    info = choose_local_network("n", [ip("203.0.113.7")], ADDRS)
    assert (info.local_ip, info.detected) == (ip("203.0.113.7"), None)
    assert len(info.warnings) == 1
    assert describe(info)[-1] == "no local_network detected"


@pytest.mark.parametrize("resolved", [[], [ip("127.0.1.1"), ip("::1")]])
def test_fallback_prefers_default_route_interface(resolved: list[IpAddr]) -> None:
    info = choose_local_network("n", resolved, ADDRS, ["vmbr0"])
    assert (info.local_ip, info.detected, info.interface) == (
        ip("192.168.2.100"), iface("192.168.0.0/20"), "vmbr0"
    )
    assert len(info.warnings) == 1 and "vmbr0" in info.warnings[0]


def test_fallback_without_default_route_takes_first_global() -> None:
    info = choose_local_network("n", [], ADDRS, [])
    assert (info.local_ip, info.detected) == (ip("10.5.5.5"), iface("10.5.5.0/24"))


def test_fallback_skips_link_local_and_may_be_ipv6() -> None:
    addrs: list[IfAddress] = [("lo", iface("127.0.0.1/8")), ("e0", iface("169.254.1.1/16")),
                              ("e0", iface("fe80::1/64")), ("e0", iface("2001:db8::5/64"))]
    info = choose_local_network("n", [], addrs, ["e0"])
    assert (info.local_ip, info.detected) == (ip("2001:db8::5"), iface("2001:db8::/64"))


def test_nothing_found() -> None:
    info = choose_local_network("n", [ip("127.0.0.1")], [("lo", iface("127.0.0.1/8"))])
    assert (info.local_ip, info.detected, info.interface) == (None, None, None)
    assert len(info.warnings) == 1
    assert describe(info)[1:] == [
        "local IP address: unknown", "network auto detect: none", "no local_network detected"
    ]


class FakeNetlink:
    def __init__(self, addrs: list[IfAddress], fail: bool = False) -> None:
        self.addrs, self.fail = addrs, fail

    def list_addresses(self) -> list[IfAddress]:
        if self.fail:
            raise OSError("netlink socket refused")
        return self.addrs

    def default_route_ifnames(self) -> list[str]:
        return ["vmbr0"]


def test_detect_survives_resolver_failure() -> None:
    def resolver(_name: str) -> list[IpAddr]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    info = detect_local_network("ghost", resolver, FakeNetlink(ADDRS))
    assert (info.local_ip, info.detected) == (ip("192.168.2.100"), iface("192.168.0.0/20"))
    assert len(info.warnings) == 2 and "cannot resolve" in info.warnings[0]


def test_detect_survives_netlink_failure() -> None:
    info = detect_local_network("n", lambda _n: [ip("192.168.2.100")], FakeNetlink([], True))
    assert (info.local_ip, info.detected) == (ip("192.168.2.100"), None)
    assert "cannot list" in info.warnings[0]
