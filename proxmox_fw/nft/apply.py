"""``apply``: a desired Ruleset into the kernel in one atomic libnftables transaction,
and the other whole-table operations (remove, list handles).

The transaction is :func:`~proxmox_fw.nft.diff.plan_update` from nothing, the same
full replacement the daemon sends at start: each table is reset (``add`` + ``delete
table`` removes whatever was there), rebuilt from the skeleton and filled, all in one
JSON document. The kernel commits the batch or nothing, so a rejected ruleset leaves the
previous one in place. Counters and dynamic sets restart with each apply.

When the kernel cannot load the guest table (bridge conntrack/reject/meta missing), the
host table is applied alone and the result names the missing features
(:func:`loadable_ruleset` decides that, for ``apply``, the daemon and ``status``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from proxmox_fw.nft.client import JsonRunner, Result
from proxmox_fw.nft.diff import plan_update
from proxmox_fw.nft.features import KernelFeatures
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, HOST_TABLE, INET, Ruleset, Table
from proxmox_fw.nft.render import delete_table_commands
from proxmox_fw.nft.skeleton import SkeletonError


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


def loadable_ruleset(rs: Ruleset, features: KernelFeatures) -> tuple[Ruleset, list[str]]:
    """``rs`` as this kernel will hold it after a full apply, and the missing features.

    The guest table is disabled (absent) where the kernel cannot load it; every full
    apply and the daemon's diffs and hashes start from this, so what is remembered as
    applied is what the kernel really has.
    """
    if rs.guests.enabled and not features.guest_table_supported:
        return Ruleset(host=rs.host, guests=Table(BRIDGE, GUEST_TABLE, enabled=False)), list(
            features.missing_for_guests()
        )
    return rs, []


def apply_ruleset(rs: Ruleset, client: JsonRunner, features: KernelFeatures) -> ApplyResult:
    loadable, missing = loadable_ruleset(rs, features)
    try:
        plan = plan_update(None, loadable)
    except SkeletonError as exc:
        return ApplyResult(False, str(exc))
    result = client.run_json(plan.document())
    if not result.ok:
        return ApplyResult(False, result.error.strip(), missing_features=missing)
    return ApplyResult(
        True,
        "",
        applied_tables=list(plan.stats.tables_replaced),
        deleted_tables=list(plan.stats.tables_deleted),
        missing_features=missing,
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
