"""The daemon's inputs: cheap change detection and last-good fallbacks.

Upstream re-reads every file each 5 s. Here a poll costs one ``stat`` per watched path
(:func:`~proxmox_fw.config.loader.watched_paths`: cluster/host/guest files, ``.vmlist``, SDN
and IPAM files), plus, only when cluster.fw has no ``local_network`` alias, one netlink
dump of addresses and default routes and a ``stat`` of ``/etc/hosts`` (what local network
detection depends on). The configuration is read and compiled only when one of these
moved.

Two weaknesses of stat-based detection are covered:

- A file written while (or just before) it was read may keep the same stamp afterwards
  (pmxcfs has 1 s mtimes). When any watched file's mtime is within :data:`RACY_NS` of the
  moment reading began, the snapshot is "racy" and the next poll reads again. This also
  heals a file caught half-written. (git's "racily clean" rule.)
- A file that exists but cannot be read, or a JSON input that does not parse (a
  half-written ``.vmlist``, garbage in the IPAM state), falls back to its last good
  content with a warning, so one broken input cannot take guest rules or ipsets away.
  Without a last good content it stays unreadable, and the loader reports it in
  ``PveConfig.unreadable``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxmox_fw.config.loader import (
    IPAM_FILES,
    SDN_RUNNING_CONFIG,
    VMLIST,
    ParseCache,
    load_config,
    watched_paths,
)
from proxmox_fw.config.source import ConfigSource, Fingerprint
from proxmox_fw.diagnostics import Diagnostics, Severity
from proxmox_fw.model import PveConfig
from proxmox_fw.pipeline import HostFacts, host_facts
from proxmox_fw.system.localnet import (
    IPRouteNetlink,
    LocalNet,
    NetlinkView,
    Resolver,
    detect_local_network,
    resolve_hostname,
)

RACY_NS = 2_000_000_000  # covers 1 s mtime granularity plus clock skew of the writer
JSON_INPUTS = frozenset({VMLIST, SDN_RUNNING_CONFIG, *IPAM_FILES})
HOSTS_FILE = "/etc/hosts"  # where the node name usually resolves


class LastGoodSource:
    """A :class:`ConfigSource` that serves the last good text of an unreadable file."""

    def __init__(self, inner: ConfigSource) -> None:
        self.inner = inner
        self._good: dict[str, str] = {}
        self._good_dirs: dict[str, list[str]] = {}

    def read(self, relpath: str, diags: Diagnostics | None = None) -> str | None:
        local = Diagnostics()
        text = self.inner.read(relpath, local)
        if text is None and self.inner.exists(relpath):
            problem = "cannot be read"
        elif text is not None and relpath in JSON_INPUTS and not _json_object(text):
            problem = "is not a valid JSON object (half-written?)"
        else:
            if text is None:
                self._good.pop(relpath, None)  # missing is a state of its own
            else:
                self._good[relpath] = text
            _forward(local, diags)
            return text
        good = self._good.get(relpath)
        if good is None:
            _forward(local, diags)
            return text
        if diags is not None:
            diags.warning(relpath, None, f"file {problem}: using its last good content")
        return good

    def list_dir(self, relpath: str, diags: Diagnostics | None = None) -> list[str]:
        local = Diagnostics()
        names = self.inner.list_dir(relpath, local)
        good = self._good_dirs.get(relpath)
        if not any(d.severity is Severity.ERROR for d in local):
            self._good_dirs[relpath] = names
        elif good is not None:
            if diags is not None:
                diags.warning(relpath, None, "directory cannot be listed: using its last "
                              "good listing")
            return good
        _forward(local, diags)
        return names

    def exists(self, relpath: str) -> bool:
        return self.inner.exists(relpath)

    def fingerprint(self, relpaths: list[str]) -> Fingerprint:
        return self.inner.fingerprint(relpaths)


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _forward(src: Diagnostics, dst: Diagnostics | None) -> None:
    if dst is not None:
        dst.extend(src)


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class LocalNetWatcher:
    """Local network detection, redone only when what it depends on changed."""

    def __init__(
        self,
        nodename: str,
        netlink: NetlinkView | None = None,
        resolver: Resolver = resolve_hostname,
        hosts_file: str = HOSTS_FILE,
    ) -> None:
        self.nodename = nodename
        self._netlink = netlink if netlink is not None else IPRouteNetlink()
        self._resolver = resolver
        self._hosts_file = hosts_file
        self._key: Any = None
        self._info: LocalNet | None = None

    def _current_key(self) -> Any:
        try:
            addresses = tuple(self._netlink.list_addresses())
            routes = tuple(self._netlink.default_route_ifnames())
        except Exception as exc:  # netlink trouble: detection itself will warn
            return ("error", str(exc), _stamp(self._hosts_file))
        return (addresses, routes, _stamp(self._hosts_file))

    def changed(self) -> bool:
        return self._info is None or self._current_key() != self._key

    def current(self) -> LocalNet:
        key = self._current_key()
        if self._info is None or key != self._key:
            self._info = detect_local_network(self.nodename, self._resolver, self._netlink)
            self._key = key
        return self._info


@dataclass(slots=True)
class Snapshot:
    """One read of the configuration, with what it took to read it."""

    config: PveConfig
    facts: HostFacts  # what the compiler takes from this machine, as of this read
    diagnostics: Diagnostics
    # Files modified within RACY_NS of the read: maybe still being written (read again).
    unsettled: list[str] = field(default_factory=list)


class InputWatcher:
    """Tells whether the inputs may have changed, and reads them when they did."""

    def __init__(
        self,
        source: ConfigSource,
        nodename: str,
        localnet: LocalNetWatcher,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.source = LastGoodSource(source)
        self.parse_cache = ParseCache()  # re-parse only the files whose text changed
        self.nodename = nodename
        self.localnet = localnet
        self._clock_ns = clock_ns
        self._paths: list[str] | None = None
        self._fingerprint: Fingerprint = ()
        self._racy = True
        self._uses_localnet = True

    def changed(self) -> bool:
        """Cheap: stats (and a netlink dump when local network detection matters)."""
        if self._paths is None or self._racy:
            return True
        if self.source.fingerprint(self._paths) != self._fingerprint:
            return True
        return self._uses_localnet and self.localnet.changed()

    def why_changed(self) -> list[str]:
        """The watched paths whose stamp moved (for the debug log)."""
        if self._paths is None:
            return ["first read"]
        now = dict(self.source.fingerprint(self._paths))
        moved = [p for p, stamp in self._fingerprint if now.get(p) != stamp]
        if not moved and self._racy:
            return ["files modified just before the last read (read again)"]
        return moved

    def read(self) -> Snapshot:
        """Load the configuration and remember the stamps it was read at."""
        started = self._clock_ns()
        diags = Diagnostics()
        cfg = load_config(self.source, self.nodename, diags, self.parse_cache)
        paths = watched_paths(cfg)
        fingerprint = self.source.fingerprint(paths)
        self._paths, self._fingerprint = paths, fingerprint
        unsettled = [path for path, stamp in fingerprint
                     if stamp is not None and stamp[0] >= started - RACY_NS]
        self._racy = bool(unsettled)
        facts = host_facts(cfg, detect_local=self.localnet.current)
        self._uses_localnet = facts.local is not None
        return Snapshot(cfg, facts, diags, unsettled)

    def forget(self) -> None:
        """Make the next :meth:`changed` true (SIGHUP: re-read and re-parse everything)."""
        self._paths = None
        self.parse_cache.forget()
