"""Helpers of the host behaviour tests: small ``/etc/pve`` trees, applied through the
product's own compile + apply path inside the host namespace, and the trace of a probe
turned into "which chain and which rule decided".

A verdict alone cannot tell a drop by ``drop-noise`` from one by the logged policy, or an
accept by the loopback rule from one by a user rule; the deciding rule's text can.
"""

from __future__ import annotations

import ipaddress
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nftables

from tests.harness.endpoints import ProbeState
from tests.harness.netns import NetNs
from tests.harness.nftrace import (
    NF_ACCEPT,
    NF_DROP,
    TRACE_TABLE,
    TRACETYPE_POLICY,
    TRACETYPE_RULE,
    TraceEvent,
)
from tests.harness.probe import probe
from tests.harness.rawpkt import Outcome
from tests.harness.topology import Topology

NODE = "pve1"
HOST_TABLE = "proxmox-firewall"
# What the CLI's local network detection finds for the host's 172.16.1.2/24 on vmbr0.
DETECTED_NET = ipaddress.ip_interface("172.16.1.0/24")
HOST4, HOST6 = "172.16.1.2", "fd00:16:1::2"
EMPTY_VMLIST = json.dumps({"version": 1, "ids": {}})
Cidr = ipaddress.IPv4Interface | ipaddress.IPv6Interface
_PASS_THROUGH = frozenset({"host-bridge-input", "host-bridge-output"})


def cluster_fw(options: str = "", body: str = "", *, enable: int = 1) -> str:
    """cluster.fw (the firewall enabled unless ``enable=0``); ``options`` go under
    [OPTIONS], ``body`` after them."""
    return (f"[OPTIONS]\nenable: {enable}\n{textwrap.dedent(options)}\n"
            f"{textwrap.dedent(body)}")  # fmt: skip


def host_fw(rules: str = "", options: str = "") -> str:
    """host.fw of this nftables firewall (``nftables: 1``) with ``rules`` under [RULES]."""
    return (f"[OPTIONS]\nnftables: 1\n{textwrap.dedent(options)}\n"
            f"[RULES]\n{textwrap.dedent(rules)}")  # fmt: skip


def corosync_conf(*nodes: tuple[str, dict[str, str]]) -> str:
    """A corosync.conf nodelist: ``(name, {"ring0_addr": ip, ...})`` per node."""
    blocks = []
    for nodeid, (name, links) in enumerate(nodes, start=1):
        lines = "".join(f"    {k}: {v}\n" for k, v in links.items())
        blocks.append(f"  node {{\n    name: {name}\n    nodeid: {nodeid}\n{lines}  }}\n")
    return ("totem {\n  cluster_name: t\n  transport: knet\n  version: 2\n}\n\n"
            "nodelist {\n" + "".join(blocks) + "}\n")  # fmt: skip


def write_tree(root: Path, cluster: str | None, host: str | None,
               corosync: str | None = None) -> Path:  # fmt: skip
    """An ``/etc/pve`` tree under ``root`` (a None file is left out)."""
    (root / "firewall").mkdir(parents=True, exist_ok=True)
    (root / "nodes" / NODE).mkdir(parents=True, exist_ok=True)
    (root / ".vmlist").write_text(EMPTY_VMLIST)
    for path, text in ((root / "firewall/cluster.fw", cluster),
                       (root / "nodes" / NODE / "host.fw", host),
                       (root / "corosync.conf", corosync)):  # fmt: skip
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    return root


@dataclass(frozen=True, slots=True)
class Pkt:
    """One probe: ``proto``/``port`` (ICMP type for icmp) from zone ``src`` to ``dst``."""

    proto: str
    port: int | str | None = None
    source: str | None = None
    dest: str | None = None
    sport: int | None = None
    v6: bool = False
    multicast: bool = False
    src: str = "outside"
    dst: str = "host"

    def __str__(self) -> str:
        fam = "v6" if self.v6 or ":" in f"{self.source}{self.dest}" else "v4"
        where = f"{self.src}->{self.dst}"
        addrs = f" {self.source or ''}->{self.dest or ''}" if self.source or self.dest else ""
        sport = f" sport {self.sport}" if self.sport is not None else ""
        return f"{where} {fam} {self.proto} {self.port}{sport}{addrs}"


def v4v6(pkt: Pkt) -> list[Pkt]:
    """``pkt`` as given (IPv4) and its IPv6 twin (icmp becomes icmpv6)."""
    proto = "icmpv6" if pkt.proto == "icmp" else pkt.proto
    return [pkt, Pkt(proto, pkt.port, sport=pkt.sport, v6=True, src=pkt.src, dst=pkt.dst)]


@dataclass(slots=True)
class Applied:
    """What one apply did: the tables it loaded or removed and the config diagnostics."""

    applied: list[str]
    deleted: list[str]
    diagnostics: list[str] = field(default_factory=list)


def apply_tree(topo: Topology, tree: Path, local_net: Cidr | None = DETECTED_NET) -> Applied:
    """``compile_dir`` + ``apply_ruleset`` in the host namespace, as ``apply`` does."""

    def in_host() -> tuple[bool, str, list[str], list[str], list[str]]:
        from proxmox_fw.nft.apply import apply_ruleset
        from proxmox_fw.nft.client import NftClient
        from proxmox_fw.nft.features import probe_features
        from proxmox_fw.pipeline import compile_dir

        res = compile_dir(tree, NODE, local_net=local_net)
        out = apply_ruleset(res.ruleset, NftClient(), probe_features())
        return (out.ok, out.error, out.applied_tables, out.deleted_tables,
                [str(d) for d in res.diagnostics])  # fmt: skip

    ok, error, applied, deleted, diags = topo.ns("host").run(in_host)
    assert ok, error
    return Applied(applied, deleted, diags)


