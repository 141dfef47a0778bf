"""Small value types shared by every config model."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Base of all config models: plain data, no I/O, ipaddress types allowed."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")


class Origin(Model):
    """Where a config object came from; kept on every generated nft rule."""

    model_config = ConfigDict(frozen=True)

    file: str  # path relative to the pve dir, e.g. "firewall/cluster.fw"
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Verdict(StrEnum):
    ACCEPT = "ACCEPT"
    DROP = "DROP"
    REJECT = "REJECT"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"
    FORWARD = "forward"


class LogLevel(StrEnum):
    """Syslog level of a log rule; ``nolog`` means no log rule. ``warn`` parses as warning."""

    NOLOG = "nolog"
    EMERG = "emerg"
    ALERT = "alert"
    CRIT = "crit"
    ERR = "err"
    WARNING = "warning"
    NOTICE = "notice"
    INFO = "info"
    DEBUG = "debug"

    @property
    def logid(self) -> int | None:
        """The LOGID of admin guide §13.9 (None for nolog)."""
        return _LOGID.get(self)


_LOGID = {
    LogLevel.EMERG: 0,
    LogLevel.ALERT: 1,
    LogLevel.CRIT: 2,
    LogLevel.ERR: 3,
    LogLevel.WARNING: 4,
    LogLevel.NOTICE: 5,
    LogLevel.INFO: 6,
    LogLevel.DEBUG: 7,
}


class Family(StrEnum):
    V4 = "ip"
    V6 = "ip6"
