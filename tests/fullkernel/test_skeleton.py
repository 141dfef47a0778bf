"""The product's whole skeleton (host and guest tables) loads on a full kernel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .netutil import nft, nft_json

pytestmark = pytest.mark.fullkernel

SKELETON = Path(__file__).resolve().parents[2] / "proxmox_fw" / "nft" / "skeleton.nft"
TABLES = {("inet", "proxmox-firewall"), ("bridge", "proxmox-firewall-guests")}


@pytest.fixture
def clean_tables() -> Iterator[None]:
    yield
    for family, name in TABLES:
        nft(f"delete table {family} {name}")


def test_skeleton_loads_whole(clean_tables: None) -> None:
    text = SKELETON.read_text()
    rc, _, err = nft(text)
    assert rc == 0, f"nft refused {SKELETON}:\n{err}"
    tables = {
        (o["table"]["family"], o["table"]["name"]) for o in nft_json("list tables") if "table" in o
    }
    assert tables >= TABLES
    # Reloading on top of itself is the documented apply path.
    rc, _, err = nft(text)
    assert rc == 0, f"second load of {SKELETON} refused:\n{err}"