class Firewall:
    """One test's view of the host firewall: write a tree, apply it, inspect rules."""

    def __init__(self, topo: Topology, tmp: Path) -> None:
        self.topo = topo
        self.tmp = tmp
        self.tree = tmp / "pve"
        self._rules: dict[tuple[str, int], str] | None = None

    def apply(self, cluster: str | None = None, host: str | None = None,
              corosync: str | None = None, *, local_net: Cidr | None = DETECTED_NET,
              allow_diagnostics: bool = False) -> Applied:  # fmt: skip
        """Apply the tree; unless allowed, any config diagnostic fails the test (a typo in
        a test's config must not silently turn into a narrower ruleset)."""
        write_tree(self.tree, cluster if cluster is not None else cluster_fw(),
                   host if host is not None else host_fw(), corosync)  # fmt: skip
        self._rules = None
        done = apply_tree(self.topo, self.tree, local_net)
        if not allow_diagnostics:
            problems = [d for d in done.diagnostics if ": info: " not in d]
            assert problems == [], problems
        return done

    # -- packets ------------------------------------------------------------------------
    def send(self, pkt: Pkt) -> str:
        """The sender's verdict for ``pkt``."""
        return probe(self.topo, pkt.src, pkt.dst, pkt.proto, pkt.port, source=pkt.source,
                     dest=pkt.dest, sport=pkt.sport, multicast=pkt.multicast, v6=pkt.v6)

    def check(self, expected: dict[Pkt, str]) -> None:
        """Send every packet; each must get its verdict, and where the expectation is
        ``VERDICT@chain`` the deciding rule must be in that chain. All mismatches are
        reported together, each with the rule that decided it."""
        wrong = []
        for pkt, want in expected.items():
            verdict, _, chain = want.partition("@")
            got = self.send(pkt)
            decided = self.decided()
            where = decided.split(":", 1)[0]
            if got != verdict or (chain and where != chain):
                wrong.append(f"{pkt}: want {want}, got {got} by {decided}")
        assert wrong == [], "\n".join(wrong)

    # -- the loaded ruleset ------------------------------------------------------------
    def ruleset(self) -> str:
        """``nft -a list table inet proxmox-firewall`` of the host namespace."""
        return list_text(self.topo.host.ns, f"list table inet {HOST_TABLE}")

    def chain(self, name: str) -> str:
        return list_text(self.topo.host.ns, f"list chain inet {HOST_TABLE} {name}")

    def rule(self, chain: str | None, handle: int | None) -> str:
        """The text of rule ``handle`` in ``chain`` ('policy' for a base chain policy)."""
        if chain is None:
            return "<no decision>"
        if handle is None:
            return f"{chain}: policy"
        if self._rules is None:
            self._rules = rule_index(self.ruleset())
        return f"{chain}: " + self._rules.get((chain, handle), f"<handle {handle}?>")

    def decided(self) -> str:
        """``chain: rule`` that gave the last probe's first packet its verdict."""
        ev = deciding_event(probe_events(self.topo))
        if ev is None:
            return "<no decision traced>"
        return self.rule(ev.chain, ev.rule_handle if ev.type == TRACETYPE_RULE else None)

    def outcome(self, out: Outcome) -> str:
        """``chain: rule`` that decided an injected packet."""
        return self.rule(out.chain, out.handle)


def list_text(ns: NetNs, command: str) -> str:
    """nft text output with rule handles (the harness's shared context speaks JSON)."""

    def run() -> str:
        ctx = nftables.Nftables()
        ctx.set_handle_output(True)
        rc, out, err = ctx.cmd(command)
        if rc != 0:
            raise RuntimeError(f"nft {command}: {err}")
        return str(out)

    return ns.run(run)


def rule_index(text: str) -> dict[tuple[str, int], str]:
    """(chain, handle) -> rule text, from ``nft -a`` output."""
    out: dict[tuple[str, int], str] = {}
    chain = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("chain "):
            chain = line.split()[1]
            continue
        if " # handle " in line:
            body, _, handle = line.rpartition(" # handle ")
            if handle.isdigit():
                out[(chain, int(handle))] = body.strip()
    return out


def probe_events(topo: Topology) -> list[TraceEvent]:
    """The trace events of the last probe's flow (``last_trace`` without the text)."""
    state = topo.probe_state
    return list(state.last_trace) if isinstance(state, ProbeState) else []


def deciding_event(events: list[TraceEvent]) -> TraceEvent | None:
    """The first accept/drop of the firewall: what decided the probe's first packet."""
    for ev in events:
        if ev.table == TRACE_TABLE or ev.chain in _PASS_THROUGH:
            continue
        if ev.type == TRACETYPE_POLICY or (
            ev.type == TRACETYPE_RULE and ev.verdict in (NF_ACCEPT, NF_DROP)
        ):
            return ev
    return None


def has_table(ns: NetNs, family: str, name: str) -> bool:
    out = json.loads(ns.nft("list tables") or '{"nftables": []}')
    return any(
        item.get("table", {}).get("family") == family and item["table"].get("name") == name
        for item in out["nftables"]
    )
