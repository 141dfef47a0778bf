"""The pve-sim conformance suites, run as real packets through the real kernel.

Each suite is an ``/etc/pve`` tree plus ``cases.jsonl`` (see the conformance README).
:func:`load_cases` turns a suite into :class:`Case` objects with every packet default
applied and a stable id (``suite:line``, or ``suite:line:from->to`` for the copies of a
case that named only one endpoint); :func:`run_case` sends it with
:func:`tests.harness.probe.probe`. The firewall is put in place by a callable the test
passes in, ``apply(pve_dir, topo)``, so this module knows nothing of the product.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.harness.probe import (
    DEFAULT_DEST,
    DEFAULT_HOST,
    DEFAULT_SOURCE,
    ProbeError,
    Verdict,
    probe,
)
from tests.harness.topology import Topology

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PVE_SIM_ROOT = Path(
    os.environ.get("PFWT_PVE_SIM_DIR", PROJECT_ROOT.parent / "shared/conformance/pve-sim")
)
INAPPLICABLE_FILE = PROJECT_ROOT / "tests/conformance/inapplicable.toml"

# README: a case without ``to`` (or ``from``) runs once for each of these, minus the other end
EXPANSION_ZONES = ("host", "outside", "nfvm", "vm100", "ct200")
HOST_SIDE_ZONES = frozenset({"host", "outside", "vmbr0/eth0"})
_KEYS = frozenset(
    {"from", "to", "action", "line", "id", "proto", "sport", "dport", "source", "dest",
     "srctype", "dsttype"}
)  # fmt: skip
_VERDICTS: dict[str, Verdict] = {"ACCEPT": "ACCEPT", "DROP": "DROP", "REJECT": "REJECT"}

Apply = Callable[[Path, Topology], None]


@dataclass(frozen=True, slots=True)
class Case:
    """One packet of a suite, every default resolved."""

    suite: str
    line: int
    src_zone: str
    dst_zone: str
    action: Verdict
    proto: str
    dport: int | str | None
    sport: int | None
    source: str
    dest: str
    multicast: bool
    v6: bool
    expanded: bool  # from/to was filled in by the expansion rule
    label: str | None = None  # the case's own "id" field, if any

    @property
    def id(self) -> str:
        base = f"{self.suite}:{self.line}"
        return f"{base}:{self.src_zone}->{self.dst_zone}" if self.expanded else base

    @property
    def pve_dir(self) -> Path:
        return suite_dir(self.suite) / "pve"


def suite_dir(suite: str) -> Path:
    return PVE_SIM_ROOT / suite


def suites() -> list[str]:
    """Every suite under the pve-sim directory, sorted."""
    return sorted(p.name for p in PVE_SIM_ROOT.iterdir() if (p / "cases.jsonl").is_file())


def _endpoints(raw: dict[str, object]) -> list[tuple[str, str]]:
    src, dst = raw.get("from"), raw.get("to")
    if src is None and dst is None:
        raise ValueError("a case needs 'from' or 'to'")
    if src is None:
        return [(z, str(dst)) for z in EXPANSION_ZONES if z != dst]
    if dst is None:
        return [(str(src), z) for z in EXPANSION_ZONES if z != src]
    return [(str(src), str(dst))]


def _version(raw: dict[str, object]) -> int:
    if str(raw.get("proto", "tcp")).lower() == "icmpv6":
        return 6
    for key in ("source", "dest"):
        value = raw.get(key)
        if value is not None and ipaddress.ip_address(str(value)).version == 6:
            return 6
    return 4


def parse_case(suite: str, raw: dict[str, object]) -> list[Case]:
    """The packet(s) one line of ``cases.jsonl`` stands for."""
    unknown = set(raw) - _KEYS
    if unknown:
        raise ValueError(f"{suite}: unknown case keys {sorted(unknown)}")
    line = raw["line"]
    if not isinstance(line, int):
        raise ValueError(f"{suite}: bad line number {line!r}")
    action = _VERDICTS[str(raw["action"]).upper()]
    if str(raw.get("srctype", "UNICAST")).upper() != "UNICAST":
        raise ValueError(f"{suite}:{line}: only unicast sources can be sent")
    version = _version(raw)
    dport = raw.get("dport")
    sport = raw.get("sport")
    label = raw.get("id")
    pairs = _endpoints(raw)
    out = []
    for src_zone, dst_zone in pairs:
        source = raw.get("source") or (
            DEFAULT_HOST[version] if src_zone == "host" else DEFAULT_SOURCE[version]
        )
        dest = raw.get("dest") or (
            DEFAULT_HOST[version] if dst_zone == "host" else DEFAULT_DEST[version]
        )
        out.append(
            Case(
                suite=suite,
                line=line,
                src_zone=src_zone,
                dst_zone=dst_zone,
                action=action,
                proto=str(raw.get("proto", "tcp")).lower(),
                dport=dport if isinstance(dport, int | str) else None,
                sport=int(str(sport)) if sport is not None else None,
                source=str(source),
                dest=str(dest),
                multicast=str(raw.get("dsttype", "UNICAST")).upper() == "MULTICAST",
                v6=version == 6,
                expanded="from" not in raw or "to" not in raw,
                label=str(label) if label is not None else None,
            )
        )
    return out


def load_cases(suite: str) -> list[Case]:
    """Every case of a suite, in file order, expanded."""
    cases: list[Case] = []
    with open(suite_dir(suite) / "cases.jsonl") as fh:
        for text in fh:
            if text.strip():
                cases.extend(parse_case(suite, json.loads(text)))
    return cases


def all_cases(names: Iterable[str] | None = None) -> list[Case]:
    return [c for s in (suites() if names is None else names) for c in load_cases(s)]


def host_side(case: Case) -> bool:
    """Both endpoints are the host or its uplink: only the inet table is involved."""
    return case.src_zone in HOST_SIDE_ZONES and case.dst_zone in HOST_SIDE_ZONES


def ensure_applied(topo: Topology, suite: str, apply: Apply) -> None:
    """Apply a suite's configuration unless it is the one applied last on ``topo``."""
    if topo.applied_suite == suite:
        return
    topo.applied_suite = None  # a failed apply leaves nothing known in place
    apply(suite_dir(suite) / "pve", topo)
    topo.applied_suite = suite


