"""Auto-detection of ``local_network`` (admin guide §13.5.1): the network this node lives in.

The node's IP is what its name resolves to; the network is the one configured on the
interface that holds that IP (``192.168.2.100`` on ``192.168.0.0/20``). When the name
resolves only to loopback (a common ``/etc/hosts`` default) or not at all, the first
global address on an UP interface is used instead, preferring the default-route
interface, and a warning says so. Nothing here raises: the worst case is "no local
network" plus a warning.

The decision is the pure :func:`choose_local_network`; the machine is reached only
through a resolver function and a :class:`NetlinkView`, so tests feed fake lists and
the netlink part is tested for real inside a network namespace.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from proxmox_fw.model import Cidr, IpAddr, PveConfig
from proxmox_fw.textlines import split_lines

IfAddress = tuple[str, Cidr]  # (interface name, address with its prefix)
Resolver = Callable[[str], list[IpAddr]]


@dataclass(frozen=True, slots=True)
class LocalNet:
    hostname: str
    local_ip: IpAddr | None = None
    # the network (host bits cleared) around local_ip, e.g. 192.168.0.0/20
    detected: Cidr | None = None
    interface: str | None = None  # where local_ip was found
    warnings: tuple[str, ...] = field(default=())


class NetlinkView(Protocol):
    """What detection needs to know about the machine's interfaces."""

    def list_addresses(self) -> list[IfAddress]:
        """Addresses of interfaces that are UP, in kernel order."""
        ...

    def default_route_ifnames(self) -> list[str]:
        """Interfaces the default routes leave through (IPv4 routes first)."""
        ...


