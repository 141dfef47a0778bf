"""``simulate``: what the firewall does to one packet, answered by the real kernel.

Like pve-firewall's ``simulate``, but nothing is modelled: the configuration is compiled
through the pipeline for a throwaway node (:mod:`.topology`: host namespace with vmbr0,
the ``outside`` zone behind its uplink ``eth0``), applied there with ``apply``'s own
transaction, and the packet is really sent from one zone to the other while ``trace``
follows it through the firewall's chains. The verdict is what the sender saw: its
connection or datagram answered (ACCEPT), refused by a reset or ICMP error (REJECT), or
nothing (DROP). The namespaces vanish when it returns, whatever happens.

Zones: ``host``, ``outside`` (also as ``vmbr0/eth0``) and the guests: ``vm<ID>`` /
``ct<ID>`` (their first NIC) or ``vm<ID>i<N>`` (netN), each built from the guest's config
as a bridge port of vmbr0 with the NIC's MAC. The guest table needs bridge features
(admin guide §13.13); where this kernel lacks them, a guest zone is refused with
:class:`Unsupported` naming them rather than guessed.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxmox_fw.model.config import PveConfig
from proxmox_fw.nft.apply import apply_ruleset, loadable_ruleset
from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.features import KernelFeatures, probe_features
from proxmox_fw.nft.objects import Ruleset
from proxmox_fw.pipeline import compile_node, host_facts, load_node
from proxmox_fw.system.localnet import LocalNet
from proxmox_fw.tools.topology import BRIDGE, Node
from proxmox_fw.tools.trace import TracedPacket, TraceFilter, run_trace

HOST_CIDR = "172.16.1.2/24"  # the simulated node on vmbr0 (pve-firewall's simulator too)
DEFAULT_SOURCE = "100.100.1.2"
DEFAULT_DEST = "100.200.3.4"
GUEST_SOURCE, GUEST_DEST = "172.16.1.100", "172.16.1.101"  # guests: in the host's network
WAIT = 0.8  # seconds the sender waits for an answer (under TCP's first SYN retry, 1 s)
TRACE_AFTER = 1.2  # seconds the trace runs past the sender's wait
ZONES = ("host", "outside")
ZONE_ALIASES = {"vmbr0/eth0": "outside"}  # a bridge port, as pve-sim names it
_GUEST = re.compile(r"(vm|ct)(\d+)(?:i(\d+))?")


class SimulateError(ValueError):
    """The request cannot be simulated as given (bad zone, protocol, address)."""


class Unsupported(RuntimeError):
    """The request needs something this build or kernel cannot simulate."""


@dataclass(frozen=True, slots=True)
class Request:
    src_zone: str
    dst_zone: str
    proto: str = "tcp"
    source: str | None = None
    dest: str | None = None
    sport: int | None = None
    dport: int | None = None

    def resolved(self) -> Request:
        """Defaults filled in and checked; raises SimulateError or Unsupported."""
        src_zone = ZONE_ALIASES.get(self.src_zone, self.src_zone)
        dst_zone = ZONE_ALIASES.get(self.dst_zone, self.dst_zone)
        for zone in (src_zone, dst_zone):
            if zone not in ZONES and not _GUEST.fullmatch(zone):
                raise SimulateError(f"unknown zone '{zone}' (use host, outside, vmNNN, ctNNN)")
        if src_zone == dst_zone:
            raise SimulateError("--from and --to must be different zones")
        proto = self.proto.lower()
        if proto not in ("tcp", "udp"):
            raise SimulateError(f"--proto {self.proto}: simulate sends tcp or udp")
        host_ip = HOST_CIDR.split("/")[0]
        source = self.source or {"host": host_ip, "outside": DEFAULT_SOURCE}.get(
            src_zone, GUEST_SOURCE)
        dest = self.dest or {"host": host_ip, "outside": DEFAULT_DEST}.get(dst_zone, GUEST_DEST)
        try:
            versions = {ipaddress.ip_address(a).version for a in (source, dest)}
        except ValueError as exc:
            raise SimulateError(f"not an IP address: {exc}") from None
        if len(versions) > 1:
            raise SimulateError("--source and --dest are of different IP versions")
        return Request(src_zone, dst_zone, proto, source, dest, self.sport,
                       self.dport if self.dport is not None else 40000)  # fmt: skip

    def guest_zones(self) -> list[str]:
        return [z for z in (self.src_zone, self.dst_zone) if _GUEST.fullmatch(z)]

    def describe(self) -> str:
        sport = f" sport {self.sport}" if self.sport is not None else ""
        return (f"{self.src_zone} {self.source} -> {self.dst_zone} {self.dest} "
                f"{self.proto}{sport} dport {self.dport}")  # fmt: skip


@dataclass(slots=True)
class Outcome:
    request: Request
    verdict: str  # ACCEPT, DROP, REJECT: what the sender saw
    seen: str  # how the sender saw it
    packets: list[TracedPacket] = field(default_factory=list)
    missing_features: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {"from": r.src_zone, "to": r.dst_zone, "proto": r.proto, "source": r.source,
                "dest": r.dest, "sport": r.sport, "dport": r.dport, "verdict": self.verdict,
                "seen": self.seen, "trace": [p.to_json() for p in self.packets],
                "missing_features": self.missing_features}  # fmt: skip


def compile_for_node(pve_dir: Path, nodename: str) -> tuple[PveConfig, Ruleset]:
    """The configuration and its ruleset compiled for the simulated node (its network
    is vmbr0's)."""
    from proxmox_fw.diagnostics import Diagnostics

    diags = Diagnostics()
    cfg = load_node(pve_dir, nodename, diags)
    net = ipaddress.ip_interface(HOST_CIDR)
    facts = host_facts(cfg, detect_local=lambda: LocalNet(nodename, detected=net),
                       altnames={}, honor_nftables_switch=False)  # fmt: skip
    return cfg, compile_node(cfg, facts, diags).ruleset


@dataclass(frozen=True, slots=True)
class GuestPort:
    zone: str
    port: str  # the bridge port, tap<vmid>i<N> / veth<vmid>i<N>
    mac: str | None


def guest_port(cfg: PveConfig, zone: str) -> GuestPort:
    """The bridge port of a guest zone, from the guest's config (its netN line)."""
    m = _GUEST.fullmatch(zone)
    assert m is not None
    kind = "qemu" if m[1] == "vm" else "lxc"
    vmid = int(m[2])
    guest = cfg.guests.get(vmid)
    if guest is None or guest.kind != kind:
        what = "VM" if kind == "qemu" else "container"
        raise SimulateError(f"zone '{zone}': no {what} {vmid} on this node (its .vmlist "
                            "entry and config)")  # fmt: skip
    if not guest.nics:
        raise SimulateError(f"zone '{zone}': guest {vmid} has no netN line")
    index = int(m[3]) if m[3] is not None else min(guest.nics)
    nic = guest.nics.get(index)
    if nic is None:
        raise SimulateError(f"zone '{zone}': guest {vmid} has no net{index}")
    if nic.bridge != BRIDGE:
        raise Unsupported(f"zone '{zone}': net{index} is on bridge {nic.bridge}; the "
                          f"simulated node has only {BRIDGE}")  # fmt: skip
    if nic.tag is not None:
        raise Unsupported(f"zone '{zone}': net{index} has VLAN tag {nic.tag}; VLANs are "
                          "not simulated")  # fmt: skip
    return GuestPort(zone, guest.port_name(index), nic.mac)


def _sockets(req: Request) -> tuple[Any, Any]:
    """(listener, sender) factories' arguments per protocol."""
    v6 = ipaddress.ip_address(str(req.source)).version == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    kind = socket.SOCK_STREAM if req.proto == "tcp" else socket.SOCK_DGRAM
    return family, kind


def _listener(req: Request, wait: float) -> socket.socket:
    family, kind = _sockets(req)
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((str(req.dest), int(req.dport or 0)))
    if kind == socket.SOCK_STREAM:
        sock.listen(8)
    return sock


def _sender(req: Request, wait: float) -> socket.socket:
    family, kind = _sockets(req)
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((str(req.source), req.sport or 0))
    sock.settimeout(wait)
    return sock


def _echo(listener: socket.socket, wait: float) -> None:
    """Answer one datagram (the UDP 'service' of the destination)."""
    listener.settimeout(wait + TRACE_AFTER)
    try:
        data, peer = listener.recvfrom(2048)
        listener.sendto(data, peer)
    except OSError:
        pass


def _send(req: Request, sender: socket.socket, wait: float) -> tuple[str, str]:
    """Send the packet; (verdict, what the sender saw)."""
    target = (str(req.dest), int(req.dport or 0))
    try:
        if req.proto == "tcp":
            sender.connect(target)
            return "ACCEPT", "connection established"
        sender.connect(target)
        sender.send(b"proxmox-firewall simulate")
        sender.recv(2048)
        return "ACCEPT", "answer received"
    except ConnectionRefusedError:
        return "REJECT", ("TCP reset" if req.proto == "tcp" else "ICMP port unreachable")
    except TimeoutError:
        return "DROP", f"no answer within {wait:g} s"
    except OSError as exc:
        if exc.errno == errno.EPERM:  # the host's own output chain dropped it
            return "DROP", "dropped before leaving the host (EPERM)"
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES):
            return "REJECT", f"ICMP error ({exc.strerror})"
        raise


