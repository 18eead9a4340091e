"""The high-availability scenario: three etcd members, three masters of one
cluster (--etcd-lease-ttl 2s by default), three stores following the leader
(--master etcd://...), and a verified load, through leader kills (SIGKILL),
a frozen leader (SIGSTOP past its lease, then SIGCONT) and an etcd member
stopped and started again. test_failover.py runs it under pytest; as a
script it is the failover benchmark quoted in docs/benchmarks.md:

    KVCACHED_BIN=build/kvcached KVCACHED_LIBRARY=build/libkvcached.so \\
        python3 tests/python/ha_scenario.py [--kills N] [--lease 2s] [--netns]

The load runs in client processes (this file, `client` mode), so that
clients can sit in network namespaces of their own; each reports JSON lines
on stdout. Writer threads (each its own MooncakeDistributedStore) put
immutable objects of 16-64 KiB whose bytes follow from the key alone
(value_of), about 10 a second each, and read back random objects of theirs
that were acknowledged (put returned 0), every byte compared. A prober
thread puts a fresh small key every 20 ms: the failover time of a kill is
from the SIGKILL to the end of the first probe put that started after it
and returned 0 (it went through the new leader: the old one is dead).

The oracle: a get returns the key's exact bytes, or an error, or a miss; a
wrong byte is a violation. After each fault has settled (one master says
`role: leader` on /health at a higher epoch, and lists the three stores'
segments, /get_all_segments: they remounted), a fresh client reads every
acknowledged object: each must come back exact (none lost). At the end the
objects whose put failed are read too: each is exact or absent, never other
bytes. The pool stays far from eviction: the writers stop putting new keys
at half the stores' capacity (they keep reading).

Waits are on readiness (sd_notify READY=1, /health, a successful put), each
with a deadline; the only sleeps that are not polls are the fault durations
(the freeze, the time an etcd member stays down). Violations are collected,
not raised, so that one run shows them all; a scenario that could not go on
(a deadline passed) raises ScenarioError. Where either happened, every
process's log is kept in the scenario's work dir, whose path is printed.

What a run shows besides the oracle: a dead leader is replaced in about its
etcd lease (its key outlives it until the lease ends); a frozen one holds
its clients and stores until it wakes or their RPC timeout (5 s by
default) ends the call they are waiting in, whichever comes first, even
though another master leads after about one lease."""

import argparse
import bisect
import ctypes
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from conftest import HOST_ID, PYTHON_DIR, Proc  # noqa: E402
from etcd_cluster import EtcdCluster, free_ports  # noqa: E402
from netns import NETNS_RUN_DIR, CLONE_NEWNET, NetNamespaces, in_netns_cmd, run_in_netns  # noqa: E402

OBJECT_NOT_FOUND = -704  # kvcached.errors.OBJECT_NOT_FOUND (not imported: the controller
                         # never loads the library)
MIN_VALUE, MAX_VALUE = 16 << 10, 64 << 10  # the load's objects
MIN_PROBE, MAX_PROBE = 256, 1024  # the prober's
ALIGN = 64  # the master's allocation unit: budgets count sizes rounded up to it
STORES = 3
MASTER_PORT = 50051  # in a namespace of its own each master can have the usual port

READY_TIMEOUT_S = 60  # clients up, a master's READY=1 after a restart or step-down
FAILOVER_TIMEOUT_S = 60  # from a fault to the first put through the next leader
SETTLE_TIMEOUT_S = 60  # a new leader sees every store's segment again
VERIFY_TIMEOUT_S = 300  # one read of the whole acknowledged set


class ScenarioError(RuntimeError):
    """The scenario could not go on (a deadline passed, a process died)."""


# ---- objects -----------------------------------------------------------------

def value_of(key):
    """The bytes of `key`'s object: size and content from a hash of the key,
    so any reader can check every byte. Probe keys ("/p/") are small."""
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest(), "little")
    lo, hi = (MIN_PROBE, MAX_PROBE) if "/p/" in key else (MIN_VALUE, MAX_VALUE)
    return random.Random(seed).randbytes(lo + seed % (hi - lo + 1))


def allocated(size):
    return (size + ALIGN - 1) // ALIGN * ALIGN


def first_difference(got, want):
    n = min(len(got), len(want))
    for i in range(n):
        if got[i] != want[i]:
            return i
    return n


# ---- the client processes (`ha_scenario.py client ...`) ------------------------

