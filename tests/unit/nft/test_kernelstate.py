"""The netlink reader of our tables against the real kernel, in throwaway namespaces,
next to other programs' tables carrying every flag the kernel accepts.

libnftables 1.0.6 garbles (then aborts on) the JSON listing of a table with one flag; the
reader must never read those tables, so the tests put many of them next to ours, in every
family, some holding large sets, and check the answers against what was created.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Callable

import pytest

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.kernelstate import (
    FAMILIES,
    OUR_TABLES,
    TABLE_F_DORMANT,
    TABLE_F_OWNER,
    TABLE_F_PERSIST,
    KernelStateError,
    NetlinkReader,
    NftNetlink,
    TableShape,
    iter_attrs,
    our_table_handles,
    read_generation,
    read_snapshot,
    read_tables,
)
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, HOST_TABLE, INET
from tests.unit.nft.nft_testlib import TableMaker, add_foreign_tables

OURS = OUR_TABLES
HOST = f"{INET} {HOST_TABLE}"
GUESTS = f"{BRIDGE} {GUEST_TABLE}"


def add_big_sets(client: NftClient, elements: int) -> None:
    """Dormant foreign tables holding large sets (ip and bridge), and a large set in ours."""
    addrs = ", ".join(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(elements))
    for family in ("ip", "bridge"):
        text = (f"add table {family} big {{ flags dormant; }}\n"
                f"add set {family} big s {{ type ipv4_addr; }}\n"
                f"add element {family} big s {{ {addrs} }}\n")
        result = client.run_text(text)
        assert result.ok, result.error


def add_our_tables(client: NftClient, elements: int = 0) -> None:
    text = (
        f"add table {INET} {HOST_TABLE}\n"
        f"add chain {INET} {HOST_TABLE} input {{ type filter hook input priority 0; }}\n"
        f"add rule {INET} {HOST_TABLE} input counter accept\n"
        f"add set {INET} {HOST_TABLE} blacklist {{ type ipv4_addr; flags interval; }}\n"
        f"add table {BRIDGE} {GUEST_TABLE}\n"
        f"add chain {BRIDGE} {GUEST_TABLE} forward {{ type filter hook forward priority 0; }}\n"
    )
    if elements:
        addrs = ", ".join(f"172.{16 + (i >> 16 & 15)}.{i >> 8 & 255}.{i & 255}"
                          for i in range(elements))
        text += f"add element {INET} {HOST_TABLE} blacklist {{ {addrs} }}\n"
    result = client.run_text(text)
    assert result.ok, result.error


def libnft_handle(client: NftClient, family: str, name: str) -> int:
    """Our table's handle as libnftables lists it (safe: our tables carry no flag)."""
    listing = client.list_table_json(family, name)
    assert listing.ok, listing.error
    tables = [i["table"] for i in listing.output["nftables"] if "table" in i]
    return int(tables[0]["handle"])


# -- the tests -----------------------------------------------------------------------------
@pytest.mark.netns
def test_our_tables_by_name_next_to_flagged_foreign_tables(worker: NetnsWorker) -> None:
    def body() -> None:
        maker = TableMaker()
        try:
            client = NftClient()
            assert read_tables(OURS) == {}  # nothing there yet: ENOENT, not an error
            foreign = add_foreign_tables(maker)
            add_big_sets(client, 20_000)
            add_our_tables(client, elements=20_000)
            generation = read_generation()
            for _ in range(200):
                ours = read_tables(OURS)
                assert sorted(ours) == [GUESTS, HOST]
                for family, name in OURS:
                    state = ours[f"{family} {name}"]
                    assert (state.family, state.name, state.flags) == (family, name, 0)
                    assert state.handle == libnft_handle(client, family, name)
                assert ours[HOST].use == 2  # one chain, one set
            assert read_generation() == generation  # reading commits nothing
            reader = NetlinkReader()
            assert reader.generation() == generation and reader.error == ""
            assert reader.present(OURS) == ours
            assert our_table_handles() == {label: t.handle for label, t in ours.items()}

            # Every flag the kernel knows was accepted somewhere, and each table is
            # reported with exactly the flags it was created with.
            accepted = {f.flags for f in foreign}
            assert TABLE_F_DORMANT in accepted and TABLE_F_OWNER in accepted
            with NftNetlink() as nl:
                listed = {(t.family, t.name): t.flags for t in nl.tables()}
                for fam in FAMILIES:
                    assert {t.family for t in nl.tables(fam)} == {fam}
            for f in foreign:
                assert listed[(f.family, f.name)] == f.flags, f
            assert listed[("ip", "big")] == TABLE_F_DORMANT
        finally:
            maker.close()

    worker.call(body)


