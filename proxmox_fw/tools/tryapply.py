"""``try-apply`` and ``confirm``: apply, and put the previous ruleset back unless the
operator confirms in time (the anti-lockout net of foomuuri and ferm).

Before applying, the firewall's two tables are saved as libnftables JSON listings (with
set elements and counters) in the state directory, next to a *pending* file. A detached
watcher process (its own session: a dying SSH connection or terminal does not take it
along) waits for the deadline; unless ``confirm`` removed the pending file by then, it
re-creates exactly the saved tables in one transaction (a table that did not exist is
deleted) and marks the pending file *rolled back*.

The daemon honours the pending file (:func:`daemon_hold`): while a try is pending it
leaves the kernel alone (no updates, no repair of "hand edits"), and after a roll-back it
does not apply a configuration that compiles to the rejected ruleset again; it goes on
as soon as the configuration changes. Should the watcher die, the daemon rolls back
itself once the deadline is well past.

Confirm and roll-back take a lock on the pending file, so exactly one of them wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from proxmox_fw.nft.client import JsonRunner, NftClient, Result, listing_items
from proxmox_fw.nft.render import delete_table_commands
from proxmox_fw.service.state import from_known_fields, process_start_ticks, write_json_atomic
from proxmox_fw.tools.kernelrules import OUR_TABLES

PENDING_FILE = "try-apply.json"
SAVED_FILE = "try-apply-previous.json"
LOCK_FILE = "try-apply.lock"
PENDING = "pending"
ROLLED_BACK = "rolled-back"
DAEMON_GRACE = 10.0  # seconds past the deadline before the daemon rolls back itself
POLL = 0.1

# The order objects are re-created in: chains first (map elements and rules jump to
# them), rules last (they use sets, maps and helpers); anything else keeps its listing
# order, which is the order nft lists it in.
_RANK = {"table": 0, "chain": 1, "rule": 3}


@dataclass(slots=True)
class Pending:
    state: str  # PENDING or ROLLED_BACK
    started_at: float  # wall clock
    deadline: float  # wall clock: roll back unless confirmed by then
    ruleset_hash: str  # the tried ruleset, as the daemon hashes it
    watcher_pid: int | None = None
    watcher_start: int | None = None  # /proc start time, against a recycled pid
    rolled_back_at: float | None = None
    rollback_error: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Pending | None:
        return from_known_fields(cls, data)

    def watcher_alive(self) -> bool:
        if self.watcher_pid is None:
            return False
        ticks = process_start_ticks(self.watcher_pid)
        return ticks is not None and ticks == self.watcher_start


def read_pending(state_dir: Path) -> Pending | None:
    try:
        return Pending.from_json(json.loads((state_dir / PENDING_FILE).read_text()))
    except (OSError, ValueError):
        return None


def write_pending(state_dir: Path, pending: Pending) -> None:
    write_json_atomic(state_dir / PENDING_FILE, asdict(pending))


def clear(state_dir: Path) -> None:
    for name in (PENDING_FILE, SAVED_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Exclusive between confirm, the watcher's roll-back and the daemon's."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- the previous ruleset -------------------------------------------------------------


def save_tables(client: NftClient) -> dict[str, list[dict[str, Any]] | None]:
    """``"family name"`` → the table's JSON listing objects; None: the table is absent.
    Raises OSError when a listing fails for another reason than absence."""
    saved: dict[str, list[dict[str, Any]] | None] = {}
    for family, name in OUR_TABLES:
        result = client.list_table_json(family, name)
        if not result.ok:
            if "No such file or directory" not in result.error:
                raise OSError(f"cannot list table {family} {name}: {result.error.strip()}")
            saved[f"{family} {name}"] = None
            continue
        saved[f"{family} {name}"] = listing_items(result.output)
    return saved


def _without_handles(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "handle"}


def restore_commands(saved: dict[str, list[dict[str, Any]] | None]) -> list[dict[str, Any]]:
    """One transaction that puts the saved tables back exactly (and deletes a table that
    did not exist)."""
    commands: list[dict[str, Any]] = []
    for label, items in saved.items():
        family, name = label.split(" ", 1)
        commands.extend(delete_table_commands(family, name))
        if items is None:
            continue
        objects = [(kind, body) for item in items for kind, body in item.items()
                   if isinstance(body, dict)]  # fmt: skip
        objects.sort(key=lambda kb: _RANK.get(kb[0], 2))
        commands.extend({"add": {kind: _without_handles(body)}} for kind, body in objects)
    return commands


def roll_back(client: JsonRunner, state_dir: Path) -> Result:
    """Restore the saved tables if the try is still pending (caller holds the lock)."""
    pending = read_pending(state_dir)
    if pending is None or pending.state != PENDING:
        return Result(False, "", "no try-apply is pending")
    try:
        saved = json.loads((state_dir / SAVED_FILE).read_text())
    except (OSError, ValueError) as exc:
        result = Result(False, "", f"the saved ruleset cannot be read: {exc}")
    else:
        result = client.run_json({"nftables": restore_commands(saved)})
    pending.state = ROLLED_BACK
    pending.rolled_back_at = time.time()
    pending.rollback_error = None if result.ok else result.error.strip()
    write_pending(state_dir, pending)
    with contextlib.suppress(FileNotFoundError):
        (state_dir / SAVED_FILE).unlink()
    return result


def begin(client: NftClient, state_dir: Path, ruleset_hash: str,
          timeout: float) -> tuple[Pending, bool]:  # fmt: skip
    """Save the tables and write the pending file (the daemon holds from here on).

    A try while another is pending continues it: the ruleset saved by the first stays
    the way back, the deadline moves (so with the service running, a first try-apply
    before editing holds it, and the edits are then tried against the old ruleset).
    Returns the pending try and whether it continues one. Raises OSError when the
    tables cannot be saved.
    """
    with locked(state_dir):
        current = read_pending(state_dir)
        now = time.time()
        if current is not None and current.state == PENDING and current.watcher_alive():
            current.deadline = now + timeout
            current.ruleset_hash = ruleset_hash
            write_pending(state_dir, current)
            return current, True
        write_json_atomic(state_dir / SAVED_FILE, save_tables(client))
        pending = Pending(PENDING, now, now + timeout, ruleset_hash)
        write_pending(state_dir, pending)
    return pending, False


def abandon(state_dir: Path, continued: bool) -> None:
    """The apply failed, the kernel is unchanged: a first try ends here (the daemon may
    go on); a continued one stays pending with its first saved ruleset."""
    if not continued:
        with locked(state_dir):
            clear(state_dir)


def start_watcher(state_dir: Path, pending: Pending) -> None:
    """The detached roll-back process: a new session, no terminal, its own life. It runs
    isolated (``-I``, like the Debian package's launcher) on this process's module path."""
    paths = [p for p in sys.path if p]
    code = (f"import sys; sys.path[:0] = {paths!r}; "
            "from proxmox_fw.tools.tryapply import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", code, str(state_dir)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )  # fmt: skip
    with locked(state_dir):
        current = read_pending(state_dir)
        if current is not None and current.started_at == pending.started_at:
            current.watcher_pid = proc.pid
            current.watcher_start = process_start_ticks(proc.pid)
            write_pending(state_dir, current)


def confirm(state_dir: Path) -> Pending | None:
    """Keep the tried ruleset. Returns what was found: PENDING (now confirmed),
    ROLLED_BACK (too late), or None (nothing was tried)."""
    with locked(state_dir):
        pending = read_pending(state_dir)
        if pending is not None and pending.state == PENDING:
            clear(state_dir)
        return pending


def roll_back_now(client: JsonRunner, state_dir: Path) -> Result:
    with locked(state_dir):
        return roll_back(client, state_dir)


def watch(state_dir: Path, client: JsonRunner | None = None) -> int:
    """The watcher: roll back at the deadline unless confirmed first."""
    while True:
        pending = read_pending(state_dir)
        if pending is None or pending.state != PENDING:
            return 0  # confirmed, or rolled back by someone else
        if time.time() >= pending.deadline:
            with locked(state_dir):
                result = roll_back(client or NftClient(), state_dir)
            return 0 if result.ok else 1
        time.sleep(min(POLL, max(pending.deadline - time.time(), 0.0)))


def daemon_hold(state_dir: Path, digest: str | None, client: JsonRunner) -> bool:
    """Whether the daemon must leave the kernel alone now.

    ``digest`` None: asked before compiling (hold while a try is pending); else the
    digest of what the daemon would apply (hold if it is the rolled-back ruleset; a
    changed configuration ends the hold and the marker).
    """
    pending = read_pending(state_dir)
    if pending is None:
        return False
    if pending.state == PENDING:
        if time.time() > pending.deadline + DAEMON_GRACE and not pending.watcher_alive():
            roll_back_now(client, state_dir)  # the watcher is gone: do its job
        return True
    if digest is None:
        return False  # rolled back: decided once the daemon knows what it would apply
    if digest == pending.ruleset_hash:
        return True
    with locked(state_dir):  # the configuration changed since: the marker has done its job
        clear(state_dir)
    return False


def main(argv: list[str]) -> int:
    """The watcher's entry point: ``<state dir>``."""
    return watch(Path(argv[0]))
