"""Values that would reach nft unchecked are checked where they are parsed (issue 10,
item 2a): Unicode digits, numbers of thousands of digits, names longer than the kernel's
limit in bytes, control characters in comments, undecodable file names. Each costs its
value or line with a diagnostic naming the file; nothing raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.config.loader import load_config
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.limits import (
    NFT_COMMENT_MAX_BYTES,
    ascii_uint,
    clean_comment,
    ifname_problem,
    json_uint,
    shown,
)
from proxmox_fw.parse.corosync import parse_corosync
from proxmox_fw.parse.guestconf import parse_guest_conf
from proxmox_fw.parse.ipam import parse_ipam
from proxmox_fw.parse.sdn import parse_sdn
from proxmox_fw.parse.vmlist import parse_vmlist
from tests.unit.parse.helpers import parse_file

HUGE = "9" * 5000  # int() of it raises: Python refuses over 4300 digits
NOT_NUMBERS = ["²", "³", "٣", "１２", "1_000", "+1", "-1", "", "1e3", "0x10", "1.0", HUGE,
               "9" * 30]


@pytest.mark.parametrize("text", [*NOT_NUMBERS, " 12", "12 ", "1\n"])
def test_ascii_uint_refuses_what_is_not_a_plain_number(text: str) -> None:
    assert ascii_uint(text, 0, 2**64 - 1) is None


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("007", 7), ("0" * 50 + "42", 42),
                                             ("18446744073709551615", 2**64 - 1)])
def test_ascii_uint_reads_plain_numbers(text: str, value: int) -> None:
    assert ascii_uint(text) == value
    assert ascii_uint(text, 0, value - 1 if value else 0) == (0 if value == 0 else None)


@pytest.mark.parametrize("value", [True, False, -1, 1.0, None, [], {}, 10**300, "²", "٣"])
def test_json_uint_refuses(value: Any) -> None:
    assert json_uint(value, 0, 999_999_999) is None


@pytest.mark.parametrize("name", ["é" * 8, "a" * 16, "a b", "a/b", "a:b", ".", "..", "",
                                  "a\0b", "a\x7f", "\udcff"])
def test_interface_names_are_checked_in_bytes_and_charset(name: str) -> None:
    assert ifname_problem(name) is not None
    assert ifname_problem("é" * 7) is None and ifname_problem("vmbr0") is None


@pytest.mark.parametrize("comment", ["a\0b", "tab\there", "\x1b[31mred", "del\x7f", "\u2028",
                                     "\ufffe", "\udcff"])
def test_comments_with_control_characters_are_dropped(comment: str) -> None:
    assert clean_comment(comment)[0] is None and clean_comment(comment)[1] is not None


@pytest.mark.parametrize("comment", ["x" * 200, "é" * 100, "€" * 50, "x" * 127 + "é"])
def test_long_comments_are_cut_at_a_character(comment: str) -> None:
    cut, warning = clean_comment(comment)
    assert cut is not None and warning is not None
    assert len(cut.encode()) <= NFT_COMMENT_MAX_BYTES and comment.startswith(cut)
    assert clean_comment("plain comment, ümlauts ok") == ("plain comment, ümlauts ok", None)


def test_shown_escapes_what_cannot_be_printed() -> None:
    assert shown("a\0b\udcff") == "a\\x00b\\udcff"
    shown("\udcff").encode("utf-8")  # printable in a log line


def _errors(diags: Diagnostics) -> list[str]:
    return [str(d) for d in diags if d.severity is Severity.ERROR]


# --- per reader ----------------------------------------------------------------------------


@pytest.mark.parametrize("tag", [*NOT_NUMBERS, "0", "4095", "99999"])
def test_guest_nic_vlan_tag(tag: str) -> None:
    diags = Diagnostics()
    nics = parse_guest_conf(f"net0: virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,tag={tag}\n",
                            "nodes/pve1/qemu-server/100.conf", "qemu", diags)
    assert nics[0].tag is None and nics[0].firewall
    assert [d.line for d in diags] == [1]


@pytest.mark.parametrize("key", [f"net{HUGE}", "net" + "0" * 40 + "1", "net32"])
def test_guest_nic_index(key: str) -> None:
    diags = Diagnostics()
    nics = parse_guest_conf(f"{key}: virtio=BC:24:11:00:00:01\n", "x.conf", "qemu", diags)
    assert nics == {} and [d.line for d in diags] == [1]


@pytest.mark.parametrize("bridge", ["é" * 8, "a" * 16, "vm br0", "a\0"])
def test_guest_nic_bridge_name(bridge: str) -> None:
    diags = Diagnostics()
    nics = parse_guest_conf(f"net0: virtio=BC:24:11:00:00:01,bridge={bridge}\n", "x.conf",
                            "qemu", diags)
    assert nics[0].bridge is None and [d.line for d in diags] == [1]


@pytest.mark.parametrize("nodeid", [*NOT_NUMBERS, "0", str(2**32)])
def test_corosync_nodeid(nodeid: str) -> None:
    diags = Diagnostics()
    text = (f"nodelist {{\n node {{\n name: pve1\n nodeid: {nodeid}\n"
            " ring0_addr: 10.0.0.1\n }\n}\n")
    cs = parse_corosync(text, "corosync.conf", diags)
    assert cs.nodes[0].nodeid is None and cs.nodes[0].links == {0: "10.0.0.1"}


def test_corosync_link_number_of_5000_digits() -> None:
    diags = Diagnostics()
    text = (f"nodelist {{\n node {{\n name: pve1\n ring{HUGE}_addr: 10.0.0.9\n"
            " ring0_addr: 10.0.0.1\n }\n}\n")
    cs = parse_corosync(text, "corosync.conf", diags)
    assert cs.nodes[0].links == {0: "10.0.0.1"} and [d.line for d in diags] == [4]


def _sdn(tag: Any) -> str:
    return json.dumps({"zones": {"ids": {"z1": {"type": "vlan"}}},
                       "vnets": {"ids": {"vnet1": {"zone": "z1", "tag": tag}}}})


@pytest.mark.parametrize("tag", [*NOT_NUMBERS, True, -1, 2**24, 10**300, 1.5, [1]])
def test_sdn_tag(tag: Any) -> None:
    diags = Diagnostics()
    sdn = parse_sdn(_sdn(tag), "sdn/.running-config", diags)
    assert sdn.vnets["vnet1"].tag is None
    assert [d.severity for d in diags] == [Severity.WARNING]


@pytest.mark.parametrize("vmid", ["9" * 300, 10**300, "²", "٣", 0, -5, True, 1.0,
                                  1_000_000_000, "1_0"])
def test_ipam_vmid(vmid: Any) -> None:
    doc = {"zones": {"z1": {"subnets": {"10.0.0.0/24": {"ips": {
        "10.0.0.5": {"vmid": vmid}, "10.0.0.6": {"vmid": "100"}}}}}}}
    diags = Diagnostics()
    ipam = parse_ipam(json.dumps(doc), "sdn/pve-ipam-state.json", diags)
    assert list(ipam.guest_ips) == [100]
    assert len(_errors(diags)) == 1


@pytest.mark.parametrize("where", ["version", "entry", "key"])
def test_vmlist_with_a_5000_digit_number(where: str) -> None:
    text = {"version": f'{{"version": {HUGE}, "ids": {{}}}}',
            "entry": f'{{"ids": {{"100": {{"node": "pve1", "type": "qemu", "version": {HUGE}}}}}}}',
            "key": f'{{"ids": {{"{HUGE}": {{"node": "pve1", "type": "qemu"}}}}}}'}[where]
    diags = Diagnostics()
    assert parse_vmlist(text, ".vmlist", diags) == []
    assert len(_errors(diags)) == 1


@pytest.mark.parametrize("line", [
    f"enable: {HUGE}", f"policy_in: {HUGE}", f"log_ratelimit: rate={HUGE}",
    f"log_ratelimit: burst={HUGE}", f"log_ratelimit: rate=1/second,burst={HUGE}",
])
def test_cluster_options_with_5000_digits(line: str) -> None:
    _, diags = parse_file("cluster", f"[OPTIONS]\n{line}\n")
    assert [(d.line, d.severity) for d in diags] == [(2, Severity.ERROR)]


@pytest.mark.parametrize("line", [f"nf_conntrack_max: {HUGE}",
                                  f"protection_synflood_rate: {HUGE}",
                                  f"protection_synflood_burst: {HUGE}", "nf_conntrack_max: ²"])
def test_host_options_with_bad_numbers(line: str) -> None:
    _, diags = parse_file("host", f"[OPTIONS]\n{line}\n")
    assert [(d.line, d.severity) for d in diags] == [(2, Severity.ERROR)]


@pytest.mark.parametrize("line", [f"ips_queues: {HUGE}", f"ips_queues: 1:{HUGE}"])
def test_guest_options_with_5000_digits(line: str) -> None:
    _, diags = parse_file("guest", f"[OPTIONS]\n{line}\n")
    assert [(d.line, d.severity) for d in diags] == [(2, Severity.ERROR)]


@pytest.mark.parametrize("rule", [
    f"IN ACCEPT -p tcp -dport {HUGE}", f"IN ACCEPT -p tcp -sport 1:{HUGE}",
    f"IN ACCEPT -source 10.0.0.0/{HUGE}", f"IN ACCEPT -p icmp -icmp-type {HUGE}",
    f"IN ACCEPT -p {HUGE}", "IN ACCEPT -p tcp -dport ²", "IN ACCEPT -p tcp -dport ٣٣",
    "IN ACCEPT -source 10.0.0.0/٣", "IN ACCEPT -p ٦",
])
def test_rules_with_bad_numbers(rule: str) -> None:
    fw, diags = parse_file("cluster", f"[RULES]\n{rule}\nIN ACCEPT -p tcp -dport 22\n")
    assert len(fw.rules) == 1 and [d.line for d in _errors_d(diags)] == [2]


def _errors_d(diags: Diagnostics) -> list[Any]:
    return [d for d in diags if d.severity is Severity.ERROR]


@pytest.mark.parametrize("comment", ["a\0b", "\x1b[1m", "x" * 300])
def test_ipset_comment(comment: str) -> None:
    fw, diags = parse_file("cluster", f"[IPSET s] # {comment}\n10.0.0.1\n")
    kept = fw.ipsets["s"].comment
    assert kept is None or (len(kept.encode()) <= NFT_COMMENT_MAX_BYTES and kept.isprintable())
    assert [(d.line, d.severity) for d in diags] == [(1, Severity.WARNING)]
    assert [str(e.address) for e in fw.ipsets["s"].entries] == ["10.0.0.1/32"]


@pytest.mark.parametrize("name", ["é" * 8, "a" * 16, "a b", "bad:name", "x\x01y"])
def test_vnet_file_names(name: str, tmp_path: Path) -> None:
    _vnet_files(tmp_path, [name.encode(), b"vnet1"])
    diags = Diagnostics()
    cfg = load_config(DirectorySource(tmp_path), "pve1", diags)
    assert set(cfg.vnets) == {"vnet1"}
    (err,) = _errors_d(diags)
    assert "vnet name" in err.message


def test_vnet_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    _vnet_files(tmp_path, [b"v\xffnet", b"vnet1"])
    diags = Diagnostics()
    cfg = load_config(DirectorySource(tmp_path), "pve1", diags)
    assert set(cfg.vnets) == {"vnet1"}
    (err,) = _errors_d(diags)
    assert err.file == "sdn/firewall/v\\udcffnet.fw"
    str(err).encode("utf-8")  # can be logged


def _vnet_files(root: Path, names: list[bytes]) -> None:
    (root / "sdn" / "firewall").mkdir(parents=True)
    (root / "sdn" / ".running-config").write_text(json.dumps({
        "zones": {"ids": {"z1": {"type": "simple"}}},
        "vnets": {"ids": {"vnet1": {"zone": "z1"}}}}))
    for name in names:
        with open(bytes(root / "sdn" / "firewall") + b"/" + name + b".fw", "wb") as fh:
            fh.write(b"[OPTIONS]\nenable: 1\n")
