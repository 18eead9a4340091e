#!/usr/bin/env bash
# Soft-RoCE VM harness: runs a command inside a small qemu VM whose kernel
# has a real RDMA device (rxe0, Soft-RoCE over a dummy netdev), so verbs
# programs built on this host run against real ib_uverbs/rdma_cm without
# RDMA hardware. See docs/softroce.md.
#
#   tests/rdma/softroce.sh [OPTIONS] -- GUEST_COMMAND [ARGS...]
#
# Exit status: the guest command's own exit status; 77 when a prerequisite
# is missing (the reason is printed); 124 when the VM ran past --timeout;
# 125 when the VM or the harness itself failed (boot, image, rxe0 setup).
set -euo pipefail

ME=$(readlink -f "$0")
SOURCE_DIR=$(cd "$(dirname "$ME")/../.." && pwd -P)

usage() {
  cat <<EOF
usage: tests/rdma/softroce.sh [OPTIONS] -- GUEST_COMMAND [ARGS...]

Boots a Debian 12 qemu VM (software emulation, no KVM needed) with Soft-RoCE
device rxe0 on 10.0.0.1/24 and runs GUEST_COMMAND in it as root, in the
source tree, and exits with its status. The source tree ($SOURCE_DIR)
and the build directory are shared into the VM read-only at the same
absolute paths; the output directory is shared writable.

Options:
  --build-dir DIR   build tree to share and scan for needed libraries
                    (default: $SOURCE_DIR/build); guest env KVCACHED_BUILD_DIR
  --out DIR         writable shared directory for the console log and the
                    guest's own logs (default: BUILD_DIR/softroce); emptied
                    first; guest env KVCACHED_SOFTROCE_OUT
  --timeout SEC     kill the VM after SEC seconds (default: 900;
                    env KVCACHED_SOFTROCE_TIMEOUT); exit 124
  --boot-timeout SEC  a boot that has not reached the guest's init after
                    SEC seconds is a hung boot (default: 300; env
                    KVCACHED_SOFTROCE_BOOT_TIMEOUT)
  --boot-tries N    boot up to N times when the kernel hangs or panics
                    before the guest's init runs (default: 3)
  --memory MB       guest memory (default: 2048)
  --smp N           guest CPUs (default: 4)
  --quiet           console only to OUT/console.log; its tail on failure
  --verbose         boot without 'quiet': the kernel's messages too
  --shell           after GUEST_COMMAND, an interactive root shell on the
                    console (needs a terminal; no timeout); 'exit' powers off
                    (GUEST_COMMAND may then be omitted)
  --build-only      make (or check) the cached image and exit
  --rebuild         make the image again even if it is cached
  --check           check the prerequisites only: exit 0, or 77 with why
  -h, --help        this text

GUEST_COMMAND runs in the source tree; a relative path is relative to it.
Its environment: KVCACHED_RDMA_DEVICE=rxe0 KVCACHED_RDMA_IP=10.0.0.1
KVCACHED_RDMA_GID_INDEX=1 KVCACHED_SOURCE_DIR KVCACHED_BUILD_DIR
KVCACHED_BIN (BUILD_DIR/kvcached) KVCACHED_SOFTROCE_OUT, TMPDIR=/tmp (tmpfs),
ulimit -l unlimited.

Environment:
  KVCACHED_SOFTROCE_INSTALL=1   install missing host packages with apt-get
                                (root only); also when CI is set, unless
                                KVCACHED_SOFTROCE_INSTALL=0
  KVCACHED_SOFTROCE_CACHE       image cache (default:
                                \${KVCACHED_TEST_CACHE:-/var/cache/kvcached-test}/softroce)
  KVCACHED_SOFTROCE_MIRROR      Debian mirror (default: the host's apt sources)
  KVCACHED_SOFTROCE_EXTRA_PACKAGES  more Debian packages for the image
  KVCACHED_SOFTROCE_PRETEND_MISSING="tool ..."  treat these host tools as
                                missing (tests the skip path)

Exit: the guest command's status; 77 skipped (prerequisite missing, reason
printed); 124 timed out; 125 VM or harness failure.
EOF
}

