"""The deployment recipe of ../shared/seeds (Mooncake as SGLang's L3 KV
cache), its commands as written, run inside a network namespace of its own
(test_seed_recipe.py starts this under `unshare --net`), so that the
recipe's fixed ports (50051, 9003, 8080) meet no other test's.

    mooncake_master
    python -m mooncake.http_metadata_server
    MOONCAKE_TE_META_DATA_SERVER=... MOONCAKE_GLOBAL_SEGMENT_SIZE=... \\
    MOONCAKE_PROTOCOL=... MOONCAKE_DEVICE=... MOONCAKE_MASTER=... <client>

The client is what SGLang's Mooncake backend does with those variables:
`from mooncake.store import MooncakeDistributedStore`, set up from the
environment alone, then batches of puts and gets of KV pages, every byte
checked. One value differs from the recipe: MOONCAKE_PROTOCOL is tcp, as
this machine has no RDMA NIC (MOONCAKE_DEVICE keeps the recipe's names,
which a tcp client ignores, as Mooncake's does).

Environment (from the test): SEED_BIN_DIR holds `mooncake_master`,
`kvcached` and `python` (links, as the packages install them), and
PYTHONPATH makes `mooncake` kvcached's shim, as the compat package's .pth
does. Exits 0 when every check held; prints what failed otherwise."""

import ctypes
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request

from conftest import Proc, daemon_env

RECIPE_CLIENT_ENV = {
    "MOONCAKE_TE_META_DATA_SERVER": "http://127.0.0.1:8080/metadata",
    "MOONCAKE_GLOBAL_SEGMENT_SIZE": "4294967296",
    "MOONCAKE_PROTOCOL": "tcp",  # the recipe says rdma; no RDMA NIC here
    "MOONCAKE_DEVICE": "erdma_0,erdma_1",
    "MOONCAKE_MASTER": "127.0.0.1:50051",
}
PAGE = 1 << 20


def loopback_up():
    """A new network namespace's lo is down: bring it up (SIOCSIFFLAGS)."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def page_bytes(key, version=1):
    seed = f"{key}|v{version}|".encode()
    return (seed * (PAGE // len(seed) + 1))[:PAGE]


def http_text(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def client_checks():
    from mooncake.store import MooncakeDistributedStore  # what SGLang imports
    store = MooncakeDistributedStore()
    rc = store.setup_from_env()
    assert rc == 0, f"setup_from_env() returned {rc}"
    try:
        segment = store.get_hostname()
        keys = [f"seed-recipe-page-{i}" for i in range(32)]
        buf = ctypes.create_string_buffer(len(keys) * PAGE)
        base = ctypes.addressof(buf)
        assert store.register_buffer(base, len(keys) * PAGE) == 0
        for i, k in enumerate(keys):
            ctypes.memmove(base + i * PAGE, page_bytes(k), PAGE)
        ptrs = [base + i * PAGE for i in range(len(keys))]
        assert store.batch_put_from(keys, ptrs, [PAGE] * len(keys)) == [0] * len(keys)
        ctypes.memset(base, 0, len(keys) * PAGE)
        assert store.batch_get_into(keys, ptrs, [PAGE] * len(keys)) == [PAGE] * len(keys)
        for i, k in enumerate(keys):
            assert ctypes.string_at(base + i * PAGE, PAGE) == page_bytes(k), f"bytes of {k}"
        assert store.batch_is_exist(keys + ["seed-recipe-absent"]) == [1] * len(keys) + [0]
        assert store.get(keys[3]) == page_bytes(keys[3])
        # The only memory is the client's own 4 GiB segment, and the master's
        # admin port (Mooncake's metrics_port, 9003) names it.
        segments = http_text("http://127.0.0.1:9003/get_all_segments")
        assert segment in segments.split(), f"{segment} not in {segments!r}"
        # The segment's descriptor is in the recipe's metadata server.
        meta = json.loads(http_text("http://127.0.0.1:8080/metadata?key=mooncake/ram/" + segment))
        assert meta["name"] == segment and meta["size"] == 4 << 30, meta
        assert store.remove(keys[0]) == 0
        assert store.is_exist(keys[0]) == 0
        store.unregister_buffer(base)
    finally:
        store.close()
    return segment


def main():
    loopback_up()
    bin_dir = os.environ["SEED_BIN_DIR"]
    base_env = {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    procs = []
    try:
        # The recipe's two commands, as written.
        master = Proc([], command=["mooncake_master"], env_extra=base_env)
        procs.append(master)
        assert "rpc 0.0.0.0:50051" in master.status or "rpc 127.0.0.1:50051" in master.status, \
            master.status
        assert "meta off" in master.status, master.status
        meta = Proc([], command=["python", "-m", "mooncake.http_metadata_server"],
                    env_extra=dict(base_env, PYTHONPATH=os.environ["PYTHONPATH"],
                                   KVCACHED_BIN=os.path.join(bin_dir, "kvcached")))
        procs.append(meta)
        assert ":8080" in meta.status, meta.status
        for k, v in RECIPE_CLIENT_ENV.items():
            os.environ[k] = v
        segment = client_checks()
        print(f"seed recipe: mooncake_master, the metadata server and a client of "
              f"segment {segment} configured by MOONCAKE_* alone: every check held")
    finally:
        for p in reversed(procs):
            p.stop()
    for p in procs:
        assert p.proc.returncode == 0, f"{p.argv} exited {p.proc.returncode}:\n{p.log()}"
    return 0


if __name__ == "__main__":
    sys.exit(main())
