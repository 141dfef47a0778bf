"""One ``[RULES]``/``[group]`` line → :class:`~proxmox_fw.model.Rule`.

Grammar: ``[|]TYPE ACTION [-flag value]... [# comment]``. Every spelling either upstream
accepts is accepted. A rule that cannot be compiled exactly as written (a flag that
upstream would silently ignore, a conflict with its macro, mixed address families) is
rejected with one error diagnostic naming the problem and the rule is dropped: dropping a
rule is visible in ``check``, widening it silently is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from proxmox_fw.data import Macro, find_macro
from proxmox_fw.diagnostics import Diagnostics, RuleError
from proxmox_fw.model import (
    AddressMatch,
    Direction,
    Family,
    IcmpType,
    IpList,
    Origin,
    PortRange,
    Protocol,
    Rule,
    Verdict,
)
from proxmox_fw.parse.values import (
    ValueParseError,
    is_name,
    parse_address,
    parse_icmp_type,
    parse_log_level,
    parse_ports,
    parse_protocol,
)

RuleScope = Literal["cluster", "host", "guest", "vnet", "group"]


# Every accepted flag spelling (without its dashes) -> canonical flag.
_FLAGS: Final = {
    "i": "iface",
    "iface": "iface",
    "p": "proto",
    "proto": "proto",
    "dport": "dport",
    "sport": "sport",
    "source": "source",
    "dest": "dest",
    "log": "log",
    "icmp-type": "icmp-type",
}
_FLAG_RE: Final = re.compile(r"--?([A-Za-z][A-Za-z0-9_-]*)")
_MACRO_ACTION_RE: Final = re.compile(r"([^()\s]+)\(([^()\s]*)\)")
_GUEST_IFACE_RE: Final = re.compile(r"net(0|[1-9][0-9]?)")
_HOST_IFACE_RE: Final = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")
MAX_GUEST_NICS: Final = 32  # net0 .. net31, as the PVE API allows

_ALLOWED_TYPES: Final[dict[RuleScope, frozenset[str]]] = {
    "cluster": frozenset({"IN", "OUT", "FORWARD", "GROUP"}),
    "host": frozenset({"IN", "OUT", "FORWARD", "GROUP"}),
    "guest": frozenset({"IN", "OUT", "GROUP"}),
    "vnet": frozenset({"FORWARD", "GROUP"}),
    "group": frozenset({"IN", "OUT", "FORWARD"}),
}
_SCOPE_WORDS: Final[dict[RuleScope, str]] = {
    "cluster": "cluster.fw",
    "host": "host firewall files",
    "guest": "guest firewall files",
    "vnet": "vnet firewall files",
    "group": "security groups",
}
_PORT_PROTOS: Final = "tcp, udp, dccp, sctp or udplite"


@dataclass(frozen=True, slots=True)
class _Flag:
    spelling: str  # as written, e.g. "--dport"
    value: str


def parse_rule(line: str, origin: Origin, scope: RuleScope, diags: Diagnostics) -> Rule | None:
    """Parse one rule line; on error add one diagnostic at ``origin`` and return None."""
    try:
        return _parse(line, origin, scope)
    except (RuleError, ValueParseError) as err:
        diags.error(origin.file, origin.line, str(err))
        return None


def _parse(line: str, origin: Origin, scope: RuleScope) -> Rule:
    body, _, comment_text = line.partition("#")
    comment = comment_text.strip() or None
    body = body.strip()
    enabled = not body.startswith("|")
    if not enabled:
        body = body[1:].lstrip()
    tokens = body.split()
    if not tokens:
        raise RuleError("empty rule")

    rule_type = tokens[0].upper()
    if rule_type not in ("IN", "OUT", "FORWARD", "GROUP"):
        raise RuleError(f"unknown rule type '{tokens[0]}' (use IN, OUT, FORWARD or GROUP)")
    if rule_type not in _ALLOWED_TYPES[scope]:
        raise RuleError(f"{rule_type} rules are not allowed in {_SCOPE_WORDS[scope]}")
    if len(tokens) < 2:
        raise RuleError(f"{rule_type} rule has no action")
    flags = _collect_flags(tokens[2:])
    direction = None if rule_type == "GROUP" else Direction(rule_type.lower())

    iface = None
    if "iface" in flags:
        iface = _check_iface(flags["iface"], scope)

    if rule_type == "GROUP":
        return _group_rule(tokens[1], flags, iface, origin, enabled, comment)

    verdict, macro = _parse_action(tokens[1])
    proto = parse_protocol(flags["proto"].value) if "proto" in flags else None
    source = parse_address(flags["source"].value) if "source" in flags else None
    dest = parse_address(flags["dest"].value) if "dest" in flags else None
    log = parse_log_level(flags["log"].value) if "log" in flags else None
    if macro is not None:
        dport, sport, icmp_type = _check_with_macro(macro, proto, flags)
    else:
        dport, sport, icmp_type = _check_plain(proto, flags)
    _check_families(source, dest, proto)

    return Rule(
        origin=origin,
        enabled=enabled,
        direction=direction,
        action=verdict,
        macro=macro.name if macro else None,
        iface=iface,
        source=source,
        dest=dest,
        proto=proto,
        dport=dport,
        sport=sport,
        icmp_type=icmp_type,
        log=log,
        comment=comment,
    )


def _collect_flags(tokens: list[str]) -> dict[str, _Flag]:
    flags: dict[str, _Flag] = {}
    pos = 0
    while pos < len(tokens):
        token = tokens[pos]
        m = _FLAG_RE.fullmatch(token)
        if m is None:
            raise RuleError(f"unexpected '{token}' (expected an option such as -p or -dport)")
        key = _FLAGS.get(m.group(1).lower())
        if key is None:
            raise RuleError(f"unknown option '{token}'")
        if pos + 1 >= len(tokens) or _FLAG_RE.fullmatch(tokens[pos + 1]):
            raise RuleError(f"option '{token}' needs a value")
        if key in flags:
            raise RuleError(f"option '{token}' is given more than once")
        flags[key] = _Flag(token, tokens[pos + 1])
        pos += 2
    return flags


def _check_iface(flag: _Flag, scope: RuleScope) -> str:
    name = flag.value
    if scope == "vnet":
        raise RuleError(f"option '{flag.spelling}' is not allowed in vnet firewall rules")
    if scope == "guest":
        m = _GUEST_IFACE_RE.fullmatch(name)
        if m is None or int(m.group(1)) >= MAX_GUEST_NICS:
            raise RuleError(
                f"interface '{name}' is not a guest network device "
                f"(net0 to net{MAX_GUEST_NICS - 1})"
            )
        return name
    if _HOST_IFACE_RE.fullmatch(name) is None:
        raise RuleError(f"'{name}' is not a valid interface name")
    return name


def _group_rule(
    name: str,
    flags: dict[str, _Flag],
    iface: str | None,
    origin: Origin,
    enabled: bool,
    comment: str | None,
) -> Rule:
    others = [f.spelling for key, f in flags.items() if key != "iface"]
    if others:
        raise RuleError(f"GROUP rules accept only -i, not '{others[0]}'")
    if not is_name(name):
        raise RuleError(f"'{name}' is not a valid security group name")
    return Rule(
        origin=origin,
        enabled=enabled,
        kind="group",
        group=name.lower(),
        iface=iface,
        comment=comment,
    )


def _parse_verdict(text: str) -> Verdict | None:
    try:
        return Verdict(text.upper())
    except ValueError:
        return None


def _parse_action(text: str) -> tuple[Verdict, Macro | None]:
    m = _MACRO_ACTION_RE.fullmatch(text)
    if m is None:
        verdict = _parse_verdict(text)
        if verdict is None:
            raise RuleError(f"unknown action '{text}' (use ACCEPT, DROP, REJECT or Macro(...))")
        return verdict, None
    macro = find_macro(m.group(1))
    if macro is None:
        raise RuleError(f"unknown macro '{m.group(1)}'")
    verdict = _parse_verdict(m.group(2))
    if verdict is None:
        raise RuleError(f"unknown action '{m.group(2)}' in '{text}' (use ACCEPT, DROP or REJECT)")
    return verdict, macro


Matches = tuple[list[PortRange] | None, list[PortRange] | None, IcmpType | None]


def _check_plain(proto: Protocol | None, flags: dict[str, _Flag]) -> Matches:
    """Ports and ICMP type of a rule without a macro: they need a fitting ``-p``."""
    dport_flag, sport_flag = flags.get("dport"), flags.get("sport")
    icmp_flag = flags.get("icmp-type")
    for port_flag in (dport_flag, sport_flag):
        if port_flag is not None and proto is None:
            raise RuleError(
                f"option '{port_flag.spelling}' needs -p with a protocol that has ports "
                f"({_PORT_PROTOS})"
            )
    if icmp_flag is not None and (proto is None or not proto.is_icmp):
        raise RuleError(f"option '{icmp_flag.spelling}' needs -p icmp or -p icmpv6")
    if proto is None:
        return None, None, None

    if proto.is_icmp:
        v6 = proto.number == 58
        if sport_flag is not None:
            raise RuleError(f"protocol {proto.name} has no ports: '{sport_flag.spelling}'")
        if dport_flag is not None:
            # Legacy form written by old PVE versions: the ICMP type in -dport.
            if icmp_flag is not None:
                raise RuleError(
                    f"options '{dport_flag.spelling}' and '{icmp_flag.spelling}' cannot be "
                    "combined"
                )
            return None, None, parse_icmp_type(dport_flag.value, v6)
        icmp_type = parse_icmp_type(icmp_flag.value, v6) if icmp_flag else None
        return None, None, icmp_type

    for port_flag in (dport_flag, sport_flag):
        if port_flag is not None and not proto.has_ports:
            raise RuleError(
                f"protocol {proto.name} has no ports, so '{port_flag.spelling}' cannot be "
                f"used (ports need {_PORT_PROTOS})"
            )
    dport = parse_ports(dport_flag.value) if dport_flag else None
    sport = parse_ports(sport_flag.value) if sport_flag else None
    return dport, sport, None


def _check_with_macro(macro: Macro, proto: Protocol | None, flags: dict[str, _Flag]) -> Matches:
    """Explicit -p/ports/ICMP on a macro rule must agree with every macro entry.

    An entry that lacks a value takes the rule's (that only narrows); an entry that has a
    different one is a contradiction, reported instead of guessed at.
    """
    dport_flag, sport_flag = flags.get("dport"), flags.get("sport")
    icmp_flag = flags.get("icmp-type")
    if icmp_flag is not None and (proto is None or not proto.is_icmp):
        raise RuleError(f"option '{icmp_flag.spelling}' needs -p icmp or -p icmpv6")
    dport = parse_ports(dport_flag.value) if dport_flag else None
    sport = parse_ports(sport_flag.value) if sport_flag else None
    icmp_type = (
        parse_icmp_type(icmp_flag.value, proto.number == 58)
        if icmp_flag is not None and proto is not None
        else None
    )
    for entry in macro.entries:
        if proto is not None and proto.number != entry.proto.number:
            raise RuleError(
                f"option '{flags['proto'].spelling} {flags['proto'].value}' conflicts with "
                f"macro {macro.name}, which uses protocol {entry.proto.name}"
            )
        for flag, ports, macro_ports in (
            (dport_flag, dport, entry.dport),
            (sport_flag, sport, entry.sport),
        ):
            if flag is None:
                continue
            if not entry.proto.has_ports:
                raise RuleError(
                    f"option '{flag.spelling}' cannot be used with macro {macro.name}: "
                    f"its protocol {entry.proto.name} has no ports"
                )
            if macro_ports is not None and macro_ports != ports:
                raise RuleError(
                    f"option '{flag.spelling} {flag.value}' conflicts with macro {macro.name}"
                )
        if icmp_flag is not None and entry.icmp_type is not None and entry.icmp_type != icmp_type:
            raise RuleError(
                f"option '{icmp_flag.spelling} {icmp_flag.value}' conflicts with macro "
                f"{macro.name}"
            )
    return dport, sport, icmp_type


def _literal_family(match: AddressMatch | None) -> Family | None:
    return match.family if isinstance(match, IpList) else None


def _check_families(
    source: AddressMatch | None, dest: AddressMatch | None, proto: Protocol | None
) -> None:
    families = {f for f in (_literal_family(source), _literal_family(dest)) if f is not None}
    if len(families) > 1:
        raise RuleError("source and destination mix IPv4 and IPv6 addresses")
    if proto is None or not proto.is_icmp or not families:
        return
    proto_family = Family.V6 if proto.number == 58 else Family.V4
    if families != {proto_family}:
        other = "IPv6" if proto_family == Family.V4 else "IPv4"
        raise RuleError(f"protocol {proto.name} cannot match {other} addresses")

