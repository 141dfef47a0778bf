"""Log statements of rules and policies.

The prefix ``:<vmid>:<logid>:<chain>: <VERDICT>: `` is what the firewall logger parses
(admin guide §13.9: VMID 0 for the host); every log statement is preceded by the
cluster's ``log_ratelimit`` limit when that is enabled.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from proxmox_fw.logger.format import MAX_CHAIN_LEN
from proxmox_fw.model import LogLevel, LogRateLimit, Verdict
from proxmox_fw.nft import expr as x
from proxmox_fw.nft.objects import Json

_DIRECTION_SUFFIX: Final = re.compile(r"-(?:in|out|forward)$")
_DIGEST_LEN: Final = 6


def log_chain_label(chain: str) -> str:
    """The chain as the log names it.

    The logger attributes a line to its VMID and chain only if the chain part has 1-28
    characters and no ``:`` or blank; otherwise the whole line goes to VMID 0, chain
    ``-``. A longer name (``group-<long name>-forward``) is shortened to its start, ``~``,
    six hex digits of the SHA-256 of the full name and its direction: the same name
    always gives the same label, and two names that share their start still differ.
    """
    if 0 < len(chain) <= MAX_CHAIN_LEN and not any(c in chain for c in ": \0"):
        return chain
    m = _DIRECTION_SUFFIX.search(chain)
    suffix = m.group(0) if m else ""
    stem = re.sub(r"[: \0]", "_", chain[: len(chain) - len(suffix)])
    digest = hashlib.sha256(chain.encode()).hexdigest()[:_DIGEST_LEN]
    keep = MAX_CHAIN_LEN - len(suffix) - 1 - _DIGEST_LEN
    return f"{stem[:keep]}~{digest}{suffix}"


def log_prefix(vmid: int, level: LogLevel, chain: str, verdict: Verdict | str) -> str:
    return f":{vmid}:{level.logid}:{log_chain_label(chain)}: {verdict}: "


def log_statements(
    ratelimit: LogRateLimit, vmid: int, level: LogLevel, chain: str, verdict: Verdict | str
) -> list[Json]:
    """Terminal statements of a log rule; empty for ``nolog``."""
    if level is LogLevel.NOLOG:
        return []
    stmts: list[Json] = []
    if ratelimit.enable:
        stmts.append(x.limit(ratelimit.rate, ratelimit.per, ratelimit.burst))
    stmts.append(x.log(log_prefix(vmid, level, chain, verdict)))
    return stmts
