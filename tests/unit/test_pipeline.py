"""The one path from /etc/pve to the kernel: host facts decided once, and `apply` and the
daemon's first apply sending the very same transaction."""

from __future__ import annotations

import copy
import ipaddress
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from cli.apply import EXIT_FAILED, apply_config
from cli.main import Globals, _compile
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.nft.client import NftClient, Result
from proxmox_fw.nft.features import probe_features
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.pipeline import compile_node, host_facts, load_node, needs_local_network
from proxmox_fw.service import Daemon, DaemonOptions, Outcome
from proxmox_fw.system.localnet import LocalNet
from tests.unit.service.daemonlib import CLUSTER_TEXT, NODE, write_tree

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pve"
NET = ipaddress.ip_interface("10.20.0.0/16")


def _detector(calls: list[str]) -> Any:
    def detect() -> LocalNet:
        calls.append("detect")
        return LocalNet(NODE, detected=NET, warnings=("hostname does not resolve",))

    return detect


def test_local_network_is_detected_only_without_the_alias(tmp_path: Path) -> None:
    with_alias = write_tree(tmp_path / "a")  # cluster.fw defines local_network
    without = write_tree(tmp_path / "b", cluster=CLUSTER_TEXT.replace("local_network", "lan"))
    calls: list[str] = []
    cfg = load_node(with_alias, NODE, Diagnostics())
    assert not needs_local_network(cfg)
    facts = host_facts(cfg, detect_local=_detector(calls), altnames={})
    assert calls == [] and facts.local is None and facts.warnings == ()
    assert facts.options.local_network is None

    cfg = load_node(without, NODE, Diagnostics())
    assert needs_local_network(cfg)
    facts = host_facts(cfg, detect_local=_detector(calls), altnames={"lan0": "eth0"})
    assert calls == ["detect"]
    assert facts.options.local_network == NET
    assert facts.warnings == ("hostname does not resolve",)
    assert facts.options.altnames == {"lan0": "eth0"}
    management = [s for s in compile_node(cfg, facts).ruleset.host.sets.values()
                  if s.name == "v4-dc/management"]
    assert [s.elements for s in management] == [[{"prefix": {"addr": "10.20.0.0", "len": 16}}]]


def test_honor_nftables_switch_reaches_the_compiler(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "pve", host="[OPTIONS]\nenable: 1\n")  # no nftables: 1
    cfg = load_node(tree, NODE, Diagnostics())
    honoured = compile_node(cfg, host_facts(cfg, altnames={}))
    ignored = compile_node(cfg, host_facts(cfg, altnames={}, honor_nftables_switch=False))
    assert not honoured.ruleset.host.enabled
    assert ignored.ruleset.host.enabled


class Recorder:
    """A JsonRunner that keeps a copy of every document and hands it to libnftables."""

    def __init__(self) -> None:
        self.client = NftClient()
        self.sent: list[Any] = []

    def run_json(self, doc: Any) -> Result:
        self.sent.append(copy.deepcopy(doc))
        return self.client.run_json(doc)


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root and network namespaces")
def test_cli_apply_and_the_daemons_first_apply_send_the_same_transaction(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "pve"
    shutil.copytree(EXAMPLE, tree)
    features = probe_features()

    def both() -> tuple[Any, ...]:
        cli = Recorder()
        cli_effects: list[dict[str, str]] = []
        code = apply_config(_compile(Globals(tree, NODE)), cli, cli_effects.append)
        daemon_client = Recorder()
        daemon_effects: list[dict[str, str]] = []
        opts = DaemonOptions(tree, NODE, state_dir=tmp_path / "state",
                             force_disable_flag=tmp_path / "flag")
        daemon = Daemon(opts, daemon_client, features, effects_writer=daemon_effects.append)
        outcome = daemon.step()
        return code, cli.sent, cli_effects, outcome, daemon_client.sent, daemon_effects

    code, cli_sent, cli_effects, outcome, daemon_sent, daemon_effects = run_in_new_netns(both)
    assert code != EXIT_FAILED and outcome is Outcome.APPLIED
    (cli_tx,) = cli_sent  # apply sends exactly one document
    assert daemon_sent[0] == cli_tx
    host = {"family": "inet", "name": "proxmox-firewall"}
    assert cli_tx["nftables"][:2] == [{"add": {"table": host}}, {"delete": {"table": host}}]
    assert not any("flush" in c for c in cli_tx["nftables"])  # the tables are new
    assert cli_effects == daemon_effects and cli_effects
