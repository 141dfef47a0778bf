"""pytest plugin: run the tests marked ``fullkernel`` inside Debian's stock kernel.

The guest table needs bridge conntrack, bridge reject and bridge meta, which the
machines' own kernel lacks.  ``tools/run-in-kernel.sh`` boots Debian's kernel under
qemu (TCG) with the host's ``/`` as root filesystem and the repo shared read-write.

On the host, ``fullkernel`` tests are collected as usual but not run one by one:
when the first of them is due, ONE VM boots for the whole session and runs
``python -m pytest -m fullkernel <node ids of every selected fullkernel test>``
inside.  Each inner report (setup/call/teardown, with the inner traceback and
captured output) is serialized with pytest's own report hooks, the same ones
pytest-xdist uses, and replayed on the host as that test's result: the host
output reads like a normal run, an inner failure fails the host run, and an
inner skip or xfail stays one.  (This keeps more than ``--junitxml`` would:
skip reasons, xfail, the real longrepr.)  A test the VM gave no result for (boot
failure, crash, timeout) fails with the runner's output, which ends with the
guest console, as its reason: never a silent skip.  When no fullkernel test is
selected, no VM boots.  Inside the VM (``PFW_IN_FULLKERNEL=1``, set by the
runner) the tests run normally and this plugin only writes their reports.

Knobs (environment, read by the runner): ``VMK_TIMEOUT`` seconds before the VM
is killed (1800), ``VMK_MEM`` MiB (1024), ``VMK_CPUS`` (1), ``VMK_DEBUG=1``,
``VMK_BACKPORTS=1`` (6.12 kernel); see the header of ``tools/run-in-kernel.sh``.
``scripts/setup-fullkernel.sh`` prepares the kernel cache (else the first run
does, needing apt).  Skip the tier with ``-m "not fullkernel"``.

Cost (2 cores, TCG): ~3 s boot and power-off, a cold pytest start of ~6-9 s
(python and pytest read over 9p), then the tests at 30-50x their host time;
the tier's 4 self-tests take 14 s in all on a quiet host, 20-30 s when other
work keeps both cores busy.  Keep fullkernel tests lean on imports and processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _pytest.reports import TestReport

MARKER = "fullkernel"
IN_VM = os.environ.get("PFW_IN_FULLKERNEL") == "1"
REPORT_ENV = "PFW_FULLKERNEL_REPORT"
REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "tools" / "run-in-kernel.sh"
OUTPUT_TAIL_LINES = 80


def _is_fullkernel(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARKER) is not None


# ------------------------------------------------------------ inside the VM ----


class _ReportWriter:
    """Appends every test report of the inner session to a JSON-lines file."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self._config = config
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed at unconfigure)

    def pytest_runtest_logreport(self, report: TestReport) -> None:
        data = self._config.hook.pytest_report_to_serializable(config=self._config, report=report)
        # One synced line per report: a VM that dies mid-run still leaves the earlier
        # ones (the repo is a cache=loose 9p mount: without fsync they stay in the guest).
        self._file.write(json.dumps(data) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def pytest_unconfigure(self) -> None:
        self._file.close()


# ---------------------------------------------------------------- the host ----


@dataclass
class _VmRun:
    """The one VM run of a session: per-node-id reports and what the runner said."""

    reports: dict[str, list[TestReport]] = field(default_factory=dict)
    returncode: int | None = None
    output: str = ""
    seconds: float = 0.0
    count: int = 0

    def tail(self) -> str:
        lines = self.output.rstrip().splitlines()[-OUTPUT_TAIL_LINES:]
        return "\n".join(lines) or "(no output)"


class _HostRunner:
    """Boots the VM once, on demand, and replays its reports as the host's results."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._run: _VmRun | None = None

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # The VM run happens inside the first fullkernel item: a per-test timeout
        # (pytest-timeout) must not cut it; the runner has its own (VMK_TIMEOUT).
        plugins = self._config.pluginmanager
        if plugins.has_plugin("timeout") or plugins.has_plugin("pytest_timeout"):
            for item in items:
                if _is_fullkernel(item):
                    item.add_marker(pytest.mark.timeout(0))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        if not _is_fullkernel(item):
            return None
        if self._run is None:
            self._run = self._boot([i for i in item.session.items if _is_fullkernel(i)])
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for report in _complete(item, self._run):
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        # The item ran in the VM, so pytest's own teardown never saw it: tear down the
        # host-side collectors (module fixtures of the tests before it) that ``nextitem``
        # does not share, or the next module's first test fails "not torn down properly".
        item.session._setupstate.teardown_exact(nextitem)
        return True

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        run = self._run
        if run is not None:
            terminalreporter.write_sep(
                "-",
                f"fullkernel: {run.count} test(s) in one VM, {run.seconds:.1f} s "
                f"(runner exit status {run.returncode})",
            )

    def _boot(self, items: list[pytest.Item]) -> _VmRun:
        rootdir = self._config.rootpath
        workdir = rootdir / ".cache" / "fullkernel"
        workdir.mkdir(parents=True, exist_ok=True)
        _remove_stale_runs(workdir)
        # Inside the repo: only the current directory (the rootdir) is written back.
        tmp = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=workdir))
        try:
            return self._run_vm(items, rootdir, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _run_vm(self, items: list[pytest.Item], rootdir: Path, tmp: Path) -> _VmRun:
        report_file = tmp / "reports.jsonl"
        report_file.touch()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_CURRENT")}
        env[REPORT_ENV] = str(report_file)
        # Make this module importable under the same name inside, whatever put it on sys.path.
        import_root = Path(__file__).resolve().parents[__name__.count(".")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(import_root), env.get("PYTHONPATH")]))
        # Scanning every installed distribution for pytest entry points reads ~150
        # dist-info dirs over cold 9p (~1.5 s under TCG): name the host's plugins instead.
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        plugins = [f"-p{name}" for name in _entrypoint_plugin_modules(self._config)]
        argv = [
            # If pytest dies without a chance to clean up, the runner still gets a TERM.
            "setpriv", "--pdeathsig", "TERM", str(RUNNER),
            sys.executable, "-m", "pytest", "-p", __name__, *plugins, "-p", "no:cacheprovider",
            "-m", MARKER, "-q", "--no-header", f"--rootdir={rootdir}",
            *(["-c", str(self._config.inipath)] if self._config.inipath else []),
            *[i.nodeid for i in items],
        ]  # fmt: skip
        run = _VmRun(count=len(items))
        start = time.monotonic()
        with open(tmp / "output.log", "w+b") as log:
            proc = subprocess.Popen(
                argv, cwd=rootdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
            try:
                run.returncode = proc.wait()
            finally:
                if proc.poll() is None:  # interrupted (Ctrl-C, pytest-timeout): stop the VM
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            log.seek(0)
            run.output = log.read().decode(errors="replace")
        run.seconds = time.monotonic() - start
        with open(report_file, encoding="utf-8") as f:
            for line in f:
                report = self._config.hook.pytest_report_from_serializable(
                    config=self._config, data=json.loads(line)
                )
                if isinstance(report, TestReport):
                    if isinstance(report.longrepr, list):  # a skip's (path, line, reason)
                        report.longrepr = tuple(report.longrepr)  # JSON made it a list
                    run.reports.setdefault(report.nodeid, []).append(report)
        return run


def _remove_stale_runs(workdir: Path) -> None:
    """Remove run dirs left by sessions that were killed (named ``run-<pid>-*``)."""
    for path in workdir.glob("run-*-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _entrypoint_plugin_modules(config: pytest.Config) -> list[str]:
    """Modules of the plugins the host loaded from entry points (e.g. pytest_timeout)."""
    names = (
        getattr(plugin, "__name__", None)
        for plugin, _ in config.pluginmanager.list_plugin_distinfo()
    )
    return sorted({name for name in names if name})


def _complete(item: pytest.Item, run: _VmRun) -> list[TestReport]:
    """The item's inner reports, completed with a failure where the VM stopped short."""
    reports = list(run.reports.get(item.nodeid, []))
    whens = {r.when for r in reports}
    if "teardown" in whens:
        return reports
    reason = (
        f"the fullkernel VM gave no result for this test "
        f"(runner exit status {run.returncode}; 125: VM boot failure, crash or timeout)\n"
        f"--- runner output (last {OUTPUT_TAIL_LINES} lines) ---\n{run.tail()}"
    )
    if not reports:
        reports.append(_report(item, "setup", "passed", None))
    setup_ok = all(r.passed for r in reports if r.when == "setup")
    if setup_ok and "call" not in whens:
        reports.append(_report(item, "call", "failed", reason))
        reports.append(_report(item, "teardown", "passed", None))
    else:
        reports.append(_report(item, "teardown", "failed", reason))
    return reports


def _report(item: pytest.Item, when: str, outcome: str, longrepr: str | None) -> TestReport:
    return TestReport(
        nodeid=item.nodeid,
        location=item.location,
        keywords=dict.fromkeys(item.keywords, 1),
        outcome=outcome,  # type: ignore[arg-type]
        longrepr=longrepr,
        when=when,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------- hooks ----


def pytest_configure(config: pytest.Config) -> None:
    if IN_VM:
        path = os.environ.get(REPORT_ENV)
        if path:
            config.pluginmanager.register(_ReportWriter(config, path), "fullkernel-reports")
    else:
        config.pluginmanager.register(_HostRunner(config), "fullkernel-host")
