"""The desired ruleset: nft objects the compiler produces, before rendering.

This is the pivot of the design. ``compile`` renders it to nft JSON commands, ``apply``
sends it in one transaction, the daemon diffs two of them, and every rule keeps the
config origin it came from (``origin``, rendered as the rule comment) so counters and
traces map back to a file and line.

Expressions and statements are nft JSON fragments (plain dicts) built with
:mod:`proxmox_fw.nft.expr`; the object model only owns structure and ordering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = Any  # a JSON fragment (dict / list / str / int / None)
Command = dict[str, Any]  # one nft JSON command: {"add": {"chain": {...}}}

INET = "inet"
BRIDGE = "bridge"
HOST_TABLE = "proxmox-firewall"
GUEST_TABLE = "proxmox-firewall-guests"

# The chains the skeleton declares empty for the compiler to fill, per table family (the
# compiler flushes and refills them every time, even when it has no rule for them). Kept
# here rather than read from the skeleton so compiling stays pure and needs no root; a
# test compares it with the skeleton's own JSON listing.
FILLED_CHAINS: dict[str, tuple[str, ...]] = {
    INET: (
        "ratelimit-synflood", "log-invalid-tcp", "log-smurfs", "option-in", "option-out",
        "cluster-in", "cluster-out", "cluster-forward", "host-in", "host-out",
        "host-forward", "ct-in", "invalid-conntrack",
    ),
    BRIDGE: ("invalid-conntrack",),
}


@dataclass(slots=True)
class Rule:
    expr: list[Json]
    origin: str | None = None  # "firewall/cluster.fw:12" or a built-in tag like "default"


@dataclass(slots=True)
class Chain:
    name: str
    rules: list[Rule] = field(default_factory=list)
    # True for chains the skeleton declares (FILLED_CHAINS: cluster-in, option-in, ...): the
    # compiler only fills them (flush + add rule); False for chains it creates (guest-*,
    # group-*, ...).
    in_skeleton: bool = False

    def add(self, expr: list[Json], origin: str | None = None) -> None:
        self.rules.append(Rule(expr, origin))


@dataclass(slots=True)
class Set:
    name: str
    type: str  # "ipv4_addr", "ipv6_addr", "ifname . ether_addr", ...
    flags: list[str] = field(default_factory=list)
    auto_merge: bool = False
    elements: list[Json] = field(default_factory=list)
    comment: str | None = None


@dataclass(slots=True)
class Map:
    """A verdict map the skeleton declares; the compiler only adds elements."""

    name: str
    elements: list[tuple[Json, Json]] = field(default_factory=list)  # (key, verdict)


@dataclass(slots=True)
class CtHelper:
    name: str
    type: str
    protocol: str
    l3proto: str | None = None  # "ip" for v4-only helpers, None for both families


@dataclass(slots=True)
class Table:
    family: str
    name: str
    enabled: bool = True  # False: the table must not exist (rendered as delete table)
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, Set] = field(default_factory=dict)
    maps: dict[str, Map] = field(default_factory=dict)
    ct_helpers: dict[str, CtHelper] = field(default_factory=dict)

    def chain(self, name: str, *, in_skeleton: bool | None = None) -> Chain:
        """Get or create a chain; creation order is kept for rendering. A new chain is a
        skeleton one when :data:`FILLED_CHAINS` lists it (unless ``in_skeleton`` says)."""
        ch = self.chains.get(name)
        if ch is None:
            if in_skeleton is None:
                in_skeleton = name in FILLED_CHAINS.get(self.family, ())
            ch = self.chains[name] = Chain(name, in_skeleton=in_skeleton)
        return ch

    def map(self, name: str) -> Map:
        m = self.maps.get(name)
        if m is None:
            m = self.maps[name] = Map(name)
        return m


@dataclass(slots=True)
class Ruleset:
    host: Table = field(default_factory=lambda: Table(INET, HOST_TABLE))
    guests: Table = field(default_factory=lambda: Table(BRIDGE, GUEST_TABLE))

    @property
    def tables(self) -> tuple[Table, Table]:
        return (self.host, self.guests)
