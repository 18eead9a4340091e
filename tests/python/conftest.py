"""Harness of the Python client's tests: starts the real `kvcached master` and
`kvcached store` on free loopback ports, waits for each one's readiness
signal (the sd_notify READY=1 datagram on a NOTIFY_SOCKET the test owns,
whose STATUS names the listening addresses), and makes `import kvcached`
load python/kvcached from this checkout with the library in
$KVCACHED_LIBRARY (ctest sets it to the build's libkvcached.so)."""

import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import json
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON_DIR = os.path.join(REPO, "python")
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

BIN = os.environ.get("KVCACHED_BIN") or shutil.which("kvcached")
HOST_ID = "pytest-host"  # stores and clients share it: same-host clients use shared memory
START_TIMEOUT_S = 20


def pytest_collection_modifyitems(config, items):
    if not BIN:
        skip = pytest.mark.skip(reason="no kvcached binary: set KVCACHED_BIN")
        for item in items:
            item.add_marker(skip)


class Proc:
    """One kvcached process, its stderr captured, its STATUS parsed at READY=1."""

    def __init__(self, args, command=None, env_extra=None):
        """`command` (default: the kvcached binary) runs with `args`; a
        program that execs kvcached (python -m mooncake.http_metadata_server)
        signals readiness the same way, through the inherited NOTIFY_SOCKET."""
        self.args = args
        self.argv = list(command or [BIN]) + list(args)
        self.tmp = tempfile.mkdtemp(prefix="kvcached-py-")
        self.notify_path = os.path.join(self.tmp, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.log_path = os.path.join(self.tmp, "stderr.log")
        self.stderr = open(self.log_path, "wb")
        env = daemon_env()
        env["NOTIFY_SOCKET"] = self.notify_path
        env.update(env_extra or {})
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr, env=env)
        self.status = self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        self.notify.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                msg = self.notify.recv(4096).decode()
            except socket.timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{' '.join(self.argv)} exited with "
                                       f"{self.proc.returncode} before ready:\n{self.log()}")
                continue
            fields = dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)
            if fields.get("READY") == "1":
                return fields.get("STATUS", "")
        raise RuntimeError(f"{' '.join(self.argv)} not ready in time:\n{self.log()}")

    def address(self, word):
        m = re.search(word + r" (?:http://|tcp://)?([0-9.]+:[0-9]+)", self.status)
        assert m, f"no {word} address in {self.status!r}"
        return m.group(1)

    def log(self):
        self.stderr.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.notify.close()
        self.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def daemon_env():
    """The environment for a kvcached process a test starts: LD_PRELOAD is
    for this python3 (a sanitizer runtime under a sanitized library), not for
    the daemons, and no client variable of the test leaks into them."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("KVCACHED_", "MOONCAKE_", "SGLANG_", "LD_PRELOAD"))}


def metrics(proc):
    """`proc`'s admin /metrics: series (name with its labels) -> value."""
    url = "http://" + proc.address("admin") + "/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def metric(proc, name, segment=None):
    """One series of `proc`'s /metrics (of `segment`, when given); it must be there."""
    m = metrics(proc)
    series = name if segment is None else f'{name}{{segment="{segment}"}}'
    assert series in m, f"no series {series} on {proc.address('admin')}/metrics"
    return m[series]


def segments(cluster):
    """The master's /api/v1/segments: name -> segment record."""
    url = "http://" + cluster.master.address("admin") + "/api/v1/segments"
    with urllib.request.urlopen(url, timeout=10) as r:
        return {s["name"]: s for s in json.loads(r.read())["segments"]}


def tails(*procs, chars=4000):
    """The ends of `procs`' logs, for a failure message."""
    return "".join(f"\n--- {p.argv[1]} log (tail) ---\n{p.log()[-chars:]}" for p in procs)


WAIT_S = 60  # wait_for's default: generous for a loaded 2-core machine


def wait_for(what, predicate, timeout_s=WAIT_S, logs=(), state=None):
    """Polls `predicate` until it returns something true, and returns that;
    fails at the deadline naming `what`, the last thing it returned,
    `state()` (what the reader needs to see) and the tails of the `logs`
    processes' logs."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            shown = f"; {state()}" if state else ""
            pytest.fail(f"not within {timeout_s} s: {what} (last: {got!r}{shown}){tails(*logs)}")
        time.sleep(0.05)  # poll interval


class Cluster:
    """A master and stores on loopback."""

    def __init__(self, extra=(), master_extra=()):
        self.extra = list(extra)  # flags for the master and every store (--token-file)
        self.master = Proc(["master", "--port", "0", "--admin-port", "0", "--no-meta"]
                           + self.extra + list(master_extra))
        self.rpc = self.master.address("rpc")
        self.stores = []

    def add_store(self, size="256MiB", name=None):
        name = name or f"py-seg-{len(self.stores)}-{os.getpid()}"
        store = Proc(["store", "--master", self.rpc, "--segment-size", size, "--segment-name",
                      name, "--host-id", HOST_ID, "--ping-interval", "200ms", "--threads", "2"]
                     + self.extra)
        store.segment = name
        self.stores.append(store)
        return store

    def stop(self):
        for s in self.stores:
            s.stop()
        self.master.stop()

    def setup_args(self, segment_size=0):
        """Mooncake's seven setup() arguments for a client of this cluster."""
        return (HOST_ID, "P2PHANDSHAKE", segment_size, 16 << 20, "tcp", "", self.rpc)


@pytest.fixture(scope="session")
def cluster():
    """A master with one 256 MiB store, shared by the tests of the session
    (each test uses keys of its own)."""
    c = Cluster()
    c.add_store("256MiB")
    yield c
    c.stop()


@pytest.fixture
def fresh_cluster():
    """fresh_cluster(size) -> a cluster of its own with one store of `size`."""
    made = []

    def make(size="64MiB", extra=(), master_extra=()):
        c = Cluster(extra, master_extra)
        c.add_store(size)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


@pytest.fixture
def store(cluster):
    """A MooncakeDistributedStore set up against the session cluster."""
    from kvcached import MooncakeDistributedStore
    s = MooncakeDistributedStore()
    assert s.setup(*cluster.setup_args()) == 0
    yield s
    s.close()


@pytest.fixture
def prefix(request):
    """Keys unique to the test."""
    return f"{request.node.name}-{time.monotonic_ns()}-"


def odirect_dir(prefix):
    """Yields an empty directory under /var/tmp on a file system that takes
    O_DIRECT (a disk tier's file needs one), removed afterwards; skips the
    test, saying why, when /var/tmp refuses O_DIRECT."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")
    probe = os.path.join(path, "probe")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    except OSError as e:
        shutil.rmtree(path, ignore_errors=True)
        if e.errno == errno.EINVAL:
            pytest.skip(f"/var/tmp refuses O_DIRECT ({e}): the disk tier needs a disk there")
        raise
    os.close(fd)
    os.unlink(probe)
    yield path
    shutil.rmtree(path, ignore_errors=True)
