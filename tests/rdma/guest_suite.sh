#!/bin/sh
# Guest command of the rdma/softroce test: inside the Soft-RoCE VM
# (tests/rdma/softroce.sh), runs the RDMA cluster tests (a master and
# stores with --protocol rdma on rxe0, clients forced to RDMA; see
# tests/rdma/rdma_cluster_test.cpp), then `kvcached bench --transport rdma
# --verify` on an embedded pool, which must find every byte right. Nothing
# here asserts speed: the VM's CPUs are emulated.
#   tests/rdma/softroce.sh --build-dir BUILD -- tests/rdma/guest_suite.sh
set -u
dev=${KVCACHED_RDMA_DEVICE:-rxe0}
out=${KVCACHED_SOFTROCE_OUT:-/tmp}
build=${KVCACHED_BUILD_DIR:-build}
export KVCACHED_BIN=${KVCACHED_BIN:-$build/kvcached}
failures=0

if [ "${KVCACHED_SOFTROCE:-}" != 1 ]; then
  echo "guest_suite.sh runs inside the VM: tests/rdma/softroce.sh -- tests/rdma/guest_suite.sh" >&2
  exit 2
fi

step() {  # name, then the command; its output is shown and kept in OUT/NAME.log
  name=$1
  shift
  echo "---- $name: $*"
  "$@" >"$out/$name.log" 2>&1
  rc=$?
  cat "$out/$name.log"
  if [ $rc = 0 ]; then
    echo "ok   $name"
  else
    echo "FAIL $name (exit $rc)"
    failures=$((failures + 1))
  fi
}

step rdma_cluster "$build/tests/kvcached_rdma_blackbox" --duration=true
# Small runs: the emulated NIC moves some tens of MB/s.
step bench_rdma_verify "$KVCACHED_BIN" bench --protocol rdma --transport rdma --device "$dev" \
  --workload put,get --object-size 64KiB,1MiB,4MiB --keys 48 --batch 16 --ops 8 \
  --warmup 0 --segment-size 256MiB --verify
step bench_rdma_sglang "$KVCACHED_BIN" bench --protocol rdma --transport rdma --device "$dev" \
  --workload sglang --object-size 256KiB --pages 32 --keys 256 --ops 16 \
  --warmup 0 --segment-size 256MiB --verify --no-baseline

echo "logs: $out"
if [ $failures != 0 ]; then
  echo "guest_suite: $failures step(s) failed"
  exit 1
fi
echo "guest_suite: all steps passed"
