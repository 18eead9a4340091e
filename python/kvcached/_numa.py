"""bind_to_numa_node(node): Mooncake's module function that binds the calling
thread to a NUMA node: it runs on the node's CPUs and prefers the node's
memory for new allocations (falling back to other nodes when it is full).

Without libnuma and without new dependencies: the node's CPUs come from
/sys/devices/system/node/node<N>/cpulist and go to os.sched_setaffinity(0)
(0: the calling thread); the memory preference is the set_mempolicy system
call with MPOL_PREFERRED, made through libc's syscall() by ctypes (on
x86-64; on other machines the memory part is skipped with a warning).
Both are properties of the calling thread only. Nothing raises but a
TypeError for a node that is not an int: an unavailable NUMA system, a node
that does not exist or a failing call is logged as a warning and changes
nothing more, as Mooncake's logs and returns.
"""

import ctypes
import logging
import os
import platform

log = logging.getLogger("kvcached")

NODE_DIR = "/sys/devices/system/node"  # tests point it elsewhere
MPOL_PREFERRED = 1
# set_mempolicy's number, per machine; where it is not known the memory
# preference is skipped.
_SET_MEMPOLICY = {"x86_64": 238, "amd64": 238}
_BITS_PER_WORD = 8 * ctypes.sizeof(ctypes.c_ulong)


def parse_cpulist(text):
    """The CPUs of a sysfs cpulist ("0-3,8,10-11") as a set; ValueError when
    it is malformed."""
    cpus = set()
    for part in text.strip().split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        lo, hi = int(first), int(last if dash else first)
        if lo < 0 or hi < lo:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.update(range(lo, hi + 1))
    return cpus


def _nodes():
    """The node numbers the system has, or None when it shows no NUMA nodes."""
    try:
        names = os.listdir(NODE_DIR)
    except OSError:
        return None
    nodes = sorted(int(n[4:]) for n in names if n.startswith("node") and n[4:].isdigit())
    return nodes or None


def _prefer_memory_of(node):
    """set_mempolicy(MPOL_PREFERRED, {node}) for the calling thread; the
    reason as text when it could not be done, else None."""
    number = _SET_MEMPOLICY.get(platform.machine().lower())
    if number is None:
        return (f"memory preference skipped: set_mempolicy's number is not known on "
                f"{platform.machine() or 'this machine'}")
    words = node // _BITS_PER_WORD + 1
    mask = (ctypes.c_ulong * words)()
    mask[node // _BITS_PER_WORD] = 1 << (node % _BITS_PER_WORD)
    libc = ctypes.CDLL(None, use_errno=True)
    # The kernel reads maxnode - 1 bits (libnuma passes the mask's bits + 1).
    rc = libc.syscall(ctypes.c_long(number), ctypes.c_int(MPOL_PREFERRED), mask,
                      ctypes.c_ulong(words * _BITS_PER_WORD + 1))
    if rc != 0:
        err = ctypes.get_errno()
        return f"set_mempolicy(MPOL_PREFERRED, node {node}) failed: {os.strerror(err)}"
    return None


def bind_to_numa_node(node):
    """Binds the calling thread to NUMA node `node`: its CPUs, and a
    preference for its memory. Returns None; problems are logged as
    warnings (module logger "kvcached")."""
    if not isinstance(node, int) or isinstance(node, bool):
        raise TypeError(f"bind_to_numa_node(): node must be an int, not {type(node).__name__}")
    nodes = _nodes()
    if nodes is None:
        log.warning("kvcached: NUMA is not available on this system (no nodes under %s); "
                    "binding skipped", NODE_DIR)
        return
    if node not in nodes:
        log.warning("kvcached: invalid NUMA node %d (this system has %s); binding skipped",
                    node, ", ".join(map(str, nodes)))
        return
    path = os.path.join(NODE_DIR, f"node{node}", "cpulist")
    try:
        with open(path) as f:
            cpus = parse_cpulist(f.read())
    except (OSError, ValueError) as e:
        log.warning("kvcached: cannot read NUMA node %d's CPUs from %s: %s; binding skipped",
                    node, path, e)
        return
    if not cpus:
        log.warning("kvcached: NUMA node %d has no CPUs; the thread's CPUs are left as they are",
                    node)
    else:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError as e:
            log.warning("kvcached: cannot run this thread on NUMA node %d's CPUs %s: %s",
                        node, sorted(cpus), e)
    why = _prefer_memory_of(node)
    if why is not None:
        log.warning("kvcached: NUMA node %d: %s", node, why)