BUILD_DIR=$SOURCE_DIR/build
OUT_DIR=
TIMEOUT=${KVCACHED_SOFTROCE_TIMEOUT:-900}
BOOT_TIMEOUT=${KVCACHED_SOFTROCE_BOOT_TIMEOUT:-300}
BOOT_TRIES=3
MEMORY=2048
SMP=4
QUIET=0
VERBOSE=0
SHELL_AFTER=0
BUILD_ONLY=0
REBUILD=0
CHECK_ONLY=0
while (($#)); do
  case $1 in
    --build-dir) BUILD_DIR=${2:?--build-dir needs a directory}; shift 2 ;;
    --build-dir=*) BUILD_DIR=${1#*=}; shift ;;
    --out) OUT_DIR=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT_DIR=${1#*=}; shift ;;
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --boot-timeout) BOOT_TIMEOUT=${2:?--boot-timeout needs seconds}; shift 2 ;;
    --boot-timeout=*) BOOT_TIMEOUT=${1#*=}; shift ;;
    --boot-tries) BOOT_TRIES=${2:?--boot-tries needs a number}; shift 2 ;;
    --boot-tries=*) BOOT_TRIES=${1#*=}; shift ;;
    --memory) MEMORY=${2:?--memory needs MB}; shift 2 ;;
    --memory=*) MEMORY=${1#*=}; shift ;;
    --smp) SMP=${2:?--smp needs a number}; shift 2 ;;
    --smp=*) SMP=${1#*=}; shift ;;
    --quiet) QUIET=1; shift ;;
    --verbose) VERBOSE=1; shift ;;
    --shell) SHELL_AFTER=1; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    --rebuild) REBUILD=1; shift ;;
    --check) CHECK_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "softroce: unknown argument '$1' (the guest command goes after --; see --help)" >&2; exit 2 ;;
  esac
done
GUEST_CMD=("$@")
[[ $TIMEOUT =~ ^[0-9]+$ && $BOOT_TIMEOUT =~ ^[0-9]+$ && $BOOT_TRIES =~ ^[1-9][0-9]*$ &&
   $MEMORY =~ ^[0-9]+$ && $SMP =~ ^[0-9]+$ ]] ||
  { echo "softroce: --timeout, --boot-timeout, --boot-tries, --memory and --smp take whole numbers" >&2; exit 2; }
