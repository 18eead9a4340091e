"""A real etcd cluster for tests (Debian's etcd-server: /usr/bin/etcd, 3.4).

    c = EtcdCluster(members=3)
    etcd_put(c.endpoints[0], "k", "v")
    assert etcd_get(c.endpoints[1], "k") == b"v"
    c.stop_member(0)          # SIGTERM; c.kill_member(0) is SIGKILL
    c.start_member(0)         # same data dir and ports, rejoins, waits until ready
    c.stop()                  # every member (SIGKILL); temp dirs removed

Each member listens on free ports of its host (127.0.0.1 by default), keeps
its data in a temp dir of its own and logs to a file (c.log(i)); the cluster
token is unique to the cluster. With hosts=[...] and netns=[...] member i
listens on hosts[i] inside network namespace netns[i] (a full `ip netns` name,
see netns.NetNamespaces.full; None: the root namespace).

Readiness is etcd's own signal, not a sleep: etcd runs as a systemd
Type=notify service and sends READY=1 to $NOTIFY_SOCKET once it has joined
the cluster (it published itself through the raft log, so a leader exists
and a quorum is up) and serves clients. Each member gets a datagram socket
the cluster owns as NOTIFY_SOCKET (a filesystem path, so it works from
inside a network namespace too). Then GET /health, which in 3.4 reads
through raft, must answer {"health":"true"}; it is polled with a deadline.

The members of a new cluster only become ready together (none is ready
before a quorum is up), so they are started together and waited for
together. A port picked free can be taken before etcd binds it: a start that
fails with "address already in use" is retried with new ports.

etcd_get / etcd_put / etcd_delete / etcd_get_prefix / etcd_status talk to a
member through etcd's v3 JSON gateway (POST /v3/kv/..., base64 keys and
values) with urllib; netns= runs the call inside that network namespace."""

import base64
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

from netns import in_netns_cmd, run_in_netns, tool_env

ETCD = "/usr/bin/etcd"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
START_ATTEMPTS = 3


class EtcdError(RuntimeError):
    pass


