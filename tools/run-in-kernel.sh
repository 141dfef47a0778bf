#!/usr/bin/env bash
# run-in-kernel.sh CMD [ARGS...]      run CMD as root inside Debian's stock kernel
# run-in-kernel.sh --setup            only prepare the kernel cache (idempotent), no boot
#
# Why: the machines' own kernel lacks bridge conntrack, bridge reject, bridge
# meta (ibrname/obrname) and nft queue, which the guest table
# (`bridge proxmox-firewall-guests`) needs.  Debian's kernel has them as modules.
#
# How: QEMU (TCG; /dev/kvm here cannot run a stock kernel) boots the kernel of
# linux-image-amd64, fetched with `apt-get download` and unpacked into the cache
# (nothing is installed, host /boot is untouched).  The guest's root filesystem
# is the host's "/" over 9p, read-only, under a tmpfs overlay, so python, nft,
# the venv and the tests are all at their usual paths; the current directory is
# additionally shared read-write at the same path, so files the command writes
# there land on the host (everything else vanishes with the VM).  There is no
# network device.  Modules load on demand (busybox modprobe).  Inside, the
# command sees the caller's exported environment plus PFW_IN_FULLKERNEL=1, with
# pyenv shim directories removed from PATH (each shim call costs ~15 s under
# TCG: use absolute interpreter paths).
#
# CMD's stdout and stderr are streamed to ours; the exit status is CMD's, or 125
# when the guest never reported one (boot failure, crash, VMK_TIMEOUT): the
# tail of the guest console is then printed to stderr.  On Ctrl-C, SIGTERM or
# SIGHUP, QEMU is stopped and the run dir removed; if this script is SIGKILLed,
# QEMU still dies (parent-death signal) and the next run removes the run dir.
#
# Cost (2 cores, TCG): setup on a fresh cache 8.5 s (6.1; 15 s for 6.12 with
# backports), 475 MB; boot to CMD and back ~3 s; CPU-bound code inside runs
# 30-50x slower, and a cold start of python+pytest over 9p takes ~6-9 s.
#
# Environment knobs (all optional):
#   VMK_CACHE       kernel cache (default: <repo>/.cache/vmkernel, -bpo with backports)
#   VMK_MEM         guest memory in MiB (1024)
#   VMK_CPUS        guest vCPUs (1: with 2, TCG ran this single-threaded pytest
#                   load 1.3-2.3x slower on a busy 2-core host)
#   VMK_TIMEOUT     seconds before the guest is killed (1800)
#   VMK_ACCEL       tcg | kvm | auto (auto: kvm only if the CPU shows vmx/svm)
#   VMK_BACKPORTS=1 kernel from <codename>-backports (6.12 on bookworm), through a
#                   private apt list under the cache (host apt state untouched)
#   VMK_KERNEL_PKG  apt package that depends on the kernel image (linux-image-amd64)
#   VMK_APPEND      extra kernel command line (e.g. "loglevel=7" to see the boot)
#   VMK_QEMU_OPTS   extra qemu options (word-split)
#   VMK_DEBUG=1     keep the run dir, print boot timings and the whole console log
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BACKPORTS=${VMK_BACKPORTS:-0}
if [ "$BACKPORTS" = 1 ]; then CACHE=${VMK_CACHE:-$ROOT/.cache/vmkernel-bpo}
else CACHE=${VMK_CACHE:-$ROOT/.cache/vmkernel}; fi
MEM=${VMK_MEM:-1024}
CPUS=${VMK_CPUS:-1}
TIMEOUT=${VMK_TIMEOUT:-1800}
ACCEL=${VMK_ACCEL:-auto}
KPKG=${VMK_KERNEL_PKG:-linux-image-amd64}
DEBUG=${VMK_DEBUG:-0}
APPEND=${VMK_APPEND:-}
read -r -a EXTRA_QEMU <<< "${VMK_QEMU_OPTS:-}"
# Bump when the initramfs or cache layout changes: a cache of another format is rebuilt.
FORMAT=3

die() { echo "run-in-kernel: $*" >&2; exit 125; }

# ---------------------------------------------------------------- setup ----
# Modules the initramfs needs to reach the 9p root and the output ports.
BOOT_MODULES="virtio_pci 9pnet_virtio 9p overlay virtio_console"

cache_ready() { [ "$(sed -n 2p "$CACHE/ready" 2>/dev/null)" = "format=$FORMAT" ]; }

