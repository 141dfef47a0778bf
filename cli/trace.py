"""``proxmox-firewall trace``: follow matching packets through the firewall, rule by rule."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_USAGE = 2
EXIT_SETUP = 3


def trace_cmd(
    ctx: typer.Context,
    proto: Annotated[str | None, typer.Option(
        "--proto", help="Protocol name or number (tcp, udp, icmp, icmpv6, ...).")] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="Source address or network.")] = None,
    dest: Annotated[str | None, typer.Option(
        "--dest", help="Destination address or network.")] = None,
    dport: Annotated[int | None, typer.Option(
        "--dport", help="Destination port (tcp, udp, sctp, dccp).")] = None,
    vmid: Annotated[int | None, typer.Option(
        "--vmid", help="Only packets entering or leaving this guest's tap/veth devices.",
    )] = None,
    iface: Annotated[str | None, typer.Option(
        "--iface", help="Only packets entering or leaving this interface (wildcard: eth*).",
    )] = None,
    count: Annotated[int | None, typer.Option(
        "--count", min=1, help="Stop after this many packets.")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0.0, help="Stop after this many seconds.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per packet and line.")] = False,
) -> None:
    """Show the path of matching packets: every chain and rule, the config file:line of
    each rule, and the verdict (admin guide §13.13.3, automated).

    Installs its own short-lived tracing tables (never touching the firewall's) and
    removes them on exit, Ctrl-C, SIGTERM and when the terminal goes away. Runs until
    --count packets, --timeout seconds or Ctrl-C.

    Exit codes: 0 packets traced (or stopped by a signal); 1 no matching packet before
    --timeout; 2 invalid filters; 3 the tracing tables could not be installed (needs root).
    """
    from proxmox_fw.tools.trace import (
        FilterError,
        SetupError,
        TracedPacket,
        TraceFilter,
        format_packet,
        run_trace,
    )

    pve_dir = ctx.obj.pve_dir
    filt = TraceFilter(proto=proto, source=source, dest=dest, dport=dport, vmid=vmid,
                       iface=iface)  # fmt: skip

    def emit(tp: TracedPacket) -> None:
        text = json.dumps(tp.to_json()) + "\n" if as_json else format_packet(tp, pve_dir)
        sys.stdout.write(text)
        sys.stdout.flush()

    def ready() -> None:
        sys.stderr.write("tracing; Ctrl-C to stop\n")
        sys.stderr.flush()

    try:
        summary = run_trace(filt, emit, count=count, timeout=timeout, ready=ready)
    except FilterError as exc:
        sys.stderr.write(f"trace: {exc}\n")
        raise typer.Exit(EXIT_USAGE) from None
    except (SetupError, PermissionError) as exc:
        sys.stderr.write(f"trace: cannot install the tracing tables: {exc}\n")
        raise typer.Exit(EXIT_SETUP) from None
    if summary.lost:
        sys.stderr.write("trace: the kernel dropped trace messages; narrow the filters\n")
    if summary.packets == 0 and not summary.interrupted:
        sys.stderr.write("trace: no matching packet\n")
        raise typer.Exit(EXIT_NOTHING)
    raise typer.Exit(EXIT_OK)
