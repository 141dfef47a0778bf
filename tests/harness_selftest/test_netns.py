"""Namespaces: prepared as the harness promises, bound code, and no leaks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import netns
from tests.harness.netns import NETNS_DIR, RUN_TAG, CommandError, NetNs

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pair() -> Iterator[list[NetNs]]:
    made = netns.create_namespaces([f"{RUN_TAG}selftest-a", f"{RUN_TAG}selftest-b"])
    try:
        yield made
    finally:
        for ns in made:
            netns.delete_namespace(ns)


def test_base_sysctls_and_loopback(pair: list[NetNs]) -> None:
    a = pair[0]
    for key, value in netns.BASE_SYSCTLS.items():
        assert a.read_sysctl(key) == value, key
    assert "UP" in a.ip("link", "show", "lo").split(">")[0]


def test_code_runs_inside_its_namespace(pair: list[NetNs]) -> None:
    a, b = pair
    a.ip("link", "add", "only-in-a", "type", "veth", "peer", "name", "peer-in-a")
    assert a.if_index("only-in-a") > 0
    with pytest.raises(OSError):
        b.if_index("only-in-a")
    a.sysctl("net/ipv4/ip_forward", 1)
    assert (a.read_sysctl("net/ipv4/ip_forward"), b.read_sysctl("net/ipv4/ip_forward")) == (
        "1",
        "0",
    )


def test_nftables_is_bound_to_its_namespace(pair: list[NetNs]) -> None:
    a, b = pair
    a.nft("add table inet only_in_a")
    assert "only_in_a" in a.nft("list tables")
    assert "only_in_a" not in b.nft("list tables")
    ctx = a.nftables()  # a context made in a stays in a, whatever thread uses it
    rc, out, _ = ctx.cmd("list tables")
    assert rc == 0 and "only_in_a" in out


def test_sockets_stay_in_their_namespace(pair: list[NetNs]) -> None:
    a, b = pair
    a.ip("addr", "add", "192.0.2.1/32", "dev", "lo")
    sa = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sb = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sa.bind(("192.0.2.1", 0))
        with pytest.raises(OSError):  # the address does not exist in b
            sb.bind(("192.0.2.1", 0))
    finally:
        sa.close()
        sb.close()


def test_names_need_the_run_tag() -> None:
    with pytest.raises(ValueError):
        netns.create_namespaces(["pfwt-someone-else"])


def test_an_existing_name_is_never_adopted(pair: list[NetNs]) -> None:
    with pytest.raises(CommandError):
        netns.create_namespaces([pair[0].name])
    assert os.path.exists(pair[0].path)  # and the failed attempt did not delete it


def test_delete_ignores_namespaces_this_run_did_not_create() -> None:
    name = f"{RUN_TAG}selftest-foreign"
    subprocess.run(["ip", "netns", "add", name], check=True)  # made behind the registry
    try:
        netns.delete_namespace(NetNs(name))
        assert os.path.exists(os.path.join(NETNS_DIR, name))
        assert name not in netns.created_names()
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


CHILD = """
import signal, sys, time
from tests.harness import netns
from tests.harness.topology import pve_sim_topology
topo = pve_sim_topology(include_guests={guests}).build()
print(netns.RUN_TAG, flush=True)
mode = sys.argv[1]
if mode == "raise":
    raise RuntimeError("test failed without destroying its topology")
if mode == "wait":
    time.sleep(60)
"""


def _child(mode: str, guests: bool = False, wrap: bool = False) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", CHILD.format(guests=guests), mode]
    if wrap:  # the README's test wrapper: a private /run/netns for the whole tree
        argv = [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c",
            'mount -t tmpfs -o mode=0755 pfwt-netns /run/netns && exec "$@"', "sh", *argv,
        ]  # fmt: skip
    return subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _names_with(tag: str) -> list[str]:
    try:
        return [n for n in os.listdir(NETNS_DIR) if n.startswith(tag)]
    except FileNotFoundError:
        return []


def _tag_of(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    tag = child.stdout.readline().strip()
    assert tag.startswith("pfwt"), child.stderr.read() if child.stderr else ""
    return tag


@pytest.mark.parametrize("mode", ["exit", "raise"])
def test_a_process_that_ends_leaves_no_namespace(mode: str) -> None:
    child = _child(mode, guests=True)
    tag = _tag_of(child)
    child.wait(timeout=60)
    assert _names_with(tag) == []


def test_sigterm_removes_the_namespaces() -> None:
    child = _child("wait")
    try:
        tag = _tag_of(child)
        assert len(_names_with(tag)) == 3  # host, outside, nfvm exist while it runs
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
        assert _names_with(tag) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_kill_9_under_the_wrapper_leaks_no_name() -> None:
    child = _child("wait", wrap=True)
    try:
        tag = _tag_of(child)  # the harness works inside the wrapper ...
        assert _names_with(tag) == []  # ... and its names are private to it
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        time.sleep(0.05)
        assert _names_with(tag) == []
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
