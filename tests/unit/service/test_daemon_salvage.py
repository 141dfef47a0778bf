"""The daemon's safety net (issue 10 item 2b), in-process against the real kernel of a
throwaway namespace: a rule the kernel refuses is named at its file:line and the rest
applies, at the first apply and in later updates; a refusal that cannot be narrowed down
on a host without our tables loads the default rules (management access) instead of
nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.service.daemon import Daemon, DaemonOptions, Outcome
from tests.unit.nft.nft_testlib import Poisoned, list_host, objects_of, rules_of
from tests.unit.service.daemonlib import (
    HOST_FW,
    HOST_TEXT,
    NO_GUEST_FEATURES,
    NODE,
    edit,
    write_tree,
)

pytestmark = pytest.mark.netns

BAD_LINE = len(HOST_TEXT.splitlines()) + 1
BAD_ORIGIN = f"{HOST_FW}:{BAD_LINE}"


def options(tmp_path: Path, tree: Path) -> DaemonOptions:
    return DaemonOptions(tree, NODE, state_dir=tmp_path / "state",
                         force_disable_flag=tmp_path / "flag", side_effects=False)


def comments(chain: str) -> list[Any]:
    return [r.get("comment") for r in rules_of(list_host(NftClient()), chain)]


def test_refused_rule_named_and_the_rest_applied_first_and_in_updates(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "pve", host=HOST_TEXT + "IN DROP -p tcp -dport 3306\n")
    opts = options(tmp_path, tree)

    def body() -> None:
        daemon = Daemon(opts, Poisoned(rules={BAD_ORIGIN}), NO_GUEST_FEATURES)
        assert daemon.step() is Outcome.APPLIED
        assert BAD_ORIGIN in (daemon.state.last_error or "")
        host_in = rules_of(list_host(NftClient()), "host-in")
        assert [r.get("comment") for r in host_in] == [
            f"{HOST_FW}:8", f"{HOST_FW}:9", BAD_ORIGIN]
        assert host_in[-1]["expr"] == [{"drop": None}]
        assert daemon.step() is Outcome.IDLE  # no loop on the refused rule
        # an update: the new rule goes in, the refused one stays replaced
        edit(tree / HOST_FW, (tree / HOST_FW).read_text() + "IN ACCEPT -p tcp -dport 9100\n")
        assert daemon.step() is Outcome.APPLIED
        assert comments("host-in") == [f"{HOST_FW}:8", f"{HOST_FW}:9", BAD_ORIGIN,
                                       f"{HOST_FW}:{BAD_LINE + 1}"]

    run_in_new_netns(body)


def test_an_unisolable_refusal_at_start_loads_the_default_rules(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "pve")
    opts = options(tmp_path, tree)

    def body() -> None:
        daemon = Daemon(opts, Poisoned(sets={"v4-dc/trusted"}), NO_GUEST_FEATURES)
        assert daemon.step() is Outcome.FAILED
        assert "only the default rules" in (daemon.state.last_error or "")
        items = list_host(NftClient())
        assert objects_of(items, "chain")["input"]["policy"] == "drop"
        assert rules_of(items, "host-in") == [] and rules_of(items, "cluster-in") == []
        # management access: local_network (admin guide §13.8.1) in the management set
        assert objects_of(items, "set")["v4-dc/management"]["elem"] == [
            {"prefix": {"addr": "192.0.2.0", "len": 24}}]
        assert len(rules_of(items, "accept-management")) == 2
        # the retry keeps the default rules (never nothing), and a fixed config applies
        daemon.step(full=True)
        assert objects_of(list_host(NftClient()), "chain")["input"]["policy"] == "drop"
        daemon.client = NftClient()
        assert daemon.step(full=True) is Outcome.APPLIED
        assert comments("host-in") == [f"{HOST_FW}:8", f"{HOST_FW}:9"]

    run_in_new_netns(body)
