"""What the kernel holds of our nftables tables, read over netlink without libnftables.

libnftables 1.0.6 is unfit for the daemon's polling: ``list tables`` fills its cache with
every set element of every table (CPU in proportion to a 100k-entry blacklist, each poll),
and its JSON output of a table carrying exactly one flag (``dormant``, ``owner``,
``persist``: another program's table) reads freed memory, which returns garbage and then
aborts the process. So the daemon and ``status`` ask the kernel directly, and only about
what they need, on a raw ``NETLINK_NETFILTER`` socket:

- the ruleset generation (``NFT_MSG_GETGEN``), bumped by every committed transaction;
- one of our tables by family and name (``NFT_MSG_GETTABLE`` without dump: one reply or
  ENOENT), so other tables are never read at all;
- the shape of one table (:func:`table_shape`): its flags and object count, chains, set
  declarations, stateful objects and rules, with what moves on its own left out
  (counters, quotas, set elements). Rule and set dumps are filtered to the table by the
  kernel; set elements are never requested, so the cost follows our rule count only.

Every request is O(1) in the size of the ruleset except :func:`table_shape`, which the
daemon calls only when the generation moved.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from proxmox_fw.nfnetlink import NLA_TYPE_MASK, attr
from proxmox_fw.nft.objects import BRIDGE, GUEST_TABLE, HOST_TABLE, INET

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10

# enum nf_tables_msg_types
NFT_MSG_NEWTABLE = 0
NFT_MSG_GETTABLE = 1
NFT_MSG_NEWCHAIN = 3
NFT_MSG_GETCHAIN = 4
NFT_MSG_NEWRULE = 6
NFT_MSG_GETRULE = 7
NFT_MSG_NEWSET = 9
NFT_MSG_GETSET = 10
NFT_MSG_NEWGEN = 15
NFT_MSG_GETGEN = 16
NFT_MSG_NEWOBJ = 18
NFT_MSG_GETOBJ = 19

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3

NFTA_GEN_ID = 1
NFTA_TABLE_NAME, NFTA_TABLE_FLAGS, NFTA_TABLE_USE, NFTA_TABLE_HANDLE = 1, 2, 3, 4
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, NFTA_CHAIN_USE = 1, 3, 6
NFTA_CHAIN_COUNTERS, NFTA_CHAIN_PAD = 8, 9
NFTA_RULE_TABLE, NFTA_RULE_CHAIN = 1, 2
NFTA_SET_TABLE, NFTA_SET_PAD, NFTA_SET_COUNT = 1, 14, 20  # COUNT: elements (kernel 6.x)
NFTA_OBJ_TABLE, NFTA_OBJ_TYPE, NFTA_OBJ_DATA, NFTA_OBJ_USE, NFTA_OBJ_PAD = 1, 3, 4, 5, 7
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 2

NFT_OBJECT_COUNTER, NFT_OBJECT_QUOTA = 1, 2
# Expressions whose dumped data moves with traffic, not with transactions.
_STATEFUL_EXPRS = (b"counter\0", b"quota\0", b"last\0")
# Their NFTA_EXPR_NAME attributes as the kernel writes them (length, type 1, name, padding).
_STATEFUL_NAME_ATTR = re.compile(
    rb"\x0c\x00\x01\x00counter\x00|\x0a\x00\x01\x00quota\x00\x00\x00|\x09\x00\x01\x00last\x00{4}"
)

# Table flags (NFT_TABLE_F_*): what another program's table may carry.
TABLE_F_DORMANT = 0x1
TABLE_F_OWNER = 0x2
TABLE_F_PERSIST = 0x4

FAMILIES = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}
_FAMILY_NAMES = {number: name for name, number in FAMILIES.items()}

_RECV_BUFFER = 1 << 18  # a dump part is at most 32 KiB; a reply to a GET is smaller
_DUMP_ATTEMPTS = 5  # a dump the ruleset changed under is retried this often


T = TypeVar("T")
TableNames = tuple[tuple[str, str], ...]  # ((family, name), ...)
OUR_TABLES: TableNames = ((INET, HOST_TABLE), (BRIDGE, GUEST_TABLE))


class KernelStateError(OSError):
    """The kernel could not be asked, or answered with an error other than ENOENT."""


@dataclass(frozen=True, slots=True)
class TableState:
    """One table as the kernel reports it."""

    family: str  # "inet", "bridge", ...
    name: str
    handle: int  # new whenever the table is deleted and created again
    flags: int  # TABLE_F_*
    use: int  # chains, sets, stateful objects and flowtables in it

    @property
    def label(self) -> str:
        return f"{self.family} {self.name}"


@dataclass(frozen=True, slots=True)
class TableShape:
    """A table's structure without what moves on its own: equal digests mean nobody
    added, removed or changed a chain, rule, set declaration or object in it."""

    table: TableState
    chains: int
    sets: int
    objects: int
    rules: int
    digest: str  # sha256 over the table's flags and all of the above


@dataclass(frozen=True, slots=True)
class KernelSnapshot:
    """Our tables' shapes, all as of the same ruleset generation."""

    generation: int
    shapes: dict[str, TableShape]  # the tables that exist, by label

    def handles(self) -> dict[str, int]:
        return {label: shape.table.handle for label, shape in self.shapes.items()}


