"""``corosync.conf``: nodes, their links and the totem settings."""

from __future__ import annotations

import pytest

from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import Corosync
from proxmox_fw.parse.corosync import parse_corosync
from tests.unit.helpers import CONFORMANCE, only

F = "corosync.conf"

KNET = """\
# managed by PVE
logging {
  debug: off
}

nodelist {
  node {
    name: pve1
    nodeid: 1
    quorum_votes: 1
    ring0_addr: 10.0.0.1
    ring1_addr: fd00::1
  }
  node {
    name: pve2
    nodeid: 2
    link0_addr: 10.0.0.2
    link1_addr: fd00::2
  }
}

totem {
  cluster_name: lab
  ip_version: ipv4-6
  transport: knet
  interface {
    linknumber: 0
  }
  interface {
    linknumber: 1
  }
}
"""


def parse(text: str) -> tuple[Corosync, Diagnostics]:
    diags = Diagnostics()
    return parse_corosync(text, F, diags), diags


def test_nodes_links_and_totem() -> None:
    cfg, diags = parse(KNET)
    assert not diags.items
    assert cfg.present
    assert [(n.name, n.nodeid, n.links) for n in cfg.nodes] == [
        ("pve1", 1, {0: "10.0.0.1", 1: "fd00::1"}),
        ("pve2", 2, {0: "10.0.0.2", 1: "fd00::2"}),
    ]
    assert (cfg.transport, cfg.ip_version) == ("knet", "ipv4-6")


def test_garbage_line_and_stray_brace_are_skipped() -> None:
    text = KNET.replace("    nodeid: 2\n", "    nodeid 2\n") + "}\n"
    cfg, diags = parse(text)
    assert [(d.severity, d.line) for d in diags] == [(Severity.ERROR, 16), (Severity.ERROR, 33)]
    # only "nodeid 2" was lost; the rest of the file was still read
    assert cfg.transport == "knet"
    assert [(n.name, n.nodeid) for n in cfg.nodes] == [("pve1", 1), ("pve2", None)]


def test_unbalanced_close_brace() -> None:
    cfg, diags = parse("}\ntotem {\n transport: udp\n}\n")
    assert only(diags, Severity.ERROR).line == 1
    assert cfg.transport == "udp"


def test_unclosed_section_is_reported_and_used() -> None:
    cfg, diags = parse("nodelist {\n node {\n  name: a\n  ring0_addr: 10.1.1.1\n")
    assert [d.line for d in diags] == [1, 2]
    assert [(n.name, n.links) for n in cfg.nodes] == [("a", {0: "10.1.1.1"})]


def test_node_without_name_uses_link0_or_is_skipped() -> None:
    cfg, diags = parse(
        "nodelist {\n node {\n  ring0_addr: 10.1.1.1\n }\n node {\n  nodeid: 3\n }\n}\n"
    )
    assert [n.name for n in cfg.nodes] == ["10.1.1.1"]
    assert [(d.severity, d.line) for d in diags] == [(Severity.WARNING, 2), (Severity.ERROR, 5)]


def test_bad_values_in_node() -> None:
    cfg, diags = parse(
        "nodelist {\n node {\n  name: a\n  nodeid: one\n  ring0_addr: 10.1.1.1\n"
        "  link0_addr: 10.9.9.9\n  link9_addr: 10.2.2.2\n }\n"
        " node {\n  name: a\n  ring0_addr: 10.1.1.2\n }\n}\n"
    )
    assert [(n.name, n.nodeid, n.links) for n in cfg.nodes] == [("a", None, {0: "10.1.1.1"})]
    assert sorted((d.severity, d.line) for d in diags) == [
        (Severity.ERROR, 9), (Severity.WARNING, 2), (Severity.WARNING, 6), (Severity.WARNING, 7)
    ]


def test_empty_file_is_present_without_nodes() -> None:
    cfg, diags = parse("")
    assert cfg.present and cfg.nodes == [] and not diags.items


def test_pve_sim_corosync() -> None:
    path = CONFORMANCE / "pve-sim/test-basic1/pve/corosync.conf"
    if not path.exists():
        pytest.skip("conformance data not available")
    cfg, diags = parse(path.read_text())
    assert not diags.items
    assert [n.name for n in cfg.nodes] == ["prox1", "prox2", "prox3", "pve1"]
    pve1 = cfg.nodes[3]
    assert pve1.links == {0: "172.16.1.2", 1: "172.16.2.2", 2: "pve1"}
    assert cfg.nodes[0].links[0] == "172.16.1.11"
    assert (cfg.transport, cfg.ip_version) == ("udp", "ipv4")
