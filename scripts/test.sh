#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs the whole test suite: pure tests,
# namespace tests against this kernel, and the full-kernel tier under qemu.
# Extra arguments go to pytest (e.g. `scripts/test.sh tests/unit -q`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-fullkernel.sh

.venv/bin/ruff check proxmox_fw cli tests benchmarks examples
.venv/bin/mypy

# A private mount namespace with its own /run/netns: every `ip netns` name the tests
# create is invisible to the rest of the machine and vanishes with the run, even on kill -9.
mkdir -p /run/netns
exec unshare --mount --propagation private -- bash -c '
    mount -t tmpfs -o mode=755 pfw-netns /run/netns &&
    exec .venv/bin/python -m pytest "$@"' pytest "$@"