def simulate(pve_dir: Path, nodename: str, request: Request,
             features: KernelFeatures | None = None, wait: float = WAIT) -> Outcome:  # fmt: skip
    """Build the node, apply the configuration, send the packet, trace it; raises
    SimulateError, Unsupported, or RuntimeError when the kernel refuses the ruleset.
    ``wait``: seconds the sender waits for an answer before it calls the packet dropped."""
    feats = features if features is not None else probe_features()
    req = request.resolved()
    guest_zones = req.guest_zones()
    lacks = feats.missing_for_guests()
    if guest_zones and lacks:
        raise Unsupported(f"zone '{guest_zones[0]}': the guest table cannot be loaded here, "
                          f"this kernel lacks {', '.join(lacks)} (admin guide §13.13)")
    cfg, rs = compile_for_node(pve_dir, nodename)
    ports = [guest_port(cfg, z) for z in guest_zones]
    _, missing = loadable_ruleset(rs, feats)
    with Node() as node:
        node.build(HOST_CIDR)
        for gp in ports:
            node.add_guest(gp.zone, gp.port, gp.mac)
        applied = node.host.call(lambda: apply_ruleset(rs, NftClient(), feats))
        if not applied.ok:
            raise RuntimeError(f"the kernel refuses the compiled ruleset: {applied.error}")
        node.place(req.src_zone, str(req.source), str(req.dest))
        node.place(req.dst_zone, str(req.dest), str(req.source))
        listener = node.worker(req.dst_zone).call(_listener, req, wait)
        sender = node.worker(req.src_zone).call(_sender, req, wait)
        result: list[tuple[str, str]] = []
        threads: list[threading.Thread] = []

        def go() -> None:
            if req.proto == "udp":
                threads.append(threading.Thread(target=_echo, args=(listener, wait),
                                                daemon=True))  # fmt: skip
            threads.append(threading.Thread(
                target=lambda: result.append(_send(req, sender, wait)), daemon=True))
            for t in threads:
                t.start()

        packets: list[TracedPacket] = []
        filt = TraceFilter(proto=req.proto, source=req.source, dest=req.dest, dport=req.dport)
        try:
            node.host.call(lambda: run_trace(filt, packets.append, timeout=wait + TRACE_AFTER,
                                             ready=go))  # fmt: skip
            for t in threads:
                t.join(wait + TRACE_AFTER)
        finally:
            listener.close()
            sender.close()
    verdict, seen = result[0] if result else ("DROP", "the sender never finished")
    return Outcome(req, verdict, seen, packets, missing)


def deciding_rule(tp: TracedPacket) -> tuple[str, str] | None:
    """(origin, chain) of the last config rule on the packet's path up to the step that
    decided it: the rule whose verdict (or jump to do-reject) the kernel carried out."""
    decision = tp.decision
    found: tuple[str, str] | None = None
    for step in tp.steps:
        if step.rule is not None and step.rule.origin and step.rule.origin != "default":
            ev = step.event
            found = (step.rule.origin, f"{ev.family_name} {ev.table} {ev.chain}")
        if step is decision:
            break
    return found


def format_outcome(outcome: Outcome, pve_dir: Path) -> str:
    """The verdict, the config rule that decided it, then each traced packet's path."""
    from proxmox_fw.tools.trace import format_packet

    lines = [f"packet: {outcome.request.describe()}",
             f"verdict: {outcome.verdict} ({outcome.seen})"]  # fmt: skip
    decided = deciding_rule(outcome.packets[0]) if outcome.packets else None
    if decided is not None:
        lines.append(f"decided by: {pve_dir / decided[0]} ({decided[1]})")
    text = "\n".join(lines) + "\n"
    for p in outcome.packets:
        text += format_packet(p, pve_dir)
    return text

