"""Port names for ``-dport``/``-sport``, read from ``/etc/services``.

Like the Rust daemon, every protocol's entries and every alias count (``www`` is 80);
the first definition of a name wins.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

from proxmox_fw.limits import ascii_uint
from proxmox_fw.textlines import split_lines

ETC_SERVICES: Final = Path("/etc/services")


def parse_services(text: str) -> dict[str, int]:
    """Name (and alias) -> port for the lines of a services(5) file."""
    ports: dict[str, int] = {}
    for raw in split_lines(text):
        fields = raw.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        port_text, _, _proto = fields[1].partition("/")
        port = ascii_uint(port_text, 0, 65535)
        if port is None:
            continue
        for name in (fields[0], *fields[2:]):
            ports.setdefault(name, port)
    return ports


@cache
def services(path: Path = ETC_SERVICES) -> dict[str, int]:
    """The system's port names; empty if the file cannot be read (names then fail)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return {}
    return parse_services(text)


def port_by_name(name: str) -> int | None:
    """The port of a service name, exact spelling first, then lowercased."""
    table = services()
    port = table.get(name)
    return port if port is not None else table.get(name.lower())
