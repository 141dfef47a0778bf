"""The Debian package: it builds, lintian finds no errors, and it installs and works.

Builds with ``packaging/build-deb.sh`` into a temporary directory, then installs the .deb
with ``dpkg -i`` into a throwaway root: an overlay over a debootstrap chroot (Debian 12
minbase plus the package's dependencies) cached under ``.cache/packaging/``. The first
run makes that chroot (about a minute); later runs reuse it and never change it. The
installed program must print the same skeleton and compile the example configuration to
the same JSON as the work tree does. Nothing is installed on this machine (besides the
build tools build-deb.sh installs), and its nftables ruleset is checked to be unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
LOCK = PACKAGING / "vendor-requirements.txt"
CACHE = REPO / ".cache" / "packaging"
LAUNCHER = "/usr/libexec/proxmox/proxmox-firewall"
PRIV = "/usr/lib/proxmox-firewall"
UNIT = "/lib/systemd/system/proxmox-firewall.service"
LOGGER_UNIT = "/lib/systemd/system/proxmox-firewall-logger.service"
UNITS = (UNIT, LOGGER_UNIT)
LOGROTATE = "/etc/logrotate.d/proxmox-firewall"
# pve-firewall's logrotate file for the same log, diverted while the package is installed.
UPSTREAM_LOGROTATE = "/etc/logrotate.d/pve-firewall"
DIVERTED_LOGROTATE = UPSTREAM_LOGROTATE + ".disabled"
# A clean environment for the program, in the chroot and in the work tree alike.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}

if os.geteuid() != 0 or not shutil.which("dpkg") or not shutil.which("apt-get"):
    pytest.skip("packaging tests need root on a Debian machine", allow_module_level=True)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(cmd, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def must(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    res = run(cmd, **kw)
    assert res.returncode == 0, f"{cmd} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res


def pins() -> dict[str, str]:
    """name -> version pinned in packaging/vendor-requirements.txt (names normalized)."""
    found = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", LOCK.read_text(), re.M)
    assert found, "no pins in the lock file"
    return {norm(n): v for n, v in found}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dep_names(field: str) -> list[str]:
    """Package names of a Depends-style field (first alternative, no versions or arch)."""
    names = []
    for group in field.split(","):
        first = group.split("|")[0].strip()
        if first:
            names.append(re.split(r"[\s(:]", first, maxsplit=1)[0])
    return names


# --- the build ------------------------------------------------------------------------


@dataclass
class Built:
    deb: Path
    dsc: Path
    out: Path
    started: float  # when the build began (time.time())
    contents: dict[str, str]  # path (without leading ".") -> dpkg-deb -c line

    def field(self, name: str) -> str:
        return must(["dpkg-deb", "-f", str(self.deb), name]).stdout.strip()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("deb")
    started = time.time()
    res = run(["bash", str(PACKAGING / "build-deb.sh")],
              env={**os.environ, "OUT_DIR": str(out), "LINTIAN": "0"}, timeout=600)
    assert res.returncode == 0, f"build-deb.sh failed:\n{res.stdout}\n{res.stderr}"
    assert Path(res.stdout.strip().splitlines()[-1]) == out, "last line must be the output dir"
    debs = sorted(out.glob("proxmox-firewall_*.deb"))
    assert len(debs) == 1, debs
    listing = must(["dpkg-deb", "-c", str(debs[0])]).stdout.splitlines()
    contents = {}
    for line in listing:
        path = line.split(None, 5)[5].split(" -> ")[0]
        contents[path.removeprefix(".").rstrip("/") or "/"] = line
    dscs = sorted(out.glob("proxmox-firewall_*.dsc"))
    assert len(dscs) == 1, dscs
    return Built(debs[0], dscs[0], out, started, contents)


def test_builds_one_binary_package_at_the_project_version(built: Built) -> None:
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    arch = must(["dpkg", "--print-architecture"]).stdout.strip()
    assert built.field("Package") == "proxmox-firewall"
    assert built.field("Version") == version
    assert built.field("Architecture") == arch
    assert built.deb.name == f"proxmox-firewall_{version}_{arch}.deb"


def test_program_unit_and_manual_are_installed(built: Built) -> None:
    launcher = built.contents[LAUNCHER]
    assert launcher.startswith("-rwxr-xr-x"), launcher
    link = built.contents["/usr/sbin/proxmox-firewall"]
    assert link.startswith("l") and link.endswith("-> ../libexec/proxmox/proxmox-firewall"), link
    for unit in UNITS:
        assert unit in built.contents
    assert built.contents[LOGROTATE].startswith("-rw-r--r--"), built.contents[LOGROTATE]
    assert "/usr/share/man/man8/proxmox-firewall.8.gz" in built.contents
    assert "/usr/share/doc/proxmox-firewall/copyright" in built.contents


def test_private_directory_has_the_whole_program_and_nothing_compiled(built: Built) -> None:
    paths = set(built.contents)
    # Every file of the two packages in the work tree (data files included) is shipped
    # (except files created after the build began, by someone editing the tree meanwhile).
    for top in ("proxmox_fw", "cli"):
        for f in (REPO / top).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".pyo"):
                if f.stat().st_ctime > built.started:
                    continue
                rel = f.relative_to(REPO).as_posix()
                assert f"{PRIV}/{rel}" in paths, f"{rel} is missing from the package"
    assert f"{PRIV}/proxmox_fw/nft/skeleton.nft" in paths
    assert any(p.startswith(f"{PRIV}/pydantic_core/_pydantic_core.") for p in paths)
    # Byte code is made by py3compile on the target, never shipped; no library scripts;
    # nothing in the system's module path.
    assert not [p for p in paths if "__pycache__" in p or p.endswith((".pyc", ".pyo"))]
    assert not [p for p in paths if p.startswith(f"{PRIV}/bin")]
    assert not [p for p in paths if p.startswith("/usr/lib/python3")]


def test_vendored_distributions_are_exactly_the_pinned_ones(built: Built) -> None:
    shipped = {}
    for p in built.contents:
        m = re.fullmatch(rf"{PRIV}/([^/]+)-([^-/]+)\.dist-info", p)
        if m:
            shipped[norm(m.group(1))] = m.group(2)
    assert shipped == pins()


def test_dependencies(built: Built) -> None:
    depends = built.field("Depends")
    names = dep_names(depends)
    for needed in ("python3", "python3-nftables", "nftables", "netbase"):
        assert needed in names, depends
    # pydantic-core is built for CPython 3.11: the package must say so.
    assert "python3 (<< 3.12)" in depends and "python3 (>= 3.11~)" in depends, depends
    # The vendored libraries must not drag in Debian's (older) copies.
    debian_copies = {"python3-" + n for n in ("pydantic", "typer", "structlog", "pyroute2",
                                              "rich", "typing-extensions", "pygments")}
    assert not debian_copies & set(names), depends
    assert "ulogd" in dep_names(built.field("Conflicts"))


def test_copyright_covers_every_vendored_wheel() -> None:
    text = (PACKAGING / "debian" / "copyright").read_text()
    assert re.search(r"^Files: \*\nCopyright: .+\nLicense: AGPL-3.0-or-later$", text, re.M)
    for name in pins():
        wheel_prefix = name.replace("-", "_")
        assert re.search(rf"^Files: vendor/wheels/{re.escape(wheel_prefix)}-\*$", text, re.M), (
            f"debian/copyright has no stanza for the vendored wheel {name}"
        )
    # Every license named in a Files stanza has its own License paragraph.
    used: set[str] = set()
    for expr in re.findall(r"^License: (.+)$", text, re.M):
        used.update(x for x in re.split(r"\s+(?:and|or)\s+", expr) if x)
    standalone = set(re.findall(r"\n\nLicense: (\S+)\n", text))
    assert used <= standalone, used - standalone


def test_lintian_reports_no_errors(built: Built) -> None:
    res = run(["lintian", "--fail-on", "error", str(built.dsc), str(built.deb)], timeout=300)
    errors = [line for line in res.stdout.splitlines() if line.startswith("E:")]
    assert not errors, "\n".join(errors)
    assert res.returncode == 0, res.stdout + res.stderr


def test_source_package_rebuilds_offline_to_the_same_contents(
    built: Built, tmp_path: Path
) -> None:
    # The .dsc is self-contained (the wheels are in it) and its build needs no network.
    must(["dpkg-source", "-x", str(built.dsc), str(tmp_path / "src")])
    res = run(["unshare", "--net", "--", "dpkg-buildpackage", "-us", "-uc", "-b"],
              cwd=tmp_path / "src", timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    rebuilt = tmp_path / built.deb.name
    listing = must(["dpkg-deb", "-c", str(rebuilt)]).stdout.splitlines()
    assert {line.split(None, 5)[5] for line in listing} == {
        line.split(None, 5)[5] for line in built.contents.values()
    }


def test_maintainer_scripts_enable_but_never_start(built: Built, tmp_path: Path) -> None:
    must(["dpkg-deb", "-e", str(built.deb), str(tmp_path)])
    postinst = (tmp_path / "postinst").read_text()
    for unit in UNITS:
        assert f"deb-systemd-helper enable '{Path(unit).name}'" in postinst
    invokes = [line.strip() for line in postinst.splitlines() if "deb-systemd-invoke" in line]
    # The only action is try-restart, which does nothing unless the service already runs,
    # and it is inside the upgrade-only branch (an old version, $2, is given).
    assert invokes, postinst
    assert all(" try-restart " in line for line in invokes), invokes
    assert re.search(r'if \[ -n "\$2" \]; then\s+deb-systemd-invoke try-restart', postinst)
    assert not (tmp_path / "preinst").exists() or "stop" not in (tmp_path / "preinst").read_text()
    prerm = (tmp_path / "prerm").read_text()
    assert re.search(r'"\$1" = remove .*\n\s*deb-systemd-invoke stop proxmox-firewall.service'
                     r'.*\n\s*deb-systemd-invoke stop proxmox-firewall-logger.service', prerm)
    assert (tmp_path / "conffiles").read_text().split() == [LOGROTATE]


# --- the throwaway root -----------------------------------------------------------------


def debian_mirror(suite: str) -> str:
    """The archive this machine's apt uses for ``suite`` (no host name is hard-coded)."""
    res = must(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)"])
    for line in res.stdout.splitlines():
        uri, _, release = line.partition(" ")
        if release == suite:
            return uri
    pytest.fail(f"apt has no source for {suite}: {res.stdout}")


