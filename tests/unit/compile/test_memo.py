"""Incremental compiles (issue 12 goal 2): the daemon's way of compiling again, with its
parse cache, its compile memo and the rendering of what it applied, on a generated tree.

What an update sends is inspected as the transaction plan: an unchanged tree sends
nothing, a one-guest edit touches only that guest's objects, and a cluster alias edit
touches everything that reads it and gives exactly what a full recompile gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchmarks.gentree import ALIASES, IPSETS, NODE, make_tree
from proxmox_fw.compile import CompileMemo
from proxmox_fw.config.loader import ParseCache, load_config
from proxmox_fw.config.source import DirectorySource
from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.nft.diff import UpdatePlan, plan_update
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, HOST_TABLE, Ruleset, Table
from proxmox_fw.nft.render import RenderedRuleset
from proxmox_fw.pipeline import compile_node, host_facts
from proxmox_fw.system.localnet import LocalNet

GUESTS = 12


@dataclass
class Daemonish:
    """Compiles a tree again and again as the daemon does."""

    root: Path
    cache: ParseCache = field(default_factory=ParseCache)
    memo: CompileMemo = field(default_factory=CompileMemo)
    applied: RenderedRuleset | None = None
    previous: RenderedRuleset | None = None

    def compile(self, memo: CompileMemo | None, previous: RenderedRuleset | None,
                cache: ParseCache | None = None) -> tuple[RenderedRuleset, Diagnostics]:
        diags = Diagnostics()
        cache = cache if cache is not None else ParseCache(enabled=False)
        cfg = load_config(DirectorySource(self.root), NODE, diags, cache)
        facts = host_facts(cfg, detect_local=lambda: LocalNet(NODE), altnames={},
                           resolver=lambda _name: [], honor_nftables_switch=False)
        result = compile_node(cfg, facts, diags, memo)
        return RenderedRuleset(result.ruleset, previous), diags

    def update(self) -> set[tuple[str, str, str]]:
        """Compile again; the objects (table, kind, name) an update would send: those
        whose digest differs from the applied ones, as :func:`plan_update` selects them."""
        new, _ = self.compile(self.memo, self.applied, self.cache)
        assert self.applied is not None
        changed = {(t.table.name, *key) for old, t in zip(self.applied.tables, new.tables,
                                                         strict=True)
                   for key, obj in t.objects.items() if not obj.same(old.objects.get(key))}
        changed |= {(old.table.name, *key) for old, t in zip(self.applied.tables, new.tables,
                                                            strict=True)
                    for key in old.objects if key not in t.objects}
        self.previous, self.applied = self.applied, new
        return changed

    def full(self) -> tuple[RenderedRuleset, Diagnostics]:
        """A one-shot compile: nothing cached."""
        return self.compile(None, None)


def host_plan(old: RenderedRuleset, new: RenderedRuleset) -> UpdatePlan:
    """The transaction for the host table (the guest table's plan needs its skeleton,
    which only the full-kernel tier can load)."""
    def host_only(r: RenderedRuleset) -> RenderedRuleset:
        disabled = Table(BRIDGE, GUEST_TABLE, enabled=False)
        return RenderedRuleset(Ruleset(host=r.ruleset.host, guests=disabled), r)

    return plan_update(host_only(old), host_only(new))


@pytest.fixture
def daemon(tmp_path: Path) -> Daemonish:
    root = tmp_path / "pve"
    make_tree(root, GUESTS, blacklist=300)
    d = Daemonish(root)
    # The first apply (a full one) as if done: later updates diff against it.
    d.applied, _ = d.compile(d.memo, None, d.cache)
    assert all(t.table.enabled for t in d.applied.tables)
    return d


def test_unchanged_tree_sends_no_transaction_and_compiles_nothing(daemon: Daemonish) -> None:
    assert daemon.update() == set()
    assert daemon.memo.built == 0
    assert daemon.memo.reused >= GUESTS
    assert daemon.previous is not None and daemon.applied is not None
    assert daemon.applied.digest() == daemon.previous.digest()
    assert host_plan(daemon.previous, daemon.applied).empty


def test_one_guest_edit_touches_only_that_guest(daemon: Daemonish) -> None:
    fw = daemon.root / "firewall/1003.fw"
    fw.write_text(fw.read_text() + "IN ACCEPT -p tcp -dport 4711\n")
    assert daemon.update() == {(GUEST_TABLE, "chain", "guest-1003-in")}
    assert daemon.memo.built == 1  # that guest only; every other piece reused
    assert daemon.previous is not None and daemon.applied is not None
    assert host_plan(daemon.previous, daemon.applied).empty
    assert daemon.applied.digest() == daemon.full()[0].digest()


def test_cluster_alias_edit_recompiles_its_users_like_a_full_compile(
    daemon: Daemonish,
) -> None:
    cluster = daemon.root / "firewall/cluster.fw"
    text = cluster.read_text()
    assert "alias3 10.3.0.0/16" in text
    cluster.write_text(text.replace("alias3 10.3.0.0/16", "alias3 10.33.0.0/16"))
    changed = daemon.update()
    assert daemon.memo.built > GUESTS  # every guest reads cluster.fw
    full, _ = daemon.full()
    assert daemon.applied is not None and daemon.previous is not None
    assert daemon.applied.digest() == full.digest()
    for mine, fresh in zip(daemon.applied.tables, full.tables, strict=True):
        assert mine.commands() == fresh.commands()
    # The alias is a member of set3, set23, ... (dc/setN in both tables) and in rules
    # of guests.
    expected = {(GUEST_TABLE, "chain", f"guest-{1000 + i}-{d}")
                for i in range(GUESTS) for d in ("in", "out")
                if _uses_alias3(daemon.root / f"firewall/{1000 + i}.fw", d)}
    members = {f"v4-dc/set{i}" for i in range(IPSETS) if i % ALIASES == 3}
    expected |= {(table, "set", name) for table in (HOST_TABLE, GUEST_TABLE)
                 for name in members}
    assert expected and changed == expected, changed ^ expected
    plan = host_plan(daemon.previous, daemon.applied)
    assert {c["add"]["element"]["name"] for c in plan.commands if "element" in c.get("add", {})
            } == members


def _uses_alias3(fw: Path, direction: str) -> bool:
    key = "IN " if direction == "in" else "OUT "
    return any(line.startswith(key) and "alias3" in line.split()
               for line in fw.read_text().splitlines())
