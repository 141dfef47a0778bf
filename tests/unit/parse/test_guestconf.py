"""Guest config ``netN`` lines: qemu and lxc formats, and every way a line can be bad."""

from __future__ import annotations

import ipaddress

import pytest

from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import GuestKind, Nic
from proxmox_fw.parse.guestconf import QEMU_NIC_MODELS, parse_guest_conf
from tests.unit.helpers import CONFORMANCE, only

F = "nodes/pve1/qemu-server/100.conf"


def parse(text: str, kind: GuestKind | None = "qemu") -> tuple[dict[int, Nic], Diagnostics]:
    diags = Diagnostics()
    return parse_guest_conf(text, F, kind, diags), diags


def test_qemu_shorthand_and_common_keys() -> None:
    nics, diags = parse(
        "boot: order=scsi0\n"
        "net0: virtio=bc:24:11:49:8d:75,bridge=vmbr0,firewall=1,tag=20\n"
        "memory: 2048\n"
    )
    assert not diags.items
    nic = nics[0]
    assert (nic.model, nic.mac, nic.bridge, nic.firewall, nic.tag) == (
        "virtio", "BC:24:11:49:8D:75", "vmbr0", True, 20,
    )
    assert (nic.origin.file, nic.origin.line) == (F, 2)
    assert nic.key == "net0"


def test_qemu_model_and_macaddr_keys() -> None:
    nics, diags = parse("net3: model=e1000,macaddr=0E:0B:38:B8:B3:21,bridge=vmbr1\n")
    assert not diags.items
    assert (nics[3].model, nics[3].mac, nics[3].firewall) == ("e1000", "0E:0B:38:B8:B3:21", False)


def test_qemu_bare_model_with_macaddr() -> None:
    nics, diags = parse("net1: rtl8139,macaddr=0E:0B:38:B8:B3:22\n")
    assert not diags.items
    assert (nics[1].model, nics[1].mac) == ("rtl8139", "0E:0B:38:B8:B3:22")


@pytest.mark.parametrize("model", sorted(QEMU_NIC_MODELS))
def test_every_pve_model_is_accepted(model: str) -> None:
    nics, diags = parse(f"net0: {model}=0E:0B:38:B8:B3:21,bridge=vmbr0\n")
    assert not diags.items
    assert nics[0].model == model


def test_unknown_model_warns_but_keeps_nic() -> None:
    nics, diags = parse("net0: fancy9000=0E:0B:38:B8:B3:21,firewall=1\n")
    d = only(diags)
    assert (d.severity, d.line) == (Severity.WARNING, 1)
    assert "fancy9000" in d.message
    assert nics[0].mac == "0E:0B:38:B8:B3:21" and nics[0].firewall


def test_unknown_model_key_form_warns_but_keeps_nic() -> None:
    nics, diags = parse("net0: model=fancy,macaddr=0E:0B:38:B8:B3:21\n")
    assert only(diags, Severity.WARNING).line == 1
    assert nics[0].model == "fancy"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("virtio,bridge=vmbr0", "no MAC"),
        ("virtio=0E:0B:38:B8:B3,bridge=vmbr0", "invalid MAC"),
        ("virtio=0E:0B:38:B8:B3:21,firewall=maybe", "invalid boolean"),
        ("virtio=0E:0B:38:B8:B3:21,bridge=vmbr0,bridge=vmbr1", "duplicate property"),
        ("virtio=0E:0B:38:B8:B3:21,e1000=0E:0B:38:B8:B3:22", "two NIC models"),
        ("", "empty"),
    ],
)
def test_bad_qemu_nic_fails_closed_with_error(value: str, words: str) -> None:
    nics, diags = parse(f"net0: virtio=0E:0B:38:B8:B3:20\nnet1: {value}\n")
    d = only(diags, Severity.ERROR)
    assert (d.file, d.line) == (F, 2)
    assert words in d.message and "net1" in d.message
    assert not nics[0].unparsed  # the good NIC survives as it is
    assert nics[1].unparsed and nics[1].firewall  # the bad one stays firewalled


