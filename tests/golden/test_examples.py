"""Golden: ``examples/pve`` compiled, loaded and listed by nftables as text.

Every change to the generated ruleset (compiler, skeleton or rendering) changes these
listings, so it shows in review as a diff of ``tests/golden/examples-pve/*.nft`` and this
test fails until the golden files are regenerated on purpose:

    UPDATE_GOLDEN=1 bash scripts/test.sh tests/golden

(the guest table is listed inside the full-kernel VM, which the same command boots).

The ruleset is loaded with the product's own transaction into a fresh network namespace,
then listed by libnftables (what ``nft list table`` prints): the kernel's view, not our
JSON. The node's network is pinned so the listing does not depend on this machine, and
counter values are blanked (nothing is sent, but they are not part of the ruleset).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from pathlib import Path

import nftables
import pytest

from proxmox_fw.nft.apply import apply_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, HOST_TABLE, INET, Ruleset
from proxmox_fw.pipeline import compile_dir

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pve"
GOLDEN = Path(__file__).resolve().parent / "examples-pve"
NODE = "pve1"
# The example has no local_network alias: pin the detected network (its corosync LAN).
LOCAL_NETWORK = ipaddress.ip_interface("172.16.1.0/24")
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
_COUNTER = re.compile(r"counter packets \d+ bytes \d+")


def compiled_example() -> Ruleset:
    """Nothing read from this machine: the network is pinned, no name is looked up."""
    result = compile_dir(EXAMPLE, NODE, local_net=LOCAL_NETWORK, resolver=lambda _name: [])
    assert not [str(d) for d in result.diagnostics if d.severity == "error"]
    return result.ruleset


def listed(rs: Ruleset, family: str, name: str) -> str:
    """Apply ``rs`` in a throwaway namespace and list one table as nft text."""

    def in_netns() -> str:
        applied = apply_ruleset(rs, NftClient(), probe_features())
        assert applied.ok, applied.error
        nft = nftables.Nftables()
        rc, out, err = nft.cmd(f"list table {family} {name}")
        assert rc == 0, err
        return str(out)

    return normalised(run_in_new_netns(in_netns))


def normalised(text: str) -> str:
    return _COUNTER.sub("counter", text).rstrip("\n") + "\n"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} missing: regenerate with UPDATE_GOLDEN=1 (see module doc)"
    golden = path.read_text()
    if text != golden:
        diff = "".join(difflib.unified_diff(
            golden.splitlines(keepends=True), text.splitlines(keepends=True),
            f"{path.relative_to(REPO)} (golden)", "compiled now"))
        pytest.fail(f"the generated ruleset changed; if on purpose, regenerate with "
                    f"UPDATE_GOLDEN=1 (see {Path(__file__).name}):\n{diff}", pytrace=False)


@pytest.mark.netns
def test_host_table_listing() -> None:
    check_golden("host.nft", listed(compiled_example(), INET, HOST_TABLE))


@pytest.mark.netns
@pytest.mark.fullkernel
def test_guest_table_listing() -> None:
    missing = probe_features().missing_for_guests()
    if missing:
        pytest.skip("kernel lacks " + ", ".join(missing))
    check_golden("guests.nft", listed(compiled_example(), BRIDGE, GUEST_TABLE))
