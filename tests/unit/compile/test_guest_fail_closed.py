"""A guest NIC whose line cannot be understood stays firewalled and sends nothing."""

from __future__ import annotations

from .test_guests import MAC0, G, build, exprs, m

META_IIF = {"meta": {"key": "iifname"}}


def test_unparsable_nic_line_is_firewalled_and_its_output_dropped() -> None:
    conf = f"net0: virtio={MAC0},bridge=vmbr0,firewall=1\nnet1: virtio=not-a-mac,firewall=1\n"
    res = build({100: G(conf=conf)})
    errors = [d for d in res.diagnostics if d.severity == "error"]
    assert [(d.line, "net1" in d.message) for d in errors] == [(2, True)]
    table = res.ruleset.guests
    assert ("tap100i1", {"goto": {"target": "guest-100-out"}}) in table.map("vm-map-out").elements
    assert ("tap100i1", {"goto": {"target": "guest-100-in"}}) in table.map("vm-map-in").elements
    out = exprs(table, "guest-100-out")
    assert out[0] == [m(META_IIF, "tap100i1"), {"drop": None}]  # before conntrack accepts
    assert [m(META_IIF, "tap100i0"), {"drop": None}] not in out


def test_broken_firewall_flag_fails_closed() -> None:
    res = build({100: G(conf=f"net0: virtio={MAC0},bridge=vmbr0,firewall=maybe\n")})
    out = exprs(res.ruleset.guests, "guest-100-out")
    assert out[0] == [m(META_IIF, "tap100i0"), {"drop": None}]
