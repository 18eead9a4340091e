#!/usr/bin/python3
"""Python client throughput: batch_put_from / batch_get_into of 4 MiB objects
through kvcached's MooncakeDistributedStore (python/kvcached over
libkvcached.so), next to the C++ client's figure for the same cells from
bench_data, run right after on a pool set up the same way.

    python3 bench/python_bench.py [--bin build/kvcached] [--library build/libkvcached.so]
        [--cxx build/bench_data | --no-cxx] [--seconds 3] [--size 4MiB] [--batch 256]
        [--segment-size 2GiB] [--transports shm,tcp] [--json]

Method (the same as bench_data's, so the figures compare): one `kvcached
master` (1 thread) and one `kvcached store --host-id bench-host` (2 threads)
on loopback, ready when they say READY=1 on a NOTIFY_SOCKET of this script;
one client per transport with that host id. The segment is filled to 80%
once, untimed, then emptied. Put: S seconds of batches of distinct keys, at
most half the segment at a time (then emptied with remove_all, untimed).
Get: the keys of half a segment, one untimed pass checking each object's
index stamp, then S seconds of batches cycling over them. Sources and
destinations rotate through max(256 MiB, batch x size) of pre-faulted memory.
1 GB = 1e9 bytes. Exit status 0 when every operation succeeded, else 1.
"""

import argparse
import ctypes
import json
import mmap
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SIZE_RE = re.compile(r"^(\d+)\s*([kmg]?)i?b?$", re.I)


def parse_size(text):
    m = SIZE_RE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text}")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


