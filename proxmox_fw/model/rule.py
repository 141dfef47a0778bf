"""A firewall rule line, fully parsed but not yet resolved."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from proxmox_fw.model.address import AddressMatch
from proxmox_fw.model.common import Direction, LogLevel, Model, Origin, Verdict


class PortRange(Model):
    """Inclusive port range; a single port has lo == hi."""

    lo: int = Field(ge=0, le=65535)
    hi: int = Field(ge=0, le=65535)


class Protocol(Model):
    """An IP protocol as written after ``-p``, normalised.

    ``name`` is the canonical nft name where one exists (tcp, udp, icmp, icmpv6, sctp,
    dccp, udplite, or the /etc/protocols name); ``number`` is always set.
    """

    name: str
    number: int = Field(ge=0, le=255)

    @property
    def has_ports(self) -> bool:
        return self.number in (6, 17, 33, 132, 136)

    @property
    def is_icmp(self) -> bool:
        return self.number in (1, 58)


class IcmpType(Model):
    """An ICMP/ICMPv6 type match; ``type is None`` means ``any``."""

    v6: bool
    type: int | None = Field(default=None, ge=0, le=255)
    code: int | None = Field(default=None, ge=0, le=255)


class Rule(Model):
    """One ``[RULES]``/``[group]`` line.

    ``kind == "group"``: ``group`` names the security group, ``direction`` is None and only
    ``iface`` may be set. Otherwise ``action`` is the verdict and ``macro`` the canonical
    macro name if the action was written ``Macro(VERDICT)``.
    """

    origin: Origin
    enabled: bool = True
    kind: Literal["rule", "group"] = "rule"
    direction: Direction | None = None
    action: Verdict | None = None
    macro: str | None = None
    group: str | None = None
    iface: str | None = None
    source: AddressMatch | None = None
    dest: AddressMatch | None = None
    proto: Protocol | None = None
    dport: list[PortRange] | None = None
    sport: list[PortRange] | None = None
    icmp_type: IcmpType | None = None
    log: LogLevel | None = None
    comment: str | None = None
