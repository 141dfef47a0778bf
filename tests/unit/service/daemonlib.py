"""Helpers of the daemon tests: small pve trees, the daemon as a subprocess inside a
namespace, an ``nft monitor`` that counts transactions, and ruleset listings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxmox_fw.nft.client import NftClient, Result
from proxmox_fw.nft.features import KernelFeatures
from proxmox_fw.nft.kernelstate import KernelSnapshot, TableNames, TableShape, TableState
from proxmox_fw.nft.objects import HOST_TABLE, INET
from tests.harness.process import terminate

if TYPE_CHECKING:
    from tests.harness.netns import NetNs

REPO = Path(__file__).resolve().parents[3]
CLI = REPO / ".venv" / "bin" / "proxmox-firewall"
NODE = "pve1"
EVENTUALLY = 15.0  # upper bound for "eventually" waits (a hang guard, not a timing claim)

CLUSTER_TEXT = """\
[OPTIONS]

enable: 1
policy_in: DROP

[ALIASES]

local_network 192.0.2.0/24
admin 198.51.100.7

[IPSET trusted]

198.51.100.0/28
203.0.113.5

[RULES]

IN ACCEPT -p tcp -dport 2222 -source +trusted
IN ACCEPT -p udp -dport 5353
"""

HOST_TEXT = """\
[OPTIONS]

enable: 1
nftables: 1

[RULES]

IN ACCEPT -p tcp -dport 22 -source admin
IN ACCEPT -p tcp -dport 8006
"""

VMLIST = '{"version": 1, "ids": {}}\n'
HOST_FW = f"nodes/{NODE}/host.fw"  # relative to the tree
CLUSTER_FW = "firewall/cluster.fw"
NO_GUEST_FEATURES = KernelFeatures(bridge_conntrack=False, bridge_reject=False,
                                   bridge_meta=False)  # the loop tests need the host table only
OLD = time.time() - 3600  # tree files start "old": no racy re-reads after the start


def write_tree(root: Path, *, cluster: str = CLUSTER_TEXT, host: str = HOST_TEXT,
               vmlist: str = VMLIST) -> Path:
    """A small pve tree: host table only (no guest has its firewall on)."""
    (root / "firewall").mkdir(parents=True, exist_ok=True)
    (root / "nodes" / NODE).mkdir(parents=True, exist_ok=True)
    (root / CLUSTER_FW).write_text(cluster)
    (root / HOST_FW).write_text(host)
    (root / ".vmlist").write_text(vmlist)
    age_tree(root)
    return root


def example_tree(root: Path) -> Path:
    """A copy of examples/pve (guests with their firewall on: both tables) whose
    cluster.fw sets ``local_network``, so nothing depends on this machine's addresses."""
    shutil.copytree(REPO / "examples" / "pve", root)
    cluster = root / "firewall" / "cluster.fw"
    cluster.write_text(cluster.read_text().replace(
        "[ALIASES]\n", "[ALIASES]\n\nlocal_network 172.16.1.0/24\n"))
    age_tree(root)
    return root


