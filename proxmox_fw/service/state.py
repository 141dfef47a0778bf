"""The daemon's state file (``/run/proxmox-firewall/state.json``), read by ``status``.

The daemon writes it whenever what it did changes (an apply, a failure, a removal, the
exit), never on idle polls. ``status`` needs to know, without asking the daemon: is it
running (pid plus the process start time, so a recycled pid is not mistaken for it), when
did it last apply, and which ruleset (a hash that ``status`` recomputes from the
configuration now to tell whether the kernel is in step). Writes are atomic (temp file +
rename), so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from proxmox_fw.nft.objects import Ruleset
from proxmox_fw.nft.render import RenderedRuleset

T = TypeVar("T")

DEFAULT_STATE_DIR = Path("/run/proxmox-firewall")
STATE_FILE = "state.json"
# Upstream's switch (created by pve-firewall): while it exists, no firewall tables.
FORCE_DISABLE_FLAG = Path("/run/proxmox-nftables-firewall-force-disable")

# What the daemon is doing, as written in ``state``.
STARTING = "starting"  # no successful update yet
ACTIVE = "active"  # the firewall is applied
DISABLED = "disabled"  # the configuration disables it: no tables
FORCE_DISABLED = "force-disabled"  # the force-disable flag file exists: no tables
STOPPED = "stopped"  # the daemon exited and removed the tables


@dataclass(slots=True)
class ServiceState:
    pid: int
    pid_start: int | None  # /proc/<pid>/stat start time (clock ticks since boot)
    state: str = STARTING
    started_at: float = 0.0  # wall clock (time.time())
    last_apply_at: float | None = None  # last transaction the kernel accepted
    ruleset_hash: str | None = None  # what the kernel holds (see ruleset_hash); None: nothing
    applied_tables: list[str] = field(default_factory=list)
    missing_features: list[str] = field(default_factory=list)  # why a table was left out
    last_error: str | None = None  # the last failed update; cleared by a good one
    last_error_at: float | None = None
    unreadable: list[str] = field(default_factory=list)  # config files that could not be read

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ServiceState | None:
        """None when ``data`` is not a state this version can read."""
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
            return None
        return from_known_fields(cls, data)


def from_known_fields(cls: type[T], data: Any) -> T | None:
    """A dataclass ``cls`` from the keys of ``data`` it has fields for (a newer writer may
    add keys); None when ``data`` is no object or a required field is missing."""
    if not isinstance(data, dict):
        return None
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError:
        return None


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON (temp file + rename: a reader never sees
    half a file); raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_state(state_dir: Path, state: ServiceState) -> None:
    """Atomically replace the state file; raises OSError (the caller logs it)."""
    write_json_atomic(state_path(state_dir), state.to_json())


def read_state(state_dir: Path) -> ServiceState | None:
    """The last written state; None when there is none or it is unreadable."""
    try:
        data = json.loads(state_path(state_dir).read_text())
    except (OSError, ValueError):
        return None
    return ServiceState.from_json(data)


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process (field 22 of /proc/<pid>/stat); None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after its ")"
    rest = stat.rsplit(")", 1)[-1].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def is_running(state: ServiceState) -> bool:
    """Whether the process that wrote ``state`` is still alive (and still that process)."""
    if state.state == STOPPED:
        return False
    ticks = process_start_ticks(state.pid)
    if ticks is None:
        return False
    return state.pid_start is None or ticks == state.pid_start


def ruleset_hash(rs: Ruleset) -> str:
    """A digest of what a full apply of ``rs`` sends, to compare rulesets cheaply (the
    daemon takes it from the rendering it diffs with: the same value)."""
    return RenderedRuleset(rs).digest()