if ((${#GUEST_CMD[@]} == 0 && !SHELL_AFTER && !BUILD_ONLY && !CHECK_ONLY)); then
  echo "softroce: no guest command (see --help)" >&2
  exit 2
fi

say() { printf 'softroce: %s\n' "$*"; }
skip() {
  printf 'SKIPPED: %s\n' "$*"
  exit 77
}
harness_fail() {
  printf 'softroce: FAILED: %s\n' "$*" >&2
  exit 125
}

CACHE=${KVCACHED_SOFTROCE_CACHE:-${KVCACHED_TEST_CACHE:-/var/cache/kvcached-test}/softroce}
APT_ARCHIVES=$(dirname "$CACHE")/apt-archives   # shared with tests/packaging

# ---------------------------------------------------------------- the recipe
# Everything that decides the image's contents is in IMAGE_* and the
# functions named recipe_*: their text is hashed into the cache key, so a
# change to any of them makes a new image. The guest's run-time init (made
# by write_guest_init for every run) is not part of the image.
IMAGE_SUITE=bookworm
IMAGE_SIZE=900M
# Runtime libraries of the host-built binaries are in the list (kvcached:
# spdlog, fmt, xxhash, libibverbs; tests: librdmacm); anything else a
# binary in the build tree needs is found with ldd at run time and added
# (see needed_packages).
IMAGE_PACKAGES=(linux-image-amd64 kmod iproute2 procps busybox-static strace
                ibverbs-providers ibverbs-utils rdmacm-utils perftest
                libibverbs1 librdmacm1 libspdlog1.10 libfmt9 libxxhash0 libstdc++6 libgcc-s1)
# Kernel modules the VM never uses (the rest: ~100 MB less).
IMAGE_DROP_MODULES=(drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet
                    drivers/net/usb drivers/net/can drivers/usb drivers/bluetooth
                    drivers/staging drivers/iio drivers/hid drivers/input drivers/isdn
                    drivers/mtd drivers/video drivers/hwmon drivers/comedi drivers/nfc
                    drivers/infiniband/hw drivers/scsi drivers/ata drivers/md drivers/mmc
                    drivers/platform drivers/watchdog drivers/thunderbolt drivers/leds
                    drivers/power drivers/misc drivers/atm drivers/firewire drivers/pcmcia
                    drivers/target drivers/spi drivers/i2c drivers/gnss drivers/w1
                    sound net/wireless net/bluetooth net/mac80211 net/can net/nfc
                    fs/nls fs/btrfs fs/xfs fs/nfs fs/nfsd fs/ocfs2 fs/gfs2 fs/cifs
                    fs/smb fs/ceph fs/f2fs fs/ubifs fs/jfs fs/reiserfs fs/afs)

recipe_debootstrap() {  # root mirror packages,comma-separated
  local root=$1 mirror=$2 pkgs=$3
  mkdir -p "$APT_ARCHIVES"
  debootstrap --variant=minbase --cache-dir="$APT_ARCHIVES" --include="$pkgs" \
    "$IMAGE_SUITE" "$root" "$mirror"
}

recipe_trim() {  # root
  local root=$1 kver d
  kver=$(recipe_kver "$root")
  for d in "${IMAGE_DROP_MODULES[@]}"; do rm -rf "$root/lib/modules/$kver/kernel/$d"; done
  chroot "$root" depmod "$kver"
  rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,linda,bug}/* \
    "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/boot/initrd.img* \
    "$root"/usr/share/i18n/* "$root"/usr/lib/firmware 2>/dev/null || true
}

recipe_kver() {  # root -> the one installed kernel's version
  local v
  v=$(ls "$1/lib/modules")
  [[ $(wc -w <<<"$v") == 1 ]] || { echo "expected one kernel in $1/lib/modules, found: $v" >&2; return 1; }
  echo "$v"
}

# Debian's vmlinuz holds the kernel as one xz stream; the uncompressed ELF
# boots directly (PVH entry) and much faster than decompressing under TCG.
recipe_vmlinux() {  # root out
  local root=$1 out=$2 kver off
  kver=$(recipe_kver "$root")
  off=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$root/boot/vmlinuz-$kver" | head -n1 | cut -d: -f1)
  [[ -n $off ]] || { echo "no xz stream in vmlinuz-$kver" >&2; return 1; }
  tail -c +$((off + 1)) "$root/boot/vmlinuz-$kver" | xz -dc --single-stream >"$out"
  [[ $(head -c4 "$out" | od -An -tx1 | tr -d ' ') == 7f454c46 ]] ||
    { echo "the stream in vmlinuz-$kver is not an ELF kernel" >&2; return 1; }
}

# The root's static busybox and the modules needed to mount /dev/vda.
recipe_initramfs() {  # root out
  local root=$1 out=$2 kver dir line ko dst
  kver=$(recipe_kver "$root")
  dir=$(mktemp -d)
  mkdir -p "$dir"/{bin,dev,proc,sys,newroot,modules}
  cp "$root/bin/busybox" "$dir/bin/busybox"
  : >"$dir/modules/order"
  while read -r line; do
    [[ $line == insmod\ * ]] || continue
    ko=${line#insmod }
    ko=$root${ko%% *}
    dst=$(basename "$ko")
    case $dst in
      *.xz) xz -dc "$ko" >"$dir/modules/${dst%.xz}"; dst=${dst%.xz} ;;
      *.zst) zstd -qdc "$ko" >"$dir/modules/${dst%.zst}"; dst=${dst%.zst} ;;
      *) cp "$ko" "$dir/modules/$dst" ;;
    esac
    grep -qx "$dst" "$dir/modules/order" || echo "$dst" >>"$dir/modules/order"
  done < <(chroot "$root" modprobe -a -S "$kver" --show-depends virtio_pci virtio_blk ext4)
  cat >"$dir/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod "/modules/$m" || echo "initramfs: insmod $m failed"; done
init=/sbin/init
for a in $(cat /proc/cmdline); do case $a in init=*) init=${a#init=} ;; esac; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 -o rw /dev/vda /newroot; then
  echo "initramfs: cannot mount /dev/vda"; echo o >/proc/sysrq-trigger; sleep 10
fi
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot "$init"
INIT
  chmod 755 "$dir/init"
  (cd "$dir" && find . | cpio -o -H newc --quiet | gzip -9) >"$out"
  rm -rf "$dir"
}

# PID 1 of the root: mounts the per-run control share (the --out directory)
# and runs the init.sh the host wrote there for this run.
recipe_stage1() {  # root
  cat >"$1/sbin/softroce-stage1" <<'STAGE1'
#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
fail() {
  echo "softroce-stage1: $*"
  printf '\175' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
  echo o >/proc/sysrq-trigger
  sleep 30
}
modprobe 9pnet_virtio && modprobe 9p || fail "cannot load the 9p modules"
mkdir -p /softroce
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 softroce /softroce ||
  fail "cannot mount the control share"
[ -f /softroce/init.sh ] || fail "no init.sh in the control share"
exec /bin/sh /softroce/init.sh
fail "cannot run init.sh"
STAGE1
  chmod 755 "$1/sbin/softroce-stage1"
  echo softroce >"$1/etc/hostname"
}

recipe_build() {  # dir mirror packages
  local dir=$1 mirror=$2 pkgs=$3 root=$1/root
  recipe_debootstrap "$root" "$mirror" "$pkgs"
  recipe_stage1 "$root"
  recipe_vmlinux "$root" "$dir/vmlinux"
  recipe_initramfs "$root" "$dir/initramfs.cpio.gz"
  recipe_trim "$root"
  # shellcheck disable=SC2016
  chroot "$root" dpkg-query -W -f '${Package}\n' | sort >"$dir/packages.txt"
  rm -rf "${root:?}/boot"/*
  mkfs.ext4 -q -F -L softroce -d "$root" "$dir/rootfs.ext4" "$IMAGE_SIZE"
  rm -rf --one-file-system "$root"
}

# ------------------------------------------------------------ prerequisites
pretend_missing() { [[ " ${KVCACHED_SOFTROCE_PRETEND_MISSING:-} " == *" $1 "* ]]; }
have() { ! pretend_missing "$1" && command -v "$1" >/dev/null 2>&1; }

# tool:package:why
HOST_TOOLS=(
  "qemu-system-x86_64:qemu-system-x86:runs the VM"
  "timeout:coreutils:bounds the VM's run time"
  "flock:util-linux:serialises image builds"
  "debootstrap:debootstrap:makes the image's Debian root (first run only)"
  "mkfs.ext4:e2fsprogs:makes the root disk image without mounting (first run only)"
  "cpio:cpio:packs the initramfs (first run only)"
  "xz:xz-utils:extracts the kernel (first run only)"
  "gzip:gzip:compresses the initramfs (first run only)"
)
BUILD_TOOLS=(debootstrap mkfs.ext4 cpio xz gzip)

want_install() {
  [[ ${KVCACHED_SOFTROCE_INSTALL:-} == 0 ]] && return 1
  [[ ${KVCACHED_SOFTROCE_INSTALL:-} == 1 || -n ${CI:-} ]] || return 1
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null
}

# Prints "tool (package): why" for each missing tool; $1=1 includes the
# tools that only building the image needs.
missing_tools() {
  local need_build=$1 entry tool pkg why
  for entry in "${HOST_TOOLS[@]}"; do
    IFS=: read -r tool pkg why <<<"$entry"
    if ((!need_build)) && [[ " ${BUILD_TOOLS[*]} " == *" $tool "* ]]; then continue; fi
    have "$tool" || echo "$tool (Debian package $pkg): $why"
  done
  if have mkfs.ext4 && ((need_build)) && ! grep -q -- '-d root' <<<"$(mkfs.ext4 2>&1)"; then
    echo "mkfs.ext4 -d (e2fsprogs >= 1.43): makes the root disk image without mounting"
  fi
  if have qemu-system-x86_64 && ! grep -q virtio-9p-pci <<<"$(qemu-system-x86_64 -device help 2>/dev/null)"; then
    echo "qemu-system-x86_64 with virtio-9p (Debian's qemu-system-x86 has it): shares the source tree"
  fi
}

install_tools() {  # missing lines
  local pkgs
  pkgs=$(sed -n 's/^[^ ]* (Debian package \([^)]*\)).*/\1/p' <<<"$1" | sort -u | tr '\n' ' ')
  [[ -n $pkgs ]] || return 1
  say "installing host packages: $pkgs"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || true
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs
}

check_tools() {  # need_build
  local missing
  missing=$(missing_tools "$1")
  [[ -z $missing ]] && return 0
  if want_install && [[ -z ${KVCACHED_SOFTROCE_PRETEND_MISSING:-} ]]; then
    install_tools "$missing" || true
    missing=$(missing_tools "$1")
    [[ -z $missing ]] && return 0
  fi
  printf 'softroce: missing on this host:\n%s\n' "$(sed 's/^/  /' <<<"$missing")"
  if want_install; then
    skip "host prerequisites are missing and apt-get could not install them (see above)"
  fi
  skip "host prerequisites are missing (see above); install them (scripts/quickstart.sh test does), or rerun as root with KVCACHED_SOFTROCE_INSTALL=1 to let this script apt-get them"
}

# The Debian mirror the host's apt uses for the image's suite.
host_mirror() {
  local f
  if [[ -n ${KVCACHED_SOFTROCE_MIRROR:-} ]]; then echo "$KVCACHED_SOFTROCE_MIRROR"; return; fi
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk -v suite="$IMAGE_SUITE" '
      function flush() { if (ok && uri != "") print uri; ok = 0; uri = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    sed -e 's/\[[^]]*\]//' "$f" | awk -v suite="$IMAGE_SUITE" '$1 == "deb" && $3 == suite { print $2 }'
  done
}

mirror_reachable() {  # url
  local url=$1/dists/$IMAGE_SUITE/Release tmp rc=0
  tmp=$(mktemp)
  if have curl; then
    curl -fsS --max-time 30 -o "$tmp" "$url" 2>/dev/null || rc=1
  elif have wget; then
    wget -q -T 30 -O "$tmp" "$url" || rc=1
  elif [[ -x /usr/lib/apt/apt-helper ]]; then
    timeout 60 /usr/lib/apt/apt-helper download-file "$url" "$tmp" >/dev/null 2>&1 || rc=1
  fi
  rm -f "$tmp"
  return $rc
}

# Debian packages providing the shared libraries that the ELF files at the
# top of the build tree (and in its tests/) load.
needed_packages() {
  local f lib
  [[ -d $BUILD_DIR ]] || return 0
  command -v ldd >/dev/null && command -v dpkg >/dev/null || return 0
  while IFS= read -r f; do
    [[ $(head -c4 "$f" 2>/dev/null | od -An -tx1 | tr -d ' ') == 7f454c46 ]] || continue
    ldd "$f" 2>/dev/null | awk '/=> \//{ print $3 }'
  done < <(find "$BUILD_DIR" -maxdepth 2 -path '*/CMakeFiles' -prune -o -type f \( -perm -u+x -o -name '*.so*' \) -print 2>/dev/null) |
    sort -u | while IFS= read -r lib; do
      dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null ||
        echo "NOPKG:$lib"
    done | cut -d: -f1,2 | sed 's/:amd64$//; s/:.*$//; /^NOPKG/d' | sort -u
}
libs_without_package() {
  local f
  [[ -d $BUILD_DIR ]] || return 0
  while IFS= read -r f; do
    [[ $(head -c4 "$f" 2>/dev/null | od -An -tx1 | tr -d ' ') == 7f454c46 ]] || continue
    ldd "$f" 2>/dev/null | awk -v f="$f" '/=> \//{ print $3 " (" f ")" } /not found/{ print $1 " not found (" f ")" }'
  done < <(find "$BUILD_DIR" -maxdepth 2 -path '*/CMakeFiles' -prune -o -type f -perm -u+x -print 2>/dev/null) |
    while read -r lib rest; do
      [[ $lib == /* ]] && { dpkg -S "$lib" >/dev/null 2>&1 || dpkg -S "$(readlink -f "$lib")" >/dev/null 2>&1; } && continue
      echo "$lib $rest"
    done | sort -u
}

# ----------------------------------------------------------------- the image
# The image's package list: IMAGE_PACKAGES, KVCACHED_SOFTROCE_EXTRA_PACKAGES
# and the arguments (one a line, sorted).
image_packages() {
  (printf '%s\n' "${IMAGE_PACKAGES[@]}" "$@"
   tr ' ' '\n' <<<"${KVCACHED_SOFTROCE_EXTRA_PACKAGES:-}") | sed '/^$/d' | sort -u
}

image_key() {  # packages
  {
    echo "suite=$IMAGE_SUITE size=$IMAGE_SIZE"
    echo "drop=${IMAGE_DROP_MODULES[*]}"
    echo "$1"
    declare -f recipe_debootstrap recipe_trim recipe_kver recipe_vmlinux recipe_initramfs \
      recipe_stage1 recipe_build
  } | sha256sum | cut -c1-16
}

# Sets IMAGE_DIR to a complete image with the packages the build tree's
# binaries need: the one made from the recipe's list when it has them all
# (the usual case: the key does not depend on the build tree), else one
# with the missing packages added.
ensure_image() {
  local pkgs needed missing
  pkgs=$(image_packages)
  build_image "$pkgs"
  needed=$(needed_packages)
  missing=$(LC_ALL=C comm -23 <(LC_ALL=C sort -u <<<"$needed") \
    <(LC_ALL=C sort -u "$IMAGE_DIR/packages.txt") | sed '/^$/d')
  if [[ -n $missing ]]; then
    local extra
    mapfile -t extra <<<"$missing"
    say "the build tree's binaries need packages the base image lacks: ${extra[*]}"
    build_image "$(image_packages "${extra[@]}")"
  fi
}

build_image() {  # packages, one a line; sets IMAGE_DIR
  local pkgs=$1 key mirror work start lock_fd
  key=$(image_key "$pkgs")
  IMAGE_DIR=$CACHE/image-$key
  if [[ -f $IMAGE_DIR/.complete && $REBUILD == 0 ]]; then
    touch "$IMAGE_DIR" 2>/dev/null || true
    return 0
  fi
  [[ $(id -u) == 0 ]] ||
    skip "the Soft-RoCE image ($IMAGE_DIR) is not built yet and building it needs root (debootstrap, chroot); run once as root"
  check_tools 1
  mkdir -p "$CACHE" || skip "cannot create the image cache $CACHE"
  exec {lock_fd}>"$CACHE/lock"
  if ! flock -n "$lock_fd"; then
    say "another run is building an image; waiting for its lock ($CACHE/lock)"
    flock "$lock_fd"
  fi
  if [[ -f $IMAGE_DIR/.complete && $REBUILD == 0 ]]; then
    exec {lock_fd}>&-
    return 0
  fi
  REBUILD=0
  mirror=$(host_mirror | grep -v -- '-security' | head -n1)
  [[ -n $mirror ]] ||
    skip "no Debian mirror for '$IMAGE_SUITE' in this host's apt sources (/etc/apt/sources.list*); set KVCACHED_SOFTROCE_MIRROR"
  mirror_reachable "$mirror" ||
    skip "the Debian mirror $mirror cannot be reached ($mirror/dists/$IMAGE_SUITE/Release); the image is built from it once"
  say "building the Soft-RoCE image $IMAGE_DIR (once; cached; ~2-4 minutes) from $mirror"
  work=$CACHE/build-$key
  rm -rf --one-file-system "$work" "$IMAGE_DIR"
  mkdir -p "$work"
  start=$SECONDS
  if ! (set -e; recipe_build "$work" "$mirror" "$(paste -sd, <<<"$pkgs")") >"$CACHE/build-$key.log" 2>&1; then
    tail -n 30 "$CACHE/build-$key.log" | sed 's/^/  | /'
    rm -rf --one-file-system "$work/root"
    harness_fail "building the image failed (log: $CACHE/build-$key.log)"
  fi
  mv "$CACHE/build-$key.log" "$work/build.log"
  echo "$pkgs" >"$work/requested-packages.txt"
  touch "$work/.complete"
  mv "$work" "$IMAGE_DIR"
  say "image built in $((SECONDS - start)) s: $(du -sh --apparent-size "$IMAGE_DIR/rootfs.ext4" | cut -f1) disk ($(du -sh "$IMAGE_DIR/rootfs.ext4" | cut -f1) used), kernel $(du -sh "$IMAGE_DIR/vmlinux" | cut -f1), initramfs $(du -sh "$IMAGE_DIR/initramfs.cpio.gz" | cut -f1)"
  # Images for other keys unused for two weeks go.
  find "$CACHE" -mindepth 1 -maxdepth 1 -name 'image-*' ! -name "image-$key" -mtime +14 \
    -exec rm -rf --one-file-system {} + 2>/dev/null || true
  exec {lock_fd}>&-
}

# ----------------------------------------------------------------- the guest
write_guest_init() {  # file
  local cmd q
  cmd=
  # POSIX quoting (the guest's sh is dash): 'a'\''b'
  for q in "${GUEST_CMD[@]}"; do cmd+="'${q//\'/\'\\\'\'}' "; done
  {
    cat <<EOF
#!/bin/sh
# Written by tests/rdma/softroce.sh for one run.
SOURCE_DIR='$SOURCE_DIR'
BUILD_DIR='$BUILD_DIR'
OUT_DIR='$OUT_DIR'
SHELL_AFTER=$SHELL_AFTER
EOF
    cat <<'EOF'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8
exec </dev/console >/dev/console 2>&1
# The kernel has booted: tell the host's boot watchdog, and from here on a
# soft lockup (an emulated vCPU starved by a loaded host) is a warning,
# not the panic the boot asked for (see softlockup_panic on the host side).
: >/softroce/booted
echo 0 >/proc/sys/kernel/softlockup_panic 2>/dev/null
report() {  # exit-port-byte
  sync
  printf "\\$(printf '%03o' "$1")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
  echo o >/proc/sysrq-trigger
  sleep 30
}
setup_failed() {
  echo "softroce-guest: setup failed: $*"
  echo "$*" >/softroce/setup-failed
  report 125
}
step() { echo "softroce-guest: $*"; }
mountpoint -q /dev/pts || { mkdir -p /dev/pts; mount -t devpts -o gid=5,mode=620 devpts /dev/pts; }
mountpoint -q /dev/shm || { mkdir -p /dev/shm; mount -t tmpfs -o mode=1777 shm /dev/shm; }
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=755 run /run
hostname softroce
ulimit -l unlimited
ulimit -n 65536
ip link set lo up
modprobe -a rdma_rxe ib_uverbs rdma_ucm || setup_failed "modprobe rdma_rxe ib_uverbs rdma_ucm"
modprobe dummy numdummies=0 || setup_failed "modprobe dummy"
ip link add dummy0 type dummy && ip addr add 10.0.0.1/24 dev dummy0 && ip link set dummy0 up ||
  setup_failed "dummy0 with 10.0.0.1/24"
rdma link add rxe0 type rxe netdev dummy0 || setup_failed "rdma link add rxe0 type rxe netdev dummy0"
i=0
until [ "$(cat /sys/class/infiniband/rxe0/ports/1/state 2>/dev/null)" = "4: ACTIVE" ] &&
      grep -q ffff /sys/class/infiniband/rxe0/ports/1/gids/1 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 300 ] || setup_failed "rxe0 port 1 is not ACTIVE with a RoCE v2 GID at index 1"
  sleep 0.1
done
step "rxe0 is up: $(cat /sys/class/infiniband/rxe0/ports/1/state), gid[1] $(cat /sys/class/infiniband/rxe0/ports/1/gids/1)"
mount_share() {  # tag dir opts
  mkdir -p "$2" 2>/dev/null
  mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144,$3" "$1" "$2" ||
    setup_failed "mount the 9p share $1 on $2"
}
mount_share src "$SOURCE_DIR" ro,cache=loose
if [ -f /softroce/build-share ]; then mount_share build "$BUILD_DIR" ro,cache=loose; fi
mkdir -p "$OUT_DIR" 2>/dev/null
mount --bind /softroce "$OUT_DIR" || setup_failed "bind the output share on $OUT_DIR"
export KVCACHED_RDMA_DEVICE=rxe0 KVCACHED_RDMA_IP=10.0.0.1 KVCACHED_RDMA_GID_INDEX=1
export KVCACHED_SOURCE_DIR="$SOURCE_DIR" KVCACHED_BUILD_DIR="$BUILD_DIR" KVCACHED_BIN="$BUILD_DIR/kvcached"
export KVCACHED_SOFTROCE_OUT="$OUT_DIR" KVCACHED_SOFTROCE=1 TMPDIR=/tmp
cd "$SOURCE_DIR" || setup_failed "cd $SOURCE_DIR"
rc=0
if [ -s /softroce/guest-command ]; then
  step "running: $(cat /softroce/guest-command)"
  step "----------------------------------------------------------------"
  sh -c ". /softroce/guest-command" </dev/null
  rc=$?
  step "----------------------------------------------------------------"
  step "guest command exited with status $rc"
fi
echo "$rc" >/softroce/exit-code
if [ "$SHELL_AFTER" = 1 ]; then
  step "interactive shell (exit powers off; the run's status stays $rc)"
  setsid sh -c 'exec sh -i </dev/ttyS0 >/dev/ttyS0 2>&1'
fi
if [ "$rc" = 0 ]; then report 0; else report 1; fi
EOF
  } >"$1"
  if ((${#GUEST_CMD[@]})); then
    printf 'exec %s\n' "$cmd" >"$OUT_DIR/guest-command"
  else
    : >"$OUT_DIR/guest-command"
  fi
}

clean_console() {
  LC_ALL=C sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[()][A-Za-z0-9]//g' \
    -e 's/\x1b[=>cM78]//g' -e 's/[\x01-\x08\x0b-\x1f\x7f]//g'
}

prepare_out_dir() {
  [[ -n $OUT_DIR ]] || OUT_DIR=$BUILD_DIR/softroce
  mkdir -p "$OUT_DIR" || harness_fail "cannot create the output directory $OUT_DIR"
  OUT_DIR=$(cd "$OUT_DIR" && pwd -P)
  if [[ ! -f $OUT_DIR/.softroce-out ]] && [[ -n $(ls -A "$OUT_DIR") ]]; then
    harness_fail "--out $OUT_DIR is not empty and was not made by this script; name a new or empty directory"
  fi
  find "$OUT_DIR" -mindepth 1 -delete
  touch "$OUT_DIR/.softroce-out"
}

# --------------------------------------------------------------------- main
check_tools 0
if ((CHECK_ONLY)); then
  [[ $(id -u) == 0 ]] || { ls "$CACHE"/image-*/.complete >/dev/null 2>&1 ||
    skip "no cached image in $CACHE and building one needs root"; }
  have debootstrap || ls "$CACHE"/image-*/.complete >/dev/null 2>&1 || check_tools 1
  say "prerequisites are present"
  exit 0
fi
BUILD_DIR=$(cd "$BUILD_DIR" 2>/dev/null && pwd -P) ||
  skip "the build directory does not exist (--build-dir)"
for p in "$SOURCE_DIR" "$BUILD_DIR"; do
  [[ $p != *[[:space:]\',]* ]] || skip "the harness cannot share paths with spaces, quotes or commas: '$p'"
done

while read -r bad; do
  [[ -n $bad ]] && say "warning: no Debian package provides $bad: the guest lacks it"
done < <(libs_without_package)

ensure_image
if ((BUILD_ONLY)); then
  say "image: $IMAGE_DIR"
  exit 0
fi

prepare_out_dir
[[ $OUT_DIR != *[[:space:]\',]* ]] || skip "the harness cannot share paths with spaces, quotes or commas: '$OUT_DIR'"
write_guest_init "$OUT_DIR/init.sh"
shares=(-virtfs "local,path=$OUT_DIR,mount_tag=softroce,security_model=none"
        -virtfs "local,path=$SOURCE_DIR,mount_tag=src,security_model=none,readonly=on")
if [[ $BUILD_DIR != "$SOURCE_DIR" && $BUILD_DIR != "$SOURCE_DIR"/* ]]; then
  shares+=(-virtfs "local,path=$BUILD_DIR,mount_tag=build,security_model=none,readonly=on")
  touch "$OUT_DIR/build-share"
fi
# softlockup_panic: a kernel that hangs while booting under emulation (seen:
# a crypto self-test thread stuck for the whole timeout) panics within ~30 s
# and the VM ends, so the boot can be tried again; the guest's init turns it
# off once it runs. cryptomgr.notests: the kernel's crypto self-tests are not
# what this harness tests, and they are where such hangs were seen.
append="console=ttyS0 root=/dev/vda rw init=/sbin/softroce-stage1 panic=-1"
append+=" softlockup_panic=1 cryptomgr.notests"
((VERBOSE)) || append+=" quiet loglevel=3"
# shellcheck disable=SC2054
qemu=(qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$SMP" -m "$MEMORY"
      -no-reboot -nic none -display none -vga none
      -kernel "$IMAGE_DIR/vmlinux" -initrd "$IMAGE_DIR/initramfs.cpio.gz" -append "$append"
      -drive "file=$IMAGE_DIR/rootfs.ext4,format=raw,if=virtio,snapshot=on,readonly=off"
      "${shares[@]}"
      -device isa-debug-exit,iobase=0xf4,iosize=0x04 -pidfile "$OUT_DIR/qemu.pid")
LOG=$OUT_DIR/console.log

# One boot with the console to $LOG: sets status (qemu's, or timeout's 124)
# and hung_boot=1 when the guest's init did not run within BOOT_TIMEOUT
# seconds (the VM is then killed). The guest's init writes OUT/booted first.
boot_once() {
  rm -f "$OUT_DIR/booted" "$OUT_DIR/exit-code" "$OUT_DIR/setup-failed" "$OUT_DIR/qemu.pid"
  hung_boot=0
  local sink=(cat) pid t0=$SECONDS
  ((QUIET)) || sink=(tee /dev/fd/3)
  { set +e
    timeout -k 10 "$TIMEOUT" "${qemu[@]}" -monitor none -serial stdio </dev/null 2>&1 |
      clean_console | "${sink[@]}" >"$LOG"
    exit "${PIPESTATUS[0]}"; } 3>&1 &
  pid=$!
  # A poll with a deadline: the guest's only way to signal the host before
  # its command runs is a file on the 9p share.
  while kill -0 "$pid" 2>/dev/null && [[ ! -e $OUT_DIR/booted ]]; do
    if ((SECONDS - t0 >= BOOT_TIMEOUT)); then
      hung_boot=1
      [[ -s $OUT_DIR/qemu.pid ]] && kill "$(cat "$OUT_DIR/qemu.pid")" 2>/dev/null
      break
    fi
    sleep 1
  done
  status=0
  wait "$pid" || status=$?
  [[ -e $OUT_DIR/booted ]] || hung_boot=1
}

if ((SHELL_AFTER)); then
  say "booting the VM (image $IMAGE_DIR; no timeout and no console log with --shell)"
  [[ -t 0 ]] || harness_fail "--shell needs a terminal on stdin"
  say "console on this terminal; Ctrl-A x kills the VM"
  start=$SECONDS
  set +e
  "${qemu[@]}" -serial mon:stdio
  status=$?
  set -e
else
  for ((try = 1; ; try++)); do
    say "booting the VM (image $IMAGE_DIR; timeout ${TIMEOUT}s, boot ${BOOT_TIMEOUT}s; try $try of $BOOT_TRIES; console log $LOG)"
    start=$SECONDS
    boot_once
    ((hung_boot)) || break
    mv "$LOG" "$OUT_DIR/console.boot-$try.log"
    say "the kernel did not reach the guest's init after $((SECONDS - start))s (qemu status $status; console: $OUT_DIR/console.boot-$try.log, last lines:)"
    tail -n 5 "$OUT_DIR/console.boot-$try.log" | sed 's/^/    /'
    ((try < BOOT_TRIES)) || harness_fail "the VM did not boot in $BOOT_TRIES tries (consoles: $OUT_DIR/console.boot-*.log)"
  done
fi
elapsed=$((SECONDS - start))

show_tail() { ((QUIET)) && { echo "---- last 40 lines of $LOG"; tail -n 40 "$LOG"; echo "----"; }; true; }
if [[ -f $OUT_DIR/exit-code ]]; then
  rc=$(cat "$OUT_DIR/exit-code")
  say "guest command exited with status $rc after ${elapsed}s (VM status $status)"
  ((rc == 0)) || show_tail
  exit "$rc"
fi
show_tail
if [[ $status == 124 || $status == 137 ]]; then
  say "FAILED: the VM ran past the ${TIMEOUT}s timeout and was killed (console: $LOG)"
  exit 124
fi
if [[ -f $OUT_DIR/setup-failed ]]; then
  harness_fail "guest setup failed: $(cat "$OUT_DIR/setup-failed") (console: $LOG)"
fi
harness_fail "the VM stopped after ${elapsed}s without the guest command's status (qemu status $status: a boot failure, kernel panic or crash; console: $LOG)"
