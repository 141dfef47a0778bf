"""Kernel feature probe: which nftables features this kernel can load.

The guest table (bridge family) needs bridge conntrack, bridge reject and bridge
``meta ibrname/obrname``; not every kernel is built with them. Each feature is probed
once per process by loading a tiny table into a throwaway network namespace, so the
probe never touches the live ruleset. The result is plain data handed to the compiler and
to ``apply``, which makes what gets emitted on a given kernel explicit and testable.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.netns import run_in_new_netns

# field name -> (kernel option and the nft construct needing it, family, hook, probe rule)
PROBES: dict[str, tuple[str, str, str, str]] = {
    "bridge_conntrack": (
        'CONFIG_NF_CONNTRACK_BRIDGE (bridge "ct state")',
        "bridge",
        "prerouting",
        "ct state established accept",
    ),
    "bridge_reject": (
        'CONFIG_NFT_BRIDGE_REJECT (bridge "reject")',
        "bridge",
        "prerouting",
        "meta l4proto tcp reject with tcp reset",
    ),
    "bridge_meta": (
        'CONFIG_NFT_BRIDGE_META (bridge "meta ibrname/obrname")',
        "bridge",
        "forward",
        'meta ibrname "vmbr0" meta obrname "vmbr0" accept',
    ),
    "queue": ('CONFIG_NFT_QUEUE ("queue")', "inet", "input", "queue num 0 bypass"),
    "inet_fib": (
        'CONFIG_NFT_FIB_INET (inet "fib")',
        "inet",
        "input",
        "fib daddr type local accept",
    ),
    "inet_reject": (
        'CONFIG_NFT_REJECT_INET (inet "reject")',
        "inet",
        "input",
        "reject with icmpx type admin-prohibited",
    ),
    "log": (
        'CONFIG_NFT_LOG/CONFIG_NETFILTER_NETLINK_LOG ("log group")',
        "inet",
        "input",
        'log prefix "probe" group 0',
    ),
    "limit": ('CONFIG_NFT_LIMIT ("limit")', "inet", "input", "limit rate 1/second accept"),
}


def probe_text(name: str) -> str:
    """A ruleset that loads only if the feature is there; one table per feature."""
    _, family, hook, rule = PROBES[name]
    table = f"probe-{name}"
    return (
        f"add table {family} {table}\n"
        f"add chain {family} {table} c {{ type filter hook {hook} priority 0; }}\n"
        f"add rule {family} {table} c {rule}\n"
    )


# What the guest table's skeleton cannot load without.
GUEST_TABLE_FEATURES = ("bridge_conntrack", "bridge_reject", "bridge_meta")


@dataclass(frozen=True, slots=True)
class KernelFeatures:
    bridge_conntrack: bool = True
    bridge_reject: bool = True
    bridge_meta: bool = True
    queue: bool = True
    inet_fib: bool = True
    inet_reject: bool = True
    log: bool = True
    limit: bool = True

    def missing(self) -> list[str]:
        """The missing features, named by kernel option and the nft construct needing it."""
        return [PROBES[f.name][0] for f in fields(self) if not getattr(self, f.name)]

    def missing_for_guests(self) -> list[str]:
        return [PROBES[name][0] for name in GUEST_TABLE_FEATURES if not getattr(self, name)]

    @property
    def guest_table_supported(self) -> bool:
        return all(getattr(self, name) for name in GUEST_TABLE_FEATURES)


def _probe_all() -> KernelFeatures:
    client = NftClient()
    found = {name: client.run_text(probe_text(name)).ok for name in PROBES}
    return KernelFeatures(**found)


@functools.cache
def probe_features() -> KernelFeatures:
    """Probe once per process, each feature in the same throwaway namespace."""
    return run_in_new_netns(_probe_all)
