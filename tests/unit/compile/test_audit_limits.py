"""Audit: one out-of-range name or number must not make nft refuse the whole ruleset.

nft refuses a set or chain name longer than 255 bytes ("name too long") and the kernel a
``limit`` with rate 0 or whose token count overflows 64 bits ("Invalid argument", "Value
too large"); either refusal costs the whole transaction, so the node keeps its old
ruleset (or, on first start, has none). Each such input must cost only its own line.
Both refusals were seen with real nft in a throwaway namespace before the fix.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxmox_fw.nft.objects import Table
from proxmox_fw.parse.fwfile import MAX_OBJECT_NAME

from .conftest import Compile
from .test_guests import G, build

NFT_NAME_MAX = 255
NS = {"second": 10**9, "minute": 60 * 10**9, "hour": 3600 * 10**9, "day": 86400 * 10**9}


def names(table: Table) -> list[str]:
    return [*table.sets, *table.chains, *table.maps]


def limits(table: Table) -> list[dict[str, Any]]:
    """Every limit statement, also those inside a set update (synflood)."""
    stmts = [s for c in table.chains.values() for r in c.rules for s in r.expr]
    stmts += [i for s in stmts if "set" in s and isinstance(s["set"], dict)
              for i in s["set"].get("stmt", [])]  # fmt: skip
    return [s["limit"] for s in stmts if "limit" in s]


def kernel_accepts(limit: dict[str, Any]) -> bool:
    """nft_limit_init: rate >= 1, burst fits 32 bits, tokens fit 64 bits."""
    rate, burst = limit["rate"], limit.get("burst", 0)
    return 1 <= rate < 2**63 and burst < 2**32 and NS[limit["per"]] // rate * (burst or 5) < 2**64


@pytest.mark.parametrize("length", [MAX_OBJECT_NAME, MAX_OBJECT_NAME + 1, 300])
def test_long_ipset_and_group_names(compile_texts: Compile, length: int) -> None:
    name = "n" * length
    res = compile_texts(cluster=(
        "[OPTIONS]\nenable: 1\n"
        f"[IPSET {name}]\n10.0.0.1\n"
        f"[RULES]\nIN ACCEPT -source +{name} -p tcp -dport 22\nGROUP {name}\n"
        f"[group {name}]\nIN ACCEPT -p tcp -dport 80\n"
    ))
    assert max(len(n.encode()) for n in names(res.ruleset.host)) <= NFT_NAME_MAX
    text = [str(d) for d in res.diagnostics]
    if length <= MAX_OBJECT_NAME:
        assert f"v6-dc/{name}-nomatch" in res.ruleset.host.sets
        assert f"group-{name}-forward" in res.ruleset.host.chains
        assert not text
    else:
        assert any(f"cluster.fw:3: error: ipset name '{'n' * 20}...' is longer" in t
                   for t in text), text  # fmt: skip
        assert any("cluster.fw:8: error: security group name" in t for t in text), text


def test_long_guest_ipset_name_of_the_largest_vmid() -> None:
    name = "g" * MAX_OBJECT_NAME
    res = build({999999999: G(fw=f"[OPTIONS]\nenable: 1\n[IPSET {name}]\n10.0.0.1\n"
                                 f"[RULES]\nIN ACCEPT -source +{name}\n")})  # fmt: skip
    assert [str(d) for d in res.diagnostics] == []
    assert f"v6-guest-999999999/{name}-nomatch" in res.ruleset.guests.sets
    assert max(len(n.encode()) for n in names(res.ruleset.guests)) <= NFT_NAME_MAX


@pytest.mark.parametrize("option", [
    "protection_synflood_rate: 0",
    "protection_synflood_rate: 99999999999999999999",
    "protection_synflood_burst: 99999999999999999999",
])
def test_synflood_limit_out_of_range(compile_texts: Compile, option: str) -> None:
    res = compile_texts(host=f"[OPTIONS]\nnftables: 1\nprotection_synflood: 1\n{option}\n")
    lims = limits(res.ruleset.host)
    assert len(lims) == 2 and all(kernel_accepts(lim) for lim in lims), lims
    assert any("nodes/pve1/host.fw:4: error: bad value" in str(d) for d in res.diagnostics)


@pytest.mark.parametrize("value", [
    "rate=1/day,burst=4294967295",  # tokens overflow 64 bits
    "rate=1/minute,burst=4294967295",
    "burst=4294967296",  # burst is 32 bits
    "rate=99999999999999999999",
])
def test_log_ratelimit_out_of_range(compile_texts: Compile, value: str) -> None:
    res = compile_texts(cluster=("[OPTIONS]\nenable: 1\n"
                                 f"log_ratelimit: {value}\n"
                                 "[RULES]\nIN ACCEPT -p tcp -dport 22 -log info\n"))  # fmt: skip
    lims = limits(res.ruleset.host)
    assert lims and all(kernel_accepts(lim) for lim in lims), lims
    assert any("cluster.fw:3: error: bad value for option 'log_ratelimit'" in str(d)
               for d in res.diagnostics)  # fmt: skip


def test_large_but_valid_limits_are_kept(compile_texts: Compile) -> None:
    res = compile_texts(
        cluster=("[OPTIONS]\nenable: 1\nlog_ratelimit: rate=1/day,burst=200000\n"
                 "[RULES]\nIN ACCEPT -p tcp -dport 22 -log info\n"),
        host=("[OPTIONS]\nnftables: 1\nprotection_synflood: 1\n"
              "protection_synflood_rate: 4294967295\nprotection_synflood_burst: 4294967295\n"),
    )
    assert [str(d) for d in res.diagnostics] == []
    lims = limits(res.ruleset.host)
    assert {"rate": 1, "per": "day", "burst": 200000} in lims
    assert {"rate": 4294967295, "per": "second", "burst": 4294967295, "inv": True} in lims
    assert all(kernel_accepts(lim) for lim in lims)