@pytest.mark.netns
def test_owner_tables_vanish_with_their_socket_and_persist_ones_stay(
    worker: NetnsWorker,
) -> None:
    def body() -> tuple[set[str], set[str], bool]:
        maker = TableMaker()
        foreign = add_foreign_tables(maker)
        with NftNetlink() as nl:
            before = {f"{t.family} {t.name}" for t in nl.tables()}
        maker.close()
        with NftNetlink() as nl:
            after = {f"{t.family} {t.name}": t for t in nl.tables()}
        persist_ok = any(f.flags & TABLE_F_PERSIST for f in foreign)
        for f in foreign:
            label = f"{f.family} {f.name}"
            if f.flags & TABLE_F_OWNER and not f.flags & TABLE_F_PERSIST:
                assert label not in after
            else:
                assert label in after
        return before, set(after), persist_ok

    before, after, persist_ok = worker.call(body)
    assert after < before
    if persist_ok:  # kernel >= 6.9
        assert any(label.endswith(f"-{TABLE_F_OWNER | TABLE_F_PERSIST}") for label in after)


ShapeEdit = Callable[[NftClient], None]


def run_ok(text: str) -> ShapeEdit:
    def edit(client: NftClient) -> None:
        result = client.run_text(text)
        assert result.ok, (text, result.error)

    return edit


SHAPED = (
    f"add table {INET} t\n"
    f"add chain {INET} t out {{ type filter hook output priority 0; policy accept; }}\n"
    f"add chain {INET} t side\n"
    f"add set {INET} t seen {{ type ipv4_addr; flags dynamic, timeout; timeout 1m; }}\n"
    f"add set {INET} t nets {{ type ipv4_addr; flags interval; }}\n"
    f"add element {INET} t nets {{ 192.0.2.0/24 }}\n"
    f"add set {INET} t spare {{ type ipv6_addr; }}\n"
    f"add counter {INET} t hits\n"
    f"add quota {INET} t q {{ until 1000 mbytes }}\n"
    f"add ct helper {INET} t ftp {{ type \"ftp\" protocol tcp; }}\n"
    f"add rule {INET} t out udp dport 9 counter quota until 5000 mbytes counter name \"hits\" "
    f"quota name \"q\" update @seen {{ ip daddr }} accept\n"
    f"add rule {INET} t out ip daddr @nets counter drop\n"
    f"add rule {INET} t out counter jump side\n"
    f"add rule {INET} t side counter comment \"firewall/cluster.fw:3\"\n"
)


def shape_of(family: str = INET, name: str = "t") -> TableShape:
    return read_snapshot(((family, name),)).shapes[f"{family} {name}"]


