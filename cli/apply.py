"""``apply``: compiled ruleset → kernel, plus the host settings that are not rules."""

from __future__ import annotations

from collections.abc import Callable

from proxmox_fw import log
from proxmox_fw.compile import CompileResult
from proxmox_fw.nft.apply import apply_ruleset
from proxmox_fw.nft.client import JsonRunner, NftClient
from proxmox_fw.nft.features import probe_features
from proxmox_fw.system.sysctl import write_side_effects

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_PARTIAL = 3


def apply_config(
    result: CompileResult,
    client: JsonRunner | None = None,
    effects_writer: Callable[[dict[str, str]], None] = write_side_effects,
    side_effects: bool = True,
) -> int:
    """``side_effects`` False: the ruleset only, no sysctl and no flag file (a demo or
    test in a network namespace must not change the machine it runs on)."""
    logger = log.get()
    unreadable = result.config.unreadable if result.config else []
    if unreadable:
        logger.error("not applied, previous ruleset kept: cannot read or use "
                     + ", ".join(unreadable))
        return EXIT_FAILED
    features = probe_features()
    outcome = apply_ruleset(result.ruleset, client or NftClient(), features)
    if not outcome.ok:
        logger.error(f"applying the ruleset failed, previous ruleset kept: {outcome.error}")
        return EXIT_FAILED
    if outcome.fallback:
        logger.error(f"the kernel refused the ruleset ({outcome.error}) and the refused rules "
                     "could not be singled out: only the default rules are loaded "
                     "(admin guide §13.8.1: management access kept, everything else dropped)")
        return EXIT_FAILED
    for message in outcome.refused:
        logger.error(message)
    if side_effects:
        effects_writer(result.side_effects)
    if outcome.missing_features:
        logger.error(
            "guest table not applied: this kernel lacks "
            + ", ".join(outcome.missing_features)
            + "; host table applied"
        )
        return EXIT_PARTIAL
    if outcome.refused:
        logger.warning("ruleset applied without the rules the kernel refused",
                       tables=",".join(outcome.applied_tables))
        return EXIT_PARTIAL
    logger.info("ruleset applied", tables=",".join(outcome.applied_tables))
    return EXIT_OK
