"""The ``netN:`` lines of a guest config (``qemu-server/<vmid>.conf``, ``lxc/<vmid>.conf``).

Only the main section counts: snapshots, ``[PENDING]`` and ``[special:...]`` sections
follow the first ``[`` line and describe states that are not running. A NIC whose
line cannot be understood is reported with its line and skipped; the guest's other
NICs still load. Values the firewall relies on (MAC, ``firewall``, container
addresses) make a NIC unusable when malformed; values it never uses (``bridge``,
``tag``) only cost themselves.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.limits import ascii_uint, ifname_problem, shown
from proxmox_fw.model import Cidr, GuestKind, Nic, Origin
from proxmox_fw.parse.unusable import LineTally
from proxmox_fw.textlines import split_lines

MAX_NIC_INDEX = 31  # PVE allows net0..net31 (32 NICs)

# Every model qemu-server accepts (its $nic_model_list).
QEMU_NIC_MODELS = frozenset(
    {
        "virtio", "e1000", "e1000e", "e1000-82540em", "e1000-82544gc", "e1000-82545em",
        "i82551", "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139",
        "vmxnet3",
    }
)

_NIC_KEY_RE = re.compile(r"net([0-9]+)")
# Any line of a guest config (qemu-server and pve-container share the form), and the
# header of a snapshot, [PENDING] or [special:...] section.
_KEY_LINE_RE = re.compile(r"[a-z][a-z_]*[0-9]*:\s*\S")
_SECTION_RE = re.compile(r"\[[A-Za-z0-9_:.-]+\]")
_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_BOOLS = {
    "1": True, "true": True, "yes": True, "on": True,
    "0": False, "false": False, "no": False, "off": False,
}


class NicError(ValueError):
    """A NIC value the firewall cannot do without: the NIC is skipped."""


@dataclass(slots=True)
class _Ctx:
    file: str
    line: int
    key: str
    diags: Diagnostics

    def warn(self, message: str) -> None:
        self.diags.warning(self.file, self.line, f"{self.key}: {message}")


def parse_guest_conf(
    text: str, file: str, kind: GuestKind | None, diags: Diagnostics,
    tally: LineTally | None = None,
) -> dict[int, Nic]:
    """NICs of the main section by index. ``kind`` None: decide per line (qemu or lxc)."""
    nics: dict[int, Nic] = {}
    tally = tally if tally is not None else LineTally()
    for lineno, raw in enumerate(split_lines(text), start=1):
        line = raw.strip()
        if raw.startswith("["):
            tally.count(_SECTION_RE.fullmatch(line) is not None)
            break
        if not line or line.startswith("#"):
            continue
        tally.count(_KEY_LINE_RE.match(line) is not None)
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key.startswith("net"):
            continue
        match = _NIC_KEY_RE.fullmatch(key)
        if match is None:
            continue  # some other key that merely starts with "net"
        digits = match.group(1)
        index = ascii_uint(digits, 0, MAX_NIC_INDEX)
        if index is None or digits != str(index):
            diags.error(file, lineno, f"{key}: invalid NIC key (net0..net{MAX_NIC_INDEX})")
            continue
        if index in nics:
            diags.error(file, lineno, f"{key}: duplicate NIC, first definition kept")
            continue
        nic = _parse_nic(value.strip(), index, kind, _Ctx(file, lineno, key, diags))
        if nic is not None:
            nics[index] = nic
    return nics


def _parse_nic(value: str, index: int, kind: GuestKind | None, ctx: _Ctx) -> Nic | None:
    """One ``netN`` value, or None (after an error diagnostic) when it is unusable.

    The guest's kind decides the format; a line that only makes sense in the other
    kind's format (a config moved by hand) is still used, with a warning.
    """
    try:
        props = split_property_string(value)
    except NicError as exc:
        return _unparsed(index, ctx, str(exc))
    if kind is None:
        kind = "lxc" if "hwaddr" in props or "type" in props else "qemu"
    first = _attempt(kind, props, index, ctx)
    if isinstance(first, Nic):
        return first
    other: GuestKind = "lxc" if kind == "qemu" else "qemu"
    scratch = Diagnostics()
    second = _attempt(other, props, index, replace(ctx, diags=scratch))
    if isinstance(second, Nic):
        ctx.warn(f"not a {kind} NIC but a valid {other} one ({first}); used as {other}")
        ctx.diags.extend(scratch)
        return second
    return _unparsed(index, ctx, str(first))


def _unparsed(index: int, ctx: _Ctx, why: str) -> Nic:
    """A NIC whose line cannot be understood, firewalled as closed as possible: its
    ``firewall`` flag may be what is broken, and skipping it would leave the port open."""
    ctx.diags.error(ctx.file, ctx.line,
                    f"{ctx.key}: {why}; everything the guest sends on this NIC is dropped")
    return Nic(origin=Origin(file=ctx.file, line=ctx.line), index=index, firewall=True,
               unparsed=True)


def _attempt(kind: GuestKind, props: dict[str, str], index: int, ctx: _Ctx) -> Nic | NicError:
    """The NIC in ``kind``'s format, or why not; warnings go to ``ctx`` only on success."""
    scratch = Diagnostics()
    origin = Origin(file=ctx.file, line=ctx.line)
    build = _qemu_nic if kind == "qemu" else _lxc_nic
    try:
        nic = build(props, index, origin, replace(ctx, diags=scratch))
    except NicError as exc:
        return exc
    ctx.diags.extend(scratch)
    return nic


