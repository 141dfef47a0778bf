"""``/etc/pve/corosync.conf``: the cluster's nodes and their corosync link addresses.

The format is corosync's own: ``name {`` opens a section, ``}`` closes it, and
``key: value`` sets an option. Only ``nodelist``/``node`` and ``totem`` matter to the
firewall. A malformed line is reported and skipped; a node without a usable name is
skipped; everything else still loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.limits import U32_MAX, ascii_uint, shown
from proxmox_fw.model import Corosync, CorosyncNode
from proxmox_fw.parse.unusable import LineTally
from proxmox_fw.textlines import split_lines

MAX_LINK = 7  # knet supports links 0..7
_LINK_KEY_RE = re.compile(r"(?:ring|link)([0-9]+)_addr")
_SECTION_RE = re.compile(r"([^\s{}:]+)\s*\{")
_OPTION_RE = re.compile(r"([^\s{}:]+)\s*:\s*(.*)")
# What a real corosync.conf line looks like (the parser itself is more lenient): one line
# of this shape tells a damaged file from random bytes that happen to hold a colon.
_PLAIN_LINE_RE = re.compile(r"}|[\w.-]+\s*(?:\{|:\s*[\x20-\x7e]*)")


@dataclass(slots=True)
class Section:
    """One ``name { ... }`` block with its options and sub-blocks in file order."""

    name: str
    line: int
    options: list[tuple[str, str, int]] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)

    def sections(self, name: str) -> list[Section]:
        return [child for child in self.children if child.name == name]

    def option(self, key: str) -> str | None:
        """The last value set for ``key`` (later lines win, as in corosync)."""
        found = [value for k, value, _ in self.options if k == key]
        return found[-1] if found else None


def parse_corosync(text: str, file: str, diags: Diagnostics,
                   tally: LineTally | None = None) -> Corosync:
    root = parse_sections(text, file, diags, tally)
    nodes: list[CorosyncNode] = []
    seen: set[str] = set()
    for nodelist in root.sections("nodelist"):
        for section in nodelist.sections("node"):
            node = _node(section, file, diags)
            if node is None:
                continue
            if node.name in seen:
                diags.error(file, section.line, f"duplicate node {node.name!r}, skipped")
                continue
            seen.add(node.name)
            nodes.append(node)
    totem = root.sections("totem")
    transport = ip_version = None
    if totem:
        transport = totem[-1].option("transport")
        ip_version = totem[-1].option("ip_version")
    return Corosync(present=True, nodes=nodes, transport=transport, ip_version=ip_version)


def parse_sections(text: str, file: str, diags: Diagnostics,
                   tally: LineTally | None = None) -> Section:
    """The whole file as a tree under an unnamed root section."""
    root = Section(name="", line=0)
    stack = [root]
    tally = tally if tally is not None else LineTally()
    for lineno, raw in enumerate(split_lines(text), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            taken = _line(line, lineno, stack, file, diags)
            tally.count(taken and _PLAIN_LINE_RE.fullmatch(line) is not None)
    for section in stack[1:]:
        diags.error(file, section.line, f"section {section.name!r} is not closed")
    return root


def _line(line: str, lineno: int, stack: list[Section], file: str, diags: Diagnostics) -> bool:
    """Take one content line into the section tree; False (reported) when it is bad."""
    if line == "}":
        if len(stack) == 1:
            diags.error(file, lineno, "'}' without an open section, ignored")
            return False
        stack.pop()
    elif match := _SECTION_RE.fullmatch(line):
        section = Section(name=match.group(1), line=lineno)
        stack[-1].children.append(section)
        stack.append(section)
    elif match := _OPTION_RE.fullmatch(line):
        stack[-1].options.append((match.group(1), match.group(2).strip(), lineno))
    else:
        diags.error(file, lineno, f"cannot parse line {line!r}, ignored")
        return False
    return True


def _node(section: Section, file: str, diags: Diagnostics) -> CorosyncNode | None:
    links: dict[int, str] = {}
    for key, value, line in section.options:
        match = _LINK_KEY_RE.fullmatch(key)
        if match is None:
            continue
        number = ascii_uint(match.group(1), 0, MAX_LINK)
        if number is None:
            diags.warning(file, line, f"{key}: link number above {MAX_LINK}, ignored")
        elif not value:
            diags.warning(file, line, f"{key}: empty address, ignored")
        elif number in links:
            diags.warning(file, line, f"{key}: link {number} already has an address, ignored")
        else:
            links[number] = value
    name = section.option("name")
    if not name:
        if 0 not in links:
            diags.error(file, section.line, "node without name or link 0 address, skipped")
            return None
        name = links[0]
        diags.warning(file, section.line, f"node without name, using its address {name!r}")
    nodeid: int | None = None
    raw_id = section.option("nodeid")
    if raw_id is not None:
        nodeid = ascii_uint(raw_id, 1, U32_MAX)
        if nodeid is None:
            diags.warning(file, section.line, f"node {name!r}: invalid nodeid "
                          f"{shown(raw_id)!r} (1-{U32_MAX})")
    return CorosyncNode(name=name, nodeid=nodeid, links=links)