@pytest.mark.parametrize(
    ("value", "firewall"),
    [("1", True), ("0", False), ("true", True), ("False", False), ("yes", True),
     ("no", False), ("on", True), ("OFF", False)],
)
def test_firewall_booleans(value: str, firewall: bool) -> None:
    nics, diags = parse(f"net0: virtio=0E:0B:38:B8:B3:21,firewall={value}\n")
    assert not diags.items
    assert nics[0].firewall is firewall


def test_net31_is_valid_and_net32_is_not() -> None:
    nics, diags = parse(
        "net31: virtio=0E:0B:38:B8:B3:21\nnet32: virtio=0E:0B:38:B8:B3:22\n"
        "net07: virtio=0E:0B:38:B8:B3:23\n"
    )
    assert list(nics) == [31]
    assert [(d.line, d.severity) for d in diags] == [(2, Severity.ERROR), (3, Severity.ERROR)]


def test_duplicate_nic_keeps_first() -> None:
    nics, diags = parse("net0: virtio=0E:0B:38:B8:B3:21\nnet0: virtio=0E:0B:38:B8:B3:22\n")
    assert nics[0].mac == "0E:0B:38:B8:B3:21"
    assert only(diags, Severity.ERROR).line == 2


def test_bad_tag_and_bridge_cost_only_themselves() -> None:
    nics, diags = parse("net0: virtio=0E:0B:38:B8:B3:21,tag=5000,bridge=a/b,firewall=1\n")
    assert [d.severity for d in diags] == [Severity.WARNING, Severity.WARNING]
    assert (nics[0].tag, nics[0].bridge, nics[0].firewall) == (None, None, True)


def test_only_main_section_counts() -> None:
    nics, _ = parse(
        "net0: virtio=0E:0B:38:B8:B3:21\n"
        "\n"
        "[snap1]\n"
        "net1: virtio=0E:0B:38:B8:B3:22\n"
        "[PENDING]\n"
        "net2: virtio=0E:0B:38:B8:B3:23\n"
    )
    assert list(nics) == [0]


def test_comments_and_other_keys_are_ignored() -> None:
    nics, diags = parse(
        "#net0: virtio=0E:0B:38:B8:B3:21\n"
        "nameserver: 1.1.1.1\n"
        "netfoo: whatever\n"
        "description: net1: virtio=0E:0B:38:B8:B3:22\n"
        "net1: virtio=0E:0B:38:B8:B3:23\n"
    )
    assert not diags.items
    assert list(nics) == [1] and nics[1].origin.line == 5




def test_lxc_nic_with_addresses() -> None:
    nics, diags = parse(
        "net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr=0e:18:24:41:2c:43,"
        "ip=10.0.200.1/24,ip6=fd80::1234/64,type=veth,tag=7\n",
        "lxc",
    )
    assert not diags.items
    nic = nics[0]
    assert nic.model is None and nic.mac == "0E:18:24:41:2C:43" and nic.firewall
    assert nic.ip == ipaddress.ip_interface("10.0.200.1/24")
    assert nic.ip6 == ipaddress.ip_interface("fd80::1234/64")
    assert (nic.bridge, nic.tag) == ("vmbr0", 7)


@pytest.mark.parametrize(
    ("ip", "ip6"), [("dhcp", "dhcp"), ("manual", "auto"), ("dhcp", "manual")]
)
def test_lxc_address_keywords_mean_no_literal_address(ip: str, ip6: str) -> None:
    nics, diags = parse(f"net0: name=eth0,hwaddr=0E:18:24:41:2C:43,ip={ip},ip6={ip6}\n", "lxc")
    assert not diags.items
    assert (nics[0].ip, nics[0].ip6) == (None, None)


