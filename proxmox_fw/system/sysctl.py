"""Host settings that are not rules: conntrack sysctls and the logger's flag file."""

from __future__ import annotations

from pathlib import Path

from proxmox_fw import log


def write_side_effects(effects: dict[str, str]) -> None:
    """Write each ``path -> value``; a failure is a warning, never fatal, because the
    ruleset itself is already in the kernel."""
    logger = log.get()
    for path, value in effects.items():
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(value + "\n")
        except OSError as err:
            logger.warning(f"could not write {path}: {err.strerror or err}")
