"""Addresses as they appear in rules, aliases and ipsets."""

from __future__ import annotations

import ipaddress
from typing import Literal

from proxmox_fw.model.common import Family, Model

# A CIDR as written: host bits are kept (``192.168.0.1/24``) so output can echo the
# config; the compiler matches on ``.network``.
Cidr = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


def family_of(value: Cidr | IpAddr) -> Family:
    return Family.V4 if value.version == 4 else Family.V6


class IpRange(Model):
    """An inclusive address range ``a-b`` (same family, start <= end)."""

    start: IpAddr
    end: IpAddr

    @property
    def family(self) -> Family:
        return family_of(self.start)


IpEntry = Cidr | IpRange


def entry_family(entry: IpEntry) -> Family:
    return entry.family if isinstance(entry, IpRange) else family_of(entry)


class IpList(Model):
    """A literal address list (one family): single IPs, CIDRs and ranges."""

    kind: Literal["ips"] = "ips"
    entries: list[IpEntry]

    @property
    def family(self) -> Family:
        return entry_family(self.entries[0])


# Scope of a reference: "dc/x", "guest/x", "sdn/x" (ipsets only) or bare (None = legacy:
# guest first, then dc; for ipsets also sdn as Perl does).
ScopeName = Literal["dc", "guest", "sdn"] | None


class AliasRef(Model):
    kind: Literal["alias"] = "alias"
    scope: Literal["dc", "guest"] | None
    name: str  # lowercased

    def __str__(self) -> str:
        return f"{self.scope}/{self.name}" if self.scope else self.name


class IpsetRef(Model):
    kind: Literal["ipset"] = "ipset"
    scope: ScopeName
    name: str  # case kept; lookups are case-insensitive for dc/guest like Perl

    def __str__(self) -> str:
        return f"+{self.scope}/{self.name}" if self.scope else f"+{self.name}"


AddressMatch = IpList | AliasRef | IpsetRef
