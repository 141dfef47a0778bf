"""The kernel feature probe, checked against the running kernel's own configuration."""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import fields

import pytest

from proxmox_fw.nft.features import GUEST_TABLE_FEATURES, PROBES, KernelFeatures, probe_features


def kernel_config() -> dict[str, str] | None:
    """The running kernel's build configuration, if it can be read."""
    boot = f"/boot/config-{os.uname().release}"
    if os.path.exists("/proc/config.gz"):
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    elif os.path.exists(boot):
        with open(boot) as f:
            text = f.read()
    else:
        return None
    return dict(re.findall(r"^(CONFIG_\w+)=(\S+)$", text, flags=re.M))


def test_missing_names_follow_the_field_order() -> None:
    features = KernelFeatures(bridge_meta=False, queue=False)
    assert features.missing() == [
        'CONFIG_NFT_BRIDGE_META (bridge "meta ibrname/obrname")',
        'CONFIG_NFT_QUEUE ("queue")',
    ]
    assert features.missing_for_guests() == [features.missing()[0]]
    assert not features.guest_table_supported
    assert KernelFeatures().guest_table_supported and KernelFeatures().missing() == []
    assert set(GUEST_TABLE_FEATURES) <= {f.name for f in fields(KernelFeatures)}
    assert set(PROBES) == {f.name for f in fields(KernelFeatures)}


@pytest.mark.netns
def test_probe_matches_the_kernel_configuration() -> None:
    config = kernel_config()
    if config is None:
        pytest.skip("the kernel configuration is not readable")
    features = probe_features()
    for name, (label, *_rest) in PROBES.items():
        options = re.findall(r"CONFIG_\w+", label)
        expected = all(config.get(opt) in ("y", "m") for opt in options)
        assert getattr(features, name) is expected, f"{name}: {label}"
    assert probe_features() is features  # probed once per process


@pytest.mark.netns
def test_probe_reports_this_machines_missing_bridge_features() -> None:
    """kernel-testing.md: this machine's kernel lacks the three bridge features and queue."""
    config = kernel_config()
    if config is None:
        pytest.skip("the kernel configuration is not readable")
    if config.get("CONFIG_NF_CONNTRACK_BRIDGE") in ("y", "m"):
        pytest.skip("a kernel with bridge conntrack (e.g. the qemu tier)")
    missing = probe_features().missing()
    for label in (
        'CONFIG_NF_CONNTRACK_BRIDGE (bridge "ct state")',
        'CONFIG_NFT_BRIDGE_REJECT (bridge "reject")',
        'CONFIG_NFT_BRIDGE_META (bridge "meta ibrname/obrname")',
        'CONFIG_NFT_QUEUE ("queue")',
    ):
        assert label in missing
    assert not probe_features().guest_table_supported
