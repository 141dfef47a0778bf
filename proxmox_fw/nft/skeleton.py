"""The bundled skeleton ruleset, as text and as JSON commands.

The text (``proxmox_fw/nft/skeleton.nft``) is what ``proxmox-firewall skeleton`` prints and
what a human reads. ``apply`` needs the same ruleset as JSON commands instead, because
one libnftables transaction cannot mix text and JSON, and the skeleton must go in the
same transaction as the compiled rules (all or nothing). Rather than keeping a second,
hand-written copy that could drift, the text is loaded into a throwaway network namespace
and listed back as JSON, once per process and table.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
from typing import Any

from proxmox_fw.nft.client import NftClient, listing_items
from proxmox_fw.nft.netns import run_in_new_netns
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, HOST_TABLE, INET, Command

TABLE_NAMES = {INET: HOST_TABLE, BRIDGE: GUEST_TABLE}
_MARKER = "# table "


class SkeletonError(RuntimeError):
    """The skeleton could not be loaded (nft's message), e.g. a kernel feature is missing."""


def skeleton_text() -> str:
    return importlib.resources.files("proxmox_fw.nft").joinpath("skeleton.nft").read_text()


def skeleton_table_text(family: str) -> str:
    """The self-contained part of the skeleton for one table (``inet`` or ``bridge``)."""
    name = TABLE_NAMES.get(family)
    if name is None:
        raise ValueError(f"no skeleton table for family {family!r}")
    marker = f"{_MARKER}{family} {name}"
    lines = skeleton_text().splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == marker]
    if not starts:
        raise SkeletonError(f"skeleton.nft has no {marker!r} section")
    start = starts[0]
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith(_MARKER)), len(lines)
    )
    return "".join(lines[start:end])


def skeleton_commands(families: tuple[str, ...] | list[str] = (INET, BRIDGE)) -> list[Command]:
    """The skeleton of the given tables as ``add`` commands, in a loadable order.

    Raises SkeletonError when a table cannot be loaded on this kernel. A fresh copy is
    returned each time; the listing behind it is made once per process.
    """
    commands: list[Command] = []
    for family in families:
        commands.extend(copy.deepcopy(_table_commands(family)))
    return commands


@functools.cache
def _table_commands(family: str) -> tuple[Command, ...]:
    text = skeleton_table_text(family)

    def load_and_list() -> list[dict[str, Any]]:
        client = NftClient()
        loaded = client.run_text(text)
        if not loaded.ok:
            raise SkeletonError(f"skeleton table {family} does not load: {loaded.error.strip()}")
        listed = client.list_table_json(family, TABLE_NAMES[family])
        if not listed.ok:
            raise SkeletonError(f"cannot list skeleton table {family}: {listed.error.strip()}")
        return listing_items(listed.output)

    return tuple(listing_to_commands(run_in_new_netns(load_and_list)))


@functools.cache
def skeleton_names(
    family: str, kinds: tuple[str, ...] = ("chain", "set", "map")
) -> frozenset[str]:
    """Names of the objects of ``kinds`` the skeleton declares for one table, from its
    own JSON listing: never deleted by an update, because skeleton rules may refer to
    them; only emptied. Raises SkeletonError like :func:`skeleton_commands`."""
    return frozenset(
        body["name"]
        for cmd in _table_commands(family)
        for kind, body in cmd.get("add", {}).items()
        if kind in kinds
    )


# Objects whose listing form is also their add form once handles are gone.
_NAMED_OBJECTS = ("ct helper", "counter", "quota", "limit", "ct timeout", "ct expectation")


def listing_to_commands(items: list[dict[str, Any]]) -> list[Command]:
    """Turn a JSON listing (``nft -j list ...`` objects) into ``add`` commands.

    Order: tables, chains, sets and maps without elements, other named objects, then
    elements (verdict map elements may jump to any chain), then rules. Handles are
    dropped. Note for nft 1.0.6: ``typeof`` comes back as ``type``, and a set's
    ``auto-merge`` and ``comment`` are not listed.
    """
    tables: list[Command] = []
    chains: list[Command] = []
    sets: list[Command] = []
    objects: list[Command] = []
    elements: list[Command] = []
    rules: list[Command] = []
    for item in items:
        for kind, raw in item.items():
            body = {k: v for k, v in raw.items() if k != "handle"}
            if kind == "table":
                tables.append({"add": {"table": body}})
            elif kind == "chain":
                chains.append({"add": {"chain": body}})
            elif kind in ("set", "map"):
                elem = body.pop("elem", None)
                sets.append({"add": {kind: body}})
                if elem:
                    ref = {k: body[k] for k in ("family", "table", "name")}
                    elements.append({"add": {"element": {**ref, "elem": elem}}})
            elif kind in _NAMED_OBJECTS:
                objects.append({"add": {kind: body}})
            elif kind == "rule":
                rules.append({"add": {"rule": body}})
            elif kind != "metainfo":
                raise SkeletonError(f"cannot convert listed object {kind!r} to a command")
    return [*tables, *chains, *sets, *objects, *elements, *rules]
