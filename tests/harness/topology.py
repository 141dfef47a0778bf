"""A declarative test network: a host namespace with bridges, and one namespace per port.

Each *zone* is a place a packet can start or end: the ``host`` namespace itself, or a
namespace whose single interface is the far end of a veth pair plugged into one of the
host's bridges (the host end is named like the PVE port: ``tap100i0``, ``veth200i0``,
``eth0``). A guest with several NICs gets one zone per NIC (``vm100``, ``vm100i1``, ...),
as the pve-sim topology treats each NIC as its own endpoint. Zones are also reachable
under ``<bridge>/<port>`` (``vmbr0/eth0`` is ``outside``).

Only the host namespace holds a firewall; probes (:mod:`tests.harness.probe`) add the
addresses, host routes and static neighbours a packet needs on demand.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType

from tests.harness.netns import (
    RUN_TAG,
    NetNs,
    create_namespaces,
    delete_namespace,
    unique_prefix,
)
from tests.harness.nftrace import Tracer

IfAddr = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(slots=True)
class Bridge:
    name: str
    mac: str
    addresses: list[IfAddr] = field(default_factory=list)


@dataclass(slots=True)
class Zone:
    """A probe endpoint. For the host, ``ifname``/``bridge`` depend on the peer."""

    name: str
    ns: NetNs
    is_host: bool = False
    ifname: str | None = None  # the interface inside ``ns``
    bridge: str | None = None  # the host bridge this zone's port is plugged into
    port: str | None = None  # the host-side interface (bridge port)
    mac: str | None = None
    addresses: list[IfAddr] = field(default_factory=list)

    def owns(self, addr: str) -> bool:
        ip = ipaddress.ip_address(addr)
        if ip.is_loopback and self.is_host:
            return True
        return any(a.ip == ip for a in self.addresses)


@dataclass(slots=True)
class _PortSpec:
    zone: str
    bridge: str
    host_ifname: str
    mac: str
    addresses: list[IfAddr]
    ifname: str


@dataclass(slots=True)
class _RouteSpec:
    zone: str
    dest: str
    dev: str | None
    via: str | None


class Topology:
    """Build with ``add_*``, then ``build()`` (or ``with topo:``); ``destroy()`` always.

    ``bridge_nf_call`` sets ``net.bridge.bridge-nf-call-ip{,6}tables`` in the host
    namespace (1: bridged IP traffic also walks the inet hooks); ``forwarding`` enables
    IPv4/IPv6 forwarding there so zones on different bridges reach each other through the
    host, as the pve-sim topology routes them.
    """

    def __init__(
        self,
        prefix: str | None = None,
        *,
        host_zone: str = "host",
        bridge_nf_call: bool = False,
        forwarding: bool = True,
    ) -> None:
        if prefix is None:
            prefix = unique_prefix()
        elif not prefix.startswith(RUN_TAG):
            prefix = f"{unique_prefix()}{prefix}"
        self.prefix = prefix
        self.host_zone = host_zone
        self.bridge_nf_call = bridge_nf_call
        self.forwarding = forwarding
        self.bridges: dict[str, Bridge] = {}
        self.host_addresses: list[IfAddr] = []
        self._ports: list[_PortSpec] = []
        self._routes: list[_RouteSpec] = []
        self._aliases: dict[str, str] = {}
        self.zones: dict[str, Zone] = {}
        self.namespaces: list[NetNs] = []
        self._tracer: Tracer | None = None
        self._closers: list[Callable[[], None]] = []
        self.probe_state: object | None = None  # owned by tests.harness.probe
        self.applied_suite: str | None = None  # the pve-sim suite whose firewall is loaded
        self.built = False

    # -- declaration ------------------------------------------------------------------
    def add_bridge(self, name: str, *, mac: str, addresses: Iterable[str] = ()) -> Topology:
        """A bridge in the host namespace; its addresses are the host's own."""
        self.bridges[name] = Bridge(name, mac, [ipaddress.ip_interface(a) for a in addresses])
        return self

    def add_port(
        self,
        zone: str,
        *,
        bridge: str,
        host_ifname: str,
        mac: str,
        addresses: Iterable[str] = (),
        ifname: str = "eth0",
    ) -> Topology:
        """A zone namespace whose ``ifname`` (with ``mac``) is plugged into ``bridge``."""
        if len(host_ifname) > 15:
            raise ValueError(f"interface name too long: {host_ifname}")
        self._ports.append(
            _PortSpec(
                zone,
                bridge,
                host_ifname,
                mac.lower(),
                [ipaddress.ip_interface(a) for a in addresses],
                ifname,
            )
        )
        self._aliases[f"{bridge}/{host_ifname}"] = zone
        return self

    def add_route(
        self, zone: str, dest: str, *, dev: str | None = None, via: str | None = None
    ) -> Topology:
        """A static route in a zone (default device: the zone's interface)."""
        self._routes.append(_RouteSpec(zone, dest, dev, via))
        return self

    def alias(self, name: str, zone: str) -> Topology:
        self._aliases[name] = zone
        return self

    # -- lookup -------------------------------------------------------------------------
    def zone(self, name: str) -> Zone:
        real = self._aliases.get(name, name)
        try:
            return self.zones[real]
        except KeyError:
            known = ", ".join(sorted([*self.zones, *self._aliases]))
            raise KeyError(f"unknown zone {name!r} (known: {known})") from None

    @property
    def host(self) -> Zone:
        return self.zones[self.host_zone]

    def ns(self, zone: str) -> NetNs:
        return self.zone(zone).ns

    def ns_name(self, zone: str) -> str:
        return f"{self.prefix}-{zone}"

    @property
    def tracer(self) -> Tracer:
        """The nftables trace reader of the host namespace (created on first use)."""
        if self._tracer is None:
            self._tracer = Tracer(self.host.ns)
            self._tracer.install()
        return self._tracer

    def on_destroy(self, fn: Callable[[], None]) -> None:
        """Register cleanup of state that lives in this topology's namespaces."""
        self._closers.append(fn)

    # -- lifetime -----------------------------------------------------------------------
    def build(self) -> Topology:
        if self.built:
            return self
        zone_names = [self.host_zone, *[p.zone for p in self._ports]]
        if len(set(zone_names)) != len(zone_names):
            raise ValueError(f"duplicate zone names in {zone_names}")
        for p in self._ports:
            if p.bridge not in self.bridges:
                raise ValueError(f"port {p.host_ifname}: no bridge {p.bridge}")
        self.built = True  # from here on destroy() has something to undo
        try:
            self.namespaces = create_namespaces(self.ns_name(z) for z in zone_names)
            by_zone = dict(zip(zone_names, self.namespaces, strict=True))
            self._build_host(by_zone[self.host_zone])
            for p in self._ports:
                self._build_port(p, by_zone[p.zone])
            self._build_routes()
        except BaseException:
            self.destroy()
            raise
        return self

    def _build_host(self, host: NetNs) -> None:
        fwd = "1" if self.forwarding else "0"
        host.sysctls({"net/ipv4/ip_forward": fwd, "net/ipv6/conf/all/forwarding": fwd})
        self._set_bridge_nf_call(host)
        own = [a for b in self.bridges.values() for a in b.addresses]
        self.host_addresses = own
        self.zones[self.host_zone] = Zone(self.host_zone, host, is_host=True, addresses=own)
        create = []
        for b in self.bridges.values():
            create.append(
                f"link add {b.name} address {b.mac} type bridge stp_state 0 "
                "forward_delay 0 mcast_snooping 0"
            )
        for p in self._ports:
            create.append(
                f"link add {p.host_ifname} type veth peer name {p.ifname} "
                f"netns {self.ns_name(p.zone)} address {p.mac}"
            )
        host.ip_batch(create)
        # PVE bridge ports carry no IPv6 of their own
        host.sysctls({f"net/ipv6/conf/{p.host_ifname}/disable_ipv6": "1" for p in self._ports})
        setup = []
        for b in self.bridges.values():
            setup.append(f"link set {b.name} up")
            for a in b.addresses:
                flags = " nodad" if a.version == 6 else ""
                setup.append(f"addr add {a.with_prefixlen} dev {b.name}{flags}")
        for p in self._ports:
            setup.append(f"link set {p.host_ifname} master {p.bridge} up")
        host.ip_batch(setup)
        # static FDB: unicast to a known MAC never floods through other ports' chains
        host.ip_batch(
            (f"fdb replace {p.mac} dev {p.host_ifname} master static" for p in self._ports),
            tool="bridge",
        )

    def _set_bridge_nf_call(self, host: NetNs) -> None:
        """Set bridge-nf-call-* as asked, loading br_netfilter only when it must be on.

        Built in (these machines) the keys exist in every namespace and default to 1. As
        a module (Debian's kernel in the full-kernel VM) they exist only once it is
        loaded, and loading it turns them on everywhere: so "off" with no module loaded
        is already true, and the module is loaded only for "on".
        """
        nf = "1" if self.bridge_nf_call else "0"
        keys = [f"net/bridge/bridge-nf-call-{t}" for t in ("iptables", "ip6tables", "arptables")]
        if not os.path.exists("/proc/sys/net/bridge") and self.bridge_nf_call:
            subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
        if host.run(os.path.exists, "/proc/sys/net/bridge/bridge-nf-call-iptables"):
            host.sysctls(dict.fromkeys(keys, nf))
        elif self.bridge_nf_call:
            raise RuntimeError("bridge_nf_call=True needs br_netfilter, which is not available")

    def _build_port(self, p: _PortSpec, ns: NetNs) -> None:
        lines = [f"link set {p.ifname} up"]
        for a in p.addresses:
            flags = " nodad" if a.version == 6 else ""
            lines.append(f"addr add {a.with_prefixlen} dev {p.ifname}{flags}")
        ns.ip_batch(lines)
        self.zones[p.zone] = Zone(
            p.zone,
            ns,
            ifname=p.ifname,
            bridge=p.bridge,
            port=p.host_ifname,
            mac=p.mac,
            addresses=list(p.addresses),
        )

    def _build_routes(self) -> None:
        for r in self._routes:
            z = self.zone(r.zone)
            dev = r.dev or z.ifname
            cmd = ["route", "replace", r.dest]
            if r.via:
                cmd += ["via", r.via]
            if dev:
                cmd += ["dev", dev]
            z.ns.ip(*cmd)

    def destroy(self) -> None:
        """Close probe state and the tracer, then delete every namespace of this topology."""
        for fn in reversed(self._closers):
            with contextlib.suppress(Exception):
                fn()
        self._closers.clear()
        self.probe_state = None
        self.applied_suite = None
        if self._tracer is not None:
            self._tracer.close()
            self._tracer = None
        for ns in self.namespaces:
            delete_namespace(ns)
        self.namespaces = []
        self.zones.clear()
        self.built = False

    def __enter__(self) -> Topology:
        return self.build()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()


