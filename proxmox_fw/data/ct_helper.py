"""Conntrack helpers that ``nf_conntrack_helpers`` may enable (``ct_helpers.json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

from pydantic import Field

from proxmox_fw.model.common import Family, Model


class CtHelper(Model):
    """A kernel conntrack helper and the traffic it is attached to."""

    name: str  # kernel helper name, e.g. "netbios-ns"
    proto: Literal["tcp", "udp"]
    dport: int = Field(ge=1, le=65535)
    families: list[Family]  # the families the kernel helper supports


@cache
def load_ct_helpers() -> Mapping[str, CtHelper]:
    """All helpers keyed by name."""
    text = resources.files("proxmox_fw.data").joinpath("ct_helpers.json").read_text("utf-8")
    raw: dict[str, dict[str, Any]] = json.loads(text)
    return MappingProxyType({name: CtHelper(name=name, **spec) for name, spec in raw.items()})