def split_property_string(value: str) -> dict[str, str]:
    """``a=1,b=2`` → dict. A bare item (``virtio``) is stored under the empty key."""
    props: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        key, val = (key.strip(), val.strip()) if sep else ("", key.strip())
        if key in props:
            shown = key or "(default)"
            raise NicError(f"duplicate property {shown!r}")
        props[key] = val
    if not props:
        raise NicError("empty NIC definition")
    return props


def _qemu_nic(props: dict[str, str], index: int, origin: Origin, ctx: _Ctx) -> Nic:
    model: str | None = props.get("model", props.get(""))
    mac = props.get("macaddr")
    for key, val in props.items():
        if key in QEMU_NIC_MODELS:  # "<model>=<MAC>" shorthand
            if model is not None and model != key:
                raise NicError(f"two NIC models: {model!r} and {key!r}")
            if mac is not None and mac.upper() != val.upper():
                raise NicError("two different MAC addresses")
            model, mac = key, val
    if model is None:
        # "<unknown>=<MAC>": a model this version does not know, in shorthand form
        guess = [k for k, v in props.items()
                 if k not in _QEMU_KEYS and k != "hwaddr" and _MAC_RE.fullmatch(v)]
        if len(guess) == 1:
            model = guess[0]
            mac = mac or props[model]
    if model is None:
        ctx.warn("no NIC model given")
    elif model not in QEMU_NIC_MODELS:
        ctx.warn(f"unknown NIC model {model!r}")
    return Nic(
        origin=origin,
        index=index,
        model=model,
        mac=_mac(mac, "macaddr"),
        bridge=_bridge(props.get("bridge"), ctx),
        firewall=_bool(props.get("firewall"), "firewall"),
        tag=_tag(props.get("tag"), ctx),
    )


def _lxc_nic(props: dict[str, str], index: int, origin: Origin, ctx: _Ctx) -> Nic:
    nic_type = props.get("type")
    if nic_type is not None and nic_type != "veth":
        raise NicError(f"unsupported container NIC type {nic_type!r} (only veth)")
    if "" in props:
        ctx.warn(f"ignoring property without a name: {props['']!r}")
    return Nic(
        origin=origin,
        index=index,
        mac=_mac(props.get("hwaddr"), "hwaddr"),
        bridge=_bridge(props.get("bridge"), ctx),
        firewall=_bool(props.get("firewall"), "firewall"),
        tag=_tag(props.get("tag"), ctx),
        ip=_ct_address(props.get("ip"), 4, {"dhcp", "manual"}),
        ip6=_ct_address(props.get("ip6"), 6, {"dhcp", "auto", "manual"}),
    )


# Keys qemu-server defines for a NIC besides the model names.
_QEMU_KEYS = frozenset(
    {"", "model", "macaddr", "bridge", "firewall", "tag", "trunks", "rate", "queues",
     "mtu", "link_down"}
)


def _mac(value: str | None, key: str) -> str:
    if value is None or not value:
        raise NicError("no MAC address")
    if not _MAC_RE.fullmatch(value):
        raise NicError(f"invalid MAC address {key}={value!r}")
    return value.upper()


def _bool(value: str | None, key: str) -> bool:
    if value is None:
        return False
    try:
        return _BOOLS[value.lower()]
    except KeyError:
        raise NicError(f"invalid boolean {key}={value!r}") from None


def _bridge(value: str | None, ctx: _Ctx) -> str | None:
    if value is None:
        return None
    problem = ifname_problem(value)
    if problem is not None:
        ctx.warn(f"bridge name {shown(value)!r} {problem}; ignored")
        return None
    return value


def _tag(value: str | None, ctx: _Ctx) -> int | None:
    if value is None:
        return None
    tag = ascii_uint(value, 1, 4094)
    if tag is None:
        ctx.warn(f"invalid VLAN tag {shown(value)!r} ignored (1-4094)")
    return tag


def _ct_address(value: str | None, version: int, keywords: set[str]) -> Cidr | None:
    """A literal container address, or None for the keywords (dhcp, auto, manual)."""
    if value is None or value in keywords:
        return None
    key = "ip" if version == 4 else "ip6"
    try:
        addr = ipaddress.ip_interface(value)
    except ValueError:
        raise NicError(f"invalid address {key}={value!r}") from None
    if addr.version != version:
        raise NicError(f"{key}={value!r} is not an IPv{version} address")
    return addr
