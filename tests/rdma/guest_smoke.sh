#!/bin/sh
# Guest command of the rdma/softroce_smoke test: proves the Soft-RoCE VM
# (tests/rdma/softroce.sh) gives real verbs: rxe0 is listed and ACTIVE, an
# RC ping-pong between two processes over rxe0 works, and the host-built
# kvcached runs and sees rxe0. Runs inside the VM only.
#   tests/rdma/softroce.sh --build-dir BUILD -- tests/rdma/guest_smoke.sh
set -u
dev=${KVCACHED_RDMA_DEVICE:-rxe0}
gid=${KVCACHED_RDMA_GID_INDEX:-1}
out=${KVCACHED_SOFTROCE_OUT:-/tmp}
bin=${KVCACHED_BIN:-${KVCACHED_BUILD_DIR:-build}/kvcached}
failures=0

if [ "${KVCACHED_SOFTROCE:-}" != 1 ]; then
  echo "guest_smoke.sh runs inside the VM: tests/rdma/softroce.sh -- tests/rdma/guest_smoke.sh" >&2
  exit 2
fi

check() {  # name, then the command; its output goes to OUT/NAME.log and here
  name=$1
  shift
  if "$@" >"$out/$name.log" 2>&1; then
    echo "ok   $name"
  else
    echo "FAIL $name (exit $?)"
    failures=$((failures + 1))
  fi
  sed 's/^/     | /' "$out/$name.log"
}
# Runs a command, shows its output, and greps it for an extended regex.
output_has() {  # regex command...
  regex=$1
  shift
  text=$("$@")
  st=$?
  printf '%s\n' "$text"
  [ $st = 0 ] || { echo "($* exited with status $st)"; return 1; }
  printf '%s\n' "$text" | grep -Eq "$regex" || { echo "(no line matches: $regex)"; return 1; }
}

check ibv_devices output_has "^[[:space:]]*${dev}[[:space:]]" ibv_devices
check ibv_devinfo output_has "state:[[:space:]]*PORT_ACTIVE" ibv_devinfo -d "$dev"

# RC ping-pong, server and client in this VM over rxe0 (RoCE v2 GID).
pingpong() {
  ibv_rc_pingpong -d "$dev" -g "$gid" -n 100 -s 4096 >"$out/pingpong-server.log" 2>&1 &
  server=$!
  i=0
  client_rc=1
  # The server needs a moment to listen; retry the client until it connects.
  while [ $i -lt 20 ]; do
    sleep 0.5
    if timeout 60 ibv_rc_pingpong -d "$dev" -g "$gid" -n 100 -s 4096 127.0.0.1; then
      client_rc=0
      break
    fi
    kill -0 "$server" 2>/dev/null || break
    i=$((i + 1))
  done
  if [ $client_rc != 0 ]; then kill "$server" 2>/dev/null; fi
  wait "$server"
  server_rc=$?
  echo "server (exit $server_rc):"
  cat "$out/pingpong-server.log"
  [ $client_rc = 0 ] && [ $server_rc = 0 ]
}
check ibv_rc_pingpong pingpong

check kvcached_version output_has \
  "^rdma transport: compiled \(libibverbs\); devices: (.*, )?$dev(,|\$)" "$bin" --version

echo "logs: $out"
if [ $failures != 0 ]; then
  echo "guest_smoke: $failures check(s) failed"
  exit 1
fi
echo "guest_smoke: all checks passed"
