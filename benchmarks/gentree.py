"""A realistic /etc/pve tree for the benchmarks, parameterised by guests and blacklist.

Shaped like issue 12's measurement: a quarter of the guests are containers, each guest
has 1–3 NICs, ipfilter on half of them, about 20 rules using a security group, cluster
ipsets, aliases and macros, ``policy_in: REJECT`` on some; 50 cluster ipsets; a
blacklist of ``blacklist`` entries, a fifth of them /24 networks (overlapping). The
same seed gives the same tree.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NODE = "pve1"
IPSETS = 50
ALIASES = 20
MACROS = ("SSH", "HTTP", "HTTPS", "DNS", "SMTP", "IMAP", "NTP", "MySQL", "PostgreSQL", "Ping")


def _addr(rnd: random.Random) -> str:
    a, b, c, d = rnd.randint(1, 223), rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(1, 254)
    return f"{a}.{b}.{c}.{d}"


def _blacklist(rnd: random.Random, entries: int) -> str:
    lines = []
    for i in range(entries):
        if i % 5 == 0:
            lines.append(f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.0/24")
        else:
            lines.append(_addr(rnd))
    return "\n".join(lines)


def _cluster_fw(rnd: random.Random, blacklist: int) -> str:
    parts = ["[OPTIONS]\nenable: 1\npolicy_in: DROP\n", "[ALIASES]"]
    parts += [f"alias{i} 10.{i}.0.0/16" for i in range(ALIASES)]
    parts.append(f"\n[IPSET blacklist]\n{_blacklist(rnd, blacklist)}\n")
    for i in range(IPSETS):
        members = [f"10.{100 + i}.{k}.0/24" for k in range(rnd.randint(2, 20))]
        members.append(f"alias{i % ALIASES}")
        parts.append(f"[IPSET set{i}]\n" + "\n".join(members) + "\n")
    parts.append("[IPSET management]\n192.0.2.0/24\n")
    parts.append("[RULES]\nIN SSH(ACCEPT) -source +management\nGROUP web\n")
    parts.append("[group web]\nIN HTTP(ACCEPT)\nIN HTTPS(ACCEPT)\n"
                 "IN ACCEPT -p tcp -dport 8080:8090 -source +set0\n")
    return "\n".join(parts)


def _guest_rules(rnd: random.Random, nics: int) -> list[str]:
    rules = [f"GROUP web -i net{rnd.randrange(nics)}"]
    while len(rules) < 20:
        kind = rnd.randrange(5)
        if kind == 0:
            rules.append(f"IN {rnd.choice(MACROS)}(ACCEPT) -source +set{rnd.randrange(IPSETS)}")
        elif kind == 1:
            rules.append(f"IN ACCEPT -p tcp -dport {rnd.randint(1024, 65000)} "
                         f"-source alias{rnd.randrange(ALIASES)}")
        elif kind == 2:
            rules.append(f"OUT {rnd.choice(MACROS)}(ACCEPT) -dest +set{rnd.randrange(IPSETS)}")
        elif kind == 3:
            rules.append(f"IN DROP -p udp -dport {rnd.randint(1, 1023)}")
        else:
            rules.append(f"IN REJECT -p tcp -dport {rnd.randint(1, 1023)} "
                         f"-source {_addr(rnd)}")
    return rules


def make_tree(root: Path, guests: int, blacklist: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    (root / "firewall").mkdir(parents=True)
    (root / f"nodes/{NODE}/qemu-server").mkdir(parents=True)
    (root / f"nodes/{NODE}/lxc").mkdir(parents=True)
    (root / "firewall/cluster.fw").write_text(_cluster_fw(rnd, blacklist))
    (root / f"nodes/{NODE}/host.fw").write_text(
        "[OPTIONS]\nnftables: 1\n[RULES]\nIN ACCEPT -p tcp -dport 8006 -source +management\n")
    ids = {}
    for i in range(guests):
        vmid = 1000 + i
        container = i % 4 == 0
        kind = "lxc" if container else "qemu"
        ids[str(vmid)] = {"node": NODE, "type": kind, "version": 1}
        nics = rnd.randint(1, 3)
        lines = []
        for n in range(nics):
            mac = f"BC:24:{i >> 8 & 255:02X}:{i & 255:02X}:{n:02X}:01"
            if container:
                lines.append(f"net{n}: name=eth{n},bridge=vmbr0,firewall=1,hwaddr={mac},"
                             f"ip=10.{200 + n}.{i >> 8 & 255}.{i & 255}/16,type=veth")
            else:
                lines.append(f"net{n}: virtio={mac},bridge=vmbr0,firewall=1")
        conf = root / f"nodes/{NODE}/{'lxc' if container else 'qemu-server'}/{vmid}.conf"
        conf.write_text("\n".join(lines) + "\n")
        options = ["enable: 1"]
        if i % 2 == 0:
            options.append("ipfilter: 1")
        if i % 7 == 0:
            options.append("policy_in: REJECT")
        (root / f"firewall/{vmid}.fw").write_text(
            "[OPTIONS]\n" + "\n".join(options) + "\n\n[RULES]\n"
            + "\n".join(_guest_rules(rnd, nics)) + "\n")
    (root / ".vmlist").write_text(json.dumps({"version": 1, "ids": ids}))