setup() {
    if ! command -v qemu-system-x86_64 >/dev/null || [ ! -x /bin/busybox ] \
        || ldd /bin/busybox >/dev/null 2>&1; then
        die "needs qemu-system-x86_64 and a static /bin/busybox: run scripts/setup-fullkernel.sh"
    fi
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    if cache_ready; then exec 9>&-; return 0; fi
    rm -f "$CACHE/ready"

    # Resolve the meta package to the real image package (linux-image-6.1.0-NN-amd64).
    local apto=() real
    if [ "$BACKPORTS" = 1 ]; then
        local codename
        # shellcheck disable=SC1091
        codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
        mkdir -p "$CACHE/apt/lists/partial"
        echo "deb http://deb.debian.org/debian $codename-backports main" > "$CACHE/apt/sources.list"
        apto=(-o "Dir::Etc::SourceList=$CACHE/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$CACHE/apt/lists")
        apt-get "${apto[@]}" update -q >&2
    fi
    kpkg() { apt-cache "${apto[@]}" depends --important "$KPKG" 2>/dev/null \
             | awk '/Depends: linux-image-/ {print $2; exit}'; }
    real=$(kpkg)
    [ -n "$real" ] || { apt-get update -q >&2; real=$(kpkg); }
    [ -n "$real" ] || die "cannot resolve $KPKG to a kernel image package"

    # Download and unpack (no dpkg install: no initramfs-tools run, host /boot untouched).
    local dl="$CACHE/dl" kroot="$CACHE/kernel"
    rm -rf "$dl" "$kroot" && mkdir -p "$dl" "$kroot"
    (cd "$dl" && apt-get "${apto[@]}" download -q "$real" >&2 2>/dev/null) \
        || (cd "$dl" && apt-get update -q >&2 && apt-get "${apto[@]}" download -q "$real" >&2)
    dpkg-deb -x "$dl"/"$real"_*.deb "$kroot"
    rm -rf "$dl"
    local kver
    kver=$(basename "$(ls -d "$kroot"/lib/modules/*)")
    busybox depmod -b "$kroot" "$kver"

    # Initramfs: static busybox, the few boot modules, and the init script.
    local ir="$CACHE/initramfs"
    rm -rf "$ir"; mkdir -p "$ir"/{bin,dev,proc,sys,newroot,lower,upper,lib/modules/"$kver"}
    cp /bin/busybox "$ir/bin/busybox"
    ln -s busybox "$ir/bin/sh"
    local kmods="$kroot/lib/modules/$kver" m dep f load=""
    for m in $BOOT_MODULES; do
        # (6.12+ ships modules as .ko.xz, which busybox handles, and has
        #  virtio_pci/virtio_console built in)
        if ! dep=$(grep -E "/${m}\.ko(\.xz)?:" "$kmods/modules.dep"); then
            grep -qE "/${m}\.ko\$" "$kmods/modules.builtin" || die "module $m not in $kver"
            continue
        fi
        load+="$m "
        for f in ${dep/:/}; do
            mkdir -p "$ir/lib/modules/$kver/$(dirname "$f")"
            cp "$kmods/$f" "$ir/lib/modules/$kver/$f"
        done
    done
    busybox depmod -b "$ir" "$kver"
    echo "$kver" > "$ir/kver"
    echo "$load" > "$ir/modules.load"
    cat > "$ir/init" <<'INIT'
#!/bin/sh
# Stage 1 (initramfs): mount the host's / read-only under a tmpfs overlay.
export PATH=/bin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
KVER=$(cat /kver)
t() { echo "vmk: $*" > /dev/kmsg; }   # boot markers, visible with VMK_APPEND=loglevel=7
fail() { echo "<2>vmk: stage1 failed: $*" > /dev/kmsg; poweroff -f; }
t stage1
modprobe -a $(cat /modules.load) || fail "modprobe"
O9=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $O9,ro,cache=loose hostroot /lower || fail "9p root"
mount -t tmpfs -o mode=0755 upper /upper
mkdir -p /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w root /newroot \
    || fail "overlay"
t overlay mounted
R=/newroot
mkdir -p $R/proc $R/sys $R/dev $R/run $R/tmp $R/lib/modules/$KVER
mount -t proc proc $R/proc
mount -t sysfs sys $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm $R/dev/virtio-ports
# what udev/systemd would create: bash/nft/python use /dev/stdin, /dev/fd/N
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mount -t devpts -o ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs shm $R/dev/shm
mount -t tmpfs -o mode=0755 run $R/run
# /tmp stays on the overlay: host files there are visible, writes stay in RAM
[ -d $R/sys/fs/cgroup ] && mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
mount -t 9p -o $O9,ro,cache=loose kmods $R/lib/modules/$KVER
mkdir -p $R/run/vmk $R/run/vmk-bin $R/run/netns
mount -t 9p -o $O9,cache=none vmkrun $R/run/vmk || fail "9p run dir"
cp /bin/busybox $R/run/vmk-bin/busybox
ln -s busybox $R/run/vmk-bin/modprobe
echo /run/vmk-bin/modprobe > /proc/sys/kernel/modprobe
for p in /sys/class/virtio-ports/*; do
    ln -s /dev/${p##*/} $R/dev/virtio-ports/$(cat $p/name)
