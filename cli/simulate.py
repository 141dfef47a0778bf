"""``proxmox-firewall simulate``: one packet through the firewall, on the real kernel."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNSUPPORTED = 3


def simulate_cmd(
    ctx: typer.Context,
    from_zone: Annotated[str, typer.Option(
        "--from", help="Sending zone: host, outside, vm<ID>, ct<ID> (vm<ID>i<N>: netN).")],
    to_zone: Annotated[str, typer.Option(
        "--to", help="Receiving zone: host, outside, vm<ID>, ct<ID> (vm<ID>i<N>: netN).")],
    proto: Annotated[str, typer.Option("--proto", help="tcp or udp.")] = "tcp",
    source: Annotated[str | None, typer.Option(
        "--source", help="Source address (default: the sending zone's).")] = None,
    dest: Annotated[str | None, typer.Option(
        "--dest", help="Destination address (default: the receiving zone's).")] = None,
    sport: Annotated[int | None, typer.Option("--sport", min=1, max=65535)] = None,
    dport: Annotated[int | None, typer.Option("--dport", min=1, max=65535)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Send one packet between two zones of a throwaway node running the configuration.

    The node (host 172.16.1.2/24 on vmbr0, the outside zone behind its uplink eth0, a
    guest zone on the bridge port tap<ID>i<N> or veth<ID>i<N> with its NIC's MAC from the
    guest's config) is built in network namespaces that vanish afterwards; a guest's
    address is --source/--dest, else one in the host's network (172.16.1.100 as sender,
    172.16.1.101 as receiver). The configuration is applied
    there as `apply` does, the packet really sent and traced. Prints the verdict the
    sender saw (ACCEPT, DROP, REJECT) and the packet's path rule by rule with each
    rule's config file:line. Needs root; never touches this machine's ruleset.

    Exit codes: 0 simulated; 1 the kernel refused the ruleset; 2 usage error (or not
    root); 3 cannot be simulated here (a guest zone on a kernel without the bridge
    features of the guest table, which are named; a NIC on another bridge or VLAN).
    """
    from proxmox_fw import log
    from proxmox_fw.tools.simulate import (
        Request,
        SimulateError,
        Unsupported,
        format_outcome,
        simulate,
    )

    logger = log.get()
    if os.geteuid() != 0:
        logger.error("simulate needs root: it builds network namespaces")
        raise typer.Exit(EXIT_USAGE)
    g = ctx.obj
    request = Request(from_zone, to_zone, proto, source, dest, sport, dport)
    try:
        outcome = simulate(g.pve_dir, g.nodename, request)
    except SimulateError as exc:
        logger.error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except Unsupported as exc:
        logger.error(str(exc))
        raise typer.Exit(EXIT_UNSUPPORTED) from None
    except RuntimeError as exc:
        logger.error(str(exc))
        raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        sys.stdout.write(json.dumps(outcome.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(format_outcome(outcome, g.pve_dir))
    raise typer.Exit(EXIT_OK)
