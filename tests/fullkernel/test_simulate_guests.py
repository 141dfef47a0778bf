"""``simulate`` with guest zones (VM tier): pve-sim cases between the uplink and a VM or
container, each simulated on its own throwaway node (guest port tap<ID>i0 / veth<ID>i0
built from the guest's config, both tables applied), get the packet tests' verdict.

Towards a guest there is no REJECT case: an IN REJECT is a DROP on the bridge (README,
"Guest REJECT"), and pve-sim has none either.
"""

from __future__ import annotations

import pytest

from proxmox_fw.tools.simulate import Request, simulate
from tests.harness import pvesim

pytestmark = [pytest.mark.fullkernel, pytest.mark.netns]

CASE_IDS = (
    "test-basic1:28",  # outside -> ct200 ACCEPT
    "test-basic1:29",  # outside -> ct200 DROP
    "test-basic1:30",  # outside -> vm100 DROP
    "test-basic1:31",  # outside -> vm100 ACCEPT
    "test-basic1:37",  # vm100 -> outside ACCEPT
    "test-basic1:38",  # vm100 -> outside REJECT
    "test-basic1:40",  # ct200 -> outside REJECT
    "test-vm-aliases1:1",  # vm100 -> outside DROP (ipfilter)
)
WAIT = 3.0  # the VM runs under TCG, tens of times slower than the host


def test_guest_cases_agree_with_the_packet_tests() -> None:
    cases = {c.id: c for s in ("test-basic1", "test-vm-aliases1") for c in pvesim.load_cases(s)}
    chosen = [cases[i] for i in CASE_IDS]
    assert not set(CASE_IDS) & set(pvesim.load_inapplicable())
    pairs = {(c.src_zone[:2], c.dst_zone[:2], c.action) for c in chosen}
    for verdict in ("ACCEPT", "DROP"):
        assert ("ou", "vm", verdict) in pairs and ("vm", "ou", verdict) in pairs
    assert ("vm", "ou", "REJECT") in pairs and ("ct", "ou", "REJECT") in pairs
    wrong: list[str] = []
    for case in chosen:
        req = Request(case.src_zone, case.dst_zone, case.proto, case.source, case.dest,
                      case.sport, case.dport if isinstance(case.dport, int) else None)
        outcome = simulate(case.pve_dir, "pve1", req, wait=WAIT)
        if outcome.verdict != case.action or not outcome.packets:
            wrong.append(f"{case.id}: expected {case.action}, got {outcome.verdict} "
                         f"({outcome.seen}), {len(outcome.packets)} packets traced")
        elif req.src_zone == "outside":
            oifs = {p.oif for p in outcome.packets if p.oif}
            port = ("tap" if req.dst_zone.startswith("vm") else "veth") + req.dst_zone[2:] + "i0"
            if case.action == "ACCEPT" and port not in oifs:
                wrong.append(f"{case.id}: the packet never left on {port}: {oifs}")
    assert wrong == [], "\n".join(wrong)
