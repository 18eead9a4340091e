#!/usr/bin/env bash
# quickstart/fresh_root: the README's first command as a newcomer runs it. A
# copy of this source tree (tracked and untracked files, nothing ignored, so
# no build directory) goes into a brand-new Debian 12 root (the packaging
# tests' cached debootstrap root, copied for each run), and there, as root,
# `scripts/quickstart.sh run` must install what it needs, build and run the
# main job to its clean stop. Then:
#   - `build/kvcached --version` does not say the test-only fault hooks are in;
#   - nothing but what the main job runs was built (no test programs);
#   - a second `run` builds nothing and passes again (idempotent).
# Label `long`: apt-get and a build from scratch take minutes
# (scripts/quickstart.sh test --long runs it).
#   tests/quickstart/fresh_root.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/../packaging/common.sh"
[[ $(id -u) == 0 ]] || skip "needs root (chroot, mounts); run ctest as root"
require_tools debootstrap unshare chroot git tar

# Mounts live in a private mount namespace; the apt caches are shared with
# packaging/install, one user at a time.
in_cached_root_namespace "$@"
cache=$CACHE
cached_root=$CACHED_ROOT
work=$(mktemp -d /var/tmp/kvcached-quickstart-test.XXXXXX)
root=$work/root
mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
  if grep -qF " $work/" /proc/self/mounts; then
    echo "left $work in place: something is still mounted under it" >&2
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
mnt() {  # mount arguments..., target last
  mount "$@" || fail "mount $* failed"
  mounts+=("${!#}")
}

note "copying the cached root $cached_root"
cp -a "$cached_root" "$root"
note "copying the source tree (git ls-files: tracked and untracked, not ignored)"
mkdir -p "$root/src/kvcached"
(cd "$SOURCE_DIR" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -xf - -C "$root/src/kvcached"
[[ ! -e $root/src/kvcached/build ]] || fail "the copy holds a build directory"
mnt -t proc proc "$root/proc"
mnt -t sysfs -o ro sysfs "$root/sys"
mnt -t tmpfs tmpfs "$root/tmp"
mkdir -p "$cache/apt-archives/partial" "$cache/apt-lists/partial"
mnt --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
mnt --bind "$cache/apt-lists" "$root/var/lib/apt/lists"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
in_root() {
  chroot "$root" env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive bash -c "cd /src/kvcached && $*"
}

errors=0
bad() {
  echo "FAILED: $*" >&2
  errors=$((errors + 1))
}
expect_in() {  # log, fixed string, what it shows
  grep -qF -- "$2" "$1" || bad "$(basename "$1"): no '$2' ($3)"
}

note "scripts/quickstart.sh run (first time: installs, builds, runs the main job)"
start=$SECONDS
if ! in_root scripts/quickstart.sh run >"$work/run1.log" 2>&1; then
  tail -n 80 "$work/run1.log"
  fail "scripts/quickstart.sh run exited non-zero in a fresh root (whole log above, last 80 lines)"
fi
note "first run took $((SECONDS - start)) s"
log=$work/run1.log
expect_in "$log" "The main job: kvcached bench" "the bench started"
expect_in "$log" "put" "the bench's put workload"
expect_in "$log" "A short SGLang-like load" "the cluster demo ran"
expect_in "$log" "kvcached store exited with status 0" "the store stopped cleanly"
expect_in "$log" "kvcached master exited with status 0" "the master stopped cleanly"
expect_in "$log" "Done." "the run reached its end"

note "build/kvcached --version in the root"
version=$(in_root build/kvcached --version) || bad "build/kvcached --version failed"
echo "$version"
grep -q "fault hooks: compiled" <<<"$version" && bad "the main job's binary has the test-only fault hooks compiled in"
tests_built=$(cd "$root/src/kvcached/build" && find . -type f -perm -u+x \
  \( -name '*_test*' -o -name 'bench_*' -o -name 'fuzz_*' -o -name 'kvcached_capi_check' \) | head)
[[ -z $tests_built ]] || bad "run built test or bench programs it does not run: $tests_built"

note "scripts/quickstart.sh run again (idempotent: nothing to install or build)"
if ! in_root scripts/quickstart.sh run >"$work/run2.log" 2>&1; then
  tail -n 80 "$work/run2.log"
  bad "the second scripts/quickstart.sh run exited non-zero"
fi
expect_in "$work/run2.log" "all required packages are installed" "nothing was installed again"
grep -q "Building CXX object" "$work/run2.log" && bad "the second run compiled again"
expect_in "$work/run2.log" "kvcached master exited with status 0" "the second run reached its end"

((errors == 0)) || fail "$errors check(s) failed"
echo "PASSED: scripts/quickstart.sh run in a fresh Debian 12 root"
