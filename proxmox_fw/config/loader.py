"""Reads every input of one node from a :class:`ConfigSource` into a :class:`PveConfig`.

A missing file means what it means on a real node (cluster.fw → firewall disabled,
host.fw → defaults, no ``<vmid>.fw`` → guest firewall disabled). A broken file costs
what it must and no more: the parsers report and skip bad pieces, an unparsable JSON
file counts as missing, and everything else still loads. Nothing here raises.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar, cast

from proxmox_fw.config.source import ConfigSource, Fingerprint
from proxmox_fw.diagnostics import Diagnostic, Diagnostics, Severity
from proxmox_fw.limits import ifname_problem, shown
from proxmox_fw.model import (
    ClusterFw,
    Corosync,
    Guest,
    GuestFw,
    GuestKind,
    HostFw,
    Ipam,
    Nic,
    PveConfig,
    Sdn,
    VmListEntry,
    VnetFw,
)
from proxmox_fw.parse.corosync import parse_corosync
from proxmox_fw.parse.fwfile import parse_cluster_fw, parse_guest_fw, parse_host_fw, parse_vnet_fw
from proxmox_fw.parse.guestconf import parse_guest_conf
from proxmox_fw.parse.ipam import parse_ipam
from proxmox_fw.parse.sdn import parse_sdn
from proxmox_fw.parse.unusable import UNUSABLE, LineTally
from proxmox_fw.parse.vmlist import parse_vmlist

CLUSTER_FW = "firewall/cluster.fw"
COROSYNC_CONF = "corosync.conf"
VMLIST = ".vmlist"
SDN_RUNNING_CONFIG = "sdn/.running-config"
IPAM_FILES = ("sdn/pve-ipam-state.json", "priv/ipam.db")  # current, then legacy
VNET_FW_DIR = "sdn/firewall"

_FwT = TypeVar("_FwT", ClusterFw, HostFw, GuestFw)
_CONF_DIRS: dict[GuestKind, str] = {"qemu": "qemu-server", "lxc": "lxc"}


_T = TypeVar("_T")


def host_fw_paths(nodename: str) -> tuple[str, str]:
    """Where host.fw is looked for: the node's own directory, then the ``local`` link."""
    return (f"nodes/{nodename}/host.fw", "local/host.fw")


def guest_fw_path(vmid: int) -> str:
    return f"firewall/{vmid}.fw"


def guest_conf_path(nodename: str, kind: GuestKind, vmid: int) -> str:
    return f"nodes/{nodename}/{_CONF_DIRS[kind]}/{vmid}.conf"


def load_config(
    source: ConfigSource, nodename: str, diags: Diagnostics, cache: ParseCache | None = None
) -> PveConfig:
    """The configuration as node ``nodename`` sees it; problems go to ``diags``.

    Files that exist but cannot be read, or hold nothing usable (random bytes, see
    :mod:`proxmox_fw.parse.unusable`), are listed in ``PveConfig.unreadable``: treating
    them as missing would silently disable parts of the firewall, so callers that change
    the kernel keep the previous ruleset instead.
    """
    rec = _RecordingSource(source)
    pc = cache if cache is not None else ParseCache(enabled=False)
    cfg = PveConfig(
        nodename=nodename,
        cluster=_load_cluster(rec, diags, pc),
        host=_load_host(rec, nodename, diags, pc),
        corosync=_load_corosync(rec, diags, pc),
        guests=_load_guests(rec, nodename, diags, pc),
        sdn=_load_sdn(rec, diags),
        ipam=_load_ipam(rec, diags),
    )
    # Which vnets exist is unknown while the SDN file is unreadable: keep every vnet file.
    known = None if SDN_RUNNING_CONFIG in rec.unreadable else cfg.sdn
    cfg.vnets = _load_vnets(rec, known, diags, pc)
    cfg.unreadable = rec.unreadable
    return cfg


