"""The opt-in import shim: code that does `from mooncake.store import
MooncakeDistributedStore` (SGLang's own Mooncake backend) gets kvcached's
class, both through PYTHONPATH=$(python3 -m kvcached.shim path) and through
`python3 -m kvcached.shim install` (a .pth file), even with a real `mooncake`
package installed; the HiCache scenario then runs through the calls
SGLang's Mooncake backend makes. Each case runs in a fresh interpreter."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import BIN, Proc

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.join(os.path.dirname(os.path.dirname(TESTS_DIR)), "python")

# SGLang's Mooncake backend's calls on mooncake.store, for an MHA model at
# TP rank 0 (setup with a transfer-engine argument, the 4 KB warm-up,
# register_buffer over the host pool, batch_is_exist then batch_put_from of
# the misses, batch_is_exist then batch_get_into of the hits).
SCENARIO = textwrap.dedent("""
    import sys, uuid
    sys.path.insert(0, {tests!r})
    from mooncake.store import MooncakeDistributedStore, ReplicateConfig
    import mooncake.store
    assert getattr(mooncake.store, "KVCACHED_SHIM", False), mooncake.store.__file__
    import hicache_scenario

    MODE = {mode!r}

    def allocator_pool(pool):
        # standalone_storage: SGLang allocates its host pool through
        # MooncakeHostTensorAllocator (MooncakeHostMemAllocator.alloc).
        import ctypes
        from mooncake.store import MooncakeHostMemAllocator
        from fake_sglang import FakeTensor
        size = len(pool.region)
        pool.allocator = MooncakeHostMemAllocator()  # the memory lives as long as it
        ptr = pool.allocator.alloc(size)
        assert ptr != 0
        region = (ctypes.c_char * size).from_address(ptr)
        region[:] = bytes(pool.region)
        pool.region = region
        pool.kv_buffer = FakeTensor(region)
        pool.base = pool.kv_buffer.data_ptr()

    class MooncakeStyleBackend:
        def __init__(self, pool, rpc):
            self.store = MooncakeDistributedStore()
            if MODE == "standalone":
                allocator_pool(pool)
                assert self.store.setup_dummy(len(pool.region), 16 * 1024 * 1024,
                                              {store_admin!r}) == 0
            elif MODE == "tenant":
                assert self.store.setup("pytest-host", "P2PHANDSHAKE", 0, 16 * 1024 * 1024,
                                        "tcp", "", rpc, None, tenant_id="team-sglang") == 0
            else:
                assert self.store.setup("pytest-host", "P2PHANDSHAKE", 0, 16 * 1024 * 1024,
                                        "tcp", "", rpc, None) == 0
            key = "sglang_mooncake_store_warmup_key" + uuid.uuid4().hex
            assert self.store.put(key, bytes(4 * 1024)) == 0
            assert self.store.is_exist(key) == 1
            assert self.store.get(key) == bytes(4 * 1024)
            buf = pool.kv_buffer
            assert self.store.register_buffer(buf.data_ptr(), buf.numel() * buf.element_size()) == 0
            self.pool = pool

        def _objects(self, keys):
            return [f"{{k}}_0_{{kv}}" for k in keys for kv in ("k", "v")]

        def batch_exists(self, keys):
            found = self.store.batch_is_exist(self._objects(keys))
            for i, r in enumerate(found):
                if r != 1:
                    return i // 2
            return len(keys)

        def batch_set_v1(self, keys, host_indices):
            objects = self._objects(keys)
            ptrs, sizes = self.pool.get_page_buffer_meta(host_indices)
            found = self.store.batch_is_exist(objects)
            results = [0 if r == 1 else -1 for r in found]
            missing = [i for i, r in enumerate(found) if r != 1]
            if missing:
                put = self.store.batch_put_from([objects[i] for i in missing],
                                                [ptrs[i] for i in missing],
                                                [sizes[i] for i in missing])
                for i, r in zip(missing, put):
                    results[i] = r
            return [all(r == 0 for r in results[i:i + 2]) for i in range(0, len(results), 2)]

        def batch_get_v1(self, keys, host_indices):
            ptrs, sizes = self.pool.get_page_buffer_meta(host_indices)
            results = self.store.batch_get_into(self._objects(keys), ptrs, sizes)
            return [all(r > 0 for r in results[i:i + 2]) for i in range(0, len(results), 2)]

    hicache_scenario.run(lambda pool: MooncakeStyleBackend(pool, {rpc!r}), {tag!r})
    if MODE == "tenant":
        # The pages are the tenant's: the default tenant's clients see none.
        plain = MooncakeDistributedStore()
        assert plain.setup("pytest-host", "P2PHANDSHAKE", 0, 16 * 1024 * 1024, "tcp", "",
                           {rpc!r}) == 0
        keys = [f"{{k}}_0_k" for k in hicache_scenario.page_keys({tag!r}, 12)]
        assert plain.batch_is_exist(keys) == [0] * 12
        plain.close()
    import mooncake
    print("SCENARIO OK", mooncake.store.__file__)
