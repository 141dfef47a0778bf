"""Parsers from config file text to the models of :mod:`proxmox_fw.model`.

Parsers are pure: text in, models and diagnostics out; the loader does the I/O.
"""

from proxmox_fw.parse.fwfile import parse_cluster_fw, parse_guest_fw, parse_host_fw, parse_vnet_fw
from proxmox_fw.parse.rule import RuleScope, parse_rule

__all__ = [
    "RuleScope",
    "parse_cluster_fw",
    "parse_guest_fw",
    "parse_host_fw",
    "parse_rule",
    "parse_vnet_fw",
]
