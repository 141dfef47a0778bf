"""``proxmox-firewall start`` as a process in a namespace of its own, against the kernel.

Each test starts the daemon with ``ip netns exec`` on a small tree (host table only, so
``status`` can be fully in sync on this kernel), polling every 0.2 s, and watches the
kernel: listings, rule handles and counters, and ``nft monitor`` for transactions.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxmox_fw.nft.kernelstate import TABLE_F_DORMANT, TABLE_F_OWNER
from tests.harness.netns import NetNs
from tests.unit.nft.nft_testlib import TableMaker, add_foreign_tables
from tests.unit.service.daemonlib import (
    CLUSTER_FW,
    HOST_FW,
    REPO,
    DaemonProcess,
    Monitor,
    age_tree,
    counters,
    edit,
    eventually,
    list_table,
    rules,
    table_handle,
)

pytestmark = pytest.mark.netns

Start = Callable[..., DaemonProcess]
GUESTS = ("bridge", "proxmox-firewall-guests")


def send_udp(peer: NetNs, count: int, port: int = 9) -> None:
    """Datagrams from the peer to the host: dropped by the input policy (and counted)."""
    sock = peer.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(count):
            sock.sendto(b"x", ("192.0.2.1", port))
    finally:
        sock.close()


def host_in_ports(items: list[dict[str, Any]]) -> list[int]:
    ports = []
    for rule in rules(items, "host-in"):
        for e in rule["expr"]:
            match = e.get("match", {})
            if match.get("left", {}).get("payload", {}).get("field") == "dport":
                ports.append(match["right"])
    return ports


def append_host_rule(tree: Path, line: str) -> None:
    edit(tree / HOST_FW, (tree / HOST_FW).read_text() + line + "\n")


def test_applies_at_start_and_status_reports_in_sync(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    items = list_table(host)
    assert items is not None
    assert host_in_ports(items) == [22, 8006]
    assert list_table(host, *GUESTS) is None
    code, report = daemon.status()
    assert code == 0, report
    assert report["running"] and report["in_sync"] and report["config_enabled"]
    assert report["tables_present"] == {"inet proxmox-firewall": True,
                                        "bridge proxmox-firewall-guests": False}
    # a change not yet applied shows as out of step: stop the daemon from seeing it
    daemon.signal(signal.SIGSTOP)
    try:
        append_host_rule(pve_tree, "IN ACCEPT -p tcp -dport 9100")
        code, report = daemon.status()
        assert code == 3 and not report["in_sync"], report
    finally:
        daemon.signal(signal.SIGCONT)
    daemon.wait_applied(2)
    assert daemon.status()[0] == 0


def test_edit_replaces_only_the_affected_chain_and_counters_survive(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, peer = netns_pair
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    send_udp(peer, 5)
    before = list_table(host)
    assert before is not None
    cluster_before = rules(before, "cluster-in")
    assert sum(c["packets"] for c in counters(cluster_before)) >= 5  # the drop policy counted
    host_handles = [r["handle"] for r in rules(before, "host-in")]

    append_host_rule(pve_tree, "IN ACCEPT -p tcp -dport 9100")
    daemon.wait_applied(2)
    after = list_table(host)
    assert after is not None
    assert host_in_ports(after) == [22, 8006, 9100]
    assert not {r["handle"] for r in rules(after, "host-in")} & set(host_handles)
    cluster_after = rules(after, "cluster-in")
    assert [r["handle"] for r in cluster_after] == [r["handle"] for r in cluster_before]
    assert counters(cluster_after) == counters(cluster_before)  # not reset
    assert table_handle(host) is not None
    assert "chains_changed=1" in daemon.log()


def test_no_transaction_and_no_read_while_nothing_changes(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    monitor = Monitor(host)
    try:
        reads = daemon.log().count("reading configuration")
        handles = [i["rule"]["handle"] for i in list_table(host) or [] if "rule" in i]
        time.sleep(10 * 0.2)  # ten poll intervals of observation
        assert monitor.transactions_since_mark() == 0, monitor.since_mark()
        assert daemon.log().count("reading configuration") == reads
        assert [i["rule"]["handle"] for i in list_table(host) or [] if "rule" in i] == handles
        # the same monitor does see the daemon's next update, as exactly one transaction
        append_host_rule(pve_tree, "IN ACCEPT -p tcp -dport 9100")
        daemon.wait_applied(2)
        eventually(monitor.transactions_since_mark, "the update's transaction")
        time.sleep(3 * 0.2)
        assert monitor.transactions_since_mark() == 1, monitor.since_mark()
    finally:
        monitor.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_removes_tables_and_exits_within_a_second(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start,
    sig: signal.Signals,
) -> None:
    host, _peer = netns_pair
    daemon = start_daemon(host, pve_tree, interval=5.0)  # asleep in a long poll
    daemon.wait_applied()
    time.sleep(0.3)
    sent = time.monotonic()
    daemon.signal(sig)
    try:
        code = daemon.proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        pytest.fail("the daemon did not exit within 1 s")
    assert time.monotonic() - sent < 1.0
    assert code == 0, daemon.log()
    assert list_table(host) is None
    assert list_table(host, *GUESTS) is None
    code, report = daemon.status()
    assert code == 1 and not report["running"]


def test_force_disable_flag_removes_and_restores(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    daemon.flag.touch()
    eventually(lambda: list_table(host) is None, "tables removed by the flag")
    code, report = daemon.status()
    assert code == 0 and report["force_disabled"], report
    daemon.flag.unlink()
    eventually(lambda: list_table(host) is not None, "tables back without the flag")
    assert host_in_ports(list_table(host) or []) == [22, 8006]


def test_config_switch_removes_and_restores(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    text = (pve_tree / HOST_FW).read_text()
    edit(pve_tree / HOST_FW, text.replace("nftables: 1", "nftables: 0"))
    eventually(lambda: list_table(host) is None, "tables removed by nftables: 0")
    code, report = daemon.status()
    assert code == 0 and not report["config_enabled"], report
    cluster = (pve_tree / CLUSTER_FW).read_text()
    edit(pve_tree / CLUSTER_FW, cluster.replace("enable: 1", "enable: 0"))
    edit(pve_tree / HOST_FW, text)
    time.sleep(3 * 0.2)
    assert list_table(host) is None  # cluster enable: 0 keeps it off
    edit(pve_tree / CLUSTER_FW, cluster)
    eventually(lambda: list_table(host) is not None, "tables back")


def test_broken_rule_is_skipped_and_the_rest_applied(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    append_host_rule(pve_tree, "IN ACCEPT -p tcp -dport 99999\nIN ACCEPT -p tcp -dport 9100")
    daemon.wait_applied(2)
    assert host_in_ports(list_table(host) or []) == [22, 8006, 9100]
    assert "99999" in daemon.log()  # the skipped rule is named in a warning


def test_sighup_reapplies_in_full(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    handle = table_handle(host)
    daemon.signal(signal.SIGHUP)
    daemon.wait_applied(2)
    assert table_handle(host) != handle  # the table was replaced
    assert host_in_ports(list_table(host) or []) == [22, 8006]


def test_tables_deleted_behind_its_back_come_back(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    host.nft("delete table inet proxmox-firewall")
    eventually(lambda: list_table(host) is not None, "tables re-applied")
    assert host_in_ports(list_table(host) or []) == [22, 8006]


IPAM = "sdn/pve-ipam-state.json"
IPAM_TEXT = ('{"zones": {"zone1": {"subnets": {"10.10.0.0/24": {"ips": '
             '{"10.10.0.100": {"vmid": "100"}}}}}}}\n')


def ipam_set(host: NetNs) -> list[Any]:
    items = list_table(host) or []
    sets = {i["set"]["name"]: i["set"] for i in items if "set" in i}
    return list(sets.get("v4-sdn/guest-ipam-100", {}).get("elem", []))


def test_garbage_ipam_keeps_its_last_good_content_and_other_edits_apply(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    host, _peer = netns_pair
    (pve_tree / "sdn").mkdir()
    (pve_tree / IPAM).write_text(IPAM_TEXT)
    age_tree(pve_tree)
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    assert ipam_set(host) == ["10.10.0.100"]
    edit(pve_tree / IPAM, '{"zones": {"zone1": {"subn')  # half-written
    append_host_rule(pve_tree, "IN ACCEPT -p tcp -dport 9100")
    daemon.wait_applied(2)
    assert host_in_ports(list_table(host) or []) == [22, 8006, 9100]
    assert ipam_set(host) == ["10.10.0.100"]
    assert "last good content" in daemon.log()
    edit(pve_tree / IPAM, IPAM_TEXT.replace("10.10.0.100", "10.10.0.101"))
    eventually(lambda: ipam_set(host) == ["10.10.0.101"], "the repaired IPAM applied")
    assert daemon.proc.poll() is None


def test_guest_config_on_a_kernel_without_bridge_features(
    netns_pair: tuple[NetNs, NetNs], tmp_path: Path, start_daemon: Start
) -> None:
    """Enabled guests: the host table applies alone here, status says partial (3), and a
    guest-only edit costs no transaction (the loadable ruleset did not change)."""
    import shutil

    from proxmox_fw.nft.features import probe_features

    if probe_features().guest_table_supported:
        pytest.skip("this kernel can load the guest table")
    host, _peer = netns_pair
    tree = tmp_path / "pve"
    shutil.copytree(REPO / "examples" / "pve", tree)
    age_tree(tree)
    daemon = start_daemon(host, tree)
    daemon.wait_applied()
    assert list_table(host) is not None and list_table(host, *GUESTS) is None
    code, report = daemon.status()
    assert code == 3 and report["missing_features"] and report["in_sync"], report
    monitor = Monitor(host)
    try:
        fw = tree / "firewall" / "100.fw"
        edit(fw, fw.read_text() + "IN ACCEPT -p tcp -dport 9100\n")
        eventually(lambda: daemon.log().count("reading configuration") >= 2, "a re-read")
        time.sleep(3 * 0.2)
        assert monitor.transactions_since_mark() == 0, monitor.since_mark()
    finally:
        monitor.close()


def test_hand_edit_inside_a_table_is_repaired(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    """A rule flushed by hand (the ruleset generation moves, our tables' shape differs)
    is put back in full, as upstream's periodic re-apply would."""
    host, _peer = netns_pair
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    handle = table_handle(host)
    host.nft("flush chain inet proxmox-firewall host-in")
    assert host_in_ports(list_table(host) or []) == []
    eventually(lambda: host_in_ports(list_table(host) or []) == [22, 8006],
               "host-in restored")
    assert table_handle(host) != handle  # repaired by a full re-apply


def test_other_tables_changing_do_not_disturb_ours(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    """Someone else's transactions move the generation too; our tables are then listed
    and found intact, and nothing is sent."""
    host, _peer = netns_pair
    daemon = start_daemon(host, pve_tree)
    daemon.wait_applied()
    before = [r["handle"] for r in rules(list_table(host) or [], "host-in")]
    monitor = Monitor(host)
    try:
        host.nft("add table inet someone-else")
        host.nft("add chain inet someone-else c")
        time.sleep(1.0)  # five poll intervals
        ours = [line for line in monitor.since_mark() if "proxmox-firewall" in line]
        assert monitor.transactions_since_mark() == 2  # only the two of someone else
    finally:
        monitor.close()
    assert ours == []
    assert [r["handle"] for r in rules(list_table(host) or [], "host-in")] == before


def test_foreign_tables_with_every_flag_crash_neither_the_daemon_nor_status(
    netns_pair: tuple[NetNs, NetNs], pve_tree: Path, start_daemon: Start
) -> None:
    """Other programs' tables in every family with every flag the kernel accepts
    (libnftables 1.0.6's ``list tables`` reads freed memory on these), and a new flagged
    table at every poll so the daemon reads its tables each time: it keeps running,
    ``status`` answers, and a hand edit is still repaired."""
    host, _peer = netns_pair
    maker = host.run(TableMaker)  # owner tables live as long as its socket
    try:
        foreign = host.run(add_foreign_tables, maker)
        assert {TABLE_F_DORMANT, TABLE_F_OWNER} <= {f.flags for f in foreign}
        daemon = start_daemon(host, pve_tree)
        daemon.wait_applied()
        for n in range(25):  # about 25 polls, each after someone else's transaction
            assert maker.create("ip", f"busy{n}", TABLE_F_DORMANT if n % 2 else 0) == 0
            time.sleep(0.2)
            assert daemon.proc.poll() is None, daemon.log()
        for _ in range(3):
            code, report = daemon.status()
            assert code == 0, report
            assert report["tables_present"] == {"inet proxmox-firewall": True,
                                                "bridge proxmox-firewall-guests": False}
        assert daemon.log().count("firewall update time") == 1  # nothing re-applied
        host.nft("flush chain inet proxmox-firewall host-in")
        eventually(lambda: host_in_ports(list_table(host) or []) == [22, 8006],
                   "host-in restored")
        assert daemon.proc.poll() is None, daemon.log()
        code, _report = daemon.status()
        assert code == 0
    finally:
        maker.close()