""")


def run_python(code, env_extra, cwd=None):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120, cwd=cwd)


def shim_dir():
    out = run_python("import kvcached.shim; print(kvcached.shim.shim_dir())",
                     {"PYTHONPATH": PYTHON_DIR})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def fake_real_mooncake(tmp_path):
    """A stand-in for an installed Mooncake: its store must lose to the shim,
    its engine must still be importable."""
    pkg = tmp_path / "real" / "mooncake"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "store.py").write_text("raise ImportError('the real mooncake.store was imported')\n")
    (pkg / "engine.py").write_text("REAL_ENGINE = True\n")
    return str(tmp_path / "real")


def test_shim_through_pythonpath(cluster, prefix, tmp_path):
    real = fake_real_mooncake(tmp_path)
    code = SCENARIO.format(tests=TESTS_DIR, rpc=cluster.rpc, tag=prefix, mode="plain",
                           store_admin="") + textwrap.dedent("""
        import mooncake.engine
        assert mooncake.engine.REAL_ENGINE
    """)
    # PYTHON_DIR is not on the path: the shim finds kvcached in the checkout itself.
    out = run_python(code, {"PYTHONPATH": os.pathsep.join([shim_dir(), real])})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SCENARIO OK" in out.stdout


@pytest.mark.parametrize("mode", ["tenant", "standalone"])
def test_sglang_mooncake_calls_with_a_tenant_and_in_standalone_mode(cluster, prefix, tmp_path,
                                                                    mode):
    """The acceptance line of SGLang's two modes that used to stop it from
    starting: its Mooncake backend's setup() with tenant_id (engine None, as
    SGLang passes it) and standalone_storage (the host pool from
    MooncakeHostMemAllocator, setup_dummy with the local store's admin
    address), then the same warm-up, registration and HiCache scenario,
    every page compared byte for byte."""
    code = SCENARIO.format(tests=TESTS_DIR, rpc=cluster.rpc, tag=prefix, mode=mode,
                           store_admin=cluster.stores[0].address("admin"))
    out = run_python(code, {"PYTHONPATH": shim_dir()})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SCENARIO OK" in out.stdout


def test_shim_install_and_uninstall(cluster, prefix, tmp_path):
    site_dir = tmp_path / "site-packages"
    real = fake_real_mooncake(tmp_path)
    env = {"PYTHONPATH": PYTHON_DIR}
    out = run_python(f"import sys; from kvcached.shim import main; "
                     f"sys.exit(main(['install', '--site', {str(site_dir)!r}]))", env)
    assert out.returncode == 0, out.stderr
    pth = site_dir / "kvcached-mooncake-shim.pth"
    assert pth.exists() and "installed" in out.stdout

    # A site directory processed at start-up (as site-packages is), after the
    # real Mooncake on the path: the .pth puts the shim in front of it.
    code = (f"import sys, site; sys.path.insert(0, {real!r}); site.addsitedir({str(site_dir)!r})\n"
            + SCENARIO.format(tests=TESTS_DIR, rpc=cluster.rpc, tag=prefix,
                             mode="plain", store_admin=""))
    out = run_python(code, env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SCENARIO OK" in out.stdout

    status = run_python(f"import site; site.addsitedir({str(site_dir)!r}); from kvcached.shim "
                        f"import main; main(['status', '--site', {str(site_dir)!r}])", env)
    assert "kvcached shim" in status.stdout and "present" in status.stdout, status.stdout

    out = run_python(f"import sys; from kvcached.shim import main; "
                     f"sys.exit(main(['uninstall', '--site', {str(site_dir)!r}]))", env)
    assert out.returncode == 0 and not pth.exists()
    out = run_python(f"import sys, site; sys.path.insert(0, {real!r}); "
                     f"site.addsitedir({str(site_dir)!r}); import mooncake.store", env)
    assert "the real mooncake.store was imported" in out.stderr


def test_shim_leaves_the_package_file_alone(tmp_path):
    """The kvcached-mooncake-compat package's .pth (its first line says so):
    status names the package, install keeps it, uninstall refuses to remove it."""
    site_dir = tmp_path / "dist-packages"
    site_dir.mkdir()
    pth = site_dir / "kvcached-mooncake-shim.pth"
    env = {"PYTHONPATH": PYTHON_DIR}
    out = run_python(f"from kvcached.shim import package_pth_text; "
                     f"print(package_pth_text({shim_dir()!r}), end='')", env)
    assert out.returncode == 0, out.stderr
    pth.write_text(out.stdout)

    def shim(action):
        return run_python(f"import sys; from kvcached.shim import main; "
                          f"sys.exit(main([{action!r}, '--site', {str(site_dir)!r}]))", env)

    out = shim("status")
    assert f"{pth}: present (the kvcached-mooncake-compat package's" in out.stdout, out.stdout
    out = shim("install")
    assert out.returncode == 0 and "kvcached-mooncake-compat" in out.stdout, out.stdout
    out = shim("uninstall")
    assert out.returncode == 1 and "remove that package instead" in out.stderr, out.stderr
    assert pth.read_text().startswith("# kvcached-mooncake-shim.pth of the kvcached-mooncake-compat")


def _meta_module(tmp_path, *args):
    """`python -m mooncake.http_metadata_server ARGS` through the shim, as the
    recipe runs it; ready when the kvcached meta it became says READY=1."""
    return Proc(list(args), command=[sys.executable, "-m", "mooncake.http_metadata_server"],
                env_extra={"PYTHONPATH": shim_dir(), "KVCACHED_BIN": BIN})


def _run_with_shim(code):
    """`code` in a fresh python3 that imports the shim's mooncake package and
    starts kvcached itself: without this python3's LD_PRELOAD (a sanitizer
    runtime for the library, which a sanitized kvcached binary must not get)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KVCACHED_", "MOONCAKE_", "LD_PRELOAD", "PYTHONPATH"))}
    env.update({"PYTHONPATH": shim_dir(), "KVCACHED_BIN": BIN})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)


