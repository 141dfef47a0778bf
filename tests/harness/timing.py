"""How long to wait, scaled to the machine: the full-kernel VM (TCG) runs ~30x slower.

Verdicts are event-driven (sockets and the nftables trace), so these bounds are only
reached when something is wrong; scaling them keeps a slow VM from turning into false
DROPs without making the fast machines wait longer.
"""

from __future__ import annotations

import os
import time

_BASELINE_LOOP_SECONDS = 0.004  # the calibration loop below on the development machine


def _calibrate() -> float:
    """How much slower than a normal machine this one runs (a TCG VM: ~30x)."""
    env = os.environ.get("PFWT_TIME_SCALE")
    if env:
        return max(1.0, float(env))
    start = time.perf_counter()
    total = 0
    for i in range(100_000):
        total += i & 7
    elapsed = time.perf_counter() - start
    return min(100.0, max(1.0, elapsed / _BASELINE_LOOP_SECONDS))


TIME_SCALE = _calibrate()
FALLBACK_TIMEOUT = 1.5 * TIME_SCALE  # seconds; only reached when the trace says nothing
MULTICAST_GRACE = 0.05 * TIME_SCALE  # a flooded copy may be dropped at another port
