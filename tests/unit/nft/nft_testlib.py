"""Helpers shared by the nft layer tests (imported as a plain module)."""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from proxmox_fw.nft import kernelstate
from proxmox_fw.nft.client import NftClient, Result
from proxmox_fw.nft.kernelstate import FAMILIES, TABLE_F_DORMANT, TABLE_F_OWNER, TABLE_F_PERSIST
from proxmox_fw.nft.objects import HOST_TABLE, INET


def strip_handles(listing: Any) -> list[dict[str, Any]]:
    """Listing objects without metainfo and handles, for comparing two listings."""
    out: list[dict[str, Any]] = []
    for item in listing["nftables"]:
        for kind, body in item.items():
            if kind == "metainfo":
                continue
            out.append({kind: {k: v for k, v in body.items() if k != "handle"}})
    return out


def list_host(client: NftClient) -> list[dict[str, Any]]:
    result = client.list_table_json(INET, HOST_TABLE)
    assert result.ok, result.error
    return strip_handles(result.output)


def rules_of(items: list[dict[str, Any]], chain: str) -> list[dict[str, Any]]:
    return [i["rule"] for i in items if "rule" in i and i["rule"]["chain"] == chain]


def objects_of(items: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {i[kind]["name"]: i[kind] for i in items if kind in i}


# -- creating tables with any flags (libnftables 1.0.6 knows no "persist") ----------------
ALL_FLAGS = (TABLE_F_DORMANT, TABLE_F_OWNER, TABLE_F_PERSIST)
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NLM_F_ACK, NLM_F_CREATE = 0x4, 0x400


def _nlmsg(kind: int, flags: int, seq: int, family: int, res_id: int, attrs: bytes) -> bytes:
    body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def _attr(atype: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), atype) + payload + b"\0" * (-len(payload) % 4)


class TableMaker:
    """A netlink socket that creates tables; tables with the owner flag live as long as
    it stays open (unless they also carry ``persist``)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                                  kernelstate.NETLINK_NETFILTER)
        self.sock.settimeout(2.0)
        self.seq = 100

    def create(self, family: str, name: str, flags: int) -> int:
        """0 when the kernel created the table, else the errno it refused it with."""
        self.seq += 3
        attrs = _attr(1, name.encode() + b"\0") + _attr(2, struct.pack(">I", flags))
        batch = (
            _nlmsg(NFNL_MSG_BATCH_BEGIN, 1, self.seq, 0, kernelstate.NFNL_SUBSYS_NFTABLES, b"")
            + _nlmsg((kernelstate.NFNL_SUBSYS_NFTABLES << 8) | kernelstate.NFT_MSG_NEWTABLE,
                     1 | NLM_F_ACK | NLM_F_CREATE, self.seq + 1, FAMILIES[family], 0, attrs)
            + _nlmsg(NFNL_MSG_BATCH_END, 1, self.seq + 2, 0, kernelstate.NFNL_SUBSYS_NFTABLES,
                     b"")
        )
        self.sock.send(batch)
        while True:
            data = self.sock.recv(65536)
            pos = 0
            while pos + 16 <= len(data):
                length, kind, _f, seq, _p = struct.unpack_from("=IHHII", data, pos)
                if kind == 2 and seq == self.seq + 1:
                    return -int(struct.unpack_from("=i", data, pos + 16)[0])
                pos += (length + 3) & ~3

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class Foreign:
    family: str
    name: str
    flags: int


def flag_sets() -> Iterator[int]:
    """Every combination of the known flags, the empty one included."""
    for n in range(len(ALL_FLAGS) + 1):
        for combo in itertools.combinations(ALL_FLAGS, n):
            yield sum(combo)


def add_foreign_tables(maker: TableMaker) -> list[Foreign]:
    """In every family, a table with each flag combination the kernel accepts."""
    made = []
    for family in FAMILIES:
        for flags in flag_sets():
            name = f"other-{flags}"
            if maker.create(family, name, flags) == 0:
                made.append(Foreign(family, name, flags))
    return made


# -- fault injection: objects the kernel refuses -------------------------------------------
MISSING_SET = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                         "right": "@no-such-set"}}  # fmt: skip


class Poisoned(NftClient):
    """A real client whose kernel refuses chosen objects, in every transaction and check
    that carries them: the rules whose comment is in ``rules`` (made to match a missing
    set; the bare drop that replaces one is taken) and the elements of the sets named in
    ``sets`` (made invalid addresses)."""

    def __init__(self, rules: Iterable[str] = (), sets: Iterable[str] = ()) -> None:
        super().__init__()
        self.rules, self.sets = frozenset(rules), frozenset(sets)

    def _poison(self, cmd: dict[str, Any]) -> dict[str, Any]:
        add = cmd.get("add", {})
        rule, elem = add.get("rule"), add.get("element")
        if rule is not None and rule.get("comment") in self.rules \
                and rule["expr"] != [{"drop": None}]:
            return {"add": {"rule": {**rule, "expr": [MISSING_SET, *rule["expr"]]}}}
        if elem is not None and elem["name"] in self.sets:
            return {"add": {"element": {**elem, "elem": ["300.1.2.3"]}}}
        return cmd

    def _inject(self, doc: Any) -> Any:
        return {"nftables": [self._poison(c) for c in doc["nftables"]]}

    def run_json(self, doc: Any) -> Result:
        return super().run_json(self._inject(doc))

    def check_json(self, doc: Any) -> Result:
        return super().check_json(self._inject(doc))
