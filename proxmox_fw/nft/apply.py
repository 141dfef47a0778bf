"""Apply a desired Ruleset to the kernel in one atomic libnftables transaction.

Each table is replaced whole: ``add table`` + ``delete table`` removes whatever was there
(including chains, sets and elements the new ruleset no longer has), then the skeleton and
the compiled commands rebuild it, all in the same JSON document. The kernel commits the
batch or nothing, so a rejected ruleset leaves the previous one in place. Counters and
dynamic sets restart with each apply; incremental updates are a later refinement.

When the kernel cannot load the guest table (bridge conntrack/reject/meta missing), the
host table is applied alone and the result names the missing features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxmox_fw.nft.client import JsonRunner, NftClient, Result
from proxmox_fw.nft.features import KernelFeatures
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, HOST_TABLE, INET, Ruleset, Table
from proxmox_fw.nft.render import delete_table_commands, render_table_commands
from proxmox_fw.nft.skeleton import SkeletonError, skeleton_commands

Command = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApplyResult:
    ok: bool  # the transaction was committed
    error: str = ""  # libnftables' message (or why the transaction was not built)
    applied_tables: list[str] = field(default_factory=list)  # "inet proxmox-firewall"
    deleted_tables: list[str] = field(default_factory=list)
    missing_features: list[str] = field(default_factory=list)  # why a table was left out

    @property
    def complete(self) -> bool:
        """Committed, and nothing the ruleset wanted was left out."""
        return self.ok and not self.missing_features


@dataclass(slots=True)
class Transaction:
    """The JSON commands of one apply and what they will do to each table."""

    commands: list[Command] = field(default_factory=list)
    applied_tables: list[str] = field(default_factory=list)
    deleted_tables: list[str] = field(default_factory=list)
    missing_features: list[str] = field(default_factory=list)

    def document(self) -> dict[str, list[Command]]:
        return {"nftables": self.commands}


def _label(table: Table) -> str:
    return f"{table.family} {table.name}"


def build_transaction(rs: Ruleset, features: KernelFeatures) -> Transaction:
    """Raises SkeletonError if an enabled table's skeleton cannot be loaded here."""
    tx = Transaction()
    for table in rs.tables:
        if table.enabled and table.family == BRIDGE and not features.guest_table_supported:
            tx.missing_features.extend(features.missing_for_guests())
            table_enabled = False
        else:
            table_enabled = table.enabled
        tx.commands.extend(delete_table_commands(table.family, table.name))
        if not table_enabled:
            tx.deleted_tables.append(_label(table))
            continue
        tx.commands.extend(skeleton_commands((table.family,)))
        # The table was just re-created, so there is nothing to flush; libnftables also
        # spends seconds on a flush of a set that the same batch fills with 100k elements.
        tx.commands.extend(c for c in render_table_commands(table) if "flush" not in c)
        tx.applied_tables.append(_label(table))
    return tx


def loadable_ruleset(rs: Ruleset, features: KernelFeatures) -> tuple[Ruleset, list[str]]:
    """``rs`` as this kernel will hold it after a full apply, and the missing features.

    The guest table is disabled (absent) where the kernel cannot load it, exactly as
    :func:`build_transaction` leaves it out, so what the daemon remembers as applied, diffs
    against and hashes is what the kernel really has.
    """
    if rs.guests.enabled and not features.guest_table_supported:
        return Ruleset(host=rs.host, guests=Table(BRIDGE, GUEST_TABLE, enabled=False)), list(
            features.missing_for_guests()
        )
    return rs, []


def table_handles(client: JsonRunner) -> dict[str, int] | None:
    """Handles of the firewall tables present in the kernel (``"inet proxmox-firewall"``
    → handle); None when listing fails. A table deleted and re-created by someone else
    comes back with a new handle, so comparing handles tells whether ours are intact."""
    result = client.run_json({"nftables": [{"list": {"tables": None}}]})
    if not result.ok or not isinstance(result.output, dict):
        return None
    ours = {f"{INET} {HOST_TABLE}", f"{BRIDGE} {GUEST_TABLE}"}
    handles: dict[str, int] = {}
    for item in result.output.get("nftables", []):
        table = item.get("table") if isinstance(item, dict) else None
        if isinstance(table, dict):
            label = f"{table.get('family')} {table.get('name')}"
            if label in ours:
                handles[label] = int(table.get("handle", 0))
    return handles


def apply_ruleset(rs: Ruleset, client: NftClient, features: KernelFeatures) -> ApplyResult:
    try:
        tx = build_transaction(rs, features)
    except SkeletonError as exc:
        return ApplyResult(False, str(exc))
    result = client.run_json(tx.document())
    if not result.ok:
        return ApplyResult(False, result.error.strip(), missing_features=tx.missing_features)
    return ApplyResult(
        True,
        "",
        applied_tables=tx.applied_tables,
        deleted_tables=tx.deleted_tables,
        missing_features=tx.missing_features,
    )


def remove_tables(client: JsonRunner) -> Result:
    """Remove both firewall tables; a missing table is not an error.

    One transaction per table, so a kernel without the bridge family cannot keep the host
    table from going away.
    """
    errors: list[str] = []
    for family, name in ((INET, HOST_TABLE), (BRIDGE, GUEST_TABLE)):
        result = client.run_json({"nftables": delete_table_commands(family, name)})
        if not result.ok:
            errors.append(f"{family} {name}: {result.error.strip()}")
    return Result(not errors, "", "\n".join(errors))