class ParseCache:
    """Parsed files by path and content, for the daemon.

    The daemon reads every input again when any of them changed, but re-parses only the
    files whose text changed: a cluster.fw with a 100k-entry blacklist costs half a second
    to parse. Parsers are pure, so a result (and its diagnostics, replayed on every hit)
    depends only on the text. The models are shared between loads and must not be
    mutated by their users.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._items: dict[str, tuple[bytes, Any, str | None, list[Diagnostic]]] = {}
        # The last usable parse of each path, served while the file is unusable.
        self._good: dict[str, tuple[Any, list[Diagnostic]]] = {}

    def parse(self, path: str, text: str, diags: Diagnostics,
              fn: Callable[[Diagnostics, LineTally], _T]) -> tuple[_T, bool]:
        """The parsed file, and False when it is unusable (see
        :mod:`proxmox_fw.parse.unusable`) with no last good parse to fall back on."""
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        hit = self._items.get(path)
        if hit is not None and hit[0] == digest:
            _, value, why, found = hit
        else:
            local, tally = Diagnostics(), LineTally()
            value = fn(local, tally)
            why, found = tally.why_unusable(), list(local)
            if self.enabled:
                self._items[path] = (digest, value, why, found)
        good = self._good.get(path)
        if why is None and self.enabled:
            self._good[path] = (value, found)
        elif why is not None and good is not None:
            diags.warning(path, None, f"{UNUSABLE}: {why}; using its last good content")
            value, found = good
        _replay(found, diags)
        if why is not None and good is None:
            diags.error(path, None, f"{UNUSABLE}: {why}")
            return cast(_T, value), False
        return cast(_T, value), True

    def forget(self) -> None:
        """Parse every file again (SIGHUP); the last good parses stay."""
        self._items.clear()


def _replay(found: list[Diagnostic], diags: Diagnostics) -> None:
    for d in found:
        diags.add(d.file, d.line, d.message, d.severity)


class _RecordingSource:
    """A source that remembers which existing files could not be read."""

    def __init__(self, source: ConfigSource) -> None:
        self.source = source
        self.unreadable: list[str] = []

    def read(self, relpath: str, diags: Diagnostics | None = None) -> str | None:
        text = self.source.read(relpath, diags)
        if text is None and self.source.exists(relpath):
            self.unreadable.append(relpath)
        return text

    def list_dir(self, relpath: str, diags: Diagnostics | None = None) -> list[str]:
        local = Diagnostics()
        names = self.source.list_dir(relpath, local)
        if any(d.severity is Severity.ERROR for d in local):
            self.unreadable.append(relpath)  # its files are unknown, not absent
        if diags is not None:
            diags.extend(local)
        return names

    def exists(self, relpath: str) -> bool:
        return self.source.exists(relpath)

    def fingerprint(self, relpaths: list[str]) -> Fingerprint:
        return self.source.fingerprint(relpaths)


def watched_paths(config: PveConfig) -> list[str]:
    """Every path whose change can change ``config``: feed to ``source.fingerprint``.

    Missing files are included on purpose: their appearance is a change too. The
    directory ``sdn/firewall`` is included so a new vnet file is noticed.
    """
    node = config.nodename
    paths = [CLUSTER_FW, *host_fw_paths(node), COROSYNC_CONF, VMLIST, SDN_RUNNING_CONFIG,
             *IPAM_FILES, VNET_FW_DIR]
    for vmid, guest in config.guests.items():
        paths += [guest_fw_path(vmid), guest_conf_path(node, guest.kind, vmid)]
    paths += [f"{VNET_FW_DIR}/{name}.fw" for name in config.vnets]
    return paths


def _parse(source: _RecordingSource, pc: ParseCache, path: str, text: str,
           diags: Diagnostics, fn: Callable[[Diagnostics, LineTally], _T]) -> _T:
    """Parse through the cache; an unusable file counts as unreadable."""
    value, usable = pc.parse(path, text, diags, fn)
    if not usable:
        source.unreadable.append(path)
    return value


def _load_cluster(source: _RecordingSource, diags: Diagnostics, pc: ParseCache) -> ClusterFw:
    text = source.read(CLUSTER_FW, diags)
    if text is None:
        return ClusterFw()
    return _parse(source, pc, CLUSTER_FW, text, diags,
                  lambda d, t: _present(parse_cluster_fw(text, CLUSTER_FW, d, tally=t)))


def _load_host(
    source: _RecordingSource, nodename: str, diags: Diagnostics, pc: ParseCache
) -> HostFw:
    for path in host_fw_paths(nodename):
        text = source.read(path, diags)
        if text is not None:
            return _parse(source, pc, path, text, diags,
                          functools.partial(_parse_host, text, path))
    return HostFw()


def _parse_host(text: str, path: str, diags: Diagnostics, tally: LineTally) -> HostFw:
    return _present(parse_host_fw(text, path, diags, tally))


def _load_corosync(source: _RecordingSource, diags: Diagnostics, pc: ParseCache) -> Corosync:
    text = source.read(COROSYNC_CONF, diags)
    if text is None:
        return Corosync()  # a single node without a cluster
    return _parse(source, pc, COROSYNC_CONF, text, diags,
                  lambda d, t: parse_corosync(text, COROSYNC_CONF, d, t))


def _load_guests(
    source: _RecordingSource, nodename: str, diags: Diagnostics, pc: ParseCache
) -> dict[int, Guest]:
    text = source.read(VMLIST, diags)
    if text is None:
        diags.warning(VMLIST, None, "guest list missing: no guest firewalls")
        return {}
    entries = parse_vmlist(text, VMLIST, diags)
    return {
        entry.vmid: _load_guest(source, entry, diags, pc)
        for entry in entries
        if entry.node == nodename
    }


def _load_guest(
    source: _RecordingSource, entry: VmListEntry, diags: Diagnostics, pc: ParseCache
) -> Guest:
    fw_path = guest_fw_path(entry.vmid)
    fw_text = source.read(fw_path, diags)
    fw = GuestFw(file=fw_path)
    if fw_text is not None:
        fw = _parse(source, pc, fw_path, fw_text, diags,
                    lambda d, t: _present(parse_guest_fw(fw_text, fw_path, d, t)))
    conf_path = guest_conf_path(entry.node, entry.kind, entry.vmid)
    conf_text = source.read(conf_path, diags)
    nics: dict[int, Nic] = {}
    if conf_text is not None:
        nics = _parse(source, pc, conf_path, conf_text, diags,
                      lambda d, t: parse_guest_conf(conf_text, conf_path, entry.kind, d, t))
    elif fw.present:
        diags.warning(fw_path, None, f"guest config {conf_path} missing: guest has no NICs")
    return Guest(vmid=entry.vmid, kind=entry.kind, node=entry.node, nics=nics, fw=fw)


def _load_sdn(source: _RecordingSource, diags: Diagnostics) -> Sdn:
    text = source.read(SDN_RUNNING_CONFIG, diags)
    if text is None:
        return Sdn()
    sdn = parse_sdn(text, SDN_RUNNING_CONFIG, diags)
    if not sdn.present:  # not a JSON object: unusable, like a .fw file of garbage
        source.unreadable.append(SDN_RUNNING_CONFIG)
    return sdn


def _load_ipam(source: _RecordingSource, diags: Diagnostics) -> Ipam:
    for path in IPAM_FILES:
        text = source.read(path, diags)
        if text is not None:
            ipam = parse_ipam(text, path, diags)
            if not ipam.present:
                source.unreadable.append(path)
            return ipam
    return Ipam()


def _load_vnets(
    source: _RecordingSource, sdn: Sdn | None, diags: Diagnostics, pc: ParseCache
) -> dict[str, VnetFw]:
    """The firewall files of the vnets ``sdn`` defines (all of them when it is None). A
    file for any other bridge is ignored with a warning: its FORWARD policy would
    otherwise apply to an uplink such as vmbr0 and could cut the node off."""
    vnets: dict[str, VnetFw] = {}
    for entry in source.list_dir(VNET_FW_DIR, diags):
        name, dot, ext = entry.rpartition(".")
        if not dot or ext != "fw" or not name:
            continue
        path = f"{VNET_FW_DIR}/{entry}"
        problem = ifname_problem(name)  # the vnet is a bridge: its name is an interface's
        if problem is not None:
            diags.error(shown(path), None, f"vnet name {problem}; file ignored")
            continue
        if sdn is not None and name not in sdn.vnets:
            diags.warning(path, None, f"'{name}' is not a vnet of the SDN configuration "
                          f"({SDN_RUNNING_CONFIG}); file ignored")
            continue
        text = source.read(path, diags)
        if text is not None:
            vnets[name] = _parse(source, pc, path, text, diags,
                                 functools.partial(parse_vnet_fw, text, path, name))
    return vnets


def _present(fw: _FwT) -> _FwT:
    """Mark a parsed file as present, whatever the parser set."""
    return fw if fw.present else fw.model_copy(update={"present": True})