def age_tree(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        os.utime(path, (OLD, OLD))


def edit(path: Path, text: str) -> None:
    """Replace a file the way pmxcfs users do: write a temp file, rename it over."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def eventually(check: Callable[[], Any], what: str, timeout: float = EVENTUALLY) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.05)


# --- the kernel side ----------------------------------------------------------------------


def list_table(
    ns: NetNs, family: str = INET, name: str = HOST_TABLE
) -> list[dict[str, Any]] | None:
    """The table's objects (metainfo dropped), or None when it does not exist."""

    def run() -> Any:
        return NftClient().list_table_json(family, name)

    result = ns.run(run)
    if not result.ok:
        return None
    return [i for i in result.output["nftables"] if "metainfo" not in i]


def rules(items: list[dict[str, Any]], chain: str) -> list[dict[str, Any]]:
    return [i["rule"] for i in items if "rule" in i and i["rule"]["chain"] == chain]


def counters(rule_list: list[dict[str, Any]]) -> list[dict[str, int]]:
    return [e["counter"] for r in rule_list for e in r["expr"] if "counter" in e]


def table_handle(ns: NetNs, family: str = INET, name: str = HOST_TABLE) -> int | None:
    items = list_table(ns, family, name)
    if items is None:
        return None
    return next(int(i["table"]["handle"]) for i in items if "table" in i)


class Monitor:
    """``nft monitor`` in a namespace; counts committed transactions ("new generation")."""

    def __init__(self, ns: NetNs) -> None:
        self.ns = ns
        self.lines: list[str] = []
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, "nft", "monitor"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # Canary transactions of our own until one shows: the monitor is subscribed.
        def canary_seen() -> bool:
            ns.nft("add table inet pfw-canary; delete table inet pfw-canary")
            time.sleep(0.05)
            return self.generations() >= 1

        eventually(canary_seen, "nft monitor to see a canary transaction")
        self.mark()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def mark(self) -> None:
        self._base = len(self.lines)

    def since_mark(self) -> list[str]:
        return self.lines[self._base:]

    def generations(self) -> int:
        return sum(1 for line in self.lines if line.startswith("# new generation"))

    def transactions_since_mark(self) -> int:
        return sum(1 for line in self.since_mark() if line.startswith("# new generation"))

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class DaemonProcess:
    """``proxmox-firewall start`` as a subprocess inside ``ns`` (via ``ip netns exec``)."""

    def __init__(self, ns: NetNs, pve_dir: Path, work: Path, interval: float = 0.2,
                 extra_env: dict[str, str] | None = None) -> None:
        self.ns = ns
        self.state_dir = work / "state"
        self.flag = work / "force-disable"
        self.log_path = work / "daemon.log"
        self.pve_dir = pve_dir
        env = {**os.environ, "PVE_LOG": "debug", **(extra_env or {})}
        env.pop("JOURNAL_STREAM", None)
        env.pop("INVOCATION_ID", None)
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, str(CLI), "--pve-dir", str(pve_dir),
             "--nodename", NODE, "start", "--interval", str(interval),
             "--state-dir", str(self.state_dir), "--force-disable-flag", str(self.flag),
             "--no-side-effects"],
            stdout=subprocess.DEVNULL, stderr=self._log, env=env,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait_applied(self, count: int = 1) -> None:
        """Until the log shows ``count`` committed updates."""
        eventually(lambda: self.log().count("firewall update time") >= count or self._dead(),
                   f"{count} update(s) by the daemon")
        assert self.proc.poll() is None, self.log()

    def _dead(self) -> bool:
        return self.proc.poll() is not None

    def status(self, *args: str) -> tuple[int, dict[str, Any]]:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns.name, str(CLI), "--pve-dir", str(self.pve_dir),
             "--nodename", NODE, "status", "--json", "--state-dir", str(self.state_dir),
             "--force-disable-flag", str(self.flag), *args],
            capture_output=True, text=True, check=False,
        )
        return proc.returncode, json.loads(proc.stdout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not go; always closes the log."""
        try:
            terminate(self.proc)
        finally:
            self._log.close()
            if self.proc.returncode not in (0, None, -signal.SIGKILL):
                sys.stderr.write(self.log())


def normalized(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A listing in a form where two tables with the same content compare equal:
    handles dropped, objects keyed by name (creation order differs after a diff), rules
    in chain order, set and map elements sorted."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        ((kind, body),) = item.items()
        body = {k: v for k, v in body.items() if k != "handle"}
        if kind == "rule":
            out.setdefault("rules", {}).setdefault(body["chain"], []).append(body)
            continue
        if "elem" in body:
            body["elem"] = sorted(body["elem"], key=lambda e: json.dumps(e, sort_keys=True))
        out.setdefault(kind, {})[body.get("name", "")] = body
    return out


# --- fakes for loop control (never for what nft itself does) -------------------------


class FakeClient:
    """Records transactions; keeps the set of tables (with handles) they leave behind and
    answers the daemon's kernel questions (:class:`~proxmox_fw.nft.kernelstate.KernelReader`)
    from it: the generation moves with every transaction it accepts."""

    def __init__(self) -> None:
        self.transactions: list[list[dict[str, Any]]] = []
        self.refuse = False
        self.tables: dict[str, int] = {}
        self.generation_id = 1
        self.questions: list[str] = []  # KernelReader calls, in order
        self._next_handle = 1

    def run_json(self, doc: Any) -> Result:
        commands = doc["nftables"]
        self.transactions.append(commands)
        if self.refuse:
            return Result(False, "", "Error: Could not process rule: Operation not supported")
        self.generation_id += 1
        for cmd in commands:
            ((verb, body),) = cmd.items()
            if "table" in body:
                label = f"{body['table']['family']} {body['table']['name']}"
                if verb == "add" and label not in self.tables:
                    self.tables[label] = self._next_handle
                    self._next_handle += 1
                elif verb == "delete":
                    self.tables.pop(label, None)
        return Result(True, "", "")

    def flush_ruleset(self) -> None:
        """Someone else ran ``nft flush ruleset``."""
        self.tables.clear()
        self.generation_id += 1

    def take(self) -> list[list[dict[str, Any]]]:
        sent, self.transactions = self.transactions, []
        return sent

    # -- KernelReader ---------------------------------------------------------------------
    def generation(self) -> int | None:
        self.questions.append("generation")
        return self.generation_id

    def present(self, tables: TableNames) -> dict[str, TableState] | None:
        self.questions.append("present")
        return self._present(tables)

    def _present(self, tables: TableNames) -> dict[str, TableState]:
        found = {}
        for family, name in tables:
            handle = self.tables.get(f"{family} {name}")
            if handle is not None:
                found[f"{family} {name}"] = TableState(family, name, handle, flags=0, use=0)
        return found

    def snapshot(self, tables: TableNames) -> KernelSnapshot | None:
        self.questions.append("snapshot")
        present = self._present(tables)
        shapes = {label: TableShape(state, 0, 0, 0, 0, digest="")
                  for label, state in present.items()}
        return KernelSnapshot(self.generation_id, shapes)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