class IPRouteNetlink:
    """:class:`NetlinkView` of the current network namespace, via pyroute2."""

    def list_addresses(self) -> list[IfAddress]:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            up = {link["index"]: link.get("IFLA_IFNAME") for link in ipr.get_links()
                  if link["flags"] & _IFF_UP}
            result: list[IfAddress] = []
            for msg in ipr.get_addr():
                name = up.get(msg["index"])
                # IFA_LOCAL is our side of a point-to-point link; else IFA_ADDRESS
                addr = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
                if name is None or addr is None:
                    continue
                try:
                    result.append((name, ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}")))
                except ValueError:
                    continue
            return result

    def default_route_ifnames(self) -> list[str]:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            names = {link["index"]: link.get("IFLA_IFNAME") for link in ipr.get_links()}
            result: list[str] = []
            for family in (socket.AF_INET, socket.AF_INET6):
                for route in ipr.get_default_routes(family=family):
                    for index in _route_oifs(route):
                        name = names.get(index)
                        if name is not None and name not in result:
                            result.append(name)
            return result


_IFF_UP = 0x1


def _route_oifs(route: Any) -> list[int]:
    oif = route.get("RTA_OIF")
    if oif is not None:
        return [oif]
    return [hop["oif"] for hop in route.get("RTA_MULTIPATH") or [] if "oif" in hop]


HOSTS_FILE = "/etc/hosts"


def resolve_hostname(name: str, hosts_file: str = HOSTS_FILE) -> list[IpAddr]:
    """Addresses ``name`` has in ``/etc/hosts``, in file order, without duplicates.

    Deliberately no DNS: the firewall must not wait on (or be cut off from) a name server
    while it builds its own rules, and a Proxmox VE node always lists itself in
    /etc/hosts. The name matches case-insensitively, with or without the domain part.
    """
    wanted = name.lower()
    result: list[IpAddr] = []
    try:
        with open(hosts_file, "rb") as fh:
            lines = split_lines(fh.read().decode("utf-8", errors="replace"))
    except OSError as exc:
        raise OSError(f"cannot read {hosts_file}: {exc.strerror or exc}") from exc
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        names = {n.lower() for n in fields[1:]} | {n.lower().split(".", 1)[0] for n in fields[1:]}
        if wanted not in names:
            continue
        try:
            addr = ipaddress.ip_address(fields[0].split("%", 1)[0])
        except ValueError:
            continue
        if addr not in result:
            result.append(addr)
    if not result:
        raise OSError(f"{name!r} is not in {hosts_file}")
    return result


def detect_local_network(
    nodename: str,
    resolver: Resolver = resolve_hostname,
    netlink: NetlinkView | None = None,
) -> LocalNet:
    """Find this node's IP and network; never raises (failures become warnings)."""
    warnings: list[str] = []
    resolved: list[IpAddr] = []
    try:
        resolved = resolver(nodename)
    except (OSError, UnicodeError, ValueError) as exc:
        warnings.append(f"cannot resolve hostname {nodename!r}: {exc}")
    view = netlink if netlink is not None else IPRouteNetlink()
    addresses: list[IfAddress] = []
    default_ifs: list[str] = []
    try:
        addresses = view.list_addresses()
        default_ifs = view.default_route_ifnames()
    except Exception as exc:  # netlink trouble of any kind must not stop the firewall
        warnings.append(f"cannot list interface addresses: {exc}")
    result = choose_local_network(nodename, resolved, addresses, default_ifs)
    return LocalNet(
        hostname=result.hostname,
        local_ip=result.local_ip,
        detected=result.detected,
        interface=result.interface,
        warnings=(*warnings, *result.warnings),
    )


def choose_local_network(
    hostname: str,
    resolved: Sequence[IpAddr],
    addresses: Sequence[IfAddress],
    default_ifnames: Sequence[str] = (),
) -> LocalNet:
    """The pure decision: node IP from ``resolved``, else from ``addresses``."""
    candidates = [ip for ip in resolved if not ip.is_loopback]
    if not candidates:
        why = "resolves only to loopback" if resolved else "does not resolve"
        return _fallback(hostname, addresses, default_ifnames, why)
    # Prefer a resolved address that is configured here; then one inside a local network.
    for ip in candidates:
        for ifname, iface in addresses:
            if iface.ip == ip:
                return LocalNet(hostname, ip, _network(iface), ifname)
    for ip in candidates:
        for ifname, iface in addresses:
            if ip.version == iface.version and ip in iface.network and _is_global(iface):
                return LocalNet(
                    hostname, ip, _network(iface), ifname,
                    (f"{ip} is not configured on this node; using the network of "
                     f"{ifname} ({iface}) that contains it",),
                )
    return LocalNet(
        hostname, candidates[0], None, None,
        (f"{candidates[0]} (from hostname {hostname!r}) is on no local network",),
    )


def _fallback(
    hostname: str, addresses: Sequence[IfAddress], default_ifnames: Sequence[str], why: str
) -> LocalNet:
    usable = [(name, iface) for name, iface in addresses if _is_global(iface)]
    if not usable:
        return LocalNet(
            hostname, warnings=(f"hostname {hostname!r} {why} and no interface has a "
                                "global address: no local network detected",)
        )
    # stable sort: default-route interfaces first (in route order), IPv4 before IPv6
    rank = {name: pos for pos, name in enumerate(default_ifnames)}
    name, iface = min(
        usable, key=lambda item: (rank.get(item[0], len(rank)), item[1].version)
    )
    return LocalNet(
        hostname, iface.ip, _network(iface), name,
        (f"hostname {hostname!r} {why}; using {iface.ip} of interface {name}",),
    )


def _is_global(iface: Cidr) -> bool:
    ip = iface.ip
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def _network(iface: Cidr) -> Cidr:
    return ipaddress.ip_interface(str(iface.network))


def describe(info: LocalNet, configured: Cidr | None = None) -> list[str]:
    """The lines ``localnet`` prints (admin guide §13.5.1); ``configured`` is a user alias."""
    lines = [
        f"local hostname: {info.hostname}",
        f"local IP address: {info.local_ip if info.local_ip is not None else 'unknown'}",
        f"network auto detect: {info.detected if info.detected is not None else 'none'}",
    ]
    if configured is not None:
        lines.append(f"using user defined local_network: {configured}")
    elif info.detected is not None:
        lines.append(f"using detected local_network: {info.detected}")
    else:
        lines.append("no local_network detected")
    return lines


def corosync_hostnames(
    config: PveConfig, resolver: Resolver = resolve_hostname
) -> dict[str, tuple[IpAddr, ...]]:
    """Addresses of the corosync link addresses written as host names (older clusters
    use ``ring0_addr: <nodename>``), from /etc/hosts like the node name itself."""
    out: dict[str, tuple[IpAddr, ...]] = {}
    for node in config.corosync.nodes:
        for addr in node.links.values():
            try:
                ipaddress.ip_address(addr)
                continue
            except ValueError:
                pass
            try:
                out[addr.lower()] = tuple(resolver(addr))
            except (OSError, UnicodeError, ValueError):
                continue  # the compiler warns about names it cannot place
    return out
