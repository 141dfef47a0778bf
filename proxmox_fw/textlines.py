"""Lines of a text file exactly as Proxmox VE cuts them.

Python's ``str.splitlines()`` (and text-mode files, which turn a lone ``\\r`` into a
newline) also break lines at ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, NEL, U+2028/U+2029 and
a lone ``\\r``. Proxmox splits at ``\\n`` only (Perl's readline, Rust's ``lines()``), so
for it those characters sit inside a line -- often inside a comment. Splitting there too
would let a comment define a line of its own (a second ``net0:`` with ``firewall=0``).
Every reader of configuration or system text goes through :func:`split_lines`.
"""

from __future__ import annotations

from typing import Final

BOM: Final = "\ufeff"


def split_lines(text: str) -> list[str]:
    """``text`` cut at ``\\n`` only; the ``\\r`` of a ``\\r\\n`` pair goes with it (as
    Rust's ``lines()`` does), any other ``\\r`` stays part of its line."""
    *ended, last = text.split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in ended]
    if last:  # a final line without its newline; a newline at the end opens no new one
        lines.append(last)
    return lines


def strip_bom(text: str) -> str:
    """``text`` without a leading UTF-8 byte order mark (editors on other systems write
    one; it would otherwise glue itself to the first line, e.g. ``\\ufeff[OPTIONS]``)."""
    return text[1:] if text.startswith(BOM) else text
