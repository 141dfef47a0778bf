#!/usr/bin/env bash
# Prepares the full-kernel test tier (tests marked `fullkernel`, run under qemu by
# tests/fullkernel_plugin.py): installs qemu-system-x86 and busybox-static if
# missing, then fetches Debian's stock kernel into the cache (.cache/vmkernel, or
# $VMK_CACHE) and builds the initramfs.  Safe to run again: a ready cache is kept.
# Cost on a fresh machine: apt ~6 s if the packages are missing, kernel ~10 s.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for p in qemu-system-x86 busybox-static; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

exec tools/run-in-kernel.sh --setup
