"""The VM's kernel has what the guest table needs, and the limits the design relies on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .netutil import nft, nft_json

pytestmark = pytest.mark.fullkernel


@pytest.fixture
def table() -> Iterator[str]:
    name = "fk-features"
    yield name
    nft(f"delete table bridge {name}")  # fails harmlessly if the load was refused


def test_bridge_ct_reject_and_meta_load(table: str) -> None:
    # Each of these fails on the machines' own kernel (Protocol error / No such
    # file or directory / Operation not supported).
    rc, _, err = nft(f"""
        table bridge {table} {{
            chain pre {{
                type filter hook prerouting priority 0; policy accept;
                ct state established,related accept
                meta ibrname "fkbr-none" meta l4proto tcp reject with tcp reset
                meta ibrname "fkbr-none" reject
            }}
        }}
    """)
    assert rc == 0, err
    rules = [o["rule"]["expr"] for o in nft_json(f"list chain bridge {table} pre") if "rule" in o]
    assert len(rules) == 3, rules
    ct_match = rules[0][0]["match"]
    assert ct_match["left"] == {"ct": {"key": "state"}}
    assert set(ct_match["right"]) == {"established", "related"}
    assert rules[0][-1] == {"accept": None}
    for expr in rules[1:]:
        assert expr[0]["match"]["left"] == {"meta": {"key": "ibrname"}}
        assert "reject" in expr[-1], expr
    assert rules[1][-1]["reject"]["type"] == "tcp reset"


def test_bridge_reject_refused_outside_prerouting_and_input(table: str) -> None:
    # Why guest-IN REJECT must become DROP: the kernel validates bridge reject
    # against the hook and fails the whole transaction.
    rc, _, err = nft(f"""
        table bridge {table} {{
            chain through {{ type filter hook forward priority 0; policy accept; reject; }}
        }}
    """)
    assert rc != 0
    assert "Operation not supported" in err
