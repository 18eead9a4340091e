#!/usr/bin/env bash
# kvcached quick start, for a fresh Debian 12 or Ubuntu 22.04+ machine.
#
#   scripts/quickstart.sh run          install what the main job needs, build kvcached
#                                      (build/: optimised, no tests, no fault hooks) and
#                                      run the main job on embedded defaults
#   scripts/quickstart.sh test         install, build and run the whole test suite
#                                      (build-test/ with g++, build-asan/ with clang++)
#   scripts/quickstart.sh test --long  the same with 10-minute fuzz runs, the long
#                                      tests (label `long`: run in a fresh Debian root)
#                                      and a ThreadSanitizer build of everything
#
# Run as root or through sudo. Idempotent: packages already present are not
# reinstalled and existing build directories are reused; each mode has its own
# build directories and passes every setting it relies on at each configure, so
# neither mode changes what the other does.
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")/.."
ROOT=$(pwd)
MODE=${1:-}
LONG=0
[[ ${2:-} == --long ]] && LONG=1
JOBS=$(nproc)

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

case "$MODE" in
  run|test) ;;
  *) die "usage: scripts/quickstart.sh run | test [--long]" ;;
esac

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# What building kvcached and running the main job need (curl: the demo's
# HTTP calls; git: the revision in --version); the test suite needs more.
BUILD_PKGS=(cmake ninja-build g++ pkg-config git curl libcli11-dev libboost-dev libspdlog-dev
            nlohmann-json3-dev libxxhash-dev libibverbs-dev librdmacm-dev liburing-dev)
TEST_PKGS=(doctest-dev python3 python3-pytest python3-torch python3-numpy clang dpkg-dev fakeroot file rpm
           lintian debootstrap groff man-db systemd systemd-container qemu-system-x86 cpio xz-utils
           redis-server etcd-server iproute2)

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

install_packages() {
  local missing
  missing=$(missing_packages "$@")
  if [[ -z $missing ]]; then
    echo "all required packages are installed"
    return
  fi
  command -v apt-get >/dev/null || die "apt-get not found: install these by hand: $missing"
  echo "installing: $missing"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
}

# clang's libFuzzer and sanitizer runtimes live in a versioned package on
# Debian 12 (libclang-rt-14-dev); on Ubuntu they ship with clang itself.
install_clang_runtime() {
  local major pkg
  major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n1)
  pkg=libclang-rt-$major-dev
  if apt-cache show "$pkg" >/dev/null 2>&1; then install_packages "$pkg"; fi
}

configure() {  # dir, cmake args...
  local dir=$1
  shift
  # A configure that stops half-way leaves defaults in the cache (the install
  # prefix, options) that the next one would keep: start that tree over.
  mkdir -p "$ROOT/$dir"
  if ! cmake -S "$ROOT" -B "$ROOT/$dir" -G Ninja "$@" >"$ROOT/$dir/configure.log" 2>&1; then
    cat "$ROOT/$dir/configure.log" >&2
    rm -f "$ROOT/$dir/CMakeCache.txt"
    die "configuring $dir/ failed (log above; the next run configures it from scratch)"
  fi
}