class Daemon:
    """A kvcached subcommand, ready once it sends READY=1."""

    def __init__(self, binary, args):
        self.tmp = tempfile.mkdtemp(prefix="kvcached-pybench-")
        path = os.path.join(self.tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.5)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KVCACHED_", "MOONCAKE_"))}
        env["NOTIFY_SOCKET"] = path
        self.proc = subprocess.Popen([binary] + args, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.tmp, "log"), "wb"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                if self.proc.poll() is not None:
                    raise SystemExit(f"kvcached {args[0]} exited:\n" + self.log())
                continue
            if "READY=1" in msg.split("\n"):
                self.status = msg
                return
        raise SystemExit(f"kvcached {args[0]} not ready:\n" + self.log())

    def log(self):
        with open(os.path.join(self.tmp, "log"), errors="replace") as f:
            return f.read()

    def address(self, word):
        return re.search(word + r" (?:tcp://|http://)?([0-9.]+:[0-9]+)", self.status).group(1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_python_cells(store, errors, opts, transport, region, region_addr):
    size, batch = opts.size, opts.batch
    slots = len(region) // size
    half = (opts.segment_size // 2) // size // batch * batch
    failures = []

    def stamp(i):
        slot = i % slots
        region[slot * size:slot * size + 8] = i.to_bytes(8, "little")
        return region_addr + slot * size

    def put_batch(first):
        keys = [f"py-{transport}-{i}" for i in range(first, first + batch)]
        ptrs = [stamp(i) for i in range(first, first + batch)]
        res = store.batch_put_from(keys, ptrs, [size] * batch)
        bad = [r for r in res if r != 0]
        if bad:
            failures.append(f"{transport} put: {errors.error_name(bad[0])}")
        return not bad

    # Untimed: fault in 80% of the segment once, then empty it.
    for first in range(0, int(opts.segment_size * 0.8) // size // batch * batch, batch):
        put_batch(first)
    store.remove_all(True)

    # Put.
    done, stored, spent, n = 0, 0, 0.0, 1_000_000
    while spent < opts.seconds and not failures:
        if stored + batch > half:
            store.remove_all(True)
            stored = 0
        t = time.perf_counter()
        ok = put_batch(n)
        spent += time.perf_counter() - t
        n += batch
        stored += batch
        done += batch if ok else 0
    put_gbps = done * size / spent / 1e9

    # Get: the keys of half a segment.
    store.remove_all(True)
    for first in range(0, half, batch):
        put_batch(first)
    for first in range(0, half, batch):  # untimed check of every object's stamp
        keys = [f"py-{transport}-{i}" for i in range(first, first + batch)]
        ptrs = [region_addr + (j % slots) * size for j in range(batch)]
        res = store.batch_get_into(keys, ptrs, [size] * batch)
        for j, r in enumerate(res):
            at = (j % slots) * size
            if r != size or int.from_bytes(region[at:at + 8], "little") != first + j:
                failures.append(f"{transport} get of object {first + j}: {r}")
                break
    done, spent, first = 0, 0.0, 0
    while spent < opts.seconds and not failures:
        keys = [f"py-{transport}-{i}" for i in range(first, first + batch)]
        ptrs = [region_addr + ((first + j) % slots) * size for j in range(batch)]
        t = time.perf_counter()
        res = store.batch_get_into(keys, ptrs, [size] * batch)
        spent += time.perf_counter() - t
        if any(r != size for r in res):
            failures.append(f"{transport} get: {res[0]}")
        done += batch
        first = (first + batch) % half
    get_gbps = done * size / spent / 1e9
    store.remove_all(True)
    return {"put": put_gbps, "get": get_gbps}, failures


def run_cxx(opts):
    cmd = [opts.cxx, "--bin", opts.bin, "--seconds", str(opts.seconds), "--sizes",
           f"{opts.size >> 10}K", "--batches", str(opts.batch), "--transports",
           ",".join(opts.transports), "--segment-size", f"{opts.segment_size >> 20}MiB", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        print(f"bench_data failed ({out.returncode}):\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    doc = json.loads(out.stdout[out.stdout.index("{"):])
    return {(r["transport"], r["op"]): r["gb_per_s"] for r in doc.get("results", [])
            if r["batch"] == opts.batch and r["object_bytes"] == opts.size}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.environ.get("KVCACHED_BIN")
                   or os.path.join(REPO, "build", "kvcached"))
    p.add_argument("--library", help="libkvcached.so (default: kvcached's lookup order)")
    p.add_argument("--cxx", default=os.path.join(REPO, "build", "bench_data"))
    p.add_argument("--no-cxx", action="store_true", help="skip the C++ comparison")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--size", type=parse_size, default=4 << 20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--segment-size", type=parse_size, default=2 << 30)
    p.add_argument("--transports", type=lambda s: s.split(","), default=["shm", "tcp"])
    p.add_argument("--json", action="store_true")
    opts = p.parse_args()
    opts.bin = os.path.abspath(opts.bin)
    if opts.library:
        os.environ["KVCACHED_LIBRARY"] = os.path.abspath(opts.library)
    sys.path.insert(0, os.path.join(REPO, "python"))
    import kvcached
    from kvcached import errors

    load_before = os.getloadavg()[0]
    master = Daemon(opts.bin, ["master", "--port", "0", "--admin-port", "0", "--no-meta",
                               "--threads", "1"])
    store_proc = Daemon(opts.bin, ["store", "--master", master.address("rpc"), "--segment-size",
                                   str(opts.segment_size), "--host-id", "bench-host",
                                   "--threads", "2"])
    region_size = max(256 << 20, opts.batch * opts.size)
    # Private anonymous memory, like the C++ bench's arena and an inference
    # server's host pool (malloc'd or pinned); mmap(-1)'s default is shared memory.
    region = mmap.mmap(-1, region_size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    chunk = os.urandom(1 << 20)
    for at in range(0, region_size, 1 << 20):  # pre-fault the pages
        region[at:at + (1 << 20)] = chunk
    region_addr = ctypes.addressof(ctypes.c_char.from_buffer(region))
    results, failures = {}, []
    try:
        for transport in opts.transports:
            s = kvcached.MooncakeDistributedStore()
            rc = s.setup({"master_server_address": master.address("rpc"),
                          "local_hostname": "bench-host", "global_segment_size": 0,
                          "transport": transport})
            if rc != 0:
                raise SystemExit(f"setup: {errors.error_name(rc)}")
            assert s.register_buffer(region_addr, region_size) == 0
            results[transport], f = run_python_cells(s, errors, opts, transport, region,
                                                     region_addr)
            failures += f
            s.close()
    finally:
        store_proc.stop()
        master.stop()
    cxx = None if opts.no_cxx or not os.path.exists(opts.cxx) else run_cxx(opts)

    rows = []
    for transport in opts.transports:
        for op in ("put", "get"):
            py = results[transport][op]
            c = cxx.get((transport, op)) if cxx else None
            rows.append({"transport": transport, "op": op, "object_bytes": opts.size,
                         "batch": opts.batch, "python_gb_per_s": py, "cxx_gb_per_s": c,
                         "python_pct_of_cxx": 100 * py / c if c else None})
    if opts.json:
        print(json.dumps({"library": kvcached.library_path, "load_average_before": load_before,
                          "load_average_after": os.getloadavg()[0], "seconds": opts.seconds,
                          "segment_bytes": opts.segment_size, "rows": rows,
                          "failures": failures}, indent=2))
    else:
        print(f"library {kvcached.library_path}; load average {load_before:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after; {opts.seconds:g} s per cell; "
              f"segment {opts.segment_size >> 20} MiB")
        print("transport op   object   batch  python GB/s  C++ GB/s  python/C++")
        for r in rows:
            c = f"{r['cxx_gb_per_s']:9.3f}" if r["cxx_gb_per_s"] else "        -"
            pct = f"{r['python_pct_of_cxx']:9.1f}%" if r["python_pct_of_cxx"] else "         -"
            print(f"{r['transport']:9} {r['op']:4} {opts.size >> 20:3} MiB {opts.batch:7} "
                  f"{r['python_gb_per_s']:12.3f} {c} {pct}")
        for f in failures:
            print("FAILED:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
