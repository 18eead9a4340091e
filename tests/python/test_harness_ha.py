"""The harness of the high-availability tests, tested on its own: a real
three-member etcd cluster (etcd_cluster.py) elects a leader and serves writes
and reads through its v3 JSON gateway, keeps serving while a member is down
and takes the member back with what it missed; network namespaces
(netns.py) reach each other over TCP through their bridge while the root
namespace's own networking stays as it was; etcd members inside namespaces
form a cluster that a client in another namespace uses.

These need root (namespaces) and etcd-server. Where they are missing the
tests fail (KVCACHED_NO_SKIPS=1, as scripts/quickstart.sh runs the suite) or,
without KVCACHED_NO_SKIPS, skip with the reason."""

import json
import os
import select
import subprocess
import sys
import textwrap

import pytest

from etcd_cluster import (EtcdCluster, etcd_available, etcd_delete, etcd_get, etcd_get_prefix,
                          etcd_put)
from netns import NetNamespaces, can_use_netns, tool_env

PYTHON = sys.executable


def require(check):
    """check is (ok, why): fail with why under KVCACHED_NO_SKIPS=1, else skip."""
    ok, why = check
    if ok:
        return
    if os.environ.get("KVCACHED_NO_SKIPS") == "1":
        pytest.fail(f"cannot run here (KVCACHED_NO_SKIPS=1 forbids skipping): {why}")
    pytest.skip(why)


@pytest.fixture
def etcd3():
    require(etcd_available())
    c = EtcdCluster(members=3)
    yield c
    c.stop()


@pytest.fixture
def namespaces():
    """namespaces(names) -> a NetNamespaces, closed after the test."""
    require(can_use_netns())
    made = []

    def make(names):
        ns = NetNamespaces(names)
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.close()


def test_three_members_elect_a_leader_and_serve_writes_and_reads(etcd3):
    assert len(etcd3.endpoints) == 3 and len(set(etcd3.endpoints)) == 3
    assert etcd3.endpoint_string() == ";".join(etcd3.endpoints)
    assert all(etcd3.healthy(i) for i in range(3))
    assert etcd3.wait_leader() in (0, 1, 2)
    rev = etcd_put(etcd3.endpoints[0], "ha/one", b"\x00value\xff")
    assert rev > 0
    # Linearizable reads on the other members see the write.
    assert etcd_get(etcd3.endpoints[1], "ha/one") == b"\x00value\xff"
    assert etcd_get(etcd3.endpoints[2], "ha/one") == b"\x00value\xff"
    assert etcd_get(etcd3.endpoints[2], "ha/absent") is None
    etcd_put(etcd3.endpoints[1], "ha/two", "")
    assert etcd_get_prefix(etcd3.endpoints[2], "ha/") == {b"ha/one": b"\x00value\xff",
                                                          b"ha/two": b""}
    assert etcd_delete(etcd3.endpoints[0], "ha/one") == 1
    assert etcd_get(etcd3.endpoints[1], "ha/one") is None
    assert '"name":"m0"' in etcd3.log(0)  # each member logs to a file of its own


def test_cluster_serves_with_a_member_down_and_takes_it_back(etcd3):
    # Stopping the leader forces an election among the other two.
    leader = etcd3.wait_leader()
    a, b = [i for i in range(3) if i != leader]
    etcd3.stop_member(leader)
    assert not etcd3.running(leader) and not etcd3.healthy(leader)
    assert etcd3.wait_leader() in (a, b)
    etcd_put(etcd3.endpoints[a], "ha/while-down", "written by a")
    assert etcd_get(etcd3.endpoints[b], "ha/while-down") == b"written by a"

    etcd3.start_member(leader)
    assert etcd3.healthy(leader)
    # The restarted member caught up with the write it missed, and serves writes.
    assert etcd_get(etcd3.endpoints[leader], "ha/while-down") == b"written by a"
    etcd_put(etcd3.endpoints[leader], "ha/after", "back")
    assert etcd_get(etcd3.endpoints[a], "ha/after") == b"back"

    # SIGKILL (no graceful leave) and a restart: the member comes back the same way.
    etcd3.kill_member(a)
    assert not etcd3.healthy(a)
    # Where a led, the others elect a new leader after the election timeout; a
    # write proposed before that would wait for etcd's request timeout.
    assert etcd3.wait_leader() in (leader, b)
    etcd_put(etcd3.endpoints[b], "ha/after-kill", "x")
    etcd3.start_member(a)
    assert etcd3.healthy(a)
    assert etcd_get(etcd3.endpoints[a], "ha/after-kill") == b"x"
    assert etcd3.wait_leader() in (0, 1, 2)


# A TCP echo server: binds, prints its port once it listens (the readiness
# signal the test waits for), echoes one connection's bytes back.
ECHO_SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket()
    s.bind((sys.argv[1], 0))
    s.listen()
    print(s.getsockname()[1], flush=True)
    c, peer = s.accept()
    data = c.recv(65536)
    c.sendall(data + b" from " + peer[0].encode())