build() {  # dir, targets...
  local dir=$1
  shift
  local targets=()
  (($# > 0)) && targets=(--target "$@")
  cmake --build "$ROOT/$dir" -j "$JOBS" "${targets[@]}"
}

# Runs ctest in a build tree and fails when a test was skipped: a skip hides a
# check that did not happen. Only tests labelled `hardware` (they need a device
# this machine cannot have, such as a GPU) may skip, and they are listed.
# pytest suites get KVCACHED_NO_SKIPS=1 and fail on their own skips the same way.
run_ctest() {  # dir, extra ctest args...
  local dir=$1 log rc skipped allowed name
  shift
  log=$ROOT/$dir/ctest.log
  set +e
  (cd "$ROOT/$dir" && KVCACHED_NO_SKIPS=1 ctest --output-on-failure -j "$JOBS" "$@") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  skipped=$(sed -En 's/^[[:space:]]*[0-9]+ - (.*) \((Skipped|Not Run|Disabled)\)$/\1/p' "$log")
  allowed=$(cd "$ROOT/$dir" && ctest -N -L hardware | sed -n 's/^ *Test *#[0-9]*: //p')
  local bad=()
  while read -r name; do
    [[ -z $name ]] && continue
    if grep -qxF "$name" <<<"$allowed"; then
      echo "skipped (needs hardware this machine lacks): $name"
    else
      bad+=("$name")
    fi
  done <<<"$skipped"
  ((rc == 0)) || die "tests failed in $dir/ (log: $log)"
  ((${#bad[@]} == 0)) || die "tests skipped in $dir/ that can run here: ${bad[*]} (each says why above)"
}

# Waits for `pattern` in a log file; prints the first capture group.
wait_for_log() {  # file, sed expression with one group, pid
  local file=$1 expr=$2 pid=$3 value
  for _ in $(seq 1 200); do
    value=$(sed -n "$expr" "$file" | head -n1)
    [[ -n $value ]] && { echo "$value"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  cat "$file" >&2
  die "$(basename "$file" .log) did not start"
}

run_main_job() {
  local bin=$ROOT/build/kvcached rpc admin meta store_admin key
  "$bin" --version

  say "The main job: kvcached bench on its defaults (a master and a store in one process on loopback, put then get of 1 MiB objects, next to this machine's memcpy and loopback TCP bandwidth)"
  "$bin" bench

  DEMO_TMP=$(mktemp -d)
  local tmp=$DEMO_TMP
  trap 'kill ${MASTER_PID:-} ${STORE_PID:-} 2>/dev/null || true; rm -rf "$DEMO_TMP"' EXIT

  say "Starting a single-node cluster on free loopback ports: a master (with the metadata service) and a store"
  "$bin" master --port 0 --admin-port 0 --meta-port 0 2>"$tmp/master.log" &
  MASTER_PID=$!
  rpc=$(wait_for_log "$tmp/master.log" 's/.*RPC on \([0-9.:]*\),.*/\1/p' "$MASTER_PID")
  admin=$(wait_for_log "$tmp/master.log" 's/.*admin on \(http:[^,]*\),.*/\1/p' "$MASTER_PID")
  meta=$(wait_for_log "$tmp/master.log" 's/.*metadata service \(http:[^ ]*\) .*/\1/p' "$MASTER_PID")
  "$bin" store --master "$rpc" --segment-size 256MiB --segment-name demo-store 2>"$tmp/store.log" &
  STORE_PID=$!
  store_admin=$(wait_for_log "$tmp/store.log" 's/.*admin \(http:[^ ]*\)$/\1/p' "$STORE_PID")
  cat "$tmp/master.log" "$tmp/store.log"

  say "The master's view of the pool (GET $admin/api/v1/segments)"
  curl -sS "$admin/api/v1/segments"
  echo

  key="mooncake/ram/demo-segment"
  say "The metadata service, as Mooncake's clients use it: PUT then GET a descriptor"
  echo "curl -X PUT --data '{...}' '$meta?key=$key'"
  curl -sS -X PUT --data '{"name":"demo-segment","protocol":"tcp","size":268435456}' \
    -w 'HTTP %{http_code}\n' -o /dev/null "$meta?key=$key"
  echo "curl '$meta?key=$key'"
  curl -sS -w '\nHTTP %{http_code}\n' "$meta?key=$key"
  curl -sS -o /dev/null -w "GET ?key=nope -> HTTP %{http_code}\n" "$meta?key=nope"

  say "A short SGLang-like load against that cluster, every byte read checked"
  "$bin" bench --master "$rpc" --workload sglang --object-size 1MiB --pages 32 --keys 128 --duration 2s \
    --verify --quiet

  say "Some of the store's and the master's metrics"
  curl -sS "$store_admin/metrics" |
    grep -E '^kvcached_store_(segment_capacity_bytes|master_reachable|bytes_(received|served)_total)'
  curl -sS "$admin/metrics" | grep -E '^kvcached_master_(segment_capacity_bytes|active_clients)'

  say "Stopping with SIGTERM: the store unmounts, then the master stops"
  kill -TERM "$STORE_PID"
  wait "$STORE_PID"
  echo "kvcached store exited with status $?"
  kill -TERM "$MASTER_PID"
  wait "$MASTER_PID"
  echo "kvcached master exited with status $?"
  tail -n 2 "$tmp/store.log"
  say "Done. Next: 'kvcached master --help', 'kvcached store --help', README.md and docs/."
}

say "Installing dependencies"
install_packages "${BUILD_PKGS[@]}"

if [[ $MODE == run ]]; then
  say "Building kvcached (build/: optimised, without the tests or their fault hooks)"
  configure build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVCACHED_BUILD_TESTS=OFF \
    -DKVCACHED_FAULT_HOOKS=OFF -DKVCACHED_SANITIZE=OFF -DKVCACHED_FUZZ=OFF
  build build kvcached
  run_main_job
  exit 0
fi

redis_was_installed=$(missing_packages redis-server)
etcd_was_installed=$(missing_packages etcd-server)
install_packages "${TEST_PKGS[@]}"
# Redis is here only for bench/vs_redis, which starts its own on a free port:
# the service the package starts, where systemd runs, is stopped and disabled
# when this script installed it.
if [[ -n $redis_was_installed ]] && [[ -d /run/systemd/system ]]; then
  as_root systemctl disable --now redis-server.service >/dev/null 2>&1 || true
fi
# etcd is here for the tests (tests/python/etcd_cluster.py), which start their
# own members on free ports; the package's postinst starts an etcd on 2379,
# through systemd or, without it, its init script: stopped and disabled when
# this script installed it.
if [[ -n $etcd_was_installed ]]; then
  if [[ -d /run/systemd/system ]]; then
    as_root systemctl disable --now etcd.service >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/etcd ]]; then
    as_root invoke-rc.d etcd stop >/dev/null 2>&1 || true
    as_root update-rc.d etcd disable >/dev/null 2>&1 || true
  fi
fi
install_clang_runtime

# Tests labelled `long` (the quick start in a fresh Debian root) run with --long only.
label_args=(-LE long)
[[ $LONG == 1 ]] && label_args=()
# Every setting each tree relies on is passed at each configure: a tree left
# by an earlier run, or by hand, is brought back to what the suite needs.
test_tree=(-DKVCACHED_BUILD_TESTS=ON -DKVCACHED_FAULT_HOOKS=ON -DCMAKE_INSTALL_PREFIX=/usr)

SECONDS=0
say "Building and testing the default build (build-test/, g++, with the test-only fault hooks)"
configure build-test "${test_tree[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=g++ \
  -DKVCACHED_SANITIZE=OFF -DKVCACHED_FUZZ=OFF
build build-test
echo "build-test/ built in ${SECONDS}s"
run_ctest build-test "${label_args[@]}"

fuzz_seconds=30
[[ $LONG == 1 ]] && fuzz_seconds=600
say "Building and testing under address,undefined sanitizers with the fuzzers (build-asan/, clang++)"
configure build-asan "${test_tree[@]}" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
  -DKVCACHED_SANITIZE=ON -DKVCACHED_FUZZ=ON -DKVCACHED_FUZZ_SECONDS="$fuzz_seconds"
build build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest build-asan "${label_args[@]}"

if [[ $LONG == 1 ]]; then
  say "Building and testing under ThreadSanitizer (build-tsan/, clang++)"
  configure build-tsan "${test_tree[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DKVCACHED_SANITIZE=OFF -DKVCACHED_FUZZ=OFF \
    -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread
  build build-tsan
  # The packages, the VM and the fresh root are tested from build-test/ above.
  TSAN_OPTIONS=halt_on_error=1 run_ctest build-tsan -LE 'long|packaging|rdma'
fi
echo "the whole suite took ${SECONDS}s"

say "All tests passed"