def etcd_available():
    """(True, "") where /usr/bin/etcd runs, else (False, why)."""
    if not os.access(ETCD, os.X_OK):
        return False, (f"{ETCD} is missing: apt-get install --no-install-recommends etcd-server "
                       "(scripts/quickstart.sh test installs it)")
    try:
        out = subprocess.run([ETCD, "--version"], capture_output=True, text=True, timeout=30,
                             env=tool_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{ETCD} --version failed: {e}"
    if out.returncode != 0 or "etcd Version: 3." not in out.stdout:
        return False, f"{ETCD} --version: not an etcd 3.x: {out.stdout}{out.stderr}"
    return True, ""


def free_ports(n, host="127.0.0.1"):
    """n distinct ports that were free on host: all are held open together while
    picking, so they differ; another process may still take one before it is used."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---- the v3 JSON gateway ------------------------------------------------------

def _b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def _post(endpoint, path, body, timeout):
    req = urllib.request.Request(f"http://{endpoint}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        raise EtcdError(f"POST {endpoint}{path}: HTTP {e.code}: "
                        f"{e.read().decode(errors='replace')}") from e


def _in(netns, fn, *args):
    return run_in_netns(netns, fn, *args) if netns else fn(*args)


def etcd_put(endpoint, key, value, netns=None, timeout=5):
    """Puts key=value (str or bytes); returns the revision of the write."""
    out = _in(netns, _post, endpoint, "/v3/kv/put", {"key": _b64(key), "value": _b64(value)},
              timeout)
    return int(out["header"]["revision"])


def etcd_get(endpoint, key, netns=None, timeout=5):
    """The value of key as bytes (linearizable read), None where the key is absent."""
    out = _in(netns, _post, endpoint, "/v3/kv/range", {"key": _b64(key)}, timeout)
    kvs = out.get("kvs", [])
    if not kvs:
        return None
    return base64.b64decode(kvs[0].get("value", ""))  # an empty value is left out of the JSON


def etcd_get_prefix(endpoint, prefix, netns=None, timeout=5):
    """{key: value} (bytes) of every key that starts with prefix."""
    p = prefix.encode() if isinstance(prefix, str) else prefix
    # range_end = the prefix with its last byte incremented (etcd's "prefix" range);
    # a prefix of 0xff bytes only, or an empty one, ranges to the end ("\0").
    end = p.rstrip(b"\xff")
    end = end[:-1] + bytes([end[-1] + 1]) if end else b"\0"
    out = _in(netns, _post, endpoint, "/v3/kv/range", {"key": _b64(p or b"\0"),
                                                       "range_end": _b64(end)}, timeout)
    return {base64.b64decode(kv["key"]): base64.b64decode(kv.get("value", ""))
            for kv in out.get("kvs", [])}


def etcd_delete(endpoint, key, netns=None, timeout=5):
    """Deletes key; returns how many keys were deleted (0 or 1)."""
    out = _in(netns, _post, endpoint, "/v3/kv/deleterange", {"key": _b64(key)}, timeout)
    return int(out.get("deleted", 0))


def etcd_status(endpoint, netns=None, timeout=5):
    """The member's status (/v3/maintenance/status): "leader" is the id of the
    leader it knows (0: none), "header"."member_id" its own id (decimal strings)."""
    return _in(netns, _post, endpoint, "/v3/maintenance/status", {}, timeout)


def etcd_health(endpoint, netns=None, timeout=2):
    """True where GET /health answers {"health":"true"} (a read through raft)."""
    def get():
        try:
            with urllib.request.urlopen(f"http://{endpoint}/health", timeout=timeout) as resp:
                return json.loads(resp.read()).get("health") == "true"
        except (OSError, ValueError):  # refused, timed out, HTTP 503, not JSON
            return False
    return _in(netns, get)


# ---- the cluster ----------------------------------------------------------------

class _Member:
    def __init__(self, index, host, netns, root):
        self.index = index
        self.name = f"m{index}"
        self.host = host
        self.netns = netns
        self.dir = os.path.join(root, self.name)
        os.makedirs(self.dir)
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "etcd.log")
        self.notify_path = os.path.join(self.dir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.client_port = self.peer_port = None
        self.proc = None

    @property
    def endpoint(self):
        return f"{self.host}:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://{self.host}:{self.peer_port}"

    def running(self):
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """`members` etcd members forming one cluster; see the module's text."""

    def __init__(self, members=3, hosts=None, netns=None, heartbeat_ms=100, election_ms=1000,
                 start_timeout=START_TIMEOUT_S):
        ok, why = etcd_available()
        if not ok:
            raise EtcdError(why)
        hosts = list(hosts) if hosts is not None else ["127.0.0.1"] * members
        netns = list(netns) if netns is not None else [None] * members
        if len(hosts) != members or len(netns) != members:
            raise EtcdError(f"hosts and netns need {members} entries: {hosts} {netns}")
        if any(netns) and os.geteuid() != 0:
            raise EtcdError("members in network namespaces need root")
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.start_timeout = start_timeout
        self.token = f"kvcached-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.tmp = tempfile.mkdtemp(prefix="kvcached-etcd-")
        self.members = []
        try:
            for i in range(members):
                self.members.append(_Member(i, hosts[i], netns[i], self.tmp))
            self._start_new()
        except BaseException:
            self.stop()
            raise

    # -- what tests use --

    @property
    def endpoints(self):
        """Each member's client address, "host:port" (http)."""
        return [m.endpoint for m in self.members]

    def endpoint_string(self, sep=";"):
        return sep.join(self.endpoints)

    def log(self, i):
        with open(self.members[i].log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def logs(self):
        return "\n".join(f"---- etcd member {m.index} ({m.endpoint}) ----\n{self.log(m.index)}"
                         for m in self.members)

    def healthy(self, i):
        """Member i runs and answers {"health":"true"} (it reads through a quorum)."""
        m = self.members[i]
        return m.running() and etcd_health(m.endpoint, m.netns)

    def running(self, i):
        return self.members[i].running()

    def leader(self):
        """Index of the member every running member names as leader; None while
        they do not agree or none is elected."""
        ids, leader = set(), None
        for m in self.members:
            if not m.running():
                continue
            try:
                st = etcd_status(m.endpoint, m.netns, timeout=2)
            except (OSError, EtcdError, ValueError):
                return None
            ids.add(st.get("leader", "0"))
            if st["header"]["member_id"] == st.get("leader"):
                leader = m.index
        return leader if len(ids) == 1 else None

    def wait_leader(self, timeout=START_TIMEOUT_S):
        """Polls leader() until the running members agree on one; returns its index."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            i = self.leader()
            if i is not None:
                return i
            time.sleep(0.1)
        raise EtcdError(f"no leader the running members agree on in {timeout} s\n{self.logs()}")

    def stop_member(self, i, timeout=STOP_TIMEOUT_S):
        """SIGTERM, wait; SIGKILL after timeout. A leader stopped this way first
        hands leadership to a follower (so the others need no election); one whose
        followers are gone tries that until etcd's request timeout (7 s here)."""
        self._signal(self.members[i], signal.SIGTERM, timeout)

    def kill_member(self, i):
        self._signal(self.members[i], signal.SIGKILL, STOP_TIMEOUT_S)

    def start_member(self, i, wait=True):
        """Restarts a stopped member on its data dir and ports
        (--initial-cluster-state existing). wait=False returns at once: start a
        quorum's worth of stopped members first, then wait_ready() each."""
        m = self.members[i]
        if m.running():
            raise EtcdError(f"etcd member {i} is running")
        self._spawn(m, "existing")
        if wait:
            self.wait_ready(i)

    def wait_ready(self, i, timeout=None):
        """Waits for member i's READY=1, then for /health to say true."""
        m = self.members[i]
        deadline = time.monotonic() + (timeout or self.start_timeout)
        self._wait_notify([m], deadline)
        self._wait_health(m, deadline)

    def stop(self):
        """Ends every member and removes the temp dirs. Idempotent. SIGKILL: the
        data goes away with the cluster, and a graceful stop of members one by
        one can stall for etcd's request timeout (7 s here) where the last
        leader tries to hand leadership to members already gone."""
        for m in self.members:
            self._signal(m, signal.SIGKILL, STOP_TIMEOUT_S)
            m.notify.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- starting --

    def _start_new(self):
        for attempt in range(1, START_ATTEMPTS + 1):
            for m in self.members:
                m.client_port, m.peer_port = free_ports(2)
            for m in self.members:
                self._spawn(m, "new")
            try:
                deadline = time.monotonic() + self.start_timeout
                self._wait_notify(self.members, deadline)
                for m in self.members:
                    self._wait_health(m, deadline)
                return
            except EtcdError:
                port_taken = any("address already in use" in self.log(m.index)
                                 for m in self.members)
                if not port_taken or attempt == START_ATTEMPTS:
                    raise
            # A port was taken between picking and binding: start over from
            # empty data dirs, with new ports.
            for m in self.members:
                self._signal(m, signal.SIGKILL, STOP_TIMEOUT_S)
                shutil.rmtree(m.data_dir, ignore_errors=True)
                with open(m.log_path, "a") as f:
                    f.write("\n==== kvcached test: port taken, starting over ====\n")

    def _argv(self, m, state):
        cluster = ",".join(f"{o.name}={o.peer_url}" for o in self.members)
        argv = [ETCD,
                "--name", m.name,
                "--data-dir", m.data_dir,
                "--listen-client-urls", f"http://{m.endpoint}",
                "--advertise-client-urls", f"http://{m.endpoint}",
                "--listen-peer-urls", m.peer_url,
                "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", cluster,
                "--initial-cluster-state", state,
                "--initial-cluster-token", self.token,
                "--heartbeat-interval", str(self.heartbeat_ms),
                "--election-timeout", str(self.election_ms),
                "--logger", "zap", "--log-outputs", "stderr"]
        if m.netns:
            argv = in_netns_cmd(m.netns) + argv  # it execs etcd: same pid
        return argv

    def _spawn(self, m, state):
        # Datagrams of an earlier run of this member must not count as this one's READY.
        m.notify.setblocking(False)  # select() waits for the next ones
        try:
            while True:
                m.notify.recv(4096)
        except BlockingIOError:
            pass
        # No ETCD_* variable of the caller may configure the member (etcd reads
        # them like flags); LD_PRELOAD is for this python3 (a sanitizer runtime).
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ETCD", "LD_PRELOAD", "NOTIFY_SOCKET", "KVCACHED_"))}
        env["NOTIFY_SOCKET"] = m.notify_path
        with open(m.log_path, "ab") as log:
            m.proc = subprocess.Popen(self._argv(m, state), stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=log, env=env)

    def _wait_notify(self, members, deadline):
        """Waits for READY=1 from each of `members`, all at once: a member that
        exits fails the wait at once, even while the others wait for a quorum."""
        waiting = {m.notify: m for m in members}
        while waiting:
            for m in waiting.values():
                if m.proc.poll() is not None:
                    raise EtcdError(f"etcd member {m.index} exited with {m.proc.returncode} "
                                    f"before READY=1\n{self.logs()}")
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(str(m.index) for m in waiting.values())
                raise EtcdError(f"etcd members {names} sent no READY=1 in time\n{self.logs()}")
            readable, _, _ = select.select(list(waiting), [], [], min(left, 0.2))
            for sock in readable:
                msg = sock.recv(4096).decode(errors="replace")
                if "READY=1" in msg.split("\n"):
                    del waiting[sock]

    def _wait_health(self, m, deadline):
        while time.monotonic() < deadline:
            if etcd_health(m.endpoint, m.netns, timeout=1):
                return
            if m.proc.poll() is not None:
                raise EtcdError(f"etcd member {m.index} exited with {m.proc.returncode}"
                                f"\n{self.logs()}")
            time.sleep(0.1)  # poll interval of a deadline-bound poll
        raise EtcdError(f"etcd member {m.index} not healthy in time\n{self.logs()}")

    def _signal(self, m, sig, timeout):
        if not m.running():
            return
        m.proc.send_signal(sig)
        try:
            m.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
