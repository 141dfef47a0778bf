"""Helpers shared by the nft layer tests (imported as a plain module)."""

from __future__ import annotations

from typing import Any

from proxmox_fw.nft.client import NftClient
from proxmox_fw.nft.objects import HOST_TABLE, INET


def strip_handles(listing: Any) -> list[dict[str, Any]]:
    """Listing objects without metainfo and handles, for comparing two listings."""
    out: list[dict[str, Any]] = []
    for item in listing["nftables"]:
        for kind, body in item.items():
            if kind == "metainfo":
                continue
            out.append({kind: {k: v for k, v in body.items() if k != "handle"}})
    return out


def list_host(client: NftClient) -> list[dict[str, Any]]:
    result = client.list_table_json(INET, HOST_TABLE)
    assert result.ok, result.error
    return strip_handles(result.output)


def rules_of(items: list[dict[str, Any]], chain: str) -> list[dict[str, Any]]:
    return [i["rule"] for i in items if "rule" in i and i["rule"]["chain"] == chain]


def objects_of(items: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {i[kind]["name"]: i[kind] for i in items if kind in i}