def enter_netns(full_name):
    """Moves this (still single-threaded) process into a network namespace:
    every thread it starts afterwards, the library's included, lives there."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join(NETNS_RUN_DIR, full_name), os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({full_name})")
    finally:
        os.close(fd)


class Emitter:
    """JSON lines on stdout, one writer at a time."""

    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self, **event):
        line = json.dumps(event, separators=(",", ":"))
        with self.lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def open_store(master, host_id, stop, emit, who):
    """A MooncakeDistributedStore set up against `master`; retried while no
    leader serves (setup needs one), until `stop` or the deadline."""
    from kvcached import MooncakeDistributedStore
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        s = MooncakeDistributedStore()
        rc = s.setup(host_id, "P2PHANDSHAKE", 0, 16 << 20, "tcp", "", master)
        if rc == 0:
            return s
        if stop.is_set() or time.monotonic() > deadline:
            emit(e="setup_failed", who=who, rc=rc)
            return None
        time.sleep(0.2)  # poll interval: setup retried until a leader serves


class Reader:
    """Reads and classifies objects: exact, miss, error (any other code), wrong."""

    def __init__(self, store):
        self.store = store
        self.buf = ctypes.create_string_buffer(MAX_VALUE)
        self.addr = ctypes.addressof(self.buf)

    def read(self, key):
        """(kind, detail): kind in exact / miss / error / wrong."""
        n = self.store.get_into(key, self.addr, MAX_VALUE)
        if n == OBJECT_NOT_FOUND:
            return "miss", n
        if n < 0:
            return "error", n
        got, want = ctypes.string_at(self.addr, n), value_of(key)
        if got == want:
            return "exact", n
        return "wrong", {"size": n, "expected_size": len(want),
                         "first_difference": first_difference(got, want)}


def timed_put(store, key, event, who, emit):
    """Puts key's value and reports it (start, end, code) as `event`:
    (rc, end time, bytes it takes in the pool)."""
    value = value_of(key)
    t0 = time.monotonic()
    rc = store.put(key, value)
    t1 = time.monotonic()
    emit(e=event, who=who, k=key, rc=rc, t0=t0, t1=t1)
    return rc, t1, allocated(len(value))


def writer_loop(store, name, prefix, put_interval, get_interval, budget, stop, emit):
    reader = Reader(store)
    counts = {"get_exact": 0, "get_miss": 0, "get_error": 0, "get_wrong": 0}
    errors = {}
    acked, seq, spent = [], 0, 0
    next_put = next_stats = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_put and spent < budget:
            key = f"{prefix}/{name}/{seq}"
            seq += 1
            rc, t1, size = timed_put(store, key, "put", name, emit)
            spent += size
            if rc == 0:
                acked.append(key)
            next_put = max(next_put + put_interval, t1)
            if spent >= budget:
                emit(e="budget_spent", who=name, bytes=spent)
        elif acked:
            key = random.choice(acked)
            kind, detail = reader.read(key)
            counts["get_" + kind] += 1
            if kind == "wrong":
                emit(e="wrong", who=name, k=key, detail=detail, t=time.monotonic())
            elif kind == "error":
                errors[str(detail)] = errors.get(str(detail), 0) + 1
            stop.wait(get_interval)
        else:
            stop.wait(min(get_interval, max(0.0, next_put - now)))
        if time.monotonic() >= next_stats:
            emit(e="stats", who=name, errors=errors, **counts)
            next_stats += 0.5
    emit(e="stats", who=name, errors=errors, final=True, **counts)


def prober_loop(store, name, prefix, interval, budget, stop, emit):
    seq, spent = 0, 0
    while not stop.is_set() and spent < budget:
        key = f"{prefix}/p/{seq}"
        seq += 1
        t0 = time.monotonic()
        _, _, size = timed_put(store, key, "probe", name, emit)
        spent += size
        stop.wait(max(0.0, t0 + interval - time.monotonic()))
    if spent >= budget:
        emit(e="budget_spent", who=name, bytes=spent)


def client_load(args, emit):
    """Writers (one per --writer host id) and an optional prober, until stdin closes."""
    stop = threading.Event()

    def watch_stdin():
        sys.stdin.buffer.read()  # the controller closes our stdin to stop us
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    jobs = [(f"{args.name}w{i}", h) for i, h in enumerate(args.writer)]
    if args.prober:
        jobs.append((f"{args.name}probe", args.prober))
    threads = []

    def run(name, host_id):
        store = open_store(args.master, host_id, stop, emit, name)
        if store is None:
            return
        emit(e="ready", who=name)
        try:
            if name.endswith("probe"):
                prober_loop(store, name, args.prefix, args.probe_interval, args.probe_budget,
                            stop, emit)
            else:
                writer_loop(store, name, args.prefix, args.put_interval, args.get_interval,
                            args.budget, stop, emit)
        finally:
            store.close()
            emit(e="closed", who=name)

    for name, host_id in jobs:
        t = threading.Thread(target=run, args=(name, host_id), name=name)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


def client_verify(args, emit):
    """Reads the keys of --keys (JSON {"acked": [...], "unacked": [...]}) and
    prints one JSON line: how each read ended. An acknowledged key that errors
    is read again (up to --attempts times, 0.2 s apart); one that misses is
    read once more after 0.5 s (a miss then a hit is reported as late)."""
    with open(args.keys) as f:
        keys = json.load(f)
    stop = threading.Event()
    result = {"acked": {"exact": 0, "late": 0, "lost": [], "wrong": [], "error": []},
              "unacked": {"exact": 0, "absent": 0, "wrong": [], "error": []}}
    lock = threading.Lock()

    def check(reader, key, acked):
        kind, detail = reader.read(key)
        for _ in range(args.attempts - 1):
            if kind != "error":
                break
            time.sleep(0.2)  # a transient error (a connection the old leader left) is retried
            kind, detail = reader.read(key)
        late = False
        if kind == "miss" and acked:
            time.sleep(0.5)
            kind, detail = reader.read(key)
            late = kind == "exact"
        with lock:
            r = result["acked" if acked else "unacked"]
            if kind == "exact":
                r["exact"] += 1
                if late:
                    r["late"] += 1
            elif kind == "miss":
                if acked:
                    r["lost"].append(key)
                else:
                    r["absent"] += 1
            else:
                r[kind].append({"k": key, "detail": detail})

    work = [(k, True) for k in keys["acked"]] + [(k, False) for k in keys.get("unacked", [])]

    def run(part):
        store = open_store(args.master, args.host_id, stop, emit, "verify")
        if store is None:
            return
        try:
            reader = Reader(store)
            for key, acked in part:
                check(reader, key, acked)
        finally:
            store.close()

    threads = [threading.Thread(target=run, args=(work[i::args.threads],))
               for i in range(args.threads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = result["acked"]["exact"] + len(result["acked"]["lost"]) + sum(
        len(result[g][k]) for g in result for k in ("wrong", "error")) + \
        result["unacked"]["exact"] + result["unacked"]["absent"]
    result["read"] = done
    result["seconds"] = round(time.monotonic() - t0, 3)
    result["complete"] = done == len(work)
    emit(e="verified", **result)


def client_main(argv):
    p = argparse.ArgumentParser(prog="ha_scenario.py client")
    p.add_argument("mode", choices=["load", "verify"])
    p.add_argument("--master", required=True)
    p.add_argument("--netns", default="")
    p.add_argument("--name", default="c")
    p.add_argument("--prefix", default="ha")
    p.add_argument("--writer", action="append", default=[], help="a writer's host id")
    p.add_argument("--prober", default="", help="the prober's host id (none: no prober)")
    p.add_argument("--put-interval", type=float, default=0.1)
    p.add_argument("--get-interval", type=float, default=0.02)
    p.add_argument("--probe-interval", type=float, default=0.02)
    p.add_argument("--budget", type=int, default=1 << 30, help="bytes each writer may put")
    p.add_argument("--probe-budget", type=int, default=1 << 30)
    p.add_argument("--keys", help="verify: the JSON file of keys")
    p.add_argument("--host-id", default=HOST_ID, help="verify: the reader's host id")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--attempts", type=int, default=5)
    args = p.parse_args(argv)
    if args.netns:
        enter_netns(args.netns)
    emit = Emitter()
    if args.mode == "load":
        client_load(args, emit)
    else:
        client_verify(args, emit)


# ---- the controller -------------------------------------------------------------

def parse_health(text):
    """/health's "key: value" lines as a dict (the first line, OK, as ok=True)."""
    out = {"ok": text.startswith("OK")}
    for line in text.splitlines()[1:]:
        if ": " in line:
            k, v = line.split(": ", 1)
            out[k.strip()] = v.strip()
    return out


