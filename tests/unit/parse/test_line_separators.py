"""Every reader cuts lines at ``\\n`` only, as Proxmox VE does (issue 10, item 4).

Python's ``splitlines()`` also breaks at ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, NEL,
U+2028/U+2029 and a lone ``\\r``; with it, a comment could hide a line of its own (an
injected ``net0: ...,firewall=0`` replacing the real, firewalled one). The property tried
for every such character in every reader: a comment holding the character and a
dangerous payload means exactly what a plain comment means.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.config.loader import load_config
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.data.protocols import _parse_protocols_file
from proxmox_fw.data.services import parse_services
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.parse.corosync import parse_corosync
from proxmox_fw.parse.guestconf import parse_guest_conf
from proxmox_fw.system.localnet import resolve_hostname
from proxmox_fw.textlines import split_lines
from tests.unit.parse.helpers import parse_file

# Every character str.splitlines() breaks at, besides "\n" itself (found, not listed, so
# a Python that adds one is covered too), plus "\r" on its own and before other text.
SEPARATORS = sorted(
    {chr(c) for c in range(sys.maxunicode + 1) if len(f"a{chr(c)}b".splitlines()) == 2}
    - {"\n"}
)
IDS = [f"U+{ord(s):04X}" for s in SEPARATORS]


def test_the_separator_list_is_what_the_issue_names() -> None:
    assert set("\v\f\x1c\x1d\x1e\x85\u2028\u2029\r") <= set(SEPARATORS)


@pytest.mark.parametrize("sep", SEPARATORS, ids=IDS)
def test_split_lines_cuts_at_newline_only(sep: str) -> None:
    assert split_lines(f"a{sep}b\nc\n") == [f"a{sep}b", "c"]


def test_split_lines_drops_the_cr_of_crlf_only() -> None:
    assert split_lines("a\r\nb\r\r\nc\rd\n") == ["a", "b\r", "c\rd"]
    assert split_lines("x\r") == ["x\r"]  # no newline after it: part of the line
    assert split_lines("") == []
    assert split_lines("\n\n") == ["", ""]


def _same_as_plain_comment(
    parse: Callable[[str], Any], template: str, payload: str, sep: str
) -> None:
    """``template`` with ``{c}`` replaced by a comment that hides ``payload`` behind
    ``sep`` parses exactly like the plain comment, diagnostics included."""
    hidden = parse(template.format(c=f"# note{sep}{payload}"))
    plain = parse(template.format(c="# note"))
    assert hidden == plain


def _fw(kind: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        model, diags = parse_file(kind, text)
        return model, [str(d) for d in diags]
    return parse


_RULE = {"cluster": "IN ACCEPT -p tcp -dport 22", "host": "IN ACCEPT -p tcp -dport 22",
         "guest": "IN ACCEPT -p tcp -dport 22", "vnet": "FORWARD ACCEPT -p tcp -dport 22"}


@pytest.mark.parametrize("kind", ["cluster", "host", "guest", "vnet"])
@pytest.mark.parametrize("sep", SEPARATORS, ids=IDS)
def test_fw_files(kind: str, sep: str) -> None:
    parse = _fw(kind)
    enable = "nftables: 0" if kind == "host" else "enable: 0"
    template = "[OPTIONS]\n{c}\n[RULES]\nIN DROP -p tcp -dport 23\n"
    if kind == "vnet":
        template = "[OPTIONS]\n{c}\n[RULES]\nFORWARD DROP -p tcp -dport 23\n"
    _same_as_plain_comment(parse, template, enable, sep)
    _same_as_plain_comment(parse, template, f"[RULES]\n{_RULE[kind]}".replace("\n", sep), sep)
    # a rule's own comment, and a line number after the hidden one, stay as they are
    model, _ = parse(f"[RULES]\n{_RULE[kind]} # x{sep}{_RULE[kind]}\nBAD LINE\n")
    assert len(model.rules) == 1
    _, diags = parse(f"[RULES]\n# x{sep}y\nBAD LINE\n")
    assert diags and all(":3: " in d for d in diags)


def _guest(text: str) -> Any:
    diags = Diagnostics()
    nics = parse_guest_conf(text, "nodes/pve1/qemu-server/100.conf", "qemu", diags)
    return nics, [str(d) for d in diags]


_NET0 = "net0: virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1\n"


@pytest.mark.parametrize("sep", SEPARATORS, ids=IDS)
def test_guest_conf_comment_cannot_define_a_nic(sep: str) -> None:
    injected = "net0: virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=0"
    # before and after the real line: neither the first nor the last definition moves
    _same_as_plain_comment(_guest, "{c}\n" + _NET0, injected, sep)
    _same_as_plain_comment(_guest, _NET0 + "{c}\n", injected, sep)
    _same_as_plain_comment(_guest, "{c}\n" + _NET0, "net1: virtio=BC:24:11:00:00:02", sep)
    # a hidden section start would hide the real NIC
    _same_as_plain_comment(_guest, "{c}\n" + _NET0, "[snapshot1]", sep)
    nics, _ = _guest(f"# x{sep}{injected}\n{_NET0}")
    assert nics[0].firewall is True


_COROSYNC = """\
nodelist {{
  node {{
    name: pve1
    {c}
    ring0_addr: 10.0.0.1
  }}
  node {{
    name: pve2
    ring0_addr: 10.0.0.2
  }}
}}
"""


@pytest.mark.parametrize("sep", SEPARATORS, ids=IDS)
def test_corosync(sep: str) -> None:
    def parse(text: str) -> Any:
        diags = Diagnostics()
        return parse_corosync(text, "corosync.conf", diags), [str(d) for d in diags]

    _same_as_plain_comment(parse, _COROSYNC, "}", sep)
    _same_as_plain_comment(parse, _COROSYNC, "ring0_addr: 10.6.6.6", sep)
    _same_as_plain_comment(parse, _COROSYNC, "}\n  node {\n name: evil".replace("\n", sep), sep)


@pytest.mark.parametrize("sep", SEPARATORS, ids=IDS)
def test_etc_hosts(sep: str, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"

    def resolve(text: str) -> Any:
        hosts.write_bytes(text.encode("utf-8"))
        return resolve_hostname("pve1", str(hosts))

    _same_as_plain_comment(resolve, "{c}\n192.0.2.1 pve1\n", "203.0.113.9 pve1", sep)


@pytest.mark.parametrize("sep", SEPARATORS, ids=IDS)
def test_etc_services_and_protocols(sep: str) -> None:
    _same_as_plain_comment(parse_services, "{c}\nssh 22/tcp\n", "evil 1/tcp", sep)
    _same_as_plain_comment(_parse_protocols_file, "{c}\ntcp 6 TCP\n", "evil 99 EVIL", sep)


@pytest.mark.parametrize("sep", SEPARATORS, ids=IDS)
def test_loaded_from_disk(sep: str, tmp_path: Path) -> None:
    """Through the file source too: bytes are decoded without newline translation."""
    files = {
        "firewall/cluster.fw": "[OPTIONS]\nenable: 1\n{c}\n",
        ".vmlist": '{"ids": {"100": {"node": "pve1", "type": "qemu", "version": 1}}}',
        "nodes/pve1/qemu-server/100.conf": "{c}\n" + _NET0,
        "firewall/100.fw": "[OPTIONS]\nenable: 1\n",
    }
    payloads = ["enable: 0", _NET0.strip().replace("firewall=1", "firewall=0")]

    def load(comment: str) -> Any:
        for rel, text in files.items():
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.replace("{c}", comment).encode("utf-8"))
        diags = Diagnostics()
        return load_config(DirectorySource(tmp_path), "pve1", diags), [str(d) for d in diags]

    for payload in payloads:
        hidden, plain = load(f"# note{sep}{payload}"), load("# note")
        assert hidden == plain
        cfg = hidden[0]
        assert cfg.cluster.options.enable and cfg.guests[100].nics[0].firewall
