#!/usr/bin/env bash
# Builds the Debian package proxmox-firewall from this work tree (as root, on Debian 12).
#
#   bash packaging/build-deb.sh            # -> build/deb/proxmox-firewall_<version>_<arch>.deb
#
# Safe to run again. Steps:
#   1. installs the build and check tools with apt when one is missing;
#   2. downloads the wheels pinned in packaging/vendor-requirements.txt (pip checks every
#      sha256; a project-local pip cache under .cache/packaging/ makes reruns offline);
#   3. stages a source tree in build/deb/src/proxmox-firewall-<version>/: proxmox_fw/ and
#      cli/ as they are in the work tree (committed or not; ignored files such as
#      __pycache__ left out), debian/ from packaging/debian/, vendor/ with the wheels;
#   4. builds the source package from it (dpkg-source -b: .dsc and .tar.xz), then the
#      binary package with dpkg-buildpackage -us -uc -b (offline: debian/rules installs
#      the staged wheels with --no-index --require-hashes);
#   5. runs lintian on both (build/deb/lintian.txt) and fails on any error.
# The last line printed is the output directory.
#
# Environment: OUT_DIR (default build/deb) moves the output; LINTIAN=0 skips step 5.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

PY=/usr/bin/python3
out=$(realpath -m "${OUT_DIR:-build/deb}")
cache=$repo/.cache/packaging
lock=packaging/vendor-requirements.txt

say() { printf '==> %s\n' "$*" >&2; }

# --- 1. tools ---------------------------------------------------------------------------
# Build: dpkg-dev, debhelper, dh-python, python3-pip (also the Build-Depends of
# debian/control, checked again by dpkg-buildpackage). Checks: lintian, plus debootstrap,
# systemd-analyze (package systemd) and logrotate (a real rotation with the shipped
# configuration) for tests/packaging.
tools=(dpkg-dev debhelper dh-python python3-pip lintian debootstrap systemd logrotate)
missing=()
for p in "${tools[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if ((EUID != 0)); then
        echo "build-deb.sh: missing packages (${missing[*]}); run as root to install them" >&2
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. wheels --------------------------------------------------------------------------
version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
py_version=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
if [[ $version != "$py_version" ]]; then
    echo "build-deb.sh: packaging/debian/changelog is at $version, pyproject.toml at $py_version;" \
         "add a changelog entry (dch -c packaging/debian/changelog -v $py_version)" >&2
    exit 1
fi
arch=$(dpkg --print-architecture)

# One build at a time per output directory.
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

stage_parent=$out/src
stage=$stage_parent/proxmox-firewall-$version
rm -rf "$stage_parent"
mkdir -p "$stage/vendor/wheels" "$cache/pip"

# pip with PyPI only: none of this machine's pip configuration (files, PIP_* variables,
# local wheel directories) takes part, so the files are PyPI's and match the pinned hashes.
run_pip() {
    local -a unset=()
    local v
    for v in $(compgen -e); do [[ $v == PIP_* ]] && unset+=(-u "$v"); done
    env "${unset[@]}" PIP_CONFIG_FILE=/dev/null "$PY" -m pip --disable-pip-version-check "$@"
}
say "downloading the pinned wheels for $arch ($lock)"
run_pip download --quiet --cache-dir "$cache/pip" --require-hashes --no-deps \
    --only-binary=:all: --dest "$stage/vendor/wheels" -r "$lock"
cp "$lock" "$stage/vendor/requirements.txt"

# --- 3. source tree ---------------------------------------------------------------------
say "staging the source tree in ${stage#"$repo"/}"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and untracked files, without what .gitignore excludes.
    git -C "$repo" ls-files -z --cached --others --exclude-standard -- proxmox_fw cli |
        while IFS= read -r -d '' f; do
            [[ -f $f ]] && install -D -m 0644 "$f" "$stage/$f"
        done
else
    find proxmox_fw cli -name __pycache__ -prune -o -type f ! -name '*.py[co]' -print |
        while IFS= read -r f; do install -D -m 0644 "$f" "$stage/$f"; done
fi
cp -r packaging/debian "$stage/debian"
chmod 0755 "$stage/debian/rules"

# --- 4. build ---------------------------------------------------------------------------
rm -f "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes "$out"/*.dsc "$out"/*.tar.xz \
    "$out"/lintian.txt
say "dpkg-source -b"
(cd "$stage_parent" && dpkg-source -b "${stage##*/}") > "$out/source.log" 2>&1 || {
    cat "$out/source.log" >&2
    exit 1
}
mv "$stage_parent"/*.dsc "$stage_parent"/*.tar.xz "$out"/
dsc=$out/proxmox-firewall_${version}.dsc
say "dpkg-buildpackage -us -uc -b"
(cd "$stage" && dpkg-buildpackage -us -uc -b) > "$out/build.log" 2>&1 || {
    tail -n 40 "$out/build.log" >&2
    echo "build-deb.sh: dpkg-buildpackage failed; full log: $out/build.log" >&2
    exit 1
}
mv "$stage_parent"/*.deb "$stage_parent"/*.buildinfo "$stage_parent"/*.changes "$out"/
deb=$out/proxmox-firewall_${version}_${arch}.deb
[[ -f $deb ]] || { echo "build-deb.sh: $deb was not produced" >&2; exit 1; }
say "built ${deb#"$repo"/}"

# --- 5. lintian -------------------------------------------------------------------------
if [[ ${LINTIAN:-1} != 0 ]]; then
    say "lintian"
    rc=0
    lintian --fail-on error --display-info "$dsc" "$deb" > "$out/lintian.txt" 2>&1 || rc=$?
    sed 's/^/    /' "$out/lintian.txt" >&2
    if ((rc != 0)); then
        echo "build-deb.sh: lintian reports errors (see $out/lintian.txt)" >&2
        exit 1
    fi
fi
echo "$out"