@dataclass(frozen=True, slots=True)
class _Message:
    kind: int  # NFT_MSG_*
    family: int
    flags: int  # nlmsg flags (NLM_F_DUMP_INTR)
    attrs: bytes  # the attributes after the nfgenmsg header


# -- attributes ------------------------------------------------------------------------
def _str_attr(atype: int, value: str) -> bytes:
    return attr(atype, value.encode() + b"\0")


def iter_attrs(
    buf: bytes, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) of each attribute in ``buf[start:end]``."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 4 <= end:
        alen, atype = struct.unpack_from("=HH", buf, pos)
        if alen < 4 or pos + alen > end:
            raise KernelStateError(0, "malformed netlink attribute")
        yield atype & NLA_TYPE_MASK, pos + 4, pos + alen
        pos += (alen + 3) & ~3


def _attr_map(buf: bytes) -> dict[int, bytes]:
    return {atype: buf[a:b] for atype, a, b in iter_attrs(buf)}


def _be32(value: bytes | None) -> int:
    return struct.unpack(">I", value)[0] if value and len(value) == 4 else 0


def _be64(value: bytes | None) -> int:
    return struct.unpack(">Q", value)[0] if value and len(value) == 8 else 0


def _cstr(value: bytes | None) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace") if value else ""


def _family_number(family: str) -> int:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown nftables family {family!r}") from None