done
CWD=$(cat $R/run/vmk/cwd)
if [ -n "$CWD" ] && [ "$CWD" != / ]; then
    mkdir -p "$R$CWD"
    mount -t 9p -o $O9,cache=loose cwd "$R$CWD" || fail "9p cwd"
fi
cp /stage2 $R/run/vmk-bin/stage2
t switch_root
exec switch_root $R /run/vmk-bin/busybox sh /run/vmk-bin/stage2
INIT
    cat > "$ir/stage2" <<'STAGE2'
# Stage 2 (PID 1 on the real root): run the command, report, power off.
B=/run/vmk-bin/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo "vmk: stage2" > /dev/kmsg
$B hostname vmk
$B ip link set lo up
$B cut -d' ' -f1 /proc/uptime > /run/vmk/uptime-start
/bin/bash /run/vmk/cmd.sh </dev/null >/dev/virtio-ports/stdout 2>/dev/virtio-ports/stderr
echo $? > /run/vmk/rc
echo "vmk: command done" > /dev/kmsg
$B cut -d' ' -f1 /proc/uptime > /run/vmk/uptime-end
$B sync
$B poweroff -f
STAGE2
    chmod +x "$ir/init"
    (cd "$ir" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$CACHE/initrd.img"
    rm -rf "$ir"
    cp "$kroot"/boot/vmlinuz-"$kver" "$CACHE/vmlinuz"
    # Uncompressed ELF vmlinux for QEMU's PVH direct boot: skips the firmware's
    # real-mode loader and the kernel's self-decompression, ~2.5 s under TCG.
    # 6.1 is XZ-compressed (python's lzma), 6.12 zstd (zstd CLI, if present).
    # Without a vmlinux the bzImage boots as usual, just slower.
    rm -f "$CACHE/vmlinux"
    /usr/bin/python3 - "$CACHE/vmlinuz" "$CACHE/vmlinux" <<'PY' || rm -f "$CACHE/vmlinux"
import lzma, shutil, subprocess, sys
data = open(sys.argv[1], "rb").read()
xz, zst = data.find(b"\xfd7zXZ\x00"), data.find(b"\x28\xb5\x2f\xfd")
if xz >= 0:
    out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[xz:])
elif zst >= 0 and shutil.which("zstd"):
    out = subprocess.run(["zstd", "-dc"], input=data[zst:], capture_output=True).stdout
else:
    sys.exit("vmk: no vmlinux extracted (unknown compression); booting the bzImage")
if out[:4] != b"\x7fELF":
    sys.exit("vmk: no ELF vmlinux inside the bzImage; booting the bzImage")
open(sys.argv[2], "wb").write(out)
PY
    printf '%s\nformat=%s\n' "$kver" "$FORMAT" > "$CACHE/ready"
    exec 9>&-
}

if [ "${1:-}" = "--setup" ]; then setup; echo "run-in-kernel: kernel $(head -n1 "$CACHE/ready") ready in $CACHE" >&2; exit 0; fi
[ $# -gt 0 ] || die "usage: run-in-kernel.sh CMD [ARGS...] | --setup"
cache_ready || setup
KVER=$(head -n1 "$CACHE/ready")
KERNEL=$CACHE/vmlinux
[ -s "$KERNEL" ] || KERNEL=$CACHE/vmlinuz

# ------------------------------------------------------------------ run ----
if [ "$ACCEL" = auto ]; then
    if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then ACCEL=kvm; else ACCEL=tcg; fi
fi
# shellcheck disable=SC2054  # the commas belong to qemu's option syntax
case $ACCEL in
    kvm) ACCEL_OPTS=(-accel kvm -cpu host) ;;
    tcg) ACCEL_OPTS=(-accel tcg,thread=multi -cpu max) ;;
    *) die "VMK_ACCEL must be tcg, kvm or auto" ;;
esac

# Run dirs live in the cache, named after our pid: a run killed with SIGKILL
# leaves one behind, and the next run removes it.
mkdir -p "$CACHE/run"
for d in "$CACHE"/run/*.*; do
    [ -d "$d" ] || continue
    pid=${d##*/}; pid=${pid%%.*}
    kill -0 "$pid" 2>/dev/null || rm -rf "$d"
