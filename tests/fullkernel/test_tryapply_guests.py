"""try-apply's roll-back transaction on a kernel that holds the guest table too: the
saved JSON listings of both tables (guest chains, verdict maps, ipsets, MAC/IP filter
sets) come back exactly as ``nft list ruleset`` showed them."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.fullkernel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pve"


def _in_fresh_namespace(tree: Path, edited: Path) -> tuple[str, str, str, bool]:
    import nftables

    from proxmox_fw.nft.apply import apply_ruleset
    from proxmox_fw.nft.client import NftClient
    from proxmox_fw.nft.features import probe_features
    from proxmox_fw.pipeline import compile_dir
    from proxmox_fw.tools.tryapply import restore_commands, save_tables

    def listing() -> str:
        ctx = nftables.Nftables()
        rc, out, err = ctx.cmd("list ruleset")
        assert rc == 0, err
        return str(out)

    client = NftClient()
    net = ipaddress.ip_interface("192.0.2.0/24")
    for path in (tree, edited):
        res = compile_dir(path, "pve1", honor_nftables_switch=False, local_net=net)
        assert res.ruleset.guests.enabled
    first = compile_dir(tree, "pve1", honor_nftables_switch=False, local_net=net)
    features = probe_features()
    assert apply_ruleset(first.ruleset, client, features).ok
    before = listing()
    saved = save_tables(client)
    second = compile_dir(edited, "pve1", honor_nftables_switch=False, local_net=net)
    assert apply_ruleset(second.ruleset, client, features).ok
    during = listing()
    restored = client.run_json({"nftables": restore_commands(saved)})
    assert restored.ok, restored.error
    return before, during, listing(), bool(saved["bridge proxmox-firewall-guests"])


def test_roll_back_restores_host_and_guest_tables_exactly(tmp_path: Path) -> None:
    from proxmox_fw.nft.netns import run_in_new_netns

    edited = tmp_path / "pve"
    shutil.copytree(EXAMPLES, edited)
    fw = edited / "firewall" / "100.fw"
    fw.write_text(fw.read_text() + "\nIN ACCEPT -p tcp -dport 9100\n")
    before, during, after, had_guests = run_in_new_netns(_in_fresh_namespace, EXAMPLES, edited)
    assert had_guests and "table bridge proxmox-firewall-guests" in before
    assert "tcp dport 9100" in during and during != before
    assert after == before
