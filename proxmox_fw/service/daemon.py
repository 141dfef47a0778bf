"""``proxmox-firewall start``: keep the kernel in step with /etc/pve, doing nothing when
nothing changed.

One :meth:`Daemon.step` per poll:

1. The force-disable flag exists → remove both tables (once) and stop there.
2. Our tables vanished, were re-created or edited by someone else (see :mod:`.kernel`)
   → the next apply is a full one.
3. Nothing moved in the inputs (see :mod:`.inputs`) and nothing is due → done: no read,
   no compile, no transaction.
4. Otherwise read and compile. A file that cannot be read is served from its last good
   text (:class:`~.inputs.LastGoodSource`). One never read since start has nothing in
   the kernel to keep: the rest is applied, with a warning and a retry after the back-off
   -- unless it is cluster.fw or host.fw, without which even "is the firewall on?" is
   unknown: then the kernel keeps what it has. A file of garbage counts as unreadable
   (:mod:`proxmox_fw.parse.unusable`). Config diagnostics are logged when they change.
   A result that disables the firewall while some input changed just now (it may be
   half-written) waits until the files stay unchanged (:data:`~.inputs.RACY_NS`).
5. The compiled ruleset, as this kernel can hold it, is hashed: equal to what was applied
   → no transaction. Else the difference (:func:`~proxmox_fw.nft.diff.plan_update`) goes
   to the kernel in one transaction; a full replacement after start, SIGHUP or lost
   tables. An incremental transaction the kernel refuses is retried once as a full one;
   if that fails too, the safety net (:func:`proxmox_fw.nft.apply.recover`) applies all
   but the rules the kernel refuses, each logged at its file:line. When even that is
   impossible the previous ruleset stays (the transaction is all or nothing) -- or, with
   no host table of ours in the kernel, the default rules of admin guide §13.8.1 are
   loaded --, the error is logged, and the same ruleset is tried again only after a
   growing back-off (or at once when the configuration changes again).

A pending ``try-apply`` holds every step before 2. (the kernel is left alone: no update,
no repair); a configuration that compiles to the ruleset a try-apply rolled back is not
applied again until it changes (:func:`proxmox_fw.tools.tryapply.daemon_hold`).

The loop (:func:`run`) sleeps in a :class:`~.signals.SignalWaiter`: SIGTERM/SIGINT remove
both tables and exit at once, SIGHUP forces a full re-read and re-apply. No exception ends
the loop: it is logged and the step retried after the back-off.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from proxmox_fw import log
from proxmox_fw.compile import CompileResult
from proxmox_fw.compile.memo import CompileMemo
from proxmox_fw.config.loader import CLUSTER_FW, host_fw_paths
from proxmox_fw.config.source import ConfigSource, DirectorySource
from proxmox_fw.diagnostics import Severity
from proxmox_fw.nft.apply import HOST_LABEL, loadable_ruleset, recover, remove_tables
from proxmox_fw.nft.client import JsonRunner
from proxmox_fw.nft.diff import UpdatePlan, plan_update
from proxmox_fw.nft.features import KernelFeatures
from proxmox_fw.nft.kernelstate import KernelReader, NetlinkReader
from proxmox_fw.nft.render import RenderedRuleset
from proxmox_fw.pipeline import compile_node, firewall_enabled
from proxmox_fw.service.inputs import InputWatcher, LocalNetWatcher, Snapshot
from proxmox_fw.service.kernel import KernelWatch
from proxmox_fw.service.signals import SignalWaiter
from proxmox_fw.service.state import (
    ACTIVE,
    DEFAULT_STATE_DIR,
    DISABLED,
    FORCE_DISABLE_FLAG,
    FORCE_DISABLED,
    STOPPED,
    ServiceState,
    process_start_ticks,
    write_state,
)
from proxmox_fw.system.gcpause import paused_gc
from proxmox_fw.system.sysctl import write_side_effects
from proxmox_fw.tools import tryapply  # a module: tryapply imports service.state

MAX_BACKOFF = 300.0  # seconds between retries of a ruleset the kernel keeps refusing


class Outcome(StrEnum):
    """What one step did (for the loop's tests and the debug log)."""

    IDLE = "idle"  # no input moved: nothing read
    UNCHANGED = "unchanged"  # read and compiled, same ruleset: no transaction
    APPLIED = "applied"  # a transaction was committed
    REMOVED = "removed"  # the tables were removed (configuration or flag)
    FORCE_DISABLED = "force-disabled"  # the flag is there and the tables are gone already
    KEPT = "kept"  # cluster.fw/host.fw unreadable: the kernel keeps what it has
    SETTLING = "settling"  # a change disables the firewall: wait until its files settle
    FAILED = "failed"  # the kernel refused: the last good ruleset stays
    WAITING = "waiting"  # the same refused ruleset again: retried after the back-off
    HELD = "held"  # try-apply pending, or its rolled-back ruleset: the kernel is left alone


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    pve_dir: Path
    nodename: str
    interval: float = 5.0
    state_dir: Path = DEFAULT_STATE_DIR
    force_disable_flag: Path = FORCE_DISABLE_FLAG
    side_effects: bool = True  # sysctls and the log_nf_conntrack flag file


class Daemon:
    """The state between polls; every outside effect goes through injected objects."""

    def __init__(
        self,
        opts: DaemonOptions,
        client: JsonRunner,
        features: KernelFeatures,
        *,
        source: ConfigSource | None = None,
        localnet: LocalNetWatcher | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        effects_writer: Callable[[dict[str, str]], None] = write_side_effects,
        kernel: KernelReader | None = None,
    ) -> None:
        self.opts = opts
        self.client = client
        self.features = features
        self.inputs = InputWatcher(
            source if source is not None else DirectorySource(opts.pve_dir),
            opts.nodename,
            localnet if localnet is not None else LocalNetWatcher(opts.nodename),
        )
        self._clock = clock
        self._wall = wall_clock
        self._write_effects = effects_writer
        self.log = log.get()
        # What the kernel holds: the loadable ruleset last committed, rendered (None:
        # unknown). Keeping the rendering makes the next diff render only the new side.
        self.applied: RenderedRuleset | None = None
        self.applied_hash: str | None = None
        # Our tables as committed, read over netlink (never libnftables' list tables):
        # hand edits show.
        self.kernel = KernelWatch(kernel if kernel is not None else NetlinkReader())
        # Compiled pieces of the last compile: an edit recompiles what it touches only.
        self.memo = CompileMemo()
        self._need_full = True
        self._force_disabled = False
        self._held = False  # a try-apply held the last step
        self._failed_hash: str | None = None
        self._failures = 0
        self._retry_at: float | None = None
        self._logged_diags: frozenset[str] = frozenset()
        # Unreadable, these leave even "is the firewall on?" unknown: never apply then.
        self._switch_files = frozenset({CLUSTER_FW, *host_fw_paths(opts.nodename)})
        self._missing: list[str] = []
        self._effects: dict[str, str] | None = None
        self.state = ServiceState(pid=os.getpid(), pid_start=process_start_ticks(os.getpid()),
                                  started_at=wall_clock())
        self._state_error_logged = False

    # -- one poll ------------------------------------------------------------------------
    def step(self, full: bool = False) -> Outcome:
        # Reading, compiling and diffing a large configuration allocates millions of
        # acyclic objects; see proxmox_fw.system.gcpause.
        with paused_gc():
            return self._step(full)

    def _step(self, full: bool) -> Outcome:
        if self.opts.force_disable_flag.exists():
            return self._force_disable()
        if self._force_disabled:
            self.log.info("force-disable flag removed: applying the firewall again")
            self._force_disabled = False
            self._need_full = True
        if full:
            self._need_full = True
            self.inputs.forget()
            self.memo = CompileMemo()
        if tryapply.daemon_hold(self.opts.state_dir, None, self.client):
            return self._hold("a try-apply waits for confirmation: leaving the kernel alone")
        if self._held:  # the try was confirmed or rolled back: look at everything again
            self._held, self._need_full = False, True
        self._check_kernel()
        changed = self.inputs.changed()
        backing_off = self._retry_at is not None and self._clock() < self._retry_at
        retry_due = self._retry_at is not None and not backing_off
        if backing_off and not (changed or full):
            return Outcome.WAITING  # after a failure: only a change or the back-off retries
        if not (self._need_full or retry_due or changed):
            return Outcome.IDLE
        self.log.debug("reading configuration", changed=",".join(self.inputs.why_changed()))
        snapshot = self.inputs.read()
        result = compile_node(snapshot.config, snapshot.facts, snapshot.diagnostics,
                              self.memo)
        self._log_diagnostics(snapshot, result)
        unreadable = snapshot.config.unreadable
        self.state.unreadable = list(unreadable)
        unreadable_why = f"cannot read {', '.join(unreadable)}"
        if unreadable:
            if self._switch_files.intersection(unreadable):
                return self._keep(unreadable_why)
            # Never read since start (else its last good text would be used): the kernel
            # has nothing of it either, so the rest can go ahead without losing anything.
            self.log.warning(f"{unreadable_why}: applying the rest of the configuration")
        loadable_rs, missing = loadable_ruleset(result.ruleset, self.features)
        if snapshot.unsettled and not any(table.enabled for table in loadable_rs.tables):
            return self._settling(snapshot.unsettled)
        loadable = RenderedRuleset(loadable_rs, previous=self.applied)
        digest = loadable.digest()
        if not self._need_full and digest == self.applied_hash:
            if self._clear_failure():
                self._save()
            return Outcome.UNCHANGED
        if digest == self._failed_hash and not (retry_due or full):
            return Outcome.WAITING
        if tryapply.daemon_hold(self.opts.state_dir, digest, self.client):
            return self._hold("this configuration was rolled back by try-apply: "
                              "not applied again until it changes")
        outcome = self._apply(result, loadable, digest, missing)
        if unreadable and outcome is Outcome.APPLIED:
            self._schedule_retry(unreadable_why)  # read it again until it can be read
        return outcome

    def _settling(self, unsettled: list[str]) -> Outcome:
        """A half-written file can read as "firewall off": remove the tables only once
        the files have stayed unchanged for a while (the next poll reads them again)."""
        self.log.info("the configuration disables the firewall, but "
                      + ", ".join(unsettled) + " changed just now: removing the tables "
                      "only if that still holds once the files stay unchanged")
        return Outcome.SETTLING

    def _hold(self, why: str) -> Outcome:
        """A pending or rolled-back try-apply (see proxmox_fw.tools.tryapply)."""
        if not self._held:
            self.log.info(why)
        self._held = True
        return Outcome.HELD

    def _force_disable(self) -> Outcome:
        if self._force_disabled:
            return Outcome.FORCE_DISABLED
        self.log.warning(f"{self.opts.force_disable_flag} exists: removing the firewall tables")
        removed = remove_tables(self.client)
        if not removed.ok:
            self.log.error(f"removing the firewall tables failed: {removed.error}")
        self._force_disabled = True
        self._forget_kernel()
        self.state.state = FORCE_DISABLED
        self._save()
        return Outcome.REMOVED

    def _check_kernel(self) -> None:
        """Detect our tables deleted, replaced or edited behind our back."""
        if self._need_full or self.applied is None:
            return
        why = self.kernel.drift()
        if why is not None:
            self.log.warning(f"{why}; re-applying in full")
            self._need_full = True

    def _apply(
        self, result: CompileResult, loadable: RenderedRuleset, digest: str, missing: list[str]
    ) -> Outcome:
        started = self._clock()
        if not any(table.enabled for table in loadable.ruleset.tables):
            return self._disable(result, loadable, digest, started)
        plan = plan_update(None if self._need_full else self.applied, loadable)
        outcome = self.client.run_json(plan.document())
        if not outcome.ok and not self._need_full:
            self.log.warning("incremental update refused by the kernel, trying a full apply: "
                             + outcome.error.strip())
            plan = plan_update(None, loadable)
            outcome = self.client.run_json(plan.document())
        refused: list[str] = []
        if not outcome.ok:
            why = f"the kernel refused the ruleset: {outcome.error.strip()}"
            rescue = recover(plan.commands, loadable.ruleset, self.client)
            if not rescue.committed:
                return self._failed(digest, f"{why} ({rescue.error})")
            if rescue.fallback:
                self._forget_kernel()
                self.state.applied_tables = [HOST_LABEL]
                return self._failed(digest, f"{why}; only the default rules are loaded "
                                    "(admin guide §13.8.1: management access kept)")
            refused = rescue.refused
        self._committed(loadable, digest, result.side_effects)
        for message in refused:
            self.log.error(message)
        if refused:
            self.state.last_error = "; ".join(refused)
            self.state.last_error_at = self._wall()
        self._report_missing(missing)
        self.state.state = ACTIVE
        self.state.missing_features = list(missing)
        self._save()
        self._log_update(plan, started)
        return Outcome.APPLIED

    def _disable(
        self, result: CompileResult, loadable: RenderedRuleset, digest: str, started: float
    ) -> Outcome:
        cfg = result.config
        why = "the configuration disables the firewall"
        if cfg is not None and not firewall_enabled(cfg):
            why += f" (cluster enable: {int(cfg.cluster.options.enable)}, " \
                   f"host nftables: {int(cfg.host.options.nftables)})"
        removed = remove_tables(self.client)
        if not removed.ok:
            self._forget_kernel()
            return self._failed(digest, f"removing the firewall tables failed: {removed.error}")
        self._committed(loadable, digest, {})
        self.state.state = DISABLED
        self.state.missing_features = []
        self._save()
        self.log.info(f"{why}: tables removed",
                      elapsed_ms=round((self._clock() - started) * 1000, 1))
        return Outcome.REMOVED

    def _committed(
        self, loadable: RenderedRuleset, digest: str, effects: dict[str, str]
    ) -> None:
        self.applied, self.applied_hash = loadable, digest
        self._need_full = False
        labels = [f"{t.family} {t.name}" for t in loadable.ruleset.tables if t.enabled]
        self.kernel.committed(labels)
        self._clear_failure()
        self.state.last_apply_at = self._wall()
        self.state.ruleset_hash = digest
        self.state.applied_tables = labels
        if self.opts.side_effects and effects and effects != self._effects:
            self._write_effects(effects)
            self._effects = dict(effects)

    def _forget_kernel(self) -> None:
        self.applied = self.applied_hash = None
        self.kernel.forget()
        self._need_full = True
        self.state.ruleset_hash = None
        self.state.applied_tables = []

    # -- failures ------------------------------------------------------------------------
    def _keep(self, why: str) -> Outcome:
        kept = "previous ruleset kept" if self.applied is not None else "nothing applied yet"
        self.log.warning(f"{why}: {kept}; retrying later")
        self._schedule_retry(why)
        return Outcome.KEPT

    def _failed(self, digest: str, why: str) -> Outcome:
        self._failed_hash = digest
        delay = self._schedule_retry(why)
        kept = "previous ruleset kept" if self.applied is not None else "nothing applied"
        self.log.error(f"error updating firewall rules: {why}; {kept}; "
                       f"retry on the next change or in {delay:.0f}s")
        return Outcome.FAILED

    def note_exception(self, exc: BaseException) -> None:
        """A step raised: log it and retry after the back-off (the loop goes on)."""
        why = f"{type(exc).__name__}: {exc}"
        delay = self._schedule_retry(why)
        self.log.error(f"error updating firewall rules: {why}; retry in {delay:.0f}s")
        self.log.debug("traceback", traceback=traceback.format_exc())

    def _schedule_retry(self, why: str) -> float:
        self._failures += 1
        base = max(self.opts.interval, 1.0)
        delay = min(base * 2.0 ** min(self._failures - 1, 16), MAX_BACKOFF)
        self._retry_at = self._clock() + delay
        self.state.last_error = why
        self.state.last_error_at = self._wall()
        self._save()
        return delay

    def _clear_failure(self) -> bool:
        """Forget past failures; True when there were any (the state file changes)."""
        had = bool(self._failures or self.state.last_error)
        self._failures = 0
        self._retry_at = None
        self._failed_hash = None
        self.state.last_error = None
        self.state.last_error_at = None
        return had

    # -- logging and state ------------------------------------------------------------------
    def _log_diagnostics(self, snapshot: Snapshot, result: CompileResult) -> None:
        """Each diagnostic once, when it first appears (not every poll or every re-read)."""
        lines: dict[str, tuple[Severity, str, str | None]] = {}
        for d in result.diagnostics:
            place = str(self.opts.pve_dir / d.file) + (f":{d.line}" if d.line else "")
            lines[f"{place}: {d.message}"] = (d.severity, d.message, place)
        for w in snapshot.facts.warnings:
            lines[w] = (Severity.WARNING, w, None)
        for key, (severity, message, where) in lines.items():
            if key in self._logged_diags:
                continue
            emit = self.log.info if severity is Severity.INFO else self.log.warning
            emit(message, **({"where": where} if where else {}))
        self._logged_diags = frozenset(lines)

    def _report_missing(self, missing: list[str]) -> None:
        if missing and missing != self._missing:
            self.log.error("guest table not applied: this kernel lacks "
                           + ", ".join(missing) + "; host table applied")
        self._missing = list(missing)

    def _log_update(self, plan: UpdatePlan, started: float) -> None:
        elapsed = round((self._clock() - started) * 1000, 1)
        self.log.info(f"firewall update time: {elapsed}ms", **plan.stats.summary(),
                      commands=len(plan.commands))

    def save(self) -> None:
        """Write the state file now (at start, before the first update)."""
        self._save()

    def _save(self) -> None:
        try:
            write_state(self.opts.state_dir, self.state)
        except OSError as exc:
            if not self._state_error_logged:
                self.log.warning(f"cannot write the state file in {self.opts.state_dir}: {exc}")
                self._state_error_logged = True

    # -- exit ------------------------------------------------------------------------------
    def shutdown(self) -> bool:
        """Remove both tables (SIGTERM/SIGINT); False when the kernel refused."""
        removed = remove_tables(self.client)
        if removed.ok:
            self.log.info("firewall tables removed, exiting")
        else:
            self.log.error(f"Could not remove firewall rules: {removed.error}")
        self._forget_kernel()
        self.state.state = STOPPED
        self._save()
        return removed.ok


def run(opts: DaemonOptions, client: JsonRunner, features: KernelFeatures,
        kernel: KernelReader | None = None) -> int:
    """The foreground loop; returns the exit code once SIGTERM or SIGINT arrived."""
    logger = log.get()
    daemon = Daemon(opts, client, features, kernel=kernel)
    daemon.save()
    logger.info("starting", pve_dir=str(opts.pve_dir), nodename=opts.nodename,
                interval=opts.interval)
    stop = {signal.SIGTERM, signal.SIGINT}
    with SignalWaiter((signal.SIGTERM, signal.SIGINT, signal.SIGHUP)) as signals:
        full = False
        while True:
            if not stop.intersection(signals.pending()):
                try:
                    outcome = daemon.step(full=full)
                    if outcome is not Outcome.IDLE:
                        logger.debug("step", outcome=str(outcome))
                except Exception as exc:  # never let one bad update end the firewall
                    daemon.note_exception(exc)
            full = False
            received = signals.wait(opts.interval)
            stopping = [sig for sig in received if sig in stop]
            if stopping:
                logger.info("signal received: stopping", signal=stopping[0].name)
                return 0 if daemon.shutdown() else 1
            if signal.SIGHUP in received:
                logger.info("SIGHUP: full re-read and re-apply")
                full = True
