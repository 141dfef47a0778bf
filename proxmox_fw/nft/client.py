"""The libnftables client: the only place the product talks to the kernel's nftables.

It wraps Debian's ``python3-nftables`` (``nftables.Nftables``), never the ``nft`` binary.
An nft error is a value (``Result.ok`` False, ``Result.error`` with libnftables' message),
not an exception, so callers decide what a failed transaction means.

The underlying context opens its netlink socket in the namespace of the thread that
creates it: create the client inside the thread that is in the wanted namespace (see
:mod:`proxmox_fw.nft.netns`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Protocol

import nftables

from proxmox_fw.nft.objects import Json

# libnftables keeps some process-global state (symbol tables, the mini-gmp allocator);
# serialising commands across threads is cheap and keeps contexts from racing on it.
_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Result:
    ok: bool
    output: Json  # parsed JSON when the output is JSON, else the raw text ("" when none)
    error: str  # libnftables' error text (warnings may appear even when ok)


def _parse_output(text: str) -> Json:
    if not text.strip():
        return ""
    try:
        return json.loads(text)
    except ValueError:
        return text


class JsonRunner(Protocol):
    """The part of :class:`NftClient` that sends JSON documents; fakes implement only this
    (the daemon's loop tests), real kernel behaviour always goes through NftClient."""

    def run_json(self, doc: Json) -> Result: ...


class NftClient:
    """One libnftables context with JSON output and handles enabled."""

    def __init__(self) -> None:
        self._nft = nftables.Nftables()
        self._nft.set_json_output(True)
        self._nft.set_handle_output(True)

    def run_text(self, text: str) -> Result:
        """Run commands in nft's text syntax (as ``nft -f`` would)."""
        with _LOCK:
            rc, out, err = self._nft.cmd(text)
        return Result(rc == 0, _parse_output(out), err)

    def run_json(self, doc: Json) -> Result:
        """Run a JSON document (``{"nftables": [...]}``) as one transaction."""
        with _LOCK:
            rc, out, err = self._nft.cmd(json.dumps(doc))
        return Result(rc == 0, _parse_output(out), err)

    def check_json(self, doc: Json) -> Result:
        """Like :meth:`run_json` in check mode: the kernel validates the transaction and
        aborts it, nothing is committed."""
        with _LOCK:
            self._nft.set_dry_run(True)
            try:
                rc, out, err = self._nft.cmd(json.dumps(doc))
            finally:
                self._nft.set_dry_run(False)
        return Result(rc == 0, _parse_output(out), err)

    def list_ruleset_json(self) -> Result:
        return self.run_json({"nftables": [{"list": {"ruleset": None}}]})

    def list_table_json(self, family: str, name: str) -> Result:
        """A missing table is an error result (ENOENT), like ``nft list table``."""
        return self.run_json({"nftables": [{"list": {"table": {"family": family, "name": name}}}]})

    def list_table_terse(self, family: str, name: str) -> Result:
        """Like :meth:`list_table_json` but without set and map elements (cheap even with
        a 100k-entry blacklist)."""
        doc = {"nftables": [{"list": {"table": {"family": family, "name": name}}}]}
        with _LOCK:
            self._nft.set_terse_output(True)
            try:
                rc, out, err = self._nft.cmd(json.dumps(doc))
            finally:
                self._nft.set_terse_output(False)
        return Result(rc == 0, _parse_output(out), err)

    def list_table_text(self, family: str, name: str) -> Result:
        """nft's own text of a table, terse (no set elements) with rule handles, as
        ``nft -t -a list table`` prints it: what operators read."""
        with _LOCK:
            self._nft.set_json_output(False)
            self._nft.set_terse_output(True)
            try:
                rc, out, err = self._nft.cmd(f"list table {family} {name}")
            finally:
                self._nft.set_terse_output(False)
                self._nft.set_json_output(True)
        return Result(rc == 0, out, err)


def listing_items(listing: Json) -> list[dict[str, Json]]:
    """The objects of a JSON listing, without the metainfo entry."""
    if not isinstance(listing, dict):
        return []
    items = listing.get("nftables", [])
    return [item for item in items if isinstance(item, dict) and "metainfo" not in item]
