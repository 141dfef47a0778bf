"""The ``.fw`` files: cluster.fw, host.fw, ``<vmid>.fw`` and ``sdn/firewall/<vnet>.fw``.

All four share one line grammar (sections, options, aliases, ipsets, rules, security
groups); they differ only in which sections and rule types they allow, which is a table
here. Every problem is a diagnostic for its line and parsing goes on, so one bad line
never costs the rest of the file.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Final

from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.limits import clean_comment
from proxmox_fw.model import (
    Alias,
    AliasRef,
    Cidr,
    ClusterFw,
    ClusterOptions,
    GuestFw,
    GuestOptions,
    HostFw,
    HostOptions,
    Ipset,
    IpsetEntry,
    Origin,
    Rule,
    SecurityGroup,
    VnetFw,
    VnetOptions,
)
from proxmox_fw.parse.options import FileKind, OptionCollector, OptionContext
from proxmox_fw.parse.pve_refusals import rule_refusals
from proxmox_fw.parse.rule import RuleScope, parse_rule
from proxmox_fw.parse.unusable import LineTally, new_errors
from proxmox_fw.parse.values import (
    ValueParseError,
    is_name,
    parse_alias_ref,
    parse_cidr,
    parse_ip_range,
)
from proxmox_fw.textlines import split_lines

# nft names are at most 255 bytes: the longest set an ipset makes is
# "v6-guest-<vmid, 9 digits>/<name>-nomatch", the longest group chain
# "group-<name>-forward". A longer name would make nft refuse the whole ruleset.
MAX_OBJECT_NAME: Final = 255 - len("v6-guest-123456789/-nomatch")
_HEADER_RE: Final = re.compile(r"\[\s*([A-Za-z]+)(?:\s+([^\]\s]*))?\s*\]\s*(?:#(.*))?")
_ALIAS_REF_TEXT_RE: Final = re.compile(r"(?:(?:dc|guest)/)?[A-Za-z][A-Za-z0-9_-]*")

# Sections each kind of file may contain (union of what Perl and Rust accept).
_ALLOWED_SECTIONS: Final[dict[FileKind, frozenset[str]]] = {
    "cluster": frozenset({"options", "aliases", "rules", "ipset", "group"}),
    "host": frozenset({"options", "rules"}),
    "guest": frozenset({"options", "aliases", "rules", "ipset"}),
    "vnet": frozenset({"options", "rules"}),
}
_FILE_WORDS: Final[dict[FileKind, str]] = {
    "cluster": "cluster.fw",
    "host": "host.fw",
    "guest": "guest firewall files",
    "vnet": "vnet firewall files",
}
_SECTION_TITLES: Final = {
    "options": "[OPTIONS]",
    "aliases": "[ALIASES]",
    "rules": "[RULES]",
    "ipset": "[IPSET ...]",
    "group": "[group ...]",
}


@dataclass(slots=True)
class _Parsed:
    """Everything one file held, before it is poured into its model."""

    options: OptionCollector
    aliases: dict[str, Alias] = field(default_factory=dict)
    ipsets: dict[str, Ipset] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    groups: dict[str, SecurityGroup] = field(default_factory=dict)


@dataclass(slots=True)
class _FwParser:
    kind: FileKind
    file: str
    diags: Diagnostics
    now: float
    out: _Parsed
    # current section: None before the first header, "skip" after a rejected header
    section: str | None = None
    ipset: Ipset | None = None
    group: SecurityGroup | None = None
    header_lines: dict[str, int] = field(default_factory=dict)
    tally: LineTally = field(default_factory=LineTally)

    def run(self, text: str) -> _Parsed:
        for number, raw in enumerate(split_lines(text), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            before = len(self.diags.items)
            if line.startswith("["):
                self._header(line, number)
            else:
                self._content(line, number)
            good = self.section != "skip" and not new_errors(self.diags, before)
            self.tally.count(good)
        return self.out

    # --- section headers ---------------------------------------------------------------

    def _header(self, line: str, number: int) -> None:
        self.section, self.ipset, self.group = "skip", None, None
        m = _HEADER_RE.fullmatch(line)
        if m is None:
            self.diags.error(self.file, number, f"malformed section header '{line}'; "
                             "its lines are ignored")
            return
        kind, name = m.group(1).lower(), m.group(2)
        comment = (m.group(3) or "").strip() or None
        if kind not in _SECTION_TITLES:
            self.diags.error(self.file, number, f"unknown section '[{m.group(1)}]'; "
                             "its lines are ignored")
            return
        if kind not in _ALLOWED_SECTIONS[self.kind]:
            self.diags.error(self.file, number, f"{_SECTION_TITLES[kind]} sections are not "
                             f"allowed in {_FILE_WORDS[self.kind]}; its lines are ignored")
            return
        if kind in ("ipset", "group"):
            self._named_header(kind, name, comment, number)
            return
        if name:
            self.diags.error(self.file, number, f"section {_SECTION_TITLES[kind]} takes no "
                             f"name, got '{name}'; its lines are ignored")
            return
        if kind in self.header_lines:
            self.diags.warning(self.file, number, f"section {_SECTION_TITLES[kind]} appears "
                               f"again (first on line {self.header_lines[kind]}); its lines "
                               "are added to the earlier ones")
        else:
            self.header_lines[kind] = number
        self.section = kind

    def _named_header(self, kind: str, name: str | None, comment: str | None,
                      number: int) -> None:
        what = "ipset" if kind == "ipset" else "security group"
        if not name:
            self.diags.error(self.file, number, f"{what} section without a name; its lines "
                             "are ignored")
            return
        if not is_name(name):
            self.diags.error(self.file, number, f"invalid {what} name '{name}' (must start "
                             "with a letter, then letters, digits, '-' or '_'); its lines "
                             "are ignored")
            return
        if len(name) > MAX_OBJECT_NAME:
            self.diags.error(self.file, number, f"{what} name '{name[:20]}...' is longer than "
                             f"{MAX_OBJECT_NAME} characters; its lines are ignored")
            return
        origin = Origin(file=self.file, line=number)
        key = name.lower()
        table: dict[str, Ipset] | dict[str, SecurityGroup]
        table = self.out.ipsets if kind == "ipset" else self.out.groups
        if key in table:
            self.diags.warning(self.file, number, f"{what} '{name}' is defined again (first "
                               f"on line {table[key].origin.line}); this later definition "
                               "is used")
        if kind == "ipset":  # its comment becomes the nft sets' comment
            comment, problem = clean_comment(comment)
            if problem is not None:
                self.diags.warning(self.file, number, f"ipset '{name}': {problem}")
            self.ipset = Ipset(origin=origin, name=name, comment=comment)
            self.out.ipsets[key] = self.ipset
        else:
            self.group = SecurityGroup(origin=origin, name=key, comment=comment)
            self.out.groups[key] = self.group
        self.section = kind

    # --- section contents --------------------------------------------------------------

    def _content(self, line: str, number: int) -> None:
        origin = Origin(file=self.file, line=number)
        if self.section is None:
            self.diags.error(self.file, number, "line outside any section (expected a header "
                             "such as [OPTIONS] or [RULES] first)")
        elif self.section == "options":
            ctx = OptionContext(self.file, number, self.diags, self.now)
            self.out.options.add_line(line, ctx)
        elif self.section == "aliases":
            self._alias(line, origin)
        elif self.section == "rules":
            rule = parse_rule(line, origin, _RULE_SCOPE[self.kind], self.diags)
            if rule is not None:
                rule_refusals(rule, False, self.diags)
                self.out.rules.append(rule)
        elif self.section == "ipset" and self.ipset is not None:
            entry = self._ipset_entry(line, origin)
            if entry is not None:
                self.ipset.entries.append(entry)
        elif self.section == "group" and self.group is not None:
            rule = parse_rule(line, origin, "group", self.diags)
            if rule is not None:
                rule_refusals(rule, True, self.diags)
                self.group.rules.append(rule)
        # "skip": the header already has its diagnostic

    def _alias(self, line: str, origin: Origin) -> None:
        body, _, comment = line.partition("#")
        tokens = body.split()
        if len(tokens) != 2:
            self.diags.error(self.file, origin.line, "expected 'name address [# comment]' "
                             f"in [ALIASES], got '{line}'")
            return
        name, address = tokens
        if not is_name(name):
            self.diags.error(self.file, origin.line, f"invalid alias name '{name}' (must start "
                             "with a letter, then letters, digits, '-' or '_')")
            return
        try:
            cidr = parse_cidr(address)
        except ValueParseError as err:
            self.diags.error(self.file, origin.line, f"alias '{name}': {err}")
            return
        key = name.lower()
        if key in self.out.aliases:
            self.diags.warning(self.file, origin.line, f"alias '{name}' is defined again "
                               f"(first on line {self.out.aliases[key].origin.line}); this "
                               "later definition is used")
        self.out.aliases[key] = Alias(origin=origin, name=key, cidr=cidr,
                                      comment=comment.strip() or None)

    def _ipset_entry(self, line: str, origin: Origin) -> IpsetEntry | None:
        body, _, comment = line.partition("#")
        body = body.strip()
        nomatch = body.startswith("!")
        if nomatch:
            body = body[1:].strip()
        tokens = body.split()
        if len(tokens) != 1:
            self._bad_entry(origin, nomatch, "expected '[!] address [# comment]' in an "
                            f"ipset, got '{line}'")
            return None
        try:
            address = _ipset_address(tokens[0])
        except ValueParseError as err:
            self._bad_entry(origin, nomatch, str(err))
            return None
        if not isinstance(address, AliasRef) and address.network.prefixlen == 0:
            self.diags.warning(self.file, origin.line, f"ipset entry '{tokens[0]}' has prefix "
                               "length 0 and matches every address of its family")
        return IpsetEntry(origin=origin, nomatch=nomatch, address=address,
                          comment=comment.strip() or None)


    def _bad_entry(self, origin: Origin, nomatch: bool, message: str) -> None:
        if nomatch and self.ipset is not None:
            self.ipset.unusable_nomatch.append(origin.line)
            message += f"; ipset '{self.ipset.name}' is unusable in ACCEPT rules until fixed"
        self.diags.error(self.file, origin.line, message)


_RULE_SCOPE: Final[dict[FileKind, RuleScope]] = {
    "cluster": "cluster",
    "host": "host",
    "guest": "guest",
    "vnet": "vnet",
}


def _ipset_address(text: str) -> Cidr | AliasRef:
    """An ipset entry: one CIDR or IP, or an alias reference; no ranges, no lists."""
    if text.startswith("+"):
        raise ValueParseError(f"'{text}': an ipset cannot contain another ipset")
    if "," in text:
        raise ValueParseError(f"'{text}': lists are not allowed in an ipset, use one entry "
                              "per line")
    try:
        return parse_cidr(text)
    except ValueParseError:
        if _ALIAS_REF_TEXT_RE.fullmatch(text):
            return parse_alias_ref(text)
        if "-" in text:
            try:
                parse_ip_range(text)
            except ValueParseError:
                pass
            else:
                raise ValueParseError(f"'{text}': address ranges are not allowed in an "
                                      "ipset") from None
        raise


def _parse(text: str, file: str, kind: FileKind, diags: Diagnostics,
           now: float | None = None, tally: LineTally | None = None) -> _Parsed:
    parser = _FwParser(kind, file, diags, time.time() if now is None else now,
                       _Parsed(OptionCollector.new(kind)))
    if tally is not None:
        parser.tally = tally
    return parser.run(text)


def parse_cluster_fw(text: str, file: str, diags: Diagnostics, now: float | None = None,
                     tally: LineTally | None = None) -> ClusterFw:
    """``firewall/cluster.fw``. ``now`` is the clock for ``enable: <timestamp>``;
    ``tally`` (every parser takes one) counts the good and bad lines, see
    :mod:`proxmox_fw.parse.unusable`."""
    parsed = _parse(text, file, "cluster", diags, now, tally)
    return ClusterFw(
        file=file,
        present=True,
        options=ClusterOptions.model_validate(parsed.options.values),
        option_lines=dict(parsed.options.seen),
        aliases=parsed.aliases,
        ipsets=parsed.ipsets,
        rules=parsed.rules,
        groups=parsed.groups,
    )


def parse_host_fw(text: str, file: str, diags: Diagnostics,
                  tally: LineTally | None = None) -> HostFw:
    """``nodes/<node>/host.fw``."""
    parsed = _parse(text, file, "host", diags, tally=tally)
    return HostFw(
        file=file,
        present=True,
        options=HostOptions.model_validate(parsed.options.values),
        option_lines=dict(parsed.options.seen),
        rules=parsed.rules,
    )


def parse_guest_fw(text: str, file: str, diags: Diagnostics,
                   tally: LineTally | None = None) -> GuestFw:
    """``firewall/<vmid>.fw``."""
    parsed = _parse(text, file, "guest", diags, tally=tally)
    return GuestFw(
        file=file,
        present=True,
        options=GuestOptions.model_validate(parsed.options.values),
        option_lines=dict(parsed.options.seen),
        aliases=parsed.aliases,
        ipsets=parsed.ipsets,
        rules=parsed.rules,
    )


def parse_vnet_fw(text: str, file: str, name: str, diags: Diagnostics,
                  tally: LineTally | None = None) -> VnetFw:
    """``sdn/firewall/<name>.fw``: the forward firewall of one vnet (bridge)."""
    parsed = _parse(text, file, "vnet", diags, tally=tally)
    return VnetFw(
        file=file,
        name=name,
        options=VnetOptions.model_validate(parsed.options.values),
        option_lines=dict(parsed.options.seen),
        rules=parsed.rules,
    )
