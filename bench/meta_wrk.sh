#!/usr/bin/env bash
# Benchmark of `kvcached meta`: PUT then GET of 2 KiB values with 64
# connections, using wrk (Debian package `wrk`). Prints wrk's report for
# each; requests/s and the latency percentiles are what docs/benchmarks.md
# records.
#
#   bench/meta_wrk.sh [path/to/kvcached] [duration, default 10s]
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
BIN=${1:-../build/kvcached}
DURATION=${2:-10s}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

tmp=$(mktemp -d)
"$BIN" meta --port 0 2>"$tmp/log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
# Requests are logged at debug only, so the default level stays quiet under load.
url=""
for _ in $(seq 1 200); do
  url=$(sed -n 's/.*serving the metadata API at \(http:[^ ]*\)\/metadata.*/\1/p' "$tmp/log")
  [[ -n $url ]] && break
  sleep 0.05
done
[[ -n $url ]] || { echo "kvcached meta did not start" >&2; cat "$tmp/log"; exit 1; }

"$BIN" --version | head -n1
echo "machine: $(nproc) cores, $(uname -r); wrk: 2 threads, 64 connections, $DURATION"
echo
echo "== PUT 2 KiB =="
wrk -t2 -c64 -d"$DURATION" --latency -s meta_put.lua "$url"
echo
echo "== GET 2 KiB =="
wrk -t2 -c64 -d"$DURATION" --latency -s meta_get.lua "$url"
kill -TERM $pid
wait $pid
