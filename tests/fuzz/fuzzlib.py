"""One mutation of the seed tree (the upstream integration input of the conformance data,
read in place from ``../shared/conformance``, plus our example's corosync.conf) and the
properties every mutation must keep (issue 10):

- reading and compiling never raise;
- every diagnostic names its file, and a problem in a line-based file its line;
- what compiles loads in the kernel (libnftables check mode, throwaway namespace);
- a line that is rejected never widens: the ACCEPT rules compiled with it are a subset
  of those compiled from the same tree without that line.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxmox_fw.compile import CompileResult
from proxmox_fw.diagnostics import Severity
from proxmox_fw.nft.apply import loadable_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.diff import plan_update
from proxmox_fw.nft.features import KernelFeatures
from proxmox_fw.nft.netns import NetnsWorker
from proxmox_fw.nft.objects import Ruleset
from proxmox_fw.pipeline import compile_dir
from tests.unit.helpers import CONFORMANCE

# The conformance data is used by path, never copied into the project (its README).
CORPUS = CONFORMANCE / "upstream-integration" / "pve"
COROSYNC = Path(__file__).resolve().parents[2] / "examples" / "pve" / "corosync.conf"
REGRESSIONS = Path(__file__).parent / "regressions"
NODE = "pve1"

# The files of the tree, by reader.
LINE_FILES = ("firewall/cluster.fw", "nodes/pve1/host.fw", "firewall/100.fw",
              "firewall/101.fw", "nodes/pve1/lxc/100.conf",
              "nodes/pve1/qemu-server/101.conf", "corosync.conf")  # fmt: skip
JSON_FILES = (".vmlist", "sdn/.running-config", "priv/ipam.db")
FILES = LINE_FILES + JSON_FILES


@dataclass(frozen=True, slots=True)
class Mutation:
    file: str  # relative to the tree
    line: int  # 0-based index of the line replaced
    text: bytes  # its new content (no trailing newline added)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "text": self.text.decode("latin-1")}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Mutation:
        return Mutation(data["file"], data["line"], data["text"].encode("latin-1"))


def _seed_file(file: str) -> Path:
    return COROSYNC if file == "corosync.conf" else CORPUS / file


def seed_lines(file: str) -> list[bytes]:
    return _seed_file(file).read_bytes().split(b"\n")


def write_tree(root: Path, file: str, lines: list[bytes]) -> Path:
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(CORPUS, root)
    shutil.copyfile(COROSYNC, root / "corosync.conf")
    (root / file).write_bytes(b"\n".join(lines))
    return root


def compile_tree(root: Path) -> CompileResult:
    return compile_dir(root, NODE)


def accept_rules(rs: Ruleset) -> set[str]:
    """Every rule that accepts, as its expression (origin comments left out)."""
    out: set[str] = set()
    for table in rs.tables:
        for chain in table.chains.values():
            for rule in chain.rules:
                text = json.dumps(rule.expr, sort_keys=True)
                if '"accept"' in text:
                    out.add(f"{table.family} {chain.name} {text}")
    return out


class KernelCheck:
    """libnftables check mode in a throwaway namespace, for the whole fuzz run."""

    def __init__(self, features: KernelFeatures) -> None:
        self.worker = NetnsWorker()
        self.client: NftClient = self.worker.call(NftClient)
        self.features = features

    def refused(self, rs: Ruleset) -> str | None:
        loadable, _ = loadable_ruleset(rs, self.features)
        doc = plan_update(None, loadable).document()
        result = self.worker.call(self.client.check_json, doc)
        return None if result.ok else result.error

    def close(self) -> None:
        self.worker.close()


def check_mutation(m: Mutation, work: Path, kernel: KernelCheck | None) -> None:
    """Assert every property for one mutation (raises AssertionError naming it)."""
    lines = seed_lines(m.file)
    index = m.line % len(lines)
    mutated = [*lines[:index], m.text, *lines[index + 1:]]
    result = compile_tree(write_tree(work / "mutated", m.file, mutated))  # (1) no traceback
    for d in result.diagnostics:  # (2) every problem has its place
        assert d.file, f"{m}: diagnostic without a file: {d}"
        if (d.severity is Severity.ERROR and d.file == m.file and m.file in LINE_FILES
                and "unreadable" not in d.message and "cannot read" not in d.message):
            assert d.line is not None, f"{m}: error without a line: {d}"
    if kernel is not None:  # (3) what compiles loads
        refused = kernel.refused(result.ruleset)
        assert refused is None, f"{m}: the kernel refuses the compiled ruleset: {refused}"
    rejected = any(d.severity is Severity.ERROR and d.file == m.file and d.line == index + 1
                   for d in result.diagnostics)
    if rejected and m.file.endswith(".fw"):  # (4) never wider than without the line
        without = compile_tree(write_tree(work / "without", m.file,
                                          [*lines[:index], *lines[index + 1:]]))
        wider = accept_rules(result.ruleset) - accept_rules(without.ruleset)
        assert not wider, f"{m}: a rejected line accepts more: {sorted(wider)[:3]}"
