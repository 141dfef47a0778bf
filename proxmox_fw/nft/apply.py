"""``apply``: a desired Ruleset into the kernel in one atomic libnftables transaction,
and the other whole-table operations (remove, list handles).

The transaction is :func:`~proxmox_fw.nft.diff.plan_update` from nothing, the same
full replacement the daemon sends at start: each table is reset (``add`` + ``delete
table`` removes whatever was there), rebuilt from the skeleton and filled, all in one
JSON document. The kernel commits the batch or nothing, so a rejected ruleset leaves the
previous one in place. Counters and dynamic sets restart with each apply.

A transaction the kernel refuses goes to :func:`recover` (the safety net of
:mod:`proxmox_fw.nft.salvage`): the refused rules are found and everything else is
applied; failing that, and with no host table of ours left in the kernel, the default
rules of admin guide §13.8.1 are loaded, never nothing.

When the kernel cannot load the guest table (bridge conntrack/reject/meta missing), the
host table is applied alone and the result names the missing features
(:func:`loadable_ruleset` decides that, for ``apply``, the daemon and ``status``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from proxmox_fw.nft.client import JsonRunner, Result
from proxmox_fw.nft.diff import plan_update
from proxmox_fw.nft.features import KernelFeatures
from proxmox_fw.nft.kernelstate import NftNetlink
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, HOST_TABLE, INET, Command, Ruleset, Table
from proxmox_fw.nft.render import delete_table_commands
from proxmox_fw.nft.salvage import (
    CheckingRunner,
    checker,
    fallback_commands,
    fallback_skeleton_only,
    first_error_line,
    without_refused,
)
from proxmox_fw.nft.skeleton import SkeletonError

HOST_LABEL = f"{INET} {HOST_TABLE}"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    ok: bool  # the transaction was committed
    error: str = ""  # libnftables' message (or why the transaction was not built)
    applied_tables: list[str] = field(default_factory=list)  # "inet proxmox-firewall"
    deleted_tables: list[str] = field(default_factory=list)
    missing_features: list[str] = field(default_factory=list)  # why a table was left out
    refused: list[str] = field(default_factory=list)  # rules the kernel refused, at file:line
    fallback: bool = False  # only the default rules (admin guide §13.8.1) were loaded

    @property
    def complete(self) -> bool:
        """Committed, and nothing the ruleset wanted was left out."""
        return self.ok and not (self.missing_features or self.refused or self.fallback)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :func:`recover` committed after the kernel refused a transaction."""

    committed: bool
    refused: list[str] = field(default_factory=list)  # one message per refused rule
    fallback: bool = False
    error: str = ""  # why nothing could be committed


def host_table_present() -> bool:
    """Whether our host table is in the kernel (asked over netlink, by name, in the
    calling thread's namespace); True when that cannot be told: keep what is there."""
    try:
        with NftNetlink() as nl:
            return nl.table(INET, HOST_TABLE) is not None
    except OSError:
        return True


def recover(commands: list[Command], loadable: Ruleset, client: JsonRunner) -> Recovery:
    """After the kernel refused the full transaction ``commands`` (for ``loadable``):
    apply everything but the refused rules; else, if the host has no table of ours, the
    default rules alone. Needs a client that can check without committing."""
    if not isinstance(client, CheckingRunner):
        return Recovery(False, error="no check mode to find the refused objects")
    salvaged = without_refused(commands, checker(client))
    if salvaged is not None:
        kept, refused = salvaged
        result = client.run_json({"nftables": kept})
        if result.ok:
            return Recovery(True, [r.message() for r in refused])
    if host_table_present():
        return Recovery(False, error="the refused objects could not be singled out; "
                        "the tables in the kernel are kept")  # fmt: skip
    errors: list[str] = []
    attempts: list[Callable[[], list[Command]]] = [
        lambda: fallback_commands(loadable), fallback_skeleton_only]
    for fallback in attempts:
        try:
            result = client.run_json({"nftables": fallback()})
        except SkeletonError as exc:
            errors.append(str(exc))
            continue
        if result.ok:
            return Recovery(True, fallback=True)
        errors.append(first_error_line(result.error))
    return Recovery(False, error="even the default rules were refused: " + "; ".join(errors))


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
    if result.ok:
        return ApplyResult(True, "", applied_tables=list(plan.stats.tables_replaced),
                           deleted_tables=list(plan.stats.tables_deleted),
                           missing_features=missing)  # fmt: skip
    error = result.error.strip()
    rescue = recover(plan.commands, loadable, client)
    if not rescue.committed:
        return ApplyResult(False, f"{error} ({rescue.error})" if rescue.error else error,
                           missing_features=missing)  # fmt: skip
    if rescue.fallback:
        return ApplyResult(True, error, applied_tables=[HOST_LABEL], fallback=True,
                           missing_features=missing)  # fmt: skip
    return ApplyResult(True, error, applied_tables=list(plan.stats.tables_replaced),
                       deleted_tables=list(plan.stats.tables_deleted),
                       missing_features=missing, refused=rescue.refused)  # fmt: skip


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
