"""The fuzz budget: a fixed number of examples per property in CI (a few minutes at
most in total); ``PROXMOX_FW_FUZZ_EXAMPLES=N`` for a longer run (see README,
Reliability)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("PROXMOX_FW_FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize="PROXMOX_FW_FUZZ_EXAMPLES" not in os.environ,  # CI: the same inputs each run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
settings.load_profile("fuzz")
