"""The safety net under every transaction: when the kernel refuses one, apply everything
else, and never leave the host without its tables.

Values are checked where they are parsed (issue 10 item 2a); this is for what slips
through. A refused full transaction is narrowed down, in libnftables' check mode (the
kernel validates the batch and aborts it, nothing is committed) in the namespace the
ruleset is meant for, to the rules the kernel refuses: the rules are bisected, the
declarations (tables, chains, sets, maps, elements) always sent with them.

What replaces a refused rule never makes the firewall more open ("never wider"):

- a rule whose only verdict is ``accept`` (or that has no verdict) is left out: what it
  would have let in now meets the rules after it and the chain's policy;
- any other rule (drop, reject, a jump to a group, ...) becomes an unconditional ``drop``
  at its place, so nothing after it in that chain can accept what it would have
  stopped. Management access is decided before any user chain (``default-in``), so it
  survives this.

When that cannot help (a declaration or element is refused, or the refusal only comes
from a combination of rules), the host table is loaded as the skeleton alone with the
compiled management, local network and cluster network sets: the default rules of admin
guide §13.8.1 (management access, corosync, ICMP, established connections) and a drop
policy for everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from proxmox_fw.nft.client import JsonRunner, Result
from proxmox_fw.nft.objects import HOST_TABLE, INET, Command, Ruleset
from proxmox_fw.nft.render import RenderedTable, delete_table_commands
from proxmox_fw.nft.skeleton import skeleton_commands

Check = Callable[[list[Command]], str | None]  # None: the kernel takes them

# Skeleton sets the compiler fills that the default rules (admin guide §13.8.1) use.
FALLBACK_SETS = frozenset({
    "v4-dc/management", "v4-dc/management-nomatch", "v6-dc/management",
    "v6-dc/management-nomatch", "v4-local-network", "v6-local-network",
    "v4-cluster-network", "v6-cluster-network",
})

_VERDICTS = ("accept", "drop", "reject", "jump", "goto", "return", "queue", "vmap")


@runtime_checkable
class CheckingRunner(JsonRunner, Protocol):
    """A runner that can also ask the kernel without committing (``NftClient``)."""

    def check_json(self, doc: Any) -> Result: ...


@dataclass(frozen=True, slots=True)
class RefusedRule:
    where: str  # the rule's origin "firewall/cluster.fw:12", else "<family> <table> <chain>"
    error: str  # the kernel's message
    dropped: bool  # replaced by an unconditional drop (else left out)

    def message(self) -> str:
        done = ("replaced by a drop of everything after it in its chain" if self.dropped
                else "left out")
        return f"{self.where}: the kernel refuses this rule ({self.error}); {done}"


def first_error_line(error: str) -> str:
    """libnftables' message without its location prefix (``internal:0:0-0: Error: ``)."""
    lines = [ln.strip() for ln in error.strip().splitlines() if ln.strip()]
    if not lines:
        return "refused"
    _, sep, message = lines[0].partition("Error: ")
    return message if sep else lines[0]


def checker(client: CheckingRunner) -> Check:
    def check(commands: list[Command]) -> str | None:
        result = client.check_json({"nftables": commands})
        return None if result.ok else first_error_line(result.error)

    return check


def is_rule(cmd: Command) -> bool:
    return "rule" in cmd.get("add", {})


def rule_origin(cmd: Command) -> str | None:
    """The config ``file:line`` a rule carries in its comment (None: none)."""
    comment = cmd["add"]["rule"].get("comment")
    if isinstance(comment, str):
        _, sep, line = comment.rpartition(":")
        if sep and line.isascii() and line.isdigit():
            return comment
    return None


def refused_rules(commands: list[Command], check: Check) -> list[tuple[int, str]] | None:
    """Indices of the rule commands the kernel refuses, with its message; [] when it
    takes ``commands``; None when what it refuses is not a set of single rules."""
    whole = check(commands)
    if whole is None:
        return []
    base = [c for c in commands if not is_rule(c)]
    if check(base) is not None:
        return None
    rules = [i for i, c in enumerate(commands) if is_rule(c)]

    def bisect(idxs: list[int]) -> list[tuple[int, str]] | None:
        err = check(base + [commands[i] for i in idxs])
        if err is None:
            return []
        if len(idxs) == 1:
            return [(idxs[0], err)]
        mid = len(idxs) // 2
        low, high = bisect(idxs[:mid]), bisect(idxs[mid:])
        if low is None or high is None or not (low or high):
            return None  # only the combination is refused
        return low + high

    return bisect(rules)


def _verdicts(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {k for k in node if k in _VERDICTS}
        for value in node.values():
            found |= _verdicts(value)
        return found
    if isinstance(node, list):
        return set().union(*(_verdicts(v) for v in node)) if node else set()
    return set()


def _replacement(cmd: Command) -> Command | None:
    """What stands at a refused rule's place (None: nothing, see the module doc)."""
    body = cmd["add"]["rule"]
    if _verdicts(body.get("expr", [])) <= {"accept"}:
        return None
    rule = {k: body[k] for k in ("family", "table", "chain")}
    origin = rule_origin(cmd)
    if origin is not None and origin.isascii() and origin.isprintable():
        rule["comment"] = origin
    return {"add": {"rule": {**rule, "expr": [{"drop": None}]}}}


def _where(cmd: Command) -> str:
    origin = rule_origin(cmd)
    if origin is not None:
        return origin
    body = cmd["add"]["rule"]
    return f"{body['family']} {body['table']} {body['chain']}"


def without_refused(
    commands: list[Command], check: Check
) -> tuple[list[Command], list[RefusedRule]] | None:
    """``commands`` with each refused rule left out or replaced, checked again by the
    kernel; None when the refusal cannot be narrowed down to rules."""
    found = refused_rules(commands, check)
    if not found:
        return None if found is None else (commands, [])
    errors = dict(found)
    kept: list[Command] = []
    refused: list[RefusedRule] = []
    for i, cmd in enumerate(commands):
        if i not in errors:
            kept.append(cmd)
            continue
        replacement = _replacement(cmd)
        if replacement is not None:
            kept.append(replacement)
        refused.append(RefusedRule(_where(cmd), errors[i], replacement is not None))
    if check(kept) is not None:
        return None
    return kept, refused


def fallback_commands(rs: Ruleset) -> list[Command]:
    """The host table as the skeleton alone plus the compiled sets its default rules
    use (admin guide §13.8.1); the guest table is not touched."""
    host = RenderedTable(rs.host)
    commands = [*delete_table_commands(INET, HOST_TABLE), *skeleton_commands((INET,))]
    for (kind, name), obj in host.objects.items():
        if kind == "set" and name in FALLBACK_SETS:
            commands += obj.fill()
    return commands


def fallback_skeleton_only() -> list[Command]:
    """The last resort: the skeleton with empty sets (drop policy, ICMP, established)."""
    return [*delete_table_commands(INET, HOST_TABLE), *skeleton_commands((INET,))]