def http_text(url, netns=None, timeout=2):
    """The body of GET url (from inside `netns`), or None when it cannot be had."""
    def get():
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.read().decode(errors="replace")
        except (OSError, ValueError):
            return None
    return run_in_netns(netns, get) if netns else get()


def fixed_ports(n, host="127.0.0.1"):
    """n free ports below the kernel's ephemeral range, so that no client's
    outgoing connection can hold a master's port while that master waits as
    a standby (it binds its port only when elected); free_ports' otherwise."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    if low <= 12000:
        return free_ports(n, host)
    ports, rng = [], random.Random()
    while len(ports) < n:
        port = rng.randrange(10000, low)
        if port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        ports.append(port)
    return ports


def ready_statuses(proc):
    """The STATUS of each READY=1 the process sent since the last call (none
    waited for), also appended to proc.ready_history; the newest becomes
    proc.status (a master sends one as a standby, one when elected, and one
    after each step-down)."""
    seen = []
    proc.notify.setblocking(False)
    try:
        while True:
            msg = proc.notify.recv(4096).decode(errors="replace")
            fields = dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)
            if fields.get("READY") == "1":
                seen.append(fields.get("STATUS", ""))
    except (BlockingIOError, OSError):
        pass
    finally:
        proc.notify.settimeout(0.2)
    if seen:
        proc.status = seen[-1]
    proc.ready_history = getattr(proc, "ready_history", []) + seen
    return seen


class Master:
    """One `kvcached master` of the cluster: its fixed address, the process
    running now (proc) and the ones killed before (retired)."""

    def __init__(self, scenario, index, host, netns, port):
        self.sc = scenario
        self.index = index
        self.name = f"m{index}"
        self.host = host
        self.netns = netns
        self.port = port
        self.proc = None
        self.retired = []
        self.frozen = False  # SIGSTOPped: /health would not answer

    def argv(self):
        args = ["master", "--host", self.host, "--port", str(self.port), "--admin-port", "0",
                "--no-meta", "--etcd-endpoints", self.sc.etcd.endpoint_string(),
                "--cluster-id", self.sc.cluster_id, "--etcd-lease-ttl", self.sc.lease]
        return args + self.sc.secure_flags()

    def start(self):
        self.proc = Proc(self.argv(), command=self.sc.command(self.netns))
        return self

    @property
    def rpc(self):
        return f"{self.host}:{self.port}"

    def alive(self):
        return self.proc is not None and self.proc.proc.poll() is None

    def health(self):
        """/health as a dict, or None (not running, not answering, between images)."""
        if not self.alive() or self.frozen:
            return None
        ready_statuses(self.proc)
        try:
            admin = self.proc.address("admin")
        except AssertionError:
            return None
        text = http_text(f"http://{admin}/health", self.netns, timeout=1)
        return parse_health(text) if text else None

    def segments(self):
        """The segment names the master lists (/get_all_segments), or None."""
        ready_statuses(self.proc)
        text = http_text(f"http://{self.proc.address('admin')}/get_all_segments", self.netns)
        return None if text is None else set(text.split())

    def retire(self):
        """After a kill: keep the dead process's log, make room for a restart."""
        self.retired.append(self.proc)
        self.proc = None


class Load:
    """The client processes' events, gathered by one reader thread per process."""

    def __init__(self):
        self.cv = threading.Condition()
        self.acked = set()  # keys of every acknowledged put
        self.failed = set()  # keys whose put returned an error (and was never acknowledged)
        self.puts = {"ok": 0, "failed": 0}
        self.probes = []  # (t0, t1, rc), in the order the prober made them
        self.probe_starts = []  # their t0, ascending (for bisect)
        self.put_errors = {}
        self.stats = {}  # writer -> its latest counters
        self.wrong = []
        self.ready = set()
        self.closed = set()
        self.budget_spent = set()
        self.setup_failed = []
        self.ok_starts = {}  # writer -> start times of its acknowledged puts, ascending

    def feed(self, line):
        try:
            ev = json.loads(line)
        except ValueError:
            return
        with self.cv:
            kind = ev.get("e")
            if kind in ("put", "probe"):
                if ev["rc"] == 0:
                    self.acked.add(ev["k"])
                    self.failed.discard(ev["k"])
                    self.ok_starts.setdefault(ev["who"], []).append(ev["t0"])
                else:
                    self.failed.add(ev["k"])
                    self.put_errors[ev["rc"]] = self.put_errors.get(ev["rc"], 0) + 1
                if kind == "probe":
                    self.probes.append((ev["t0"], ev["t1"], ev["rc"]))
                    self.probe_starts.append(ev["t0"])
                else:
                    self.puts["ok" if ev["rc"] == 0 else "failed"] += 1
            elif kind == "stats":
                self.stats[ev["who"]] = ev
            elif kind == "wrong":
                self.wrong.append(ev)
            elif kind == "ready":
                self.ready.add(ev["who"])
            elif kind == "closed":
                self.closed.add(ev["who"])
            elif kind == "budget_spent":
                self.budget_spent.add(ev["who"])
            elif kind == "setup_failed":
                self.setup_failed.append(ev)
            self.cv.notify_all()

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ScenarioError(f"{what}: not within {timeout} s")
                self.cv.wait(min(left, 0.5))

    def first_probe_ok_after(self, t):
        """The end time of the first acknowledged probe put that started at or after t."""
        for t0, t1, rc in self.probes[bisect.bisect_left(self.probe_starts, t):]:
            if rc == 0:
                return t1
        return None

    def acked_since(self, writer, t):
        """How many puts of `writer` that started at or after t were acknowledged."""
        starts = self.ok_starts.get(writer, [])
        return len(starts) - bisect.bisect_left(starts, t)

    def snapshot(self):
        with self.cv:
            return set(self.acked), set(self.failed)

    def get_counts(self):
        with self.cv:
            total = {"exact": 0, "miss": 0, "error": 0, "wrong": 0}
            errors = {}
            for st in self.stats.values():
                for k in total:
                    total[k] += st.get("get_" + k, 0)
                for code, n in st.get("errors", {}).items():
                    errors[code] = errors.get(code, 0) + n
            return total, errors


