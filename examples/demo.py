"""Apply the example configuration inside throwaway namespaces and probe it.

Run through ``scripts/demo.sh``. Builds a PVE-like host namespace (bridge ``vmbr0`` with
172.16.1.2/24) and an ``outside`` machine behind port ``eth0``, runs the real
``proxmox-firewall apply`` inside the host namespace, prints the ruleset and the verdicts
of a few real packets, then removes everything. The machine's own ruleset is not touched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.probe import probe  # noqa: E402
from tests.harness.topology import pve_sim_topology  # noqa: E402

PVE = ROOT / "examples" / "pve"
CLI = ROOT / ".venv" / "bin" / "proxmox-firewall"

# (what, from, to, proto, dport, source, dest, expected)
PROBES = [
    ("SSH from the management ipset", "outside", "host", "tcp", 22, "198.51.100.7", None, "ACCEPT"),
    ("SSH from the office (host rule)", "outside", "host", "tcp", 22, "198.51.100.20", None,
     "ACCEPT"),
    ("SSH from anywhere else", "outside", "host", "tcp", 22, "100.100.1.2", None, "DROP"),
    ("HTTP from +webclients", "outside", "host", "tcp", 80, "192.0.2.10", None, "ACCEPT"),
    ("tcp/8443 is rejected, not dropped", "outside", "host", "tcp", 8443, "100.100.1.2", None,
     "REJECT"),
    ("... but from the blacklist: dropped", "outside", "host", "tcp", 8443, "203.0.113.5", None,
     "DROP"),
    ("... the blacklist's nomatch entry", "outside", "host", "tcp", 8443, "203.0.113.9", None,
     "REJECT"),
    ("corosync from a cluster node", "outside", "host", "udp", 5405, "172.16.1.3", None,
     "ACCEPT"),
    ("corosync from outside the cluster", "outside", "host", "udp", 5405, "100.100.1.2", None,
     "DROP"),
    ("ping (Ping macro)", "outside", "host", "icmp", "echo-request", "100.100.1.2", None,
     "ACCEPT"),
    ("host sends mail: rejected (OUT rule)", "host", "outside", "tcp", 25, None, "100.200.3.4",
     "REJECT"),
    ("host opens HTTPS outwards", "host", "outside", "tcp", 443, None, "100.200.3.4", "ACCEPT"),
]


def main() -> int:
    with pve_sim_topology(include_guests=False) as topo:
        ns = topo.ns_name("host")
        print(f"== proxmox-firewall --pve-dir {PVE.relative_to(ROOT)} --nodename pve1 apply"
              f" --no-side-effects   (inside namespace {ns})")
        run = subprocess.run(
            ["ip", "netns", "exec", ns, str(CLI), "--pve-dir", str(PVE), "--nodename", "pve1",
             "apply", "--no-side-effects"], capture_output=True, text=True, check=False)
        sys.stdout.write(run.stderr)
        print(f"exit code {run.returncode}"
              + (" (host table applied; guest table needs missing kernel features)"
                 if run.returncode == 3 else ""))
        if run.returncode not in (0, 3):
            return 1
        print("\n== nft list table inet proxmox-firewall (excerpt: compiled chains)")
        listing = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "inet",
                                  "proxmox-firewall"], capture_output=True, text=True, check=True)
        print(_excerpt(listing.stdout))
        print("== probes (real packets, verdict as the sender sees it)")
        failures = 0
        for what, src, dst, proto, dport, source, dest, expected in PROBES:
            got = probe(topo, src, dst, proto, dport, source=source, dest=dest)
            mark = "ok " if got == expected else "BAD"
            failures += got != expected
            print(f"  {mark} {src:>7} -> {dst:<7} {proto:<4} {dport!s:<12} "
                  f"{source or dest or '':<14} {got:<6}  {what}")
        print(f"\n{len(PROBES) - failures} of {len(PROBES)} probes as expected")
        return 1 if failures else 0


def _excerpt(text: str) -> str:
    """The compiler-filled chains; the static skeleton chains are left out for brevity."""
    keep = ("chain cluster-in", "chain cluster-out", "chain host-in", "chain host-out",
            "chain option-in", "chain group-webserver-in", "set v4-dc/management ",
            "set v4-dc/blacklist ", "set v4-cluster-network ")
    out: list[str] = []
    show = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("chain ", "set ", "map ")):
            show = stripped.startswith(keep)
        if show:
            out.append(line)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
