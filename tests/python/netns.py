"""Network namespaces for tests that need several hosts on one machine (root only).

NetNamespaces(["a", "b"]) creates one network namespace per name and a hub
namespace holding a bridge; each namespace gets a veth pair whose other end
is a port of that bridge, an address 10.X.Y.N/24 and its loopback up. The
hub is a namespace of its own, so the root namespace's interfaces, addresses
and routes are untouched: the namespaces reach each other, the root
namespace does not reach them (nor they it).

    ns = NetNamespaces(["a", "b"])
    server = ns.popen("a", ["python3", "-m", "http.server", "--bind", ns.address("a"), "8000"])
    ns.run("b", ["curl", f"http://{ns.address('a')}:8000/"])
    ns.call("b", urllib.request.urlopen, f"http://{ns.address('a')}:8000/")  # in this process
    ns.close()  # also at exit; idempotent

Names get a per-run prefix (kvc<pid>-<n>-<name>), so concurrent runs and
earlier runs' leftovers do not clash; the namespaces of runs whose process
is gone are removed when a NetNamespaces is made. Interface names are local
to each namespace ("eth0" in a member, "v<index>" and "br0" in the hub), so
they stay far below the kernel's 15 characters whatever the names."""

import atexit
import ctypes
import ipaddress
import itertools
import json
import os
import re
import signal
import subprocess
import threading

