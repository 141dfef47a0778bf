"""Just enough namespace plumbing for the tier's self-tests.

Deliberately independent of the product and of ``tests/harness`` (the tier must
prove itself even when those are broken), and lean: every import and every
spawned process costs 30-50x more under TCG.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import threading
from typing import Any

import nftables

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def ip_batch(commands: str, netns: str | None = None) -> None:
    """Run iproute2 commands in one process; a failure raises with ip's message."""
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    proc = subprocess.run(argv, input=commands, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} <<EOF\n{commands}EOF\n{proc.stderr.strip()}")


def socket_in(netns: str, family: int, kind: int) -> socket.socket:
    """A socket created inside ``netns``; it stays bound to it from any thread.

    (``setns`` is per thread, and Python 3.11 has no ``os.setns``.)
    """
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {netns}")
            result.append(socket.socket(family, kind))
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def nft(text: str) -> tuple[int, str, str]:
    """Apply nft text in one transaction (the VM's root namespace)."""
    ctx = nftables.Nftables()
    rc, out, err = ctx.cmd(text)
    return int(rc), str(out), str(err)


def nft_json(command: str) -> list[dict[str, Any]]:
    """The ``nftables`` array of a listing command, as JSON objects."""
    ctx = nftables.Nftables()
    ctx.set_json_output(True)
    rc, out, err = ctx.cmd(command)
    if rc != 0:
        raise RuntimeError(f"nft {command}: {err}")
    items: list[dict[str, Any]] = json.loads(out)["nftables"]
    return items
