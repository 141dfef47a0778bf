#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 machine (as root) and
# creates .venv with the project and its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(nftables python3-nftables python3-venv python3-dev iproute2 netbase
          qemu-system-x86 busybox-static)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    # Debian's python3-nftables is only importable from the system interpreter's site-packages.
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    touch "$stamp"
fi