# -- the socket --------------------------------------------------------------------------
class NftNetlink:
    """One netlink socket to the nftables subsystem of the calling thread's namespace.

    Open it on the thread that is in the wanted network namespace (see
    :mod:`proxmox_fw.nft.netns`). Every method raises :class:`KernelStateError` when the
    kernel cannot be asked.
    """

    def __init__(self, timeout: float = 2.0) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as exc:
            raise KernelStateError(exc.errno or 0, f"netlink socket: {exc}") from exc
        self._sock.settimeout(timeout)
        self._seq = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        self._buf = bytearray(_RECV_BUFFER)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NftNetlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, msg: int, family: int, attrs: bytes, dump: bool) -> list[_Message]:
        """Send one request; its replies (all parts of a dump). ENOENT gives []."""
        self._seq = (self._seq + 1) & 0x7FFFFFFF
        seq = self._seq
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        body = struct.pack("=BBH", family, 0, 0) + attrs  # nfgenmsg: family, version, res_id
        header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_NFTABLES << 8) | msg,
                             flags, seq, 0)
        try:
            self._sock.send(header + body)
            return self._replies(seq, dump)
        except OSError as exc:
            if isinstance(exc, KernelStateError):
                raise
            raise KernelStateError(exc.errno or 0, f"netlink: {exc}") from exc

    def _replies(self, seq: int, dump: bool) -> list[_Message]:
        out: list[_Message] = []
        view = memoryview(self._buf)
        while True:
            size, _anc, mflags, _addr = self._sock.recvmsg_into([view])
            if mflags & socket.MSG_TRUNC:
                raise KernelStateError(0, "netlink reply larger than the receive buffer")
            data = bytes(view[:size])
            pos = 0
            while pos + 16 <= size:
                length, kind, nflags, rseq, _pid = struct.unpack_from("=IHHII", data, pos)
                if length < 16 or pos + length > size:
                    raise KernelStateError(0, "malformed netlink message")
                if rseq == seq:
                    if kind in (NLMSG_ERROR, NLMSG_DONE):
                        err = struct.unpack_from("=i", data, pos + 16)[0] if length >= 20 else 0
                        if err == -2:  # ENOENT: no such table
                            return []
                        if err:
                            raise KernelStateError(-err, os.strerror(-err))
                        if kind == NLMSG_DONE or not dump:
                            return out
                    elif kind >> 8 == NFNL_SUBSYS_NFTABLES:
                        family = data[pos + 16]
                        out.append(_Message(kind & 0xFF, family, nflags,
                                            data[pos + 20 : pos + length]))
                        if not dump:
                            return out
                pos += (length + 3) & ~3

    def _dump(self, msg: int, family: int, attrs: bytes = b"") -> list[_Message]:
        """A complete dump, taken again if the ruleset changed while it was read."""
        for _ in range(_DUMP_ATTEMPTS):
            parts = self._request(msg, family, attrs, dump=True)
            if not any(part.flags & NLM_F_DUMP_INTR for part in parts):
                return parts
        raise KernelStateError(0, "the ruleset kept changing during the dump")

    # -- questions ------------------------------------------------------------------------
    def generation(self) -> int:
        """The ruleset generation id: moves with every committed transaction (anyone's)."""
        for reply in self._request(NFT_MSG_GETGEN, socket.AF_UNSPEC, b"", dump=False):
            if reply.kind == NFT_MSG_NEWGEN:
                gen = _attr_map(reply.attrs).get(NFTA_GEN_ID)
                if gen is not None and len(gen) == 4:
                    return _be32(gen)
        raise KernelStateError(0, "no generation in the kernel's reply")

    def table(self, family: str, name: str) -> TableState | None:
        """One table by family and name (None: there is none); no other table is read."""
        replies = self._request(NFT_MSG_GETTABLE, _family_number(family),
                                _str_attr(NFTA_TABLE_NAME, name), dump=False)
        for reply in replies:
            if reply.kind == NFT_MSG_NEWTABLE:
                return _table_state(reply)
        return None

    def tables(self, family: str | None = None) -> list[TableState]:
        """Every table (of one family): each is a handful of bytes, whatever it holds."""
        number = socket.AF_UNSPEC if family is None else _family_number(family)
        return [_table_state(m) for m in self._dump(NFT_MSG_GETTABLE, number)
                if m.kind == NFT_MSG_NEWTABLE]

    def snapshot(self, tables: TableNames) -> KernelSnapshot:
        """The shapes of those of ``tables`` that exist, all as of one generation."""
        for _ in range(_DUMP_ATTEMPTS):
            before = self.generation()
            found = (self.table_shape(family, name) for family, name in tables)
            shapes = {s.table.label: s for s in found if s is not None}
            if self.generation() == before:
                return KernelSnapshot(before, shapes)
        raise KernelStateError(0, "the ruleset kept changing while reading our tables")

    def table_shape(self, family: str, name: str) -> TableShape | None:
        """The shape of one table (None: there is none). A transaction committed while
        it is read may show in part: :meth:`snapshot` retries until none did."""
        table = self.table(family, name)
        if table is None:
            return None
        number = _family_number(family)
        key = name.encode() + b"\0"
        digest = hashlib.sha256(struct.pack(">II", table.flags, table.use))
        chains: list[str] = []
        for m in self._dump(NFT_MSG_GETCHAIN, number):  # the kernel cannot filter these
            attrs = _attr_map(m.attrs)
            if m.kind != NFT_MSG_NEWCHAIN or attrs.get(NFTA_CHAIN_TABLE) != key:
                continue
            chains.append(_cstr(attrs.get(NFTA_CHAIN_NAME)))
            _digest_attrs(digest, b"C", attrs,
                          skip=(NFTA_CHAIN_USE, NFTA_CHAIN_COUNTERS, NFTA_CHAIN_PAD))
        sets = 0
        for m in self._dump(NFT_MSG_GETSET, number, _str_attr(NFTA_SET_TABLE, name)):
            if m.kind == NFT_MSG_NEWSET:
                sets += 1
                _digest_attrs(digest, b"S", _attr_map(m.attrs), skip=(NFTA_SET_PAD, NFTA_SET_COUNT))
        objects = 0
        for m in self._dump(NFT_MSG_GETOBJ, number, _str_attr(NFTA_OBJ_TABLE, name)):
            if m.kind == NFT_MSG_NEWOBJ:
                objects += 1
                attrs = _attr_map(m.attrs)
                skip: tuple[int, ...] = (NFTA_OBJ_USE, NFTA_OBJ_PAD)
                if _be32(attrs.get(NFTA_OBJ_TYPE)) in (NFT_OBJECT_COUNTER, NFT_OBJECT_QUOTA):
                    skip += (NFTA_OBJ_DATA,)
                _digest_attrs(digest, b"O", attrs, skip=skip)
        # One dump per chain: the kernel finds a chain by name, while each part of a
        # dump of the whole table walks again past every rule already sent.
        rules = 0
        table_attr = _str_attr(NFTA_RULE_TABLE, name)
        for chain in chains:
            found = [m.attrs for m in self._dump(NFT_MSG_GETRULE, number,
                                                 table_attr + _str_attr(NFTA_RULE_CHAIN, chain))
                     if m.kind == NFT_MSG_NEWRULE]
            rules += len(found)
            digest.update(b"R%d|" % len(found))
            digest.update(_without_state(b"".join(found)))
        return TableShape(table, len(chains), sets, objects, rules, digest.hexdigest())


