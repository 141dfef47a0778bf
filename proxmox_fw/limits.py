"""What nftables and the kernel accept, checked where a value is parsed.

A value that reaches libnftables unchecked can make it refuse the whole ruleset (a NUL
in a comment, a 16-byte name where 15 fit) or make Python raise (``int("²")`` after
``"²".isdigit()`` said yes; ``int()`` of 5000 digits). Every parser checks numbers,
names and comments here, so a bad value costs its line with a file:line diagnostic.
Limits are in bytes where the kernel counts bytes.
"""

from __future__ import annotations

from typing import Any, Final

NFT_NAME_MAX_BYTES: Final = 255  # NFT_NAME_MAXLEN (256) with its NUL
NFT_COMMENT_MAX_BYTES: Final = 128  # NFTNL_UDATA_COMMENT_MAXLEN
IFNAME_MAX_BYTES: Final = 15  # IFNAMSIZ (16) with its NUL
VMID_MAX: Final = 999_999_999  # pve-vmid: at most nine digits
U32_MAX: Final = 2**32 - 1
U64_MAX: Final = 2**64 - 1
_ASCII_DIGITS: Final = frozenset("0123456789")


def ascii_uint(text: str, lo: int = 0, hi: int = U64_MAX) -> int | None:
    """The number ``text`` spells in ASCII digits if it lies in ``lo..hi``, else None.

    Not ``str.isdigit()`` (true for ``²``, which ``int()`` refuses) and not ``int()``
    alone (it takes ``٣``, ``1_000`` and spaces, and raises beyond 4300 digits)."""
    if not text or not _ASCII_DIGITS.issuperset(text):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(hi)):
        return None
    value = int(digits)
    return value if lo <= value <= hi else None


def json_uint(value: Any, lo: int = 0, hi: int = U64_MAX) -> int | None:
    """A JSON integer (not a boolean) or a string of ASCII digits in ``lo..hi``."""
    if isinstance(value, str):
        return ascii_uint(value, lo, hi)
    if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
        return value
    return None


def text_problem(text: str, max_bytes: int) -> str | None:
    """Why ``text`` cannot be an nft string of at most ``max_bytes`` bytes, or None."""
    if any(not c.isprintable() and c != " " for c in text):
        return "contains control or invalid characters"
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        return f"is {size} bytes long (at most {max_bytes})"
    return None


def ifname_problem(name: str) -> str | None:
    """Why ``name`` cannot be a network interface name (the kernel's rules), or None."""
    if not name or name in (".", ".."):
        return "is not a valid interface name"
    if any(c in "/:" or c.isspace() for c in name):
        return "contains '/', ':' or white space"
    return text_problem(name, IFNAME_MAX_BYTES)


def clean_comment(text: str | None) -> tuple[str | None, str | None]:
    """A comment as nft can store it, and a warning when it had to change: one with
    control characters is dropped, a long one cut at a character boundary."""
    if text is None:
        return None, None
    if any(not c.isprintable() and c != " " for c in text):
        return None, "comment contains control or invalid characters; dropped"
    raw = text.encode("utf-8")
    if len(raw) <= NFT_COMMENT_MAX_BYTES:
        return text, None
    cut = raw[:NFT_COMMENT_MAX_BYTES].decode("utf-8", errors="ignore")
    return cut, f"comment longer than {NFT_COMMENT_MAX_BYTES} bytes; shortened"


def shown(text: str) -> str:
    """``text`` safe to print in a message: unprintable characters (NUL, a lone
    surrogate from an undecodable file name) as escapes."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
