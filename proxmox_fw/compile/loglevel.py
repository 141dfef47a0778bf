"""Log statements of rules and policies.

The prefix ``:<vmid>:<logid>:<chain>: <VERDICT>: `` is what pvefw-logger parses (seed
§13.9: VMID 0 for the host); every log statement is preceded by the cluster's
``log_ratelimit`` limit when that is enabled.
"""

from __future__ import annotations

from proxmox_fw.model import LogLevel, LogRateLimit, Verdict
from proxmox_fw.nft import expr as x
from proxmox_fw.nft.objects import Json

# pvefw-logger does not parse chain names longer than this.
MAX_LOG_CHAIN = 28


def log_prefix(vmid: int, level: LogLevel, chain: str, verdict: Verdict | str) -> str:
    return f":{vmid}:{level.logid}:{chain[:MAX_LOG_CHAIN]}: {verdict}: "


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