done
RUN=$(mktemp -d "$CACHE/run/$$.XXXXXX")
QPID='' CAT1='' CAT2=''
# shellcheck disable=SC2317  # invoked through trap
cleanup() {
    trap - EXIT INT TERM HUP
    # QPID is `timeout`, which passes the TERM on to QEMU.
    [ -n "$QPID" ] && { kill "$QPID" 2>/dev/null; wait "$QPID" 2>/dev/null; }
    for p in $CAT1 $CAT2; do kill "$p" 2>/dev/null || true; done
    if [ "$DEBUG" = 1 ]; then echo "vmk: run dir kept: $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP

# Inside the guest, drop pyenv shim dirs from PATH (see header).
GUEST_PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/shims$' | paste -sd:)

# The command as a bash script: the caller's exported environment, then cd, then CMD.
{
    export -p | grep -vE '^declare -x (SHLVL|OLDPWD|PWD|HOSTNAME)='
    printf 'export PATH=%q PFW_IN_FULLKERNEL=1\n' "$GUEST_PATH"
    printf 'cd -- %q || exit 125\n' "$PWD"
    printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$RUN/cmd.sh"
printf '%s' "$PWD" > "$RUN/cwd"
mkfifo "$RUN/stdout.fifo" "$RUN/stderr.fifo"
# Relays from the guest's output ports.  Each keeps its FIFO open and, if our
# stdout/stderr goes away (`| head`), drains to /dev/null: otherwise QEMU
# throttles the port and the guest blocks on its next write until VMK_TIMEOUT.
# setpriv --pdeathsig: if this script is SIGKILLed, the children still go.
# shellcheck disable=SC2016  # expanded by the relay's own bash
RELAY='exec 3<"$1"; trap "" PIPE; cat <&3 2>/dev/null || cat <&3 >/dev/null'
setpriv --pdeathsig KILL bash -c "$RELAY" relay "$RUN/stdout.fifo" &
CAT1=$!
setpriv --pdeathsig KILL bash -c "$RELAY" relay "$RUN/stderr.fifo" >&2 &
CAT2=$!

q9() { printf '%s' "${1//,/,,}"; }   # qemu option values escape ',' as ',,'
CWD_OPT=()
[ "$PWD" != / ] && CWD_OPT=(-virtfs "local,path=$(q9 "$PWD"),mount_tag=cwd,security_model=passthrough,multidevs=remap")

T0=$(date +%s.%N)
set +e
setpriv --pdeathsig TERM timeout -k 5 "$TIMEOUT" setpriv --pdeathsig KILL qemu-system-x86_64 \
    -M q35 "${ACCEL_OPTS[@]}" -smp "$CPUS" -m "$MEM" \
    -nodefaults -no-user-config -display none -no-reboot -net none \
    -serial "file:$RUN/console.log" \
    -kernel "$KERNEL" -initrd "$CACHE/initrd.img" \
    -append "console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init $APPEND" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$(q9 "$CACHE/kernel/lib/modules/$KVER"),mount_tag=kmods,security_model=none,readonly=on" \
    -virtfs "local,path=$(q9 "$RUN"),mount_tag=vmkrun,security_model=passthrough" \
    "${CWD_OPT[@]}" "${EXTRA_QEMU[@]}" \
    -device virtio-serial-pci \
    -chardev "file,id=out,path=$RUN/stdout.fifo" -device virtserialport,chardev=out,name=stdout \
    -chardev "file,id=err,path=$RUN/stderr.fifo" -device virtserialport,chardev=err,name=stderr \
    </dev/null >"$RUN/qemu.log" 2>&1 &
QPID=$!
wait "$QPID"; QRC=$?
QPID=
set -e
# A relay still blocked opening its FIFO (QEMU died before opening it) needs a
# writer to come and go; an O_RDWR open never blocks.
for f in "$RUN/stdout.fifo" "$RUN/stderr.fifo"; do exec 8<>"$f"; exec 8>&-; done
wait "$CAT1" "$CAT2" 2>/dev/null || true
CAT1='' CAT2=''
T1=$(date +%s.%N)

if [ -s "$RUN/rc" ]; then
    RC=$(cat "$RUN/rc")
else
    if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
        echo "run-in-kernel: guest killed after VMK_TIMEOUT=${TIMEOUT}s" >&2
    fi
    echo "run-in-kernel: guest did not report an exit status (qemu rc=$QRC); console tail:" >&2
    cat "$RUN/qemu.log" >&2 || true
    tail -n 40 "$RUN/console.log" >&2 || true
    RC=125
fi
if [ "$DEBUG" = 1 ]; then
    echo "vmk: accel=$ACCEL kernel=$KVER wall=$(awk "BEGIN{printf \"%.2f\", $T1 - $T0}")s" \
         "guest-uptime-at-cmd=$(cat "$RUN/uptime-start" 2>/dev/null)s" \
         "at-exit=$(cat "$RUN/uptime-end" 2>/dev/null)s" >&2
    cat "$RUN/console.log" >&2
fi
exit "$RC"
