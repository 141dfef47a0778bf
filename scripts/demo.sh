#!/usr/bin/env bash
# Sets up the machine and runs the main job on the bundled example configuration:
# apply examples/pve inside throwaway network namespaces and probe it with real packets.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p /run/netns
# A private /run/netns: the demo's namespaces are invisible to the machine and vanish
# with it, even if it is killed.
exec unshare --mount --propagation private -- bash -c '
    mount -t tmpfs -o mode=755 pfw-demo-netns /run/netns &&
    exec .venv/bin/python examples/demo.py'
