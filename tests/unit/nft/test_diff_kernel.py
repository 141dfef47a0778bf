"""nft/diff.py against the real kernel: apply A, apply diff(A→B), and compare the tables
with a fresh full apply of B in another namespace (same chains, rules, sets, elements,
maps, helpers). Then back again: diff(B→A) must give A.

The rulesets are compiled from the example tree and edits of it, so every kind of object
the compiler emits takes part; hand-built ones add what the example lacks (vnet map
elements jumping to chains that come and go). On this kernel only the host table loads;
the fullkernel variant covers the guest table.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.apply import loadable_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.diff import UpdatePlan, plan_update
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.nft.objects import Ruleset
from proxmox_fw.pipeline import compile_dir
from tests.unit.nft.test_diff import accept_port, base
from tests.unit.service.daemonlib import NODE, REPO, normalized

pytestmark = pytest.mark.netns

EXAMPLE = REPO / "examples" / "pve"
Edit = Callable[[Path], None]


def _sub(rel: str, old: str, new: str, count: int = 1) -> Edit:
    def edit(root: Path) -> None:
        path = root / rel
        text = path.read_text()
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, count))

    return edit


def _append(rel: str, text: str) -> Edit:
    def edit(root: Path) -> None:
        with (root / rel).open("a") as fh:
            fh.write(text)

    return edit


HOST_FW = f"nodes/{NODE}/host.fw"
CLUSTER = "firewall/cluster.fw"

EDITS: dict[str, Edit] = {
    "host rule added": _append(HOST_FW, "IN ACCEPT -p tcp -dport 9100\n"),
    "ipset element swapped": _sub(CLUSTER, "192.0.2.0/25", "192.0.2.128/25"),
    "ipset nomatch removed": _sub(CLUSTER, "! 203.0.113.9 # a partner", "# 203.0.113.9 gone"),
    "alias changed": _sub(CLUSTER, "office 198.51.100.0/24", "office 198.51.100.0/23"),
    "group dropped": _sub(CLUSTER, "GROUP webserver", "# no group"),
    "ct helper changed": _sub(HOST_FW, "nf_conntrack_helpers: ftp", "nf_conntrack_helpers: tftp"),
    "synflood off": _sub(HOST_FW, "protection_synflood: 1", "protection_synflood: 0"),
    "host firewall off": _sub(HOST_FW, "enable: 1", "enable: 0"),
    "policy changed": _sub(CLUSTER, "policy_in: DROP", "policy_in: REJECT"),
    "management ipset emptied": _sub(CLUSTER, "198.51.100.7\n", "\n"),
}


def compiled(root: Path) -> Ruleset:
    result = compile_dir(root, NODE)
    rs, _missing = loadable_ruleset(result.ruleset, probe_features())
    return rs


def listing(client: NftClient) -> dict[str, Any]:
    result = client.list_ruleset_json()
    assert result.ok, result.error
    return normalized([i for i in result.output["nftables"] if "metainfo" not in i])


def run_plan(client: NftClient, plan: UpdatePlan) -> None:
    result = client.run_json(plan.document())
    assert result.ok, f"{result.error}\n{plan.commands}"


def diff_then_list(a: Ruleset, b: Ruleset) -> tuple[dict[str, Any], dict[str, Any]]:
    """In a fresh namespace: full A, diff A→B (listed), diff B→A (listed)."""

    def body() -> tuple[dict[str, Any], dict[str, Any]]:
        client = NftClient()
        run_plan(client, plan_update(None, a))
        run_plan(client, plan_update(a, b))
        as_b = listing(client)
        run_plan(client, plan_update(b, a))
        return as_b, listing(client)

    with NetnsWorker() as worker:
        return worker.call(body)


def full_listing(rs: Ruleset) -> dict[str, Any]:
    def body() -> dict[str, Any]:
        client = NftClient()
        run_plan(client, plan_update(None, rs))
        return listing(client)

    with NetnsWorker() as worker:
        return worker.call(body)


@pytest.fixture(scope="module")
def example_a(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ruleset]:
    root = tmp_path_factory.mktemp("example") / "pve"
    shutil.copytree(EXAMPLE, root)
    return root, compiled(root)


@pytest.fixture(scope="module")
def full_a(example_a: tuple[Path, Ruleset]) -> dict[str, Any]:
    return full_listing(example_a[1])


@pytest.mark.parametrize("edit", list(EDITS), ids=lambda name: re.sub(r"\W+", "-", name))
def test_diff_matches_full_apply(
    edit: str, example_a: tuple[Path, Ruleset], full_a: dict[str, Any], tmp_path: Path
) -> None:
    root_a, a = example_a
    root_b = tmp_path / "pve"
    shutil.copytree(root_a, root_b)
    EDITS[edit](root_b)
    b = compiled(root_b)
    plan = plan_update(a, b)
    assert not plan.empty, "the edit must change the ruleset"
    as_b, back_to_a = diff_then_list(a, b)
    assert as_b == full_listing(b)
    assert back_to_a == full_a


def vnets(*names: str) -> Ruleset:
    """The hand-built host ruleset with one bridge-<vnet> chain and map element per vnet."""
    rs = base()
    del rs.host.chains["bridge-vnet1"]
    rs.host.maps["bridge-map"].elements.clear()
    for port, name in enumerate(names, start=8000):
        rs.host.chain(f"bridge-{name}").add(accept_port(port), f"sdn/firewall/{name}.fw:2")
        rs.host.maps["bridge-map"].elements.append((name, {"jump": {"target": f"bridge-{name}"}}))
    return rs


@pytest.mark.parametrize(("before", "after"), [
    (("vnet1",), ("vnet2",)),
    (("vnet1", "vnet2"), ("vnet2",)),
    ((), ("vnet1", "vnet2")),
])
def test_map_elements_and_their_chains(before: tuple[str, ...], after: tuple[str, ...]) -> None:
    a, b = vnets(*before), vnets(*after)
    as_b, back_to_a = diff_then_list(a, b)
    assert as_b == full_listing(b)
    assert back_to_a == full_listing(a)


def test_untouched_chains_keep_their_rule_handles(example_a: tuple[Path, Ruleset],
                                                  tmp_path: Path) -> None:
    """The diff flushes only what changed: rules elsewhere are the same kernel objects."""
    root_a, a = example_a
    root_b = tmp_path / "pve"
    shutil.copytree(root_a, root_b)
    EDITS["host rule added"](root_b)
    b = compiled(root_b)

    def handles(client: NftClient) -> dict[str, list[int]]:
        result = client.list_ruleset_json()
        out: dict[str, list[int]] = {}
        for item in result.output["nftables"]:
            if "rule" in item:
                out.setdefault(item["rule"]["chain"], []).append(item["rule"]["handle"])
        return out

    def body() -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        client = NftClient()
        run_plan(client, plan_update(None, a))
        before = handles(client)
        run_plan(client, plan_update(a, b))
        return before, handles(client)

    with NetnsWorker() as worker:
        before, after = worker.call(body)
    assert len(after["host-in"]) == len(before["host-in"]) + 1
    assert not set(after["host-in"]) & set(before["host-in"])  # refilled
    for chain in ("cluster-in", "input", "default-in", "option-in", "group-webserver-in"):
        assert after[chain] == before[chain], chain
