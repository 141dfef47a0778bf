"""local_network detection against a real kernel, in a private network namespace.

The child runs under ``unshare --net --mount``: its network namespace and its bind mounts
over ``/etc/hosts``, ``nsswitch.conf`` and ``resolv.conf`` vanish with it, whatever
happens, so nothing needs cleaning up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[3]

CHILD = r"""
import json, subprocess, sys
from pyroute2 import IPRoute
from proxmox_fw.system.localnet import IPRouteNetlink, detect_local_network

for key in ("all", "default"):
    with open(f"/proc/sys/net/ipv6/conf/{key}/accept_dad", "w") as f:
        f.write("0")
# names come from our hosts file only: no DNS query is ever sent
for source, target in zip(sys.argv[1:], ("/etc/hosts", "/etc/nsswitch.conf", "/etc/resolv.conf")):
    subprocess.run(["mount", "--bind", source, target], check=True)

with IPRoute() as ipr:
    def idx(name):
        return ipr.link_lookup(ifname=name)[0]
    ipr.link("set", index=idx("lo"), state="up")
    # created first, so listed first: only the default route makes pvt0 win the fallback
    ipr.link("add", ifname="pvx0", kind="veth", peer="pvx1")
    ipr.link("add", ifname="pvt0", kind="veth", peer="pvt1")
    ipr.link("add", ifname="pvd0", kind="veth", peer="pvd1")  # stays down
    ipr.addr("add", index=idx("pvx0"), address="10.5.5.5", prefixlen=24)
    ipr.addr("add", index=idx("pvt0"), address="192.168.2.100", prefixlen=20)
    ipr.addr("add", index=idx("pvt0"), address="2001:db8::100", prefixlen=64)
    ipr.addr("add", index=idx("pvd0"), address="10.7.7.7", prefixlen=24)
    for name in ("pvx0", "pvx1", "pvt0", "pvt1"):
        ipr.link("set", index=idx(name), state="up")
    ipr.route("add", dst="0.0.0.0/0", gateway="192.168.0.1", oif=idx("pvt0"))

view = IPRouteNetlink()
def show(info):
    return [str(info.local_ip), str(info.detected), info.interface, list(info.warnings)]
print(json.dumps({
    "addresses": [[name, str(addr)] for name, addr in view.list_addresses()],
    "default": view.default_route_ifnames(),
    "by_name": show(detect_local_network("pvetestnode")),
    "loopback_name": show(detect_local_network("loopynode")),
    "unknown_name": show(detect_local_network("no-such-node.invalid")),
}))
"""


@pytest.fixture(scope="module")
def netns_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare")
    etc = tmp_path_factory.mktemp("etc")
    (etc / "hosts").write_text(
        "127.0.0.1 localhost\n127.0.1.1 loopynode\n192.168.2.100 pvetestnode\n"
    )
    (etc / "nsswitch.conf").write_text("hosts: files\n")
    (etc / "resolv.conf").write_text("")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private",
         sys.executable, "-c", CHILD,
         *(str(etc / name) for name in ("hosts", "nsswitch.conf", "resolv.conf"))],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_pyroute2_lists_up_interfaces_only(netns_result: dict[str, Any]) -> None:
    addresses = netns_result["addresses"]
    assert isinstance(addresses, list)
    assert [a for a in addresses if not a[1].startswith("fe80:")] == [
        ["lo", "127.0.0.1/8"],
        ["pvx0", "10.5.5.5/24"],
        ["pvt0", "192.168.2.100/20"],
        ["lo", "::1/128"],
        ["pvt0", "2001:db8::100/64"],
    ]
    # the down pair pvd0/pvd1 is left out entirely, link-local addresses included
    assert sorted({a[0] for a in addresses}) == ["lo", "pvt0", "pvt1", "pvx0", "pvx1"]


def test_pyroute2_default_route(netns_result: dict[str, Any]) -> None:
    assert netns_result["default"] == ["pvt0"]


def test_detect_by_hostname(netns_result: dict[str, Any]) -> None:
    assert netns_result["by_name"] == ["192.168.2.100", "192.168.0.0/20", "pvt0", []]


def test_detect_falls_back_when_name_is_loopback(netns_result: dict[str, Any]) -> None:
    ip, net, ifname, warnings = netns_result["loopback_name"]
    assert (ip, net, ifname) == ("192.168.2.100", "192.168.0.0/20", "pvt0")
    assert len(warnings) == 1 and "loopback" in warnings[0]


def test_detect_falls_back_when_name_is_unknown(netns_result: dict[str, Any]) -> None:
    ip, net, ifname, warnings = netns_result["unknown_name"]
    assert (ip, net, ifname) == ("192.168.2.100", "192.168.0.0/20", "pvt0")
    assert len(warnings) == 2 and "cannot resolve" in warnings[0]
