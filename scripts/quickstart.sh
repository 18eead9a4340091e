#!/usr/bin/env bash
# kvcached quick start, for a fresh Debian 12 or Ubuntu 22.04+ machine.
#
#   scripts/quickstart.sh run          install build dependencies, build, and run the main
#                                      job on embedded defaults
#   scripts/quickstart.sh test         install, build and run the whole test suite
#   scripts/quickstart.sh test --long  the same with 10-minute fuzz runs and a
#                                      ThreadSanitizer build of everything
#
# Run as root or through sudo. Idempotent: packages already present are not
# reinstalled and existing build directories are reused.
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

BUILD_PKGS=(cmake ninja-build g++ pkg-config git curl libcli11-dev libboost-dev libspdlog-dev
            nlohmann-json3-dev doctest-dev libxxhash-dev libibverbs-dev librdmacm-dev)
TEST_PKGS=(python3 python3-pytest clang dpkg-dev fakeroot file rpm lintian debootstrap groff man-db systemd
           systemd-container qemu-system-x86 cpio xz-utils)

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

configure_and_build() {  # dir, cmake args...
  local dir=$1
  shift
  cmake -S "$ROOT" -B "$ROOT/$dir" -G Ninja "$@" >/dev/null
  cmake --build "$ROOT/$dir" -j "$JOBS"
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
  say "Building (build/)"
  configure_and_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
  run_main_job
  exit 0
fi

install_packages "${TEST_PKGS[@]}"
install_clang_runtime

say "Building and testing the default build (build/, g++)"
configure_and_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVCACHED_BUILD_TESTS=ON
(cd build && ctest --output-on-failure -j "$JOBS")

fuzz_seconds=30
[[ $LONG == 1 ]] && fuzz_seconds=600
say "Building and testing under address,undefined sanitizers with the fuzzers (build-asan/, clang++)"
configure_and_build build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
  -DKVCACHED_SANITIZE=ON -DKVCACHED_FUZZ=ON -DKVCACHED_FUZZ_SECONDS="$fuzz_seconds"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j "$JOBS")

if [[ $LONG == 1 ]]; then
  say "Building and testing under ThreadSanitizer (build-tsan/, clang++)"
  configure_and_build build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread
  (cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j "$JOBS")
fi

say "All tests passed"
