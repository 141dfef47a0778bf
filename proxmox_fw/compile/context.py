"""Inputs of the compiler that do not come from /etc/pve.

Everything host-dependent (the detected local network, kernel features) is passed in as
data so compilation stays a pure function and tests can pin it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

Cidr = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class CompileOptions:
    # Upstream only runs when host.fw has ``nftables: 1``. Test trees written for the
    # iptables implementation (pve-sim) lack it; tests may switch the gate off.
    honor_nftables_switch: bool = True
    # The node's own network (admin guide §13.5.1), used for ``local_network`` when cluster.fw does
    # not define that alias. None: not detected (a warning is emitted).
    local_network: Cidr | None = None
    # Interface altnames -> kernel names for host ``-i`` matches.
    altnames: dict[str, str] = field(default_factory=dict)
    # Addresses of host names used as corosync link addresses (lowercased name ->
    # addresses), looked up by the caller in /etc/hosts.
    hostnames: dict[str, tuple[IpAddr, ...]] = field(default_factory=dict)
