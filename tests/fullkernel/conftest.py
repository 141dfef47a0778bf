"""Guard: these tests are only meaningful inside the full-kernel VM.

With ``tests.fullkernel_plugin`` loaded, the host never runs them itself (the
plugin runs them in the VM and replays the results), so this guard only fires
when the plugin is missing: a loud failure instead of misleading kernel errors.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _inside_full_kernel() -> None:
    if os.environ.get("PFW_IN_FULLKERNEL") != "1":
        pytest.fail(
            "fullkernel tests run inside the qemu VM: load the plugin "
            "(tests/conftest.py: pytest_plugins = ['tests.fullkernel_plugin'])"
        )
