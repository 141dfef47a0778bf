"""Host options that are kernel settings rather than rules (notes §2.6 items 6–7).

Returned as data; only ``apply`` writes them, so ``compile`` has no side effects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the logger reads LOG_NF_CONNTRACK without loading the models
    from proxmox_fw.model import PveConfig

NETFILTER = "/proc/sys/net/netfilter/"
LOG_NF_CONNTRACK = "/var/lib/pve-firewall/log_nf_conntrack"


def side_effects(cfg: PveConfig) -> dict[str, str]:
    o = cfg.host.options
    out: dict[str, str] = {}
    for key in ("nf_conntrack_max", "nf_conntrack_tcp_timeout_established",
                "nf_conntrack_tcp_timeout_syn_recv"):
        value = getattr(o, key)
        if value is not None:
            out[NETFILTER + key] = str(value)
    out[LOG_NF_CONNTRACK] = "1" if o.log_nf_conntrack else "0"
    return out