def _table_state(message: _Message) -> TableState:
    attrs = _attr_map(message.attrs)
    return TableState(
        family=_FAMILY_NAMES.get(message.family, str(message.family)),
        name=_cstr(attrs.get(NFTA_TABLE_NAME)),
        handle=_be64(attrs.get(NFTA_TABLE_HANDLE)),
        flags=_be32(attrs.get(NFTA_TABLE_FLAGS)),
        use=_be32(attrs.get(NFTA_TABLE_USE)),
    )


def _digest_attrs(digest: hashlib._Hash, tag: bytes, attrs: dict[int, bytes],
                  skip: tuple[int, ...]) -> None:
    digest.update(tag)
    for atype in sorted(attrs):
        if atype not in skip:
            value = attrs[atype]
            digest.update(struct.pack("=HI", atype, len(value)))
            digest.update(value)


def _without_state(attrs: bytes) -> bytes:
    """Rules' attributes with the data of their counters (and quotas, ``last``) zeroed:
    traffic moves them, transactions do not. Patched where an expression element starts
    with such a name; rules without any are used as they are."""
    if not any(name in attrs for name in _STATEFUL_EXPRS):
        return attrs
    out = bytearray(attrs)
    for match in _STATEFUL_NAME_ATTR.finditer(attrs):
        start, data = match.start(), match.end()
        if start < 4 or data + 4 > len(attrs):
            continue
        elem_type = struct.unpack_from("=H", attrs, start - 2)[0]
        dlen, dtype = struct.unpack_from("=HH", attrs, data)
        if elem_type & NLA_TYPE_MASK != NFTA_LIST_ELEM or dtype & NLA_TYPE_MASK != NFTA_EXPR_DATA:
            continue
        end = min(data + dlen, len(attrs))
        out[data + 4 : end] = bytes(end - data - 4)
    return bytes(out)


# -- one-shot helpers (a socket per call) --------------------------------------------------
def read_generation() -> int:
    """The current ruleset generation of this thread's namespace."""
    with NftNetlink() as nl:
        return nl.generation()


def read_tables(tables: TableNames) -> dict[str, TableState]:
    """Those of ``tables`` that exist, by label."""
    with NftNetlink() as nl:
        found = (nl.table(family, name) for family, name in tables)
        return {t.label: t for t in found if t is not None}


def our_table_handles() -> dict[str, int] | None:
    """Handles of the firewall tables present (``"inet proxmox-firewall"`` → handle);
    None when the kernel cannot be asked. A table deleted and created again by someone
    else comes back with a new handle."""
    tables = NetlinkReader().present(OUR_TABLES)
    return None if tables is None else {label: t.handle for label, t in tables.items()}


def read_snapshot(tables: TableNames) -> KernelSnapshot:
    """The shapes of those of ``tables`` that exist, as of one generation."""
    with NftNetlink() as nl:
        return nl.snapshot(tables)


class KernelReader(Protocol):
    """What the daemon, ``status`` and the tools ask the kernel about our tables; None
    means the kernel could not be asked. :class:`NetlinkReader` is the real one; the
    daemon's loop tests answer from a fake ruleset."""

    def generation(self) -> int | None: ...

    def present(self, tables: TableNames) -> dict[str, TableState] | None: ...

    def snapshot(self, tables: TableNames) -> KernelSnapshot | None: ...


class NetlinkReader:
    """:class:`KernelReader` over netlink, in the namespace of the calling thread; the
    last failure is kept in ``error``."""

    def __init__(self) -> None:
        self.error = ""

    def _ask(self, question: Callable[[], T]) -> T | None:
        try:
            answer = question()
        except KernelStateError as exc:
            self.error = str(exc)
            return None
        self.error = ""
        return answer

    def generation(self) -> int | None:
        return self._ask(read_generation)

    def present(self, tables: TableNames) -> dict[str, TableState] | None:
        return self._ask(lambda: read_tables(tables))

    def snapshot(self, tables: TableNames) -> KernelSnapshot | None:
        return self._ask(lambda: read_snapshot(tables))