def base_chroot(packages: list[str]) -> Path:
    """A debootstrap minbase chroot with ``packages``, cached under .cache/packaging.

    The caller holds ``chroot_lock`` exclusively."""
    suite = must(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"]).stdout.strip()
    root = CACHE / f"chroot-{suite}"
    stamp = CACHE / f"chroot-{suite}.packages"
    wanted = " ".join(sorted(set(packages)))
    if root.is_dir() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return root
    tmp = CACHE / f"chroot-{suite}.tmp"
    stamp.unlink(missing_ok=True)
    for old in (tmp, root):
        if old.exists():
            shutil.rmtree(old)
    res = run(["debootstrap", "--variant=minbase", f"--include={','.join(sorted(set(packages)))}",
               suite, str(tmp), debian_mirror(suite)], timeout=900)
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"debootstrap failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    tmp.rename(root)
    stamp.write_text(wanted + "\n")
    return root


@contextlib.contextmanager
def chroot_lock() -> Iterator[int]:
    """A lock on the cached chroot, for test runs that overlap (several people run the
    suite in one work tree): exclusive while it is checked or made, then shared while it
    is used, so no run replaces it under another."""
    CACHE.mkdir(parents=True, exist_ok=True)
    fd = os.open(CACHE / "chroot.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def ruleset() -> str:
    res = run(["nft", "list", "ruleset"])
    return res.stdout if res.returncode == 0 else f"<nft failed: {res.stderr}>"


Installed = tuple[Path, subprocess.CompletedProcess[str]]


@contextlib.contextmanager
def throwaway_root(base: Path, deb: Path,
                   files: dict[str, str] | None = None) -> Iterator[Installed]:
    """An overlay over ``base`` with /proc mounted, the example tree at /srv/pve, ``files``
    (path → text) written and the package installed with dpkg -i. Everything is unmounted
    and deleted afterwards."""
    work = Path(tempfile.mkdtemp(prefix="pfw-deb-root-"))
    root = work / "root"
    mounts: list[Path] = []
    try:
        for d in ("upper", "work", "root"):
            (work / d).mkdir()
        res = run(["mount", "-t", "overlay", "overlay", "-o",
                   f"lowerdir={base},upperdir={work / 'upper'},workdir={work / 'work'}", str(root)])
        if res.returncode == 0:
            mounts.append(root)
        else:  # no overlayfs: a full copy does the same, slower
            root.rmdir()
            must(["cp", "-a", str(base), str(root)])
        must(["mount", "-t", "proc", "proc", str(root / "proc")])
        mounts.append(root / "proc")
        shutil.copy2(deb, root / "tmp" / deb.name)
        shutil.copytree(REPO / "examples" / "pve", root / "srv" / "pve")
        for path, text in (files or {}).items():
            (root / path.lstrip("/")).write_text(text)
        installed = run(["chroot", str(root), "dpkg", "-i", f"/tmp/{deb.name}"], env=CLEAN_ENV)
        yield root, installed
    finally:
        for m in reversed(mounts):
            if run(["umount", str(m)]).returncode != 0:
                run(["umount", "-l", str(m)])
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def base(built: Built) -> Iterator[Path]:
    # Everything the package depends on, plus systemd for systemd-analyze --root.
    with chroot_lock() as fd:
        root = base_chroot([*dep_names(built.field("Depends")), "systemd"])
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield root


@pytest.fixture(scope="module")
def installed(built: Built, base: Path) -> Iterator[Path]:
    before = ruleset()
    with throwaway_root(base, built.deb) as (root, res):
        assert res.returncode == 0, f"dpkg -i failed:\n{res.stdout}\n{res.stderr}"
        yield root
    assert ruleset() == before, "the machine's nftables ruleset changed"


def in_root(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(["chroot", str(root), *args], env=CLEAN_ENV, timeout=120)


def in_tree(*args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=CLEAN_ENV, timeout=120)


def test_dpkg_install_enables_the_units(installed: Path) -> None:
    assert os.access(installed / LAUNCHER.lstrip("/"), os.X_OK)
    for unit in UNITS:
        wants = installed / "etc/systemd/system/multi-user.target.wants" / Path(unit).name
        assert wants.is_symlink() and os.readlink(wants) == unit
    # py3compile ran in postinst.
    assert list((installed / PRIV.lstrip("/") / "proxmox_fw").glob("__pycache__/*.pyc"))


def test_skeleton_runs_and_matches_the_work_tree(installed: Path) -> None:
    res = in_root(installed, LAUNCHER, "skeleton")
    assert res.returncode == 0, res.stderr
    assert "table inet proxmox-firewall" in res.stdout
    tree = in_tree("skeleton")
    assert tree.returncode == 0, tree.stderr
    assert res.stdout == tree.stdout
    # The /usr/sbin link runs the same program.
    assert in_root(installed, "/usr/sbin/proxmox-firewall", "skeleton").stdout == res.stdout


def test_compile_prints_json_matching_the_work_tree(installed: Path) -> None:
    res = in_root(installed, LAUNCHER, "--pve-dir", "/srv/pve", "--nodename", "pve1", "compile")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert isinstance(doc["nftables"], list) and doc["nftables"], doc
    tree = in_tree("--pve-dir", str(REPO / "examples" / "pve"), "--nodename", "pve1", "compile")
    assert tree.returncode == 0, tree.stderr
    assert doc == json.loads(tree.stdout)


def test_logger_and_log_commands_run(installed: Path) -> None:
    # The logger unit's ExecStart= command exists in the packaged program ...
    res = in_root(installed, LAUNCHER, "logger", "--help")
    assert res.returncode == 0 and "--log-file" in res.stdout, res.stdout + res.stderr
    # ... and the reader reads the log file where the logger writes it.
    lines = ["0 5 - 04/Dec/2026:15:42:17 +0000 starting pvefw logger",
             "100 6 guest-100-in 04/Dec/2026:15:42:18 +0000 ACCEPT: IN=eth0 OUT=tap100i0 "
             "SRC=192.0.2.1 DST=192.0.2.100 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF "
             "PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 "]
    (installed / "var/log/pve-firewall.log").write_text("".join(x + "\n" for x in lines))
    res = in_root(installed, LAUNCHER, "log", "--vmid", "100", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["vmid"], doc["chain"], doc["policy"], doc["line"]) == (
        100, "guest-100-in", "ACCEPT", lines[1])


@pytest.mark.parametrize("unit", [Path(u).name for u in UNITS])
def test_systemd_analyze_verify_accepts_the_unit(installed: Path, unit: str) -> None:
    # --root resolves ExecStart= and the dependencies inside the chroot; MANPATH lets the
    # Documentation= check find the installed manual page. Warnings count as failures.
    res = run(["systemd-analyze", f"--root={installed}", "verify", unit],
              env={**CLEAN_ENV, "MANPATH": str(installed / "usr/share/man")}, timeout=120)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr


def test_units_start_the_logger_with_the_firewall(installed: Path) -> None:
    main = (installed / UNIT.lstrip("/")).read_text()
    logger = (installed / LOGGER_UNIT.lstrip("/")).read_text()
    assert re.search(r"^Wants=.*\bproxmox-firewall-logger\.service\b", main, re.M)
    assert re.search(r"^After=.*\bproxmox-firewall-logger\.service\b", main, re.M)
    assert "pvefw-logger" not in "".join(re.findall(r"^(?:Wants|After)=.*$", main, re.M))
    assert re.search(r"^ExecStart=/usr/libexec/proxmox/proxmox-firewall logger$", logger, re.M)
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", logger, re.M)
    assert re.search(r"^Type=(simple|notify)$", logger, re.M)
    assert re.search(r"^Conflicts=pvefw-logger\.service$", logger, re.M)
    assert re.search(r"^WantedBy=multi-user\.target$", logger, re.M)
    assert "Environment=PVE_LOG=debug" in logger  # documented like the main unit


def test_purge_removes_everything(built: Built, base: Path) -> None:
    upstream = "/var/log/pve-firewall.log {\n    daily\n}\n"
    with throwaway_root(base, built.deb, {UPSTREAM_LOGROTATE: upstream}) as (root, res):
        assert res.returncode == 0, res.stderr
        # pve-firewall's logrotate entry for the same file is diverted aside while the
        # package is installed (logrotate fails on a duplicate entry) ...
        assert not (root / UPSTREAM_LOGROTATE.lstrip("/")).exists()
        assert (root / DIVERTED_LOGROTATE.lstrip("/")).read_text() == upstream
        assert DIVERTED_LOGROTATE in in_root(root, "dpkg-divert", "--list").stdout
        purge = in_root(root, "dpkg", "--purge", "proxmox-firewall")
        assert purge.returncode == 0, purge.stdout + purge.stderr
        assert not (root / PRIV.lstrip("/")).exists(), "byte code or files left behind"
        assert not (root / LAUNCHER.lstrip("/")).exists()
        for unit in UNITS:
            assert not (root / "etc/systemd/system/multi-user.target.wants" / Path(unit).name
                        ).is_symlink()
        assert not (root / LOGROTATE.lstrip("/")).exists()
        # ... and put back on removal.
        assert (root / UPSTREAM_LOGROTATE.lstrip("/")).read_text() == upstream
        assert not (root / DIVERTED_LOGROTATE.lstrip("/")).exists()
        assert "pve-firewall" not in in_root(root, "dpkg-divert", "--list").stdout


# --- log rotation ---------------------------------------------------------------------


def test_postrotate_command_line_is_valid_for_systemctl() -> None:
    # The real systemctl parses the options before it looks for systemd (which does not
    # run here): an unknown option would be reported as such.
    for args in (["--quiet", "is-active", "proxmox-firewall-logger.service"],
                 ["kill", "--kill-whom=main", "--signal=HUP", "proxmox-firewall-logger.service"]):
        res = run(["systemctl", *args], env=CLEAN_ENV)
        assert "unrecognized option" not in res.stderr and "Unknown" not in res.stderr, res


def test_logrotate_rotates_daily_keeps_seven_and_signals_the_logger(
        built: Built, tmp_path: Path) -> None:
    """The shipped logrotate file, run by the real logrotate on a log in a temporary
    directory (its path is the only thing changed). systemctl is a stand-in that records
    its arguments; it runs in a private mount namespace whose /run says systemd runs."""
    must(["dpkg-deb", "-x", str(built.deb), str(tmp_path / "deb")])
    text = (tmp_path / "deb" / LOGROTATE.lstrip("/")).read_text()
    assert text.count("/var/log/pve-firewall.log") == 1
    log = tmp_path / "log" / "pve-firewall.log"
    log.parent.mkdir()
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text.replace("/var/log/pve-firewall.log", str(log)))
    state = tmp_path / "state"
    calls = tmp_path / "calls"
    calls.write_text("")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (stub / "systemctl").chmod(0o755)
    env = {**CLEAN_ENV, "PATH": f"{stub}:{CLEAN_ENV['PATH']}"}

    def logrotate(*opts: str, systemd: bool = True) -> None:
        setup = "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && " if systemd else ""
        must(["unshare", "--mount", "--propagation", "private", "sh", "-c",
              setup + 'exec logrotate "$@"', "sh", *opts, "-s", str(state), str(conf)], env=env)

    def files() -> dict[str, str]:
        out = {}
        for f in sorted(log.parent.iterdir()):
            data = gzip_text(f) if f.name.endswith(".gz") else f.read_text()
            out[f.name] = data
        return out

    hup = ["--quiet is-active proxmox-firewall-logger.service",
           "kill --kill-whom=main --signal=HUP proxmox-firewall-logger.service"]
    log.write_text("day 1\n")
    logrotate("-f")
    assert files() == {"pve-firewall.log": "", "pve-firewall.log.1": "day 1\n"}
    st = log.stat()
    assert (st.st_mode & 0o777, st.st_uid, grp.getgrgid(st.st_gid).gr_name) == (0o640, 0, "adm")
    assert calls.read_text().splitlines() == hup  # SIGHUP, no restart
    # notifempty: an empty log is not rotated (and the logger not signalled).
    logrotate("-f")
    assert files() == {"pve-firewall.log": "", "pve-firewall.log.1": "day 1\n"}
    # daily: a second run on the same day rotates nothing.
    log.write_text("day 2\n")
    logrotate()
    assert files()["pve-firewall.log"] == "day 2\n"
    for day in range(2, 11):
        log.write_text(f"day {day}\n")
        logrotate("-f")
    # delaycompress: .1 stays plain (the logger may still write to it until it has
    # reopened the file); compress: the older ones are gzipped; rotate 7.
    expect = {"pve-firewall.log": "", "pve-firewall.log.1": "day 10\n"}
    expect.update({f"pve-firewall.log.{n}.gz": f"day {11 - n}\n" for n in range(2, 8)})
    assert files() == expect
    assert calls.read_text().splitlines() == hup * 10
    # Without systemd the postrotate script does nothing and does not fail.
    log.write_text("day 11\n")
    logrotate("-f", systemd=False)
    assert calls.read_text().splitlines() == hup * 10


def gzip_text(path: Path) -> str:
    with gzip.open(path, "rt") as fh:
        return fh.read()