def test_lxc_address_without_prefix_is_a_host() -> None:
    nics, _ = parse("net0: name=eth0,hwaddr=0E:18:24:41:2C:43,ip=10.0.0.5\n", "lxc")
    assert nics[0].ip == ipaddress.ip_interface("10.0.0.5/32")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("name=eth0,ip=10.0.0.1/24", "no MAC"),
        ("name=eth0,hwaddr=0E:18:24:41:2C:43,ip=auto", "invalid address"),
        ("name=eth0,hwaddr=0E:18:24:41:2C:43,ip=fd00::1/64", "not an IPv4"),
        ("name=eth0,hwaddr=0E:18:24:41:2C:43,ip6=10.0.0.1/24", "not an IPv6"),
        ("name=eth0,hwaddr=0E:18:24:41:2C:43,ip=10.0.0.1/33", "invalid address"),
        ("name=eth0,hwaddr=0E:18:24:41:2C:43,type=macvlan", "only veth"),
        ("name=eth0,hwaddr=0E:18:24:41:2C:43,firewall=2", "invalid boolean"),
    ],
)
def test_bad_lxc_nic_fails_closed_with_error(value: str, words: str) -> None:
    nics, diags = parse(f"arch: amd64\nnet4: {value}\n", "lxc")
    d = only(diags, Severity.ERROR)
    assert (d.line, "net4" in d.message, words in d.message) == (2, True, True), d.message
    assert list(nics) == [4] and nics[4].unparsed and nics[4].firewall


def test_unknown_kind_decides_per_line() -> None:
    nics, diags = parse(
        "net0: virtio=0E:0B:38:B8:B3:21\n"
        "net1: name=eth1,hwaddr=0E:18:24:41:2C:43,ip=10.0.0.2/24,type=veth\n",
        None,
    )
    assert not diags.items
    assert (nics[0].model, nics[0].mac) == ("virtio", "0E:0B:38:B8:B3:21")
    assert (nics[1].model, str(nics[1].ip)) == (None, "10.0.0.2/24")


def test_upstream_integration_container() -> None:
    path = CONFORMANCE / "upstream-integration/pve/nodes/pve1/lxc/100.conf"
    if not path.exists():
        pytest.skip("conformance data not available")
    diags = Diagnostics()
    nics = parse_guest_conf(path.read_text(), "nodes/pve1/lxc/100.conf", "lxc", diags)
    assert not diags.items
    assert sorted(nics) == [1, 2, 3]
    assert [nics[i].firewall for i in (1, 2, 3)] == [True, False, True]
    assert nics[3].ip == ipaddress.ip_interface("192.0.2.10/24")
    assert nics[1].ip is None and nics[1].ip6 == ipaddress.ip_interface("fd80::1234/64")
    assert nics[3].mac == "BC:24:11:4D:B0:FE"


def test_lxc_line_in_qemu_config_is_used_with_warning() -> None:
    nics, diags = parse("net0: name=eth0,hwaddr=0E:18:24:41:2C:43,ip=10.0.0.2/24,firewall=1\n")
    d = only(diags)
    assert (d.severity, d.line) == (Severity.WARNING, 1)
    assert "used as lxc" in d.message
    assert (nics[0].mac, str(nics[0].ip), nics[0].firewall) == ("0E:18:24:41:2C:43",
                                                                "10.0.0.2/24", True)


def test_qemu_line_in_lxc_config_is_used_with_warning() -> None:
    nics, diags = parse("net2: virtio=0E:0B:38:B8:B3:21,bridge=vmbr0\n", "lxc")
    assert "used as qemu" in only(diags, Severity.WARNING).message
    assert (nics[2].model, nics[2].mac) == ("virtio", "0E:0B:38:B8:B3:21")


def test_line_valid_in_neither_format_reports_the_guest_kind_error() -> None:
    nics, diags = parse("net0: name=eth0,hwaddr=0E:18:24:41:2C:43,ip=bogus\n", "lxc")
    d = only(diags)
    assert (d.severity, d.line) == (Severity.ERROR, 1)
    assert "invalid address" in d.message  # the lxc reason, not qemu's "no MAC"
    assert list(nics) == [0] and nics[0].unparsed and nics[0].firewall