# -- the pve-sim topology -------------------------------------------------------------

HOST_V4 = "172.16.1.2/24"
HOST_V6 = "fd00:16:1::2/64"
BRIDGE_MACS = {
    "vmbr0": "02:00:00:00:00:10",
    "vmbr1": "02:00:00:00:00:11",
    "vmbr2": "02:00:00:00:00:12",
}
OUTSIDE_MAC = "02:00:00:00:01:01"
NFVM_MAC = "02:00:00:00:01:02"

# (zone, bridge, host port, MAC, addresses): the NICs of the guest configs every pve-sim
# suite ships under pve/nodes/pve1/ (identical in all 13 suites).
PVE_SIM_GUESTS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("vm100", "vmbr0", "tap100i0", "0E:0B:38:B8:B3:21", ()),
    ("vm100i1", "vmbr1", "tap100i1", "0E:0B:38:B9:B4:21", ()),
    ("vm100i2", "vmbr2", "tap100i2", "0E:0B:38:BA:B4:21", ()),
    ("vm101", "vmbr0", "tap101i0", "0E:0B:38:B8:B3:22", ()),
    ("vm110", "vmbr1", "tap110i0", "0E:0B:38:B8:B4:21", ()),
    ("ct200", "vmbr0", "veth200i0", "0E:18:24:41:2C:43", ("10.0.200.1/24",)),
    ("ct201", "vmbr0", "veth201i0", "0E:18:24:41:2C:44", ("10.0.200.2/24",)),
)