""")
ECHO_CLIENT = textwrap.dedent("""
    import socket, sys
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    c.sendall(b"ping")
    c.shutdown(socket.SHUT_WR)
    print(c.recv(65536).decode())
""")


def read_line(proc, timeout=20):
    """The first stdout line of proc, waited for with a deadline."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output in time"
    line = proc.stdout.readline().strip()
    assert line, f"the process exited ({proc.wait()}): {proc.stderr.read()}"
    return line


def root_networking():
    """The root namespace's interfaces with their addresses, and its routes."""
    links = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True,
                                      check=True, env=tool_env()).stdout)
    routes = subprocess.run(["ip", "-j", "route", "show", "table", "all"], capture_output=True,
                            text=True, check=True, env=tool_env()).stdout
    return ({(l["ifname"], tuple(sorted(a["local"] for a in l.get("addr_info", []))))
             for l in links}, sorted(json.dumps(r, sort_keys=True) for r in json.loads(routes)))


def test_namespaces_reach_each_other_over_tcp_and_leave_the_root_namespace_alone(namespaces):
    before = root_networking()
    ns = namespaces(["a", "b"])
    assert ns.address("a") != ns.address("b")
    assert ns.prefix_cmd("a") == ["nsenter", "--net=/run/netns/" + ns.full("a")]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            env=tool_env()).stdout
    assert ns.full("a") in listed and ns.full("b") in listed
    # Nothing of the namespaces (interfaces, addresses, routes) shows in the root namespace.
    assert root_networking() == before

    # Each namespace has its own address only, and a loopback that is up.
    shown = ns.run("a", ["ip", "-j", "addr"], check=True).stdout
    addrs = {a["local"] for l in json.loads(shown) for a in l.get("addr_info", [])
             if a["family"] == "inet"}
    assert addrs == {"127.0.0.1", ns.address("a")}

    # A server process in a, a client process in b.
    server = ns.popen("a", [PYTHON, "-c", ECHO_SERVER, ns.address("a")], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    port = int(read_line(server))
    out = ns.run("b", [PYTHON, "-c", ECHO_CLIENT, ns.address("a"), str(port)])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ping from {ns.address('b')}"
    assert server.wait(20) == 0

    # And from this process, with sockets made inside a namespace (ns.call).
    server = ns.popen("b", [PYTHON, "-c", ECHO_SERVER, ns.address("b")], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    port = int(read_line(server))

    def echo():
        import socket
        with socket.create_connection((ns.address("b"), port), timeout=10) as c:
            c.sendall(b"ping")
            c.shutdown(socket.SHUT_WR)
            return c.recv(65536).decode()

    assert ns.call("a", echo) == f"ping from {ns.address('a')}"
    assert server.wait(20) == 0

    # close() removes every namespace, is idempotent, and the root namespace is as it was.
    full = [ns.full("a"), ns.full("b"), ns.hub]
    ns.close()
    ns.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            env=tool_env()).stdout
    assert not any(name in listed.split() for name in full)
    assert root_networking() == before


def test_etcd_members_in_namespaces_serve_a_client_in_another_namespace(namespaces):
    require(etcd_available())
    require(can_use_netns())
    ns = namespaces(["e0", "e1", "e2", "client"])
    members = ["e0", "e1", "e2"]
    c = EtcdCluster(members=3, hosts=[ns.address(n) for n in members],
                    netns=[ns.full(n) for n in members])
    try:
        assert c.endpoints[1].startswith(ns.address("e1") + ":")
        assert all(c.healthy(i) for i in range(3))
        assert c.wait_leader() in (0, 1, 2)
        # A separate process in the client namespace writes through member 0 ...
        client = textwrap.dedent("""
            import base64, json, sys, urllib.request
            b64 = lambda s: base64.b64encode(s.encode()).decode()
            req = urllib.request.Request(f"http://{sys.argv[1]}/v3/kv/put", method="POST",
                data=json.dumps({"key": b64("ha/netns"), "value": b64("across")}).encode())
            print(json.load(urllib.request.urlopen(req, timeout=10))["header"]["revision"])
        """)
        out = ns.run("client", [PYTHON, "-c", client, c.endpoints[0]])
        assert out.returncode == 0, out.stderr
        assert int(out.stdout) > 0
        # ... and this process, from inside the client namespace, reads through member 2.
        assert etcd_get(c.endpoints[2], "ha/netns", netns=ns.full("client")) == b"across"
        # The members' peer traffic crosses the bridge: one down, the others still serve.
        c.stop_member(1)
        assert c.wait_leader() in (0, 2)
        etcd_put(c.endpoints[0], "ha/netns2", "two", netns=ns.full("client"))
        c.start_member(1)
        assert etcd_get(c.endpoints[1], "ha/netns2", netns=ns.full("client")) == b"two"
    finally:
        c.stop()
