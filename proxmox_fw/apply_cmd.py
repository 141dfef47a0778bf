"""``apply``: compiled ruleset → kernel, plus the host settings that are not rules."""

from __future__ import annotations

from pathlib import Path

from . import log
from .compile import CompileResult
from .nft.apply import apply_ruleset
from .nft.client import NftClient
from .nft.features import probe_features

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_PARTIAL = 3


def write_side_effects(effects: dict[str, str]) -> None:
    """Sysctls and the logger flag file; a failure is a warning, never fatal."""
    logger = log.get()
    for path, value in effects.items():
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(value + "\n")
        except OSError as err:
            logger.warning(f"could not write {path}: {err.strerror or err}")


def apply_config(result: CompileResult, client: NftClient | None = None) -> int:
    logger = log.get()
    unreadable = result.config.unreadable if result.config else []
    if unreadable:
        logger.error("not applied, previous ruleset kept: cannot read " + ", ".join(unreadable))
        return EXIT_FAILED
    features = probe_features()
    outcome = apply_ruleset(result.ruleset, client or NftClient(), features)
    if not outcome.ok:
        logger.error(f"applying the ruleset failed, previous ruleset kept: {outcome.error}")
        return EXIT_FAILED
    write_side_effects(result.side_effects)
    if outcome.missing_features:
        logger.error(
            "guest table not applied: this kernel lacks "
            + ", ".join(outcome.missing_features)
            + "; host table applied"
        )
        return EXIT_PARTIAL
    logger.info("ruleset applied", tables=",".join(outcome.applied_tables))
    return EXIT_OK