def _http(method, url, body=None):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type")


def test_recipe_metadata_server_module(tmp_path):
    """The seed recipe's `python -m mooncake.http_metadata_server` serves the
    metadata protocol (through kvcached meta), and stops cleanly on SIGTERM."""
    meta = _meta_module(tmp_path, "--port", "0", "--log-level", "WARNING")
    try:
        url = "http://" + meta.address("on") + "/metadata?key="
        assert _http("PUT", url + "mooncake/ram/seg-a", b'{"name":"seg-a"}')[0] == 200
        status, body, ctype = _http("GET", url + "mooncake/ram/seg-a")
        assert (status, body, ctype) == (200, b'{"name":"seg-a"}', "application/json")
        assert _http("GET", url + "never")[0] == 404
        assert _http("GET", url + "%20")[0] == 400
    finally:
        meta.proc.send_signal(signal.SIGTERM)
        assert meta.proc.wait(30) == 0, meta.log()
        meta.stop()


def test_recipe_metadata_server_module_keeps_loopback_without_token(tmp_path):
    """Mooncake binds 0.0.0.0; here serving beyond loopback needs a token, and
    the module says so instead of exposing the service."""
    out = _run_with_shim("import sys; from mooncake.http_metadata_server import main; "
                         "sys.exit(main(['--host', '0.0.0.0', '--port', '0']))")
    assert out.returncode == 78, out.stderr
    assert "token" in out.stderr
    help_text = _run_with_shim("from mooncake.http_metadata_server import main; main(['--help'])")
    assert "--port" in help_text.stdout and "loopback" in help_text.stdout


def test_bootstrap_server_class(tmp_path):
    """KVBootstrapServer, the module's class: run() returns once the service
    answers, poll() follows it, close() stops it."""
    code = textwrap.dedent("""
        import socket, urllib.request
        from mooncake.http_metadata_server import KVBootstrapServer, KVPoll
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        server = KVBootstrapServer(port, "127.0.0.1")
        assert server.poll() == KVPoll.Failed
        server.run()
        assert server.poll() == KVPoll.Success
        url = f"http://127.0.0.1:{port}/metadata?key=k"
        urllib.request.urlopen(urllib.request.Request(url, data=b"v", method="PUT"))
        assert urllib.request.urlopen(url).read() == b"v"
        server.close()
        assert server.poll() == KVPoll.Failed
        print("ok")
    """)
    out = _run_with_shim(code)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
