"""Lines this firewall accepts that pve-firewall refuses or reads otherwise: each gets a
warning at its line.

The Rust upstream takes them too, but an operator moving from pve-firewall had them
ignored (or the whole rule skipped) there, so what they do here must be said, not
silently switched on.
"""

from __future__ import annotations

from proxmox_fw.diagnostics import Diagnostics
from proxmox_fw.model import Direction, IpList, IpRange, Rule, Verdict

_PVE_BOOLS = frozenset({"0", "1"})


def rule_refusals(rule: Rule, in_group: bool, diags: Diagnostics) -> None:
    file, line = rule.origin.file, rule.origin.line

    def say(what: str) -> None:
        diags.warning(file, line, f"{what}; pve-firewall refuses this rule")

    if rule.direction is Direction.FORWARD and rule.action is Verdict.REJECT:
        say("REJECT in a FORWARD rule rejects routed traffic here and is a DROP for bridged "
            "vnet traffic (the kernel cannot reject there)")
    if in_group and rule.iface is not None:
        say(f"'-i {rule.iface}' in a security group applies to the host's interface "
            f"{rule.iface} here, and to no guest")
    for flag, match in (("-source", rule.source), ("-dest", rule.dest)):
        if isinstance(match, IpList) and len(match.entries) > 1 and any(
            isinstance(e, IpRange) for e in match.entries
        ):
            say(f"{flag}: an address range inside a list is used as written here")


def option_refusals(
    kind: str, key: str, raw: str, value: str, parsed: object, file: str, line: int,
    diags: Diagnostics,
) -> None:
    """``raw`` is the text after ``key:``, ``value`` the same without a trailing comment."""

    def say(what: str) -> None:
        diags.warning(file, line, f"option '{key}': {what}")

    if raw.strip() != value:
        say(f"the value before the '#' comment ({value}) is used here; pve-firewall ignores "
            "an option line with a trailing comment, keeping the option's default")
    if isinstance(parsed, bool) and value.lower() not in _PVE_BOOLS and key != "enable":
        say(f"'{value}' is read as {int(parsed)} here; pve-firewall takes only 0 or 1 and "
            "ignores the line, keeping the option's default")
    elif isinstance(parsed, bool) and key == "enable" and not value.isdigit():
        say(f"'{value}' is read as {int(parsed)} here; pve-firewall takes only numbers and "
            "ignores the line, keeping the option's default")
    if kind == "cluster" and key == "ebtables" and parsed is False:
        say("has no effect here: the guests' MAC, ARP and layer2_protocols filters stay in "
            "place (pve-firewall drops its ebtables rules with 0)")
    if kind == "vnet" and key == "policy_forward" and parsed is Verdict.REJECT:
        say("REJECT is a DROP here (the kernel cannot reject bridged traffic); pve-firewall "
            "refuses it, keeping the default ACCEPT")