def run_case(case: Case, topo: Topology) -> Verdict:
    """Send the case's packet and return what the sender saw."""
    return probe(
        topo,
        case.src_zone,
        case.dst_zone,
        case.proto,
        case.dport,
        source=case.source,
        dest=case.dest,
        sport=case.sport,
        multicast=case.multicast,
        v6=case.v6,
    )


def load_inapplicable(path: Path = INAPPLICABLE_FILE) -> dict[str, str]:
    """Case id -> reason, from the project's list of cases that cannot apply."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    out: dict[str, str] = {}
    for case_id, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("reason"), str):
            raise ValueError(f'{path}: [{case_id!r}] needs reason = "..."')
        if not entry["reason"].strip():
            raise ValueError(f"{path}: [{case_id!r}] has an empty reason")
        extra = set(entry) - {"reason"}
        if extra:
            raise ValueError(f"{path}: [{case_id!r}] has unknown keys {sorted(extra)}")
        out[case_id] = entry["reason"]
    return out


def unresolved_ring_name(diagnostic: object) -> bool:
    """A diagnostic about the suites' corosync.conf naming ring2 by host names (hostname1,
    pve1, ...) that no /etc/hosts here knows; the simulator ignored those links too."""
    return str(getattr(diagnostic, "file", "")) == "corosync.conf" and "cannot resolve" in str(
        getattr(diagnostic, "message", ""))


def unknown_ids(ids: Iterable[str], cases: Iterable[Case]) -> list[str]:
    """Ids on a list that name no case (a typo, or a suite that changed)."""
    known = {c.id for c in cases}
    return sorted(set(ids) - known)


__all__ = [
    "Apply",
    "Case",
    "ProbeError",
    "all_cases",
    "ensure_applied",
    "host_side",
    "load_cases",
    "load_inapplicable",
    "parse_case",
    "run_case",
    "suites",
    "unknown_ids",
    "unresolved_ring_name",
]
