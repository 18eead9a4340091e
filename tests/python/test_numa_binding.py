"""bind_to_numa_node(node) (Mooncake's module function) on this machine's real
NUMA nodes: binding sets the calling thread's CPUs to the node's and its
memory policy to "prefer the node"; an invalid node, a system without NUMA
(a sysfs directory with no nodes) and a machine whose set_mempolicy number
is unknown log a warning and change nothing they should not. CPU affinity
and the memory policy belong to a thread, so each binding runs in a thread
of its own and the test's thread is checked to be untouched."""

import ctypes
import logging
import os
import platform
import threading

import pytest

from kvcached import _numa, bind_to_numa_node

NODE_DIR = "/sys/devices/system/node"
MPOL_DEFAULT, MPOL_PREFERRED = 0, 1
X86_64 = platform.machine().lower() in ("x86_64", "amd64")

pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(NODE_DIR, "node0")),
                                reason="this machine shows no NUMA node 0 in sysfs")


def mempolicy():
    """(mode, node mask) of the calling thread, by get_mempolicy (x86-64)."""
    libc = ctypes.CDLL(None, use_errno=True)
    mode = ctypes.c_int(-1)
    mask = (ctypes.c_ulong * 16)()
    rc = libc.syscall(ctypes.c_long(239), ctypes.byref(mode), mask,
                      ctypes.c_ulong(16 * 64 + 1), None, ctypes.c_ulong(0))
    assert rc == 0, os.strerror(ctypes.get_errno())
    return mode.value, sum(word << (64 * i) for i, word in enumerate(mask))


def state():
    return os.sched_getaffinity(0), (mempolicy() if X86_64 else None)


def in_thread(fn):
    """fn()'s result, run in a new thread; its exception re-raised here."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # handed to the test's thread
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def node0_cpus():
    with open(os.path.join(NODE_DIR, "node0", "cpulist")) as f:
        return _numa.parse_cpulist(f.read()) & os.sched_getaffinity(0)


def narrowed_then(call):
    """In a new thread: narrow its CPUs to one of node 0's, then call();
    returns the thread's state before and after the call."""
    start = {min(node0_cpus())}

    def body():
        os.sched_setaffinity(0, start)
        before = state()
        call()
        return before, state()

    return start, in_thread(body)


def test_parse_cpulist():
    assert _numa.parse_cpulist("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert _numa.parse_cpulist("\n") == set()
    for bad in ("3-1", "a", "1-", "-1"):
        with pytest.raises(ValueError):
            _numa.parse_cpulist(bad)


def test_binding_to_node0_sets_the_threads_cpus_and_memory_policy(caplog):
    main = state()
    with caplog.at_level(logging.WARNING, logger="kvcached"):
        start, (before, after) = narrowed_then(lambda: bind_to_numa_node(0))
    assert before[0] == start
    assert after[0] == node0_cpus()
    if len(node0_cpus()) > 1:
        assert after[0] != before[0]  # the binding widened the narrowed set
    if X86_64:
        assert before[1] == main[1]
        if after[1] != (MPOL_PREFERRED, 1):  # set_mempolicy refused (a container's seccomp)
            assert "set_mempolicy(MPOL_PREFERRED, node 0) failed" in caplog.text
        else:
            assert caplog.text == ""
    else:
        assert "memory preference skipped" in caplog.text
    assert state() == main  # the test's own thread is untouched


@pytest.mark.parametrize("node", [999, -1])
def test_an_invalid_node_logs_a_warning_and_changes_nothing(node, caplog):
    main = state()
    with caplog.at_level(logging.WARNING, logger="kvcached"):
        start, (before, after) = narrowed_then(lambda: bind_to_numa_node(node))
    assert after == before and before[0] == start
    assert f"invalid NUMA node {node}" in caplog.text
    assert state() == main


def test_bad_argument_types_raise():
    for bad in ("0", 0.0, None, True):
        with pytest.raises(TypeError):
            bind_to_numa_node(bad)


def test_without_numa_nodes_binding_is_skipped(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(_numa, "NODE_DIR", str(tmp_path))  # a sysfs with no node directories
    with caplog.at_level(logging.WARNING, logger="kvcached"):
        start, (before, after) = narrowed_then(lambda: bind_to_numa_node(0))
    assert after == before
    assert "NUMA is not available" in caplog.text


def test_memory_part_is_skipped_where_set_mempolicy_is_unknown(monkeypatch, caplog):
    monkeypatch.setattr(_numa.platform, "machine", lambda: "riscv64")
    with caplog.at_level(logging.WARNING, logger="kvcached"):
        start, (before, after) = narrowed_then(lambda: bind_to_numa_node(0))
    assert after[0] == node0_cpus()  # the CPUs are still bound
    assert after[1] == before[1]     # the memory policy is not
    assert "set_mempolicy's number is not known on riscv64" in caplog.text