def pve_sim_topology(
    include_guests: bool = True, *, prefix: str | None = None, bridge_nf_call: bool = False
) -> Topology:
    """The fixed topology of the pve-sim suites (see the conformance README), not built.

    ``host`` owns 172.16.1.2/24 and fd00:16:1::2/64 on vmbr0; ``outside`` is the uplink
    port ``eth0`` of vmbr0 and ``nfvm`` a firewall-less guest on ``tapXYZ``. With
    ``include_guests`` the guests' NICs of the suites' configs are added, one zone each
    (``vm100`` is net0; ``vm100i1``/``vm100i2`` its other NICs; ``vm100i0`` = ``vm100``).
    """
    topo = Topology(prefix, bridge_nf_call=bridge_nf_call)
    for name, mac in BRIDGE_MACS.items():
        topo.add_bridge(name, mac=mac, addresses=(HOST_V4, HOST_V6) if name == "vmbr0" else ())
    topo.add_port("outside", bridge="vmbr0", host_ifname="eth0", mac=OUTSIDE_MAC)
    topo.add_port("nfvm", bridge="vmbr0", host_ifname="tapXYZ", mac=NFVM_MAC)
    if include_guests:
        for zone, bridge, port, mac, addrs in PVE_SIM_GUESTS:
            topo.add_port(zone, bridge=bridge, host_ifname=port, mac=mac, addresses=addrs)
        topo.alias("vm100i0", "vm100")
    return topo