IP = "ip"
CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"  # where `ip netns add` mounts the namespaces it names
# `ip netns add` makes NETNS_RUN_DIR a mount point (bound on itself) the first
# time; when the tests did that, they undo it once no namespace is left, so a
# chroot the suite ran in can be removed (../shared/tools/fresh-root.sh).
def _is_mount_point(path):
    """From /proc/self/mountinfo (os.path.ismount misses a bind of a directory
    on itself, which is what `ip netns add` makes)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return any(line.split()[4] == path for line in f if len(line.split()) > 4)
    except OSError:
        return False


_RUN_DIR_WAS_MOUNTED = _is_mount_point(NETNS_RUN_DIR)


def in_netns_cmd(full_name):
    """The argv prefix that runs a command in network namespace `full_name`.
    nsenter enters the network namespace only; `ip netns exec` and `ip -n`
    also make a mount namespace (mount --make-rslave /), which fails where /
    is not a mount point (a fresh chroot)."""
    return ["nsenter", f"--net={os.path.join(NETNS_RUN_DIR, full_name)}"]
_PREFIX_RE = re.compile(r"^kvc(\d+)-\d+")  # kvc<pid>-<n>[-<name>]
_NAME_RE = re.compile(r"^[a-z0-9]{1,16}$")
_instances = itertools.count()


class NetnsError(RuntimeError):
    pass


def tool_env():
    """The environment for a system tool (ip, etcd, python3) a test runs:
    LD_PRELOAD is for this python3 (a sanitizer runtime in the sanitizer
    tree), and ASan aborts inside iproute2 when it follows into `ip`."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def _ip(*args, check=True):
    out = subprocess.run([IP, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=30, env=tool_env())
    if check and out.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed ({out.returncode}): {out.stderr.strip()}")
    return out


def _ip_in(full_name, *args, check=True):
    """`ip ARGS` inside the network namespace `full_name`."""
    out = subprocess.run(in_netns_cmd(full_name) + [IP, *args], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=30, env=tool_env())
    if check and out.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` in {full_name} failed ({out.returncode}): "
                         f"{out.stderr.strip()}")
    return out


def can_use_netns():
    """(True, "") where this process can create network namespaces (root, iproute2,
    `ip netns add` allowed), else (False, why)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root (run the tests as root)"
    try:
        _ip("-V")
    except FileNotFoundError:
        return False, "the `ip` command is missing: apt-get install iproute2"
    probe = f"kvc{os.getpid()}-probe"
    out = _ip("netns", "add", probe, check=False)
    if out.returncode != 0:
        return False, f"`ip netns add` is not allowed here: {out.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    _release_run_dir()
    return True, ""


def _release_run_dir():
    """Unmounts NETNS_RUN_DIR when the tests made it a mount point and no
    namespace is left in it (a busy one stays mounted)."""
    if _RUN_DIR_WAS_MOUNTED:
        return
    for _ in range(3):  # a bind on itself may be stacked
        try:
            if not _is_mount_point(NETNS_RUN_DIR) or os.listdir(NETNS_RUN_DIR):
                return
        except OSError:
            return
        if subprocess.run(["umount", NETNS_RUN_DIR], capture_output=True).returncode != 0:
            return


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_names():
    out = _ip("-j", "netns", "list", check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return []
    return [entry["name"] for entry in json.loads(out.stdout)]


def _delete_netns(full_name):
    """Kills what still runs in the namespace, then removes it (its veth goes with it)."""
    out = _ip("netns", "pids", full_name, check=False)
    for pid in out.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", full_name, check=False)


def remove_stale_namespaces():
    """Removes the namespaces an earlier run left behind (killed before its close())."""
    for name in _netns_names():
        m = _PREFIX_RE.match(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            _delete_netns(name)


def _used_networks():
    """The IPv4 networks of this (root) namespace's routes, in all tables, and addresses."""
    nets = []
    routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]")
    for r in routes:
        dst = r.get("dst", "")
        if dst and dst != "default":
            nets.append(ipaddress.ip_network(dst, strict=False))
    for link in json.loads(_ip("-j", "-4", "addr").stdout or "[]"):
        for a in link.get("addr_info", []):
            nets.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return nets


def _pick_subnet():
    """A 10.X.Y.0/24 that overlaps no route or address of the root namespace. The
    hub is isolated, so a clash would not break the namespaces' own traffic; a
    distinct subnet keeps addresses in logs unambiguous and leaves room to route
    the subnet from the root namespace later. X, Y start from the pid so that
    concurrent runs tend to differ."""
    used = _used_networks()
    start = os.getpid() % (55 * 256)
    for i in range(55 * 256):
        k = (start + i) % (55 * 256)
        net = ipaddress.ip_network(f"10.{200 + k // 256}.{k % 256}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetnsError("no free 10.200-254.x.0/24 subnet: every one overlaps a route")


def run_in_netns(full_name, fn, *args, **kwargs):
    """fn(*args, **kwargs) in a thread of this process that has entered the
    network namespace `full_name` (setns applies to the calling thread only),
    so sockets fn opens live there; returns its result or raises its exception."""
    result = {}

    def body():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(os.path.join(NETNS_RUN_DIR, full_name), os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise NetnsError(f"setns({full_name}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller's thread
            result["error"] = e

    t = threading.Thread(target=body, name=f"netns-{full_name}")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


class NetNamespaces:
    """Namespaces `names` on a bridge in a hub namespace; see the module's text."""

    def __init__(self, names):
        names = list(names)
        ok, why = can_use_netns()
        if not ok:
            raise NetnsError(why)
        bad = [n for n in names if not _NAME_RE.match(n)]
        if bad or len(set(names)) != len(names) or not names:
            raise NetnsError(f"names must be distinct, non-empty, [a-z0-9]{{1,16}}: {names}")
        if len(names) > 250:
            raise NetnsError("at most 250 namespaces on one /24")
        remove_stale_namespaces()
        self.hub = f"kvc{os.getpid()}-{next(_instances)}"
        self.names = names
        self.subnet = _pick_subnet()
        hosts = list(self.subnet.hosts())
        self._address = {n: str(hosts[i]) for i, n in enumerate(names)}
        self._created = []  # full names, the hub first: removed in reverse order
        self._procs = []
        self._closed = False
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self):
        _ip("netns", "add", self.hub)
        self._created.append(self.hub)
        _ip_in(self.hub, "link", "set", "lo", "up")
        # No STP: a port forwards as soon as it is up (no listening/learning delay).
        _ip_in(self.hub, "link", "add", "br0", "type", "bridge", "stp_state", "0")
        _ip_in(self.hub, "link", "set", "br0", "up")
        for i, name in enumerate(self.names):
            full = self.full(name)
            _ip("netns", "add", full)
            self._created.append(full)
            # Both ends are made in place: the pair is created in the hub and its
            # peer moved straight into the member, so no interface ever appears
            # in the root namespace.
            port = f"v{i}"
            _ip_in(self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", full)
            _ip_in(self.hub, "link", "set", port, "master", "br0", "up")
            _ip_in(full, "link", "set", "lo", "up")
            _ip_in(full, "addr", "add", f"{self._address[name]}/{self.subnet.prefixlen}",
                "dev", "eth0")
            _ip_in(full, "link", "set", "eth0", "up")

    def full(self, name):
        """The namespace's name for `ip netns` (kvc<pid>-<n>-<name>)."""
        if name not in self._address:
            raise KeyError(f"no namespace {name!r} (have {self.names})")
        return f"{self.hub}-{name}"

    def address(self, name):
        """The namespace's IPv4 address on the bridge, as a string."""
        self.full(name)
        return self._address[name]

    def prefix_cmd(self, name):
        """The argv prefix that runs a command in the namespace."""
        return in_netns_cmd(self.full(name))

    def popen(self, name, argv, **kw):
        """subprocess.Popen of argv in the namespace; close() ends it if still running.
        nsenter execs the command, so the Popen's pid is the command's."""
        kw.setdefault("env", tool_env())
        p = subprocess.Popen(self.prefix_cmd(name) + list(argv), **kw)
        self._procs.append(p)
        return p

    def run(self, name, argv, **kw):
        """subprocess.run of argv in the namespace (default: text output captured,
        60 s timeout, no check)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("env", tool_env())
        return subprocess.run(self.prefix_cmd(name) + list(argv), **kw)

    def call(self, name, fn, *args, **kwargs):
        """fn(*args, **kwargs) in this process, with its sockets in the namespace."""
        return run_in_netns(self.full(name), fn, *args, **kwargs)

    def close(self):
        """Ends the processes popen started, removes every namespace (their veths
        and the bridge go with them). Idempotent; registered with atexit."""
        if self._closed:
            return
        self._closed = True
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for full in reversed(self._created):
            _delete_netns(full)
        self._created = []
        _release_run_dir()
        atexit.unregister(self.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