def send_udp(count: int) -> None:
    """Datagrams to port 9 on loopback: counters, quotas and the dynamic set all move;
    nothing is committed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(count):
            sock.sendto(b"x" * 100, ("127.0.0.1", 9))
    finally:
        sock.close()


def lo_up() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)  # in the worker's netns


@pytest.mark.netns
def test_shape_ignores_traffic_elements_and_other_tables(worker: NetnsWorker) -> None:
    def body() -> tuple[TableShape, TableShape, TableShape, int, int]:
        client = NftClient()
        lo_up()
        run_ok(SHAPED)(client)
        first = shape_of()
        g0 = read_generation()
        send_udp(50)  # counters, quotas, kernel-added dynamic set elements
        run_ok(f"add element {INET} t nets {{ 198.51.100.0/24 }}\n"
               "add table ip other { flags dormant; }\n"
               "add chain ip other c\nadd rule ip other c counter accept\n"
               f"add table {BRIDGE} t\nadd chain {BRIDGE} t c\n")(client)
        later = shape_of()
        g1 = read_generation()
        seen = client.run_text(f"list set {INET} t seen")
        assert seen.ok and "127.0.0.1" in str(seen.output), seen
        listing = client.list_table_json(INET, "t")
        counted = [e["counter"]["packets"] for i in listing.output["nftables"] if "rule" in i
                   for e in i["rule"]["expr"] if isinstance(e.get("counter"), dict)]
        assert counted and counted[0] >= 50, counted  # traffic did move the counters
        return first, later, shape_of(BRIDGE, "t"), g0, g1

    first, later, bridge_t, g0, g1 = worker.call(body)
    assert g1 > g0  # the element and the other tables were transactions
    assert later == first
    assert (first.chains, first.sets, first.objects, first.rules) == (2, 3, 3, 4)
    assert bridge_t.digest != first.digest and bridge_t.chains == 1


# Each edit, made by hand on the table above, must change its shape.
EDITS: dict[str, str] = {
    "rule added": f"add rule {INET} t side accept",
    "rule inserted": f"insert rule {INET} t out drop",
    "rule deleted": "DELETE_FIRST_RULE",
    "rule replaced": "REPLACE_FIRST_RULE",
    "chain flushed": f"flush chain {INET} t side",
    "chain added": f"add chain {INET} t more",
    "policy changed": f"add chain {INET} t out {{ type filter hook output priority 0; "
                      f"policy drop; }}",
    "set added": f"add set {INET} t extra {{ type ipv4_addr; }}",
    "set deleted": f"delete set {INET} t spare",
    "object added": f"add counter {INET} t other",
    "table dormant": f"add table {INET} t {{ flags dormant; }}",
    "chain renamed": f"rename chain {INET} t side aside",
    "comment changed": "REPLACE_FIRST_RULE_COMMENT",
}


def _first_rule_handle(client: NftClient) -> int:
    listing = client.list_table_json(INET, "t")
    assert listing.ok, listing.error
    rules = [i["rule"] for i in listing.output["nftables"] if "rule" in i]
    return int(next(r["handle"] for r in rules if r["chain"] == "out"))


@pytest.mark.netns
@pytest.mark.parametrize("edit", sorted(EDITS))
def test_shape_sees_each_hand_edit(worker: NetnsWorker, edit: str) -> None:
    def body() -> tuple[TableShape, TableShape]:
        client = NftClient()
        lo_up()
        run_ok(SHAPED)(client)
        before = shape_of()
        text = EDITS[edit]
        if text == "DELETE_FIRST_RULE":
            text = f"delete rule {INET} t out handle {_first_rule_handle(client)}"
        elif text == "REPLACE_FIRST_RULE":  # same handle, other statement
            text = (f"replace rule {INET} t out handle {_first_rule_handle(client)} "
                    f"udp dport 10 counter accept")
        elif text == "REPLACE_FIRST_RULE_COMMENT":  # same handle and statements
            text = (f"replace rule {INET} t out handle {_first_rule_handle(client)} "
                    f"udp dport 9 counter quota until 5000 mbytes counter name \"hits\" "
                    f"quota name \"q\" update @seen {{ ip daddr }} accept comment \"x\"")
        run_ok(text)(client)
        return before, shape_of()

    before, after = worker.call(body)
    assert after != before
    assert after.digest != before.digest


@pytest.mark.netns
def test_shape_of_a_missing_table_and_a_recreated_one(worker: NetnsWorker) -> None:
    def body() -> tuple[dict[str, TableShape], TableShape, TableShape]:
        client = NftClient()
        missing = read_snapshot(OURS).shapes
        run_ok(SHAPED)(client)
        snap = read_snapshot(((INET, "t"),))
        assert snap.generation == read_generation()
        assert snap.handles() == {f"{INET} t": snap.shapes[f"{INET} t"].table.handle}
        first = shape_of()
        run_ok(f"delete table {INET} t\n" + SHAPED)(client)
        return missing, first, shape_of()

    missing, first, again = worker.call(body)
    assert missing == {}
    assert again.table.handle != first.table.handle  # the daemon's "replaced" signal
    assert again != first


def test_attribute_parser_rejects_truncated_input() -> None:
    good = struct.pack("=HH", 8, 1) + b"abcd" + struct.pack("=HH", 5, 2) + b"x\0\0\0"
    assert [(t, good[a:b]) for t, a, b in iter_attrs(good)] == [(1, b"abcd"), (2, b"x")]
    with pytest.raises(KernelStateError):
        list(iter_attrs(struct.pack("=HH", 12, 1) + b"abcd"))  # claims more than there is
    with pytest.raises(KernelStateError):
        list(iter_attrs(struct.pack("=HH", 2, 1) + b"abcd"))  # shorter than its header
    with pytest.raises(ValueError, match="unknown nftables family"), NftNetlink() as nl:
        nl.table("ipx", "t")
