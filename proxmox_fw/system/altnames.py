"""Interface altnames → kernel names, for ``-i`` in host and cluster rules.

nft's ``iifname``/``oifname`` compare the kernel name only, so a rule written with an
altname (``enp3s0f0np0`` style names, or ones an admin added) would never match; upstream
maps them the same way since 1.0.1. Read through netlink (pyroute2); any failure means
no mapping, never an error.
"""

from __future__ import annotations

from typing import Any


def parse_links(links: list[Any]) -> dict[str, str]:
    """The altname map from pyroute2 link messages (kept apart for tests)."""
    out: dict[str, str] = {}
    for link in links:
        name = link.get_attr("IFLA_IFNAME")
        props = link.get_attr("IFLA_PROP_LIST")
        if not name or props is None:
            continue
        for alt in props.get_attrs("IFLA_ALT_IFNAME"):
            out[str(alt)] = str(name)
    return out


def interface_altnames() -> dict[str, str]:
    try:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            return parse_links(list(ipr.get_links()))
    except Exception:  # no netlink, no permission: rules then use the names as written
        return {}