class HaScenario:
    """See the module's text. `netns=True` puts etcd members and masters (h0-h2:
    one etcd member and one master each), stores (s0-s2) and clients (c0, c1)
    in network namespaces of their own, each with its own address and host id,
    the traffic on a token (root only)."""

    def __init__(self, lease="2s", segment_size="64MiB", netns=False, out=print, bin_path=None,
                 keep_logs=False):
        self.lease = lease
        self.keep_logs = keep_logs
        self.segment_size = segment_size
        self.use_netns = netns
        self.out = out
        self.bin = bin_path or os.environ.get("KVCACHED_BIN") or shutil.which("kvcached")
        if not self.bin:
            raise ScenarioError("no kvcached binary: set KVCACHED_BIN")
        self.cluster_id = f"ha-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.prefix = f"ha{uuid.uuid4().hex[:6]}"
        self.work = tempfile.mkdtemp(prefix="kvcached-ha-")
        self.token_file = None
        self.ns = None
        self.etcd = None
        self.masters = []
        self.stores = []
        self.clients = []  # (name, Popen, stderr path)
        self.readers = []
        self.load = Load()
        self.violations = []
        self.events = []  # lines of the summary, in order
        self.failovers = []  # seconds, one per kill
        self.checks = []  # one dict per full check of the acknowledged set
        self.failed = False
        self.stopped = False
        self.verify_count = 0
        self.verifying = None  # the check's client process while it runs
        self.writers = []

    # -- placement --

    def place(self, role, i):
        """(host, full netns name or None, host id) of the i-th `role`."""
        if not self.use_netns:
            return "127.0.0.1", None, HOST_ID
        name = {"etcd": "h", "master": "h", "store": "s", "client": "c"}[role] + str(i)
        return self.ns.address(name), self.ns.full(name), name

    def command(self, netns):
        return (in_netns_cmd(netns) if netns else []) + [self.bin]

    def secure_flags(self):
        return ["--token-file", self.token_file] if self.token_file else []

    def segment_bytes(self):
        units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
        for suffix, mult in units.items():
            if self.segment_size.endswith(suffix):
                return int(self.segment_size[:-len(suffix)]) * mult
        return int(self.segment_size)

    def lease_seconds(self):
        s = self.lease
        if s.endswith("ms"):
            return float(s[:-2]) / 1000
        return float(s[:-1]) if s.endswith("s") else float(s)

    # -- start and stop --

    def start(self, writers=3):
        """Everything up, the load running, a first put acknowledged by a leader."""
        t = time.monotonic()
        if self.use_netns:
            self.ns = NetNamespaces(["h0", "h1", "h2", "s0", "s1", "s2", "c0", "c1"])
            self.token_file = os.path.join(self.work, "token")
            with open(self.token_file, "w") as f:
                f.write(uuid.uuid4().hex + uuid.uuid4().hex + "\n")
            os.chmod(self.token_file, 0o600)
        places = [self.place("etcd", i) for i in range(3)]
        self.etcd = EtcdCluster(members=3, hosts=[p[0] for p in places],
                                netns=[p[1] for p in places] if self.use_netns else None)
        self.master_url = "etcd://" + self.etcd.endpoint_string()
        ports = [MASTER_PORT] * 3 if self.use_netns else fixed_ports(3)
        for i in range(3):
            host, netns, _ = self.place("master", i)
            self.masters.append(Master(self, i, host, netns, ports[i]).start())
        self.wait_one_leader(READY_TIMEOUT_S)
        for i in range(STORES):
            self.stores.append(self.start_store(i))
        self.wait_settled(READY_TIMEOUT_S)
        self.start_load(writers)
        self.note(f"started in {time.monotonic() - t:.1f} s: 3 etcd members, 3 masters "
                  f"(--etcd-lease-ttl {self.lease}), {STORES} stores of {self.segment_size}, "
                  f"{writers} writers and a prober"
                  + (" in network namespaces" if self.use_netns else " on loopback"))

    def start_store(self, i):
        """Store i, mounted at the leader. A store that finds no leader when it
        starts exits 75 (EX_TEMPFAIL, for its supervisor to start it again):
        where the leadership changed meanwhile (etcd slow to renew the leader's
        lease on a loaded machine), it is started again, as a supervisor would."""
        host, netns, host_id = self.place("store", i)
        name = f"{self.prefix}-seg{i}"
        args = ["store", "--master", self.master_url, "--cluster-id", self.cluster_id,
                "--segment-size", self.segment_size, "--segment-name", name,
                "--host-id", host_id, "--ping-interval", "200ms", "--threads", "2"]
        if self.use_netns:
            args += ["--host", host]
        deadline = time.monotonic() + READY_TIMEOUT_S
        for attempt in range(1, 100):
            try:
                store = Proc(args + self.secure_flags(), command=self.command(netns))
                store.segment = name
                return store
            except RuntimeError as e:
                if " exited with 75 " not in str(e) or time.monotonic() > deadline:
                    raise
                with open(os.path.join(self.work, f"store-{i}.attempt{attempt}.log"), "w") as f:
                    f.write(str(e))
                self.note(f"store {i} found no leader at start (exit 75); starting it again")
                self.wait_one_leader(max(1.0, deadline - time.monotonic()))
        raise ScenarioError(f"store {i} would not start")

    def start_load(self, writers):
        """Client processes: c0 holds the prober and writers 0, 2, ...; c1 the
        others. On loopback writer 0 shares the stores' host id (shared
        memory) and the others do not (TCP)."""
        budget_total = STORES * self.segment_bytes()
        per_writer = int(budget_total * 0.5) // writers
        probe_budget = int(budget_total * 0.1)
        groups = {"c0": [], "c1": []}
        for w in range(writers):
            groups["c0" if w % 2 == 0 else "c1"].append(w)
        for ci, (cname, ws) in enumerate(groups.items()):
            if not ws and cname != "c0":
                continue
            _, netns, host_id = self.place("client", ci)
            argv = ["load", "--name", cname, "--prefix", self.prefix,
                    "--budget", str(per_writer), "--probe-budget", str(probe_budget)]
            for w in ws:
                argv += ["--writer", host_id if (self.use_netns or w == 0) else f"ha-tcp-{w}"]
            if cname == "c0":
                argv += ["--prober", host_id]
            self.clients.append(self.spawn_client(cname, argv, netns))
        expected = {f"{c}w{i}" for c, ws in groups.items() for i in range(len(ws))} | {"c0probe"}
        self.writers = sorted(expected - {"c0probe"})
        self.load.wait(lambda: expected <= self.load.ready or self.load.setup_failed,
                       READY_TIMEOUT_S, "the clients' setup")
        if self.load.setup_failed:
            raise ScenarioError(f"a client could not set up: {self.load.setup_failed}")
        self.load.wait(lambda: self.load.first_probe_ok_after(0), FAILOVER_TIMEOUT_S,
                       "a first acknowledged put")

    def client_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KVCACHED_", "MOONCAKE_"))}
        if os.environ.get("KVCACHED_LIBRARY"):
            env["KVCACHED_LIBRARY"] = os.environ["KVCACHED_LIBRARY"]
        env["KVCACHED_CLUSTER_ID"] = self.cluster_id
        if self.token_file:
            env["KVCACHED_TOKEN_FILE"] = self.token_file
        env["PYTHONPATH"] = os.pathsep.join(
            [PYTHON_DIR, HERE] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        return env

    def spawn_client(self, name, argv, netns, follow=True):
        """A client process (this file, client mode); with `follow`, its JSON lines
        feed self.load and closing its stdin stops it."""
        err = os.path.join(self.work, f"client-{name}.log")
        argv = [sys.executable, os.path.abspath(__file__), "client", argv[0], "--master",
                self.master_url] + (["--netns", netns] if netns else []) + argv[1:]
        with open(err, "ab") as errf:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if follow else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=errf, env=self.client_env(),
                                    text=True)
        if follow:
            t = threading.Thread(target=self._read_client, args=(proc,), daemon=True)
            t.start()
            self.readers.append(t)
        return name, proc, err

    def _read_client(self, proc):
        for line in proc.stdout:
            self.load.feed(line)

    def stop_load(self):
        """Closes the clients' stdin (they stop, close their stores, print their last
        counters) and waits for them."""
        for _, proc, _ in self.clients:
            if proc.stdin and not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        for name, proc, _ in self.clients:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.violation(f"client {name} did not stop within 60 s of its stdin closing")
        for t in self.readers:
            t.join(10)

    def stop(self):
        """Ends every process and namespace; idempotent. The work dir (logs) is kept
        when something failed or keep_logs was asked for, removed otherwise."""
        if self.stopped:
            return
        self.stopped = True
        keep = self.failed or bool(self.violations) or self.keep_logs
        for proc in [p for _, p, _ in self.clients] + [self.verifying]:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        for m in self.masters:
            if m.alive():
                os.kill(m.proc.proc.pid, signal.SIGCONT)  # a frozen one would not see SIGTERM
        if keep:
            try:
                self.save_logs()
            except OSError as e:  # the processes must be ended all the same
                self.out(f"could not save every log: {e}")
        for s in self.stores:
            s.stop()
        for m in self.masters:
            for p in m.retired + ([m.proc] if m.proc else []):
                p.stop()
        if self.etcd:
            self.etcd.stop()
        if self.ns:
            self.ns.close()
        if not keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def save_logs(self):
        """Every process's log into the work dir."""
        def write(name, text):
            with open(os.path.join(self.work, name), "w") as f:
                f.write(text)
        for m in self.masters:
            for k, p in enumerate(m.retired):
                write(f"master-{m.index}.run{k}.log", p.log())
            if m.proc:
                write(f"master-{m.index}.log", m.proc.log())
        for i, s in enumerate(self.stores):
            write(f"store-{i}.log", s.log())
        if self.etcd:
            for i in range(3):
                write(f"etcd-{i}.log", self.etcd.log(i))
        write("events.txt", "\n".join(self.events) + "\n")

    # -- observing the masters --

    def note(self, line):
        self.events.append(line)
        self.out(line)

    def violation(self, what):
        self.violations.append(what)
        self.note("VIOLATION: " + what)

    def leaders(self):
        """[(master, epoch, health)] of the masters whose /health says role: leader."""
        out = []
        for m in self.masters:
            h = m.health()
            if h and h.get("role") == "leader":
                out.append((m, int(h.get("epoch", 0)), h))
        return out

    def wait_one_leader(self, timeout, above_epoch=0):
        """Polls /health until exactly one master leads, at an epoch above
        `above_epoch`; returns (master, epoch, health)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.leaders()
            if len(found) == 1 and found[0][1] > above_epoch:
                return found[0]
            if time.monotonic() > deadline:
                raise ScenarioError(f"no single leader above epoch {above_epoch} within "
                                    f"{timeout} s: {[(m.name, e) for m, e, _ in found]}")
            time.sleep(0.05)  # poll interval of a deadline-bound poll

    def wait_settled(self, timeout, above_epoch=0):
        """One leader, and every store's segment mounted at it."""
        deadline = time.monotonic() + timeout
        want = {s.segment for s in self.stores}
        while True:
            leader, epoch, _ = self.wait_one_leader(max(0.1, deadline - time.monotonic()),
                                                    above_epoch)
            if (leader.segments() or set()) >= want:
                return leader, epoch
            if time.monotonic() > deadline:
                raise ScenarioError(f"the leader {leader.name} does not list every segment "
                                    f"within {timeout} s: {leader.segments()}")
            time.sleep(0.05)  # poll interval

    def wait_writers_progress(self, since, puts=10, timeout=FAILOVER_TIMEOUT_S):
        """Every writer with budget left had `puts` puts acknowledged that started
        after `since`: each client follows the leader, and the pool grows between
        faults."""
        def done():
            return all(self.load.acked_since(w, since) >= puts
                       for w in self.writers if w not in self.load.budget_spent)
        self.load.wait(done, timeout, f"{puts} acknowledged puts of every writer")


    def wait_step_down(self, master, since, timeout):
        """After SIGCONT: the deposed leader executes itself anew and says READY=1
        as a standby (one of its READY=1 after the first `since`). Meanwhile
        /health of every master is polled: two masters saying role: leader at
        once is a split brain. Returns the seconds it took, or None when it did
        not step down in time."""
        t = time.monotonic()
        deadline = t + timeout
        while time.monotonic() < deadline:
            ready_statuses(master.proc)
            if any(st.startswith("standby") for st in master.proc.ready_history[since:]):
                return time.monotonic() - t
            if not master.alive():
                raise ScenarioError(f"{master.name} exited ({master.proc.proc.returncode}) "
                                    f"instead of stepping down")
            found = self.leaders()
            if len(found) > 1:
                self.violation("split brain: " + ", ".join(
                    f"{m.name} says role: leader at epoch {e}" for m, e, _ in found))
                return None
            time.sleep(0.02)  # poll interval of a deadline-bound poll
        return None

    def etcd_leader_rpc(self):
        """The rpc address the leader key in etcd names (None: no key)."""
        from etcd_cluster import etcd_get
        for i in range(3):
            if not self.etcd.running(i):
                continue
            m = self.etcd.members[i]
            try:
                value = etcd_get(m.endpoint, f"kvcached/{self.cluster_id}/leader", m.netns)
            except Exception:  # noqa: BLE001 - another member may answer
                continue
            return json.loads(value)["rpc"] if value else None
        return None

    def check_one_leader(self, when):
        """Exactly one master says role: leader, and it is the one etcd names."""
        found = self.leaders()
        if len(found) != 1:
            self.violation(f"{when}: {len(found)} masters say role: leader: "
                           f"{[(m.name, e) for m, e, _ in found]}")
            return None
        leader = found[0][0]
        named = self.etcd_leader_rpc()
        if named != leader.rpc:
            self.violation(f"{when}: {leader.name} ({leader.rpc}) says it leads but etcd names "
                           f"{named}")
        return leader

    # -- the full check --

    def check(self, after, final=False):
        """A fresh client reads every acknowledged object (at the end the keys of
        failed puts too): none may be lost or wrong."""
        acked, failed = self.load.snapshot()
        keys = {"acked": sorted(acked), "unacked": sorted(failed) if final else []}
        self.verify_count += 1
        path = os.path.join(self.work, f"verify-{self.verify_count}.json")
        with open(path, "w") as f:
            json.dump(keys, f)
        _, netns, host_id = self.place("client", 0)
        _, proc, err = self.spawn_client(f"verify{self.verify_count}",
                                         ["verify", "--keys", path, "--host-id", host_id],
                                         netns, follow=False)
        self.verifying = proc
        try:
            out, _ = proc.communicate(timeout=VERIFY_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise ScenarioError(f"the check after {after} did not end within "
                                f"{VERIFY_TIMEOUT_S} s")
        finally:
            self.verifying = None
        result = None
        for line in out.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("e") == "verified":
                result = ev
        if result is None:
            with open(err, errors="replace") as f:
                raise ScenarioError(f"the check after {after} printed no result "
                                    f"(exit {proc.returncode}):\n{out[-2000:]}\n{f.read()[-4000:]}")
        os.unlink(path)
        a, u = result["acked"], result["unacked"]
        entry = {"after": after, "objects": len(keys["acked"]), "exact": a["exact"],
                 "late": a["late"], "lost": len(a["lost"]), "wrong": len(a["wrong"]),
                 "error": len(a["error"]), "seconds": result["seconds"]}
        self.checks.append(entry)
        self.note(f"  check after {after}: {entry['objects']} acknowledged objects read in "
                  f"{entry['seconds']:.1f} s: {a['exact']} exact ({a['late']} only on a second "
                  f"read), {len(a['lost'])} lost, {len(a['wrong'])} wrong, "
                  f"{len(a['error'])} unreadable")
        if a["lost"]:
            self.violation(f"after {after}: {len(a['lost'])} acknowledged objects lost, e.g. "
                           f"{a['lost'][:5]}")
        if a["wrong"]:
            self.violation(f"after {after}: wrong bytes read: {a['wrong'][:5]}")
        if a["error"]:
            self.violation(f"after {after}: {len(a['error'])} acknowledged objects unreadable "
                           f"after retries, e.g. {a['error'][:5]}")
        if final:
            self.unacked = {"objects": len(keys["unacked"]), "exact": u["exact"],
                            "absent": u["absent"], "wrong": len(u["wrong"]),
                            "error": len(u["error"])}
            if u["wrong"]:
                self.violation(f"a failed put's key read back other bytes: {u['wrong'][:5]}")
        if not result["complete"]:
            self.violation(f"the check after {after} did not read every key")

    # -- the faults --

    def steady(self):
        """The current leader, once a put started now was acknowledged. Every
        master and store must run (only the scenario ends one, and it starts a
        killed master again)."""
        for name, p in ([(m.name, m.proc) for m in self.masters]
                        + [(f"store {i}", st) for i, st in enumerate(self.stores)]):
            if p is None or p.proc.poll() is not None:
                raise ScenarioError(f"{name} exited on its own ({p and p.proc.returncode}):\n"
                                    f"{p.log()[-4000:] if p else ''}")
        for name, proc, err in self.clients:
            if proc.poll() is not None:
                with open(err, errors="replace") as f:
                    raise ScenarioError(f"client {name} exited ({proc.returncode}):\n"
                                        f"{f.read()[-4000:]}")
        leader, epoch, _ = self.wait_one_leader(FAILOVER_TIMEOUT_S)
        t = time.monotonic()
        self.load.wait(lambda: self.load.first_probe_ok_after(t), FAILOVER_TIMEOUT_S,
                       "an acknowledged put before the fault")
        return leader, epoch

    def kill_leader(self, n):
        """SIGKILL the leader; the failover time is from the kill to the end of the
        first acknowledged probe put started after it. The killed master is started
        again (a standby) so that three remain."""
        for _ in range(10):
            leader, epoch = self.steady()
            h = leader.health()  # it may have stepped down on its own meanwhile (etcd slow)
            if h and h.get("role") == "leader" and int(h.get("epoch", 0)) == epoch:
                break
        t_kill = time.monotonic()
        os.kill(leader.proc.proc.pid, signal.SIGKILL)
        leader.proc.proc.wait()
        t_ok = self.load.wait(lambda: self.load.first_probe_ok_after(t_kill),
                              FAILOVER_TIMEOUT_S, f"a put through a new leader after kill #{n}")
        failover = t_ok - t_kill
        self.failovers.append(failover)
        new, new_epoch, health = self.wait_one_leader(FAILOVER_TIMEOUT_S, above_epoch=epoch)
        elected = time.monotonic() - float(health.get("seconds_since_failover", 0)) - t_kill
        leader.retire()
        leader.start()
        self.wait_settled(SETTLE_TIMEOUT_S, above_epoch=epoch)
        self.wait_writers_progress(t_ok)
        self.note(f"kill -9 #{n}: leader {leader.name} (epoch {epoch}) killed; {new.name} "
                  f"elected (epoch {new_epoch}) {elected:.2f} s later; first acknowledged put "
                  f"through it {failover:.2f} s after the kill")
        self.check(f"kill -9 #{n}")

    def freeze_leader(self, seconds=None):
        """SIGSTOP the leader past its lease (default: for two leases) and until
        another master leads, SIGCONT: the old one must step down (execute
        itself anew as a standby), never serve beside the new one, and lose no
        acknowledged write."""
        seconds = seconds if seconds is not None else 2 * self.lease_seconds()
        leader, epoch = self.steady()
        pid = leader.proc.proc.pid
        ready_statuses(leader.proc)  # its READY=1 so far are before the freeze
        t_stop = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        leader.frozen = True
        try:
            new, new_epoch, _ = self.wait_one_leader(FAILOVER_TIMEOUT_S, above_epoch=epoch)
            t_new = time.monotonic() - t_stop
            time.sleep(max(0.0, t_stop + seconds - time.monotonic()))  # the fault's duration
        finally:
            since = len(leader.proc.ready_history)  # a stopped process sends nothing
            os.kill(pid, signal.SIGCONT)
            leader.frozen = False
        frozen_for = time.monotonic() - t_stop
        took = self.wait_step_down(leader, since, READY_TIMEOUT_S)
        stepped = "stepping down as leader" in leader.proc.log()
        if took is None:
            self.violation(f"{leader.name}, frozen past its lease while {new.name} took over, "
                           f"did not step down within {READY_TIMEOUT_S} s of SIGCONT")
        elif not stepped:
            self.violation(f"{leader.name} came back as a standby but its log has no "
                           f"'stepping down as leader'")
        self.wait_settled(SETTLE_TIMEOUT_S, above_epoch=epoch)
        one = self.check_one_leader("after the freeze")
        t_ok = self.load.wait(lambda: self.load.first_probe_ok_after(t_stop), FAILOVER_TIMEOUT_S,
                              "an acknowledged put after the freeze")
        self.freeze = {"master": leader.name, "frozen_s": frozen_for, "new": new.name,
                       "elected_s": t_new, "stepped_down": took is not None and stepped,
                       "one_leader": one is not None, "outage_s": t_ok - t_stop}
        self.note(f"SIGSTOP: leader {leader.name} (epoch {epoch}) frozen {frozen_for:.1f} s; "
                  f"{new.name} elected (epoch {new_epoch}) after {t_new:.2f} s; after SIGCONT "
                  + (f"{leader.name} stepped down in {took:.2f} s" if took is not None else
                     f"{leader.name} did NOT step down")
                  + f"; {'exactly one leader' if one else 'NOT one leader'}; first acknowledged "
                  f"put after the SIGSTOP at {t_ok - t_stop:.2f} s")
        self.wait_writers_progress(time.monotonic())
        self.check("the freeze")

    def bounce_etcd(self, down_s=None):
        """Stop the etcd leader member (SIGTERM: it hands leadership over) while the
        load runs, keep it down for two kvcached leases, start it again: puts must
        go on throughout."""
        down_s = down_s if down_s is not None else 2 * self.lease_seconds()
        _, epoch = self.steady()
        i = self.etcd.wait_leader()
        t_down = time.monotonic()
        self.etcd.stop_member(i)
        t_stopped = time.monotonic()
        self.load.wait(lambda: self.load.first_probe_ok_after(t_stopped + down_s),
                       FAILOVER_TIMEOUT_S, f"puts with etcd member {i} down")
        self.etcd.start_member(i)
        t_back = time.monotonic()
        self.load.wait(lambda: self.load.first_probe_ok_after(t_back), FAILOVER_TIMEOUT_S,
                       f"puts after etcd member {i} came back")
        leader, new_epoch = self.wait_settled(SETTLE_TIMEOUT_S)
        with self.load.cv:
            ends = sorted(t1 for t0, t1, rc in self.load.probes
                          if rc == 0 and t_down <= t0 and t1 <= t_back)
        gap = max((b - a for a, b in zip([t_down] + ends, ends + [t_back])), default=None)
        self.etcd_bounce = {"member": i, "down_s": t_back - t_stopped, "puts": len(ends),
                            "longest_gap_s": gap, "leader_changed": new_epoch != epoch}
        self.note(f"etcd: member {i} (the etcd leader) stopped for {t_back - t_stopped:.1f} s and "
                  f"started again: {len(ends)} probe puts acknowledged meanwhile, longest gap "
                  f"between them {gap:.2f} s; kvcached leader "
                  + ("unchanged" if new_epoch == epoch else
                     f"changed to {leader.name} (epoch {epoch} -> {new_epoch})"))
        if not ends:
            self.violation(f"no put was acknowledged while etcd member {i} was down")
        self.check("the etcd member's restart")

    def finish(self):
        self.stop_load()
        for w in self.load.wrong:
            self.violation(f"a load read returned wrong bytes: {w}")
        self.wait_settled(SETTLE_TIMEOUT_S)
        self.check_one_leader("at the end")
        self.check("the end", final=True)

    def run(self, kills=5, freeze=True, etcd=True, writers=3):
        """The whole scenario; returns summary(). Raises ScenarioError when it cannot
        go on; violations of the oracle are in summary()["violations"]."""
        try:
            self.start(writers)
            for n in range(1, kills + 1):
                self.kill_leader(n)
            if freeze:
                self.freeze_leader()
            if etcd:
                self.bounce_etcd()
            self.finish()
        except BaseException:
            self.failed = True
            self.out(f"the scenario stopped early; the logs will be kept in {self.work}")
            raise
        return self.summary()

    # -- the summary --

    def step_downs(self):
        """The "stepping down as leader" lines of every master process's log."""
        out = []
        for m in self.masters:
            for p in m.retired + ([m.proc] if m.proc else []):
                out += [f"{m.name}: {line}" for line in p.log().splitlines()
                        if "stepping down as leader" in line]
        return out

    def summary(self):
        gets, get_errors = self.load.get_counts()
        with self.load.cv:
            probes_ok = sum(1 for p in self.load.probes if p[2] == 0)
            probes = len(self.load.probes)
            puts = dict(self.load.puts)
            put_errors = dict(self.load.put_errors)
            budget_spent = sorted(self.load.budget_spent)
        return {
            "failovers_s": list(self.failovers),
            "failover_median_s": statistics.median(self.failovers) if self.failovers else None,
            "freeze": getattr(self, "freeze", None),
            "etcd": getattr(self, "etcd_bounce", None),
            "puts": puts, "put_errors": put_errors,
            "probes": {"ok": probes_ok, "failed": probes - probes_ok},
            "gets": gets, "get_errors": get_errors,
            "checks": list(self.checks),
            "lost": sum(c["lost"] for c in self.checks),
            "wrong": gets["wrong"] + sum(c["wrong"] for c in self.checks) + (
                getattr(self, "unacked", {}).get("wrong", 0)),
            "unacked": getattr(self, "unacked", None),
            "budget_spent": budget_spent,
            "step_downs": self.step_downs(),
            "violations": list(self.violations),
            "work_dir": self.work,
        }


def format_summary(s):
    lines = ["", "==== summary ===="]
    f = s["failovers_s"]
    if f:
        lines.append("failover after kill -9 (SIGKILL of the leader to the first acknowledged "
                     "put through the new leader), each: " + ", ".join(f"{x:.2f} s" for x in f))
        lines.append(f"failover median: {s['failover_median_s']:.2f} s over {len(f)} kills "
                     f"(min {min(f):.2f} s, max {max(f):.2f} s)")
    fr = s["freeze"]
    if fr:
        lines.append(f"SIGSTOP of the leader ({fr['frozen_s']:.1f} s): new leader after "
                     f"{fr['elected_s']:.2f} s, old leader stepped down: "
                     f"{'yes' if fr['stepped_down'] else 'NO'}, exactly one leader after: "
                     f"{'yes' if fr['one_leader'] else 'NO'}, first acknowledged put after "
                     f"{fr['outage_s']:.2f} s")
    e = s["etcd"]
    if e:
        lines.append(f"etcd member down {e['down_s']:.1f} s: {e['puts']} probe puts acknowledged "
                     f"meanwhile, longest gap {e['longest_gap_s']:.2f} s, kvcached leader "
                     f"{'changed' if e['leader_changed'] else 'unchanged'}")
    lines.append(f"load puts: {s['puts']['ok']} ok, {s['puts']['failed']} failed; probe puts: "
                  f"{s['probes']['ok']} ok, {s['probes']['failed']} failed"
                  + (f"; put errors by code: {s['put_errors']}" if s["put_errors"] else ""))
    g = s["gets"]
    lines.append(f"load gets: {g['exact']} exact, {g['miss']} miss, {g['error']} error, "
                 f"{g['wrong']} wrong" + (f"; errors by code: {s['get_errors']}"
                                          if s["get_errors"] else ""))
    if s["budget_spent"]:
        lines.append(f"stopped putting at their byte budget: {', '.join(s['budget_spent'])}")
    c = s["checks"]
    if c:
        lines.append(f"full checks of the acknowledged set: {len(c)} (after every fault and at "
                     f"the end), up to {max(x['objects'] for x in c)} objects: {s['lost']} lost, "
                     f"{sum(x['wrong'] for x in c)} wrong, {sum(x['error'] for x in c)} unreadable")
    u = s["unacked"]
    if u:
        lines.append(f"keys of failed puts read back: {u['objects']}: {u['exact']} exact, "
                     f"{u['absent']} absent, {u['wrong']} wrong, {u['error']} unreadable")
    forced = 1 if s["freeze"] and s["freeze"]["stepped_down"] else 0
    others = len(s["step_downs"]) - forced
    lines.append(f"leader step-downs: {len(s['step_downs'])}"
                 + (" (the frozen leader's)" if forced and not others else "")
                 + (f", {others} not caused by a SIGSTOP (etcd could not renew the lease in "
                    f"time):\n  " + "\n  ".join(s["step_downs"]) if others > 0 else ""))
    lines.append(f"lost: {s['lost']}, wrong: {s['wrong']}")
    lines.append("violations: " + ("none" if not s["violations"] else
                                   "\n  " + "\n  ".join(s["violations"])))
    lines.append("RESULT: " + ("PASS" if not s["violations"] else
                               f"FAIL (logs kept in {s['work_dir']})"))
    return "\n".join(lines)


def main(argv):
    if argv and argv[0] == "client":
        client_main(argv[1:])
        return 0
    p = argparse.ArgumentParser(
        description="The HA failover scenario and benchmark (see the module's text).")
    p.add_argument("--kills", type=int, default=5, help="leader kills (SIGKILL)")
    p.add_argument("--lease", default="2s", help="the masters' --etcd-lease-ttl")
    p.add_argument("--segment-size", default="64MiB", help="each of the three stores'")
    p.add_argument("--writers", type=int, default=3)
    p.add_argument("--netns", action="store_true", help="each process in a network namespace "
                   "of its own (root)")
    p.add_argument("--no-freeze", action="store_true", help="skip the SIGSTOP of a leader")
    p.add_argument("--no-etcd", action="store_true", help="skip the etcd member's stop")
    p.add_argument("--keep-logs", action="store_true", help="keep every process's log in the "
                   "work dir (it is kept anyway when something failed)")
    args = p.parse_args(argv)
    print(f"$ python3 {sys.argv[0]} {' '.join(argv)}")
    print(f"kvcached: {os.environ.get('KVCACHED_BIN') or shutil.which('kvcached')}; machine: "
          f"{os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (not controlled)", flush=True)
    sc = HaScenario(lease=args.lease, segment_size=args.segment_size, netns=args.netns,
                    out=lambda line: print(line, flush=True), keep_logs=args.keep_logs)
    try:
        summary = sc.run(kills=args.kills, freeze=not args.no_freeze, etcd=not args.no_etcd,
                         writers=args.writers)
    except RuntimeError as e:  # ScenarioError, or a process that would not start
        print(f"the scenario could not go on: {e}\nlogs kept in {sc.work}", flush=True)
        return 2
    finally:
        sc.stop()
    print(format_summary(summary))
    if args.keep_logs:
        print(f"logs: {sc.work}")
    return 0 if not summary["violations"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
