"""`kvcached bench`: the embedded default run, a run against a separately
started master and store over each transport, --verify against a store
that corrupts what it serves (a test-build fault hook), exit codes and the
errors of bad option combinations, and the tiered workload over an embedded
store with a disk tier under /var/tmp. Timings are printed, never asserted."""

import json
import os
import pty
import re
import select
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, Proc, run_cli

SHORT = ["--duration", "0.5", "--warmup", "0", "--no-baseline"]


def bench(*args, env=None, timeout=180):
    return run_cli("bench", *args, env=env, timeout=timeout)


def bench_json(*args, env=None, expect_rc=0):
    r = bench("--json", *args, env=env)
    assert r.returncode == expect_rc, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return json.loads(r.stdout)


def status_address(proc, word):
    for msg in proc.messages:
        m = re.search(word + r" (?:tcp://|http://)?([0-9.]+:\d+)", msg)
        if m:
            return m.group(1)
    pytest.fail(f"no '{word}' address in {proc.messages!r}")


@pytest.fixture
def pool():
    """A master and one store (host id 'bench-test', 1 GiB), separately started."""
    procs = []

    def start(store_env=None, segment_size="1GiB"):
        master = Proc(["master", "--port", "0", "--admin-port", "0", "--no-meta"])
        procs.append(master)
        master.wait_ready()
        rpc = status_address(master, "rpc")
        store = Proc(["store", "--master", rpc, "--segment-size", segment_size, "--host-id",
                      "bench-test"], env=store_env)
        procs.append(store)
        store.wait_ready()
        return rpc

    yield start
    # A pool process that crashed (a sanitizer report, a signal) fails the
    # test; the tail of each log is printed, which pytest shows for a test
    # that failed.
    crashed = []
    for p in reversed(procs):
        rc = p.stop()
        tail = "\n".join(p.log_text.splitlines()[-40:])
        print(f"--- {p.proc.args[1]} exited {rc}; its log ends:\n{tail}")
        if rc != 0:
            crashed.append(f"{p.proc.args[1]} exited {rc}")
    assert not crashed, "; ".join(crashed)


def hooks_compiled():
    return "fault hooks: compiled" in run_cli("--version").stdout


def test_embedded_default_run_prints_every_field():
    # Exactly the README's main job, with --json: every field present.
    doc = bench_json()
    s = doc["settings"]
    assert s["mode"] == "embedded"
    assert s["transport"] == "auto" and s["segment_bytes"] >= 256 << 20
    base = doc["baseline"]
    assert base["memcpy_gb_per_s"] > 0 and base["loopback_tcp_gb_per_s"] > 0
    assert base["memcpy_method"] and base["loopback_tcp_method"]
    # The congestion control decides loopback figures: the report names the one in use.
    with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
        assert "congestion control " + f.read().strip() in base["loopback_tcp_method"]
    assert [w["workload"] for w in doc["workloads"]] == ["put", "get"]
    for w in doc["workloads"]:
        assert w["seconds"] > 0 and w["objects"] > 0 and w["bytes"] > 0
        assert w["errors"] == 0 and w["error_rate"] == 0
        assert w["pct_of_memcpy"] > 0 and w["pct_of_loopback_tcp"] > 0
        # auto on one host: shared memory moved every object
        assert w["transfers"]["shm"] == w["objects"] and w["transfers"]["tcp"] == 0
        (op,) = w["ops"]
        assert op["op"] == w["workload"]
        assert op["bytes"] == op["objects"] * (1 << 20)
        lat = op["latency_us"]
        assert lat["count"] == op["calls"] > 0
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]
    assert doc["ok"] is True and doc["failures"] == []
    print("embedded default:", {w["workload"]: round(w["gb_per_s"], 2) for w in doc["workloads"]})


def test_table_output_and_no_progress_line_without_a_terminal():
    r = bench(*SHORT, "--workload", "put", "--object-size", "64KiB")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^workload\s+op\s+calls/s\s+objects/s\s+GB/s", r.stdout, re.M)
    assert re.search(r"^put\s+put\s+[\d.]+\s+[\d,]+\s+[\d.]+", r.stdout, re.M)
    assert r.stdout.rstrip().endswith("ok")
    assert "\r" not in r.stderr and "objects/s" not in r.stderr


def test_progress_line_on_a_terminal():
    master_fd, slave_fd = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVCACHED_", "MOONCAKE_"))}
    proc = subprocess.Popen([BIN, "bench", "--workload", "put", "--duration", "2.5", "--warmup",
                             "0", "--no-baseline", "--object-size", "64KiB"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave_fd,
                            env=env)
    os.close(slave_fd)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master_fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(master_fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out, _ = proc.communicate(timeout=60)
    os.close(master_fd)
    assert proc.returncode == 0, out.decode()
    assert re.search(rb"\r\x1b\[K\s+put\s+[\d.]+ s\s+\d+ objects/s\s+[\d.]+ GB/s", seen), seen


@pytest.mark.parametrize("transport", ["tcp", "shm"])
def test_against_a_separate_pool_every_workload_verified(pool, transport):
    rpc = pool()
    doc = bench_json("--master", rpc, "--host-id", "bench-test", "--transport", transport,
                     "--workload", "put,get,mixed,exist,sglang", "--verify", "--object-size",
                     "64KiB,256KiB", "--batch", "8", "--threads", "2", "--pages", "16",
                     "--keys", "256", *SHORT)
    assert doc["settings"]["mode"] == "pool" and doc["settings"]["master"] == rpc
    assert doc["baseline"] is None
    by_name = {w["workload"]: w for w in doc["workloads"]}
    assert list(by_name) == ["put", "get", "mixed", "exist", "sglang"]
    other = "shm" if transport == "tcp" else "tcp"
    for name, w in by_name.items():
        assert w["errors"] == 0, (name, w)
        assert w["transfers"][other] == 0, (name, w["transfers"])
        if name != "exist":
            assert w["transfers"][transport] > 0, (name, w["transfers"])
        if name in ("get", "mixed", "exist", "sglang"):
            assert w["verify"]["checked_objects"] > 0 and w["verify"]["wrong_objects"] == 0
    assert by_name["get"]["prefilled_objects"] == 256
    exist = by_name["exist"]["ops"][0]
    # half of the keys asked about were never written
    assert exist["misses"] >= exist["objects"] // 2
    sg = by_name["sglang"]
    assert [op["op"] for op in sg["ops"]] == ["exist", "get", "put", "request"]
    assert sg["sglang"]["pages_requested"] > 0
    assert 0 <= sg["sglang"]["pages_hit"] <= sg["sglang"]["pages_requested"]
    assert doc["ok"] is True


@pytest.mark.parametrize("transport", ["tcp", "shm"])
def test_sglang_pattern_on_a_pool_three_times_too_small_keeps_taking_pages(pool, transport):
    """Issue 15, defect 8: with every page checked and every hit read, a full
    pool used to refuse nearly every put (reads pinned objects for a whole
    lease). Readers now end their leases when done, so eviction keeps room.
    What can be neither evicted nor placed over, each thread's puts in
    progress and reads in flight (a request's 4 pages, 8 MiB, each), stays at
    half the pool, whatever the machine's load: a request larger than the
    pool fails by its nature."""
    rpc = pool(segment_size="64MiB")
    doc = bench_json("--master", rpc, "--host-id", "bench-test", "--transport", transport,
                     "--workload", "sglang", "--verify", "--object-size", "1MiB", "--keys", "192",
                     "--pages", "4", "--threads", "2", "--max-error-rate", "1",
                     "--duration", "2", "--warmup", "0", "--no-baseline")
    w = doc["workloads"][0]
    ops = {op["op"]: op for op in w["ops"]}
    put = ops["put"]
    failed = sum(put["errors"].values())
    print(f"{transport}: {put['objects']} puts, {failed} failed {put['errors']}, "
          f"hit ratio {w['sglang']['hit_ratio']:.3f} over {w['sglang']['pages_requested']} pages "
          f"(LRU over documents chosen uniformly gives about pool / key space = 64/192 = 0.33)")
    assert put["objects"] > 0
    assert failed <= put["objects"] // 100, put["errors"]
    assert w["sglang"]["pages_hit"] > 0
    assert w["verify"]["checked_objects"] > 0 and w["verify"]["wrong_objects"] == 0


def test_ops_stops_after_exactly_that_many_calls(pool):
    rpc = pool()
    doc = bench_json("--master", rpc, "--workload", "put,exist", "--ops", "37", "--batch", "4",
                     "--threads", "3", "--warmup", "0", "--keys", "64", "--object-size", "4KiB")
    for w in doc["workloads"]:
        assert w["ops"][0]["calls"] == 37
        assert w["ops"][0]["objects"] == 37 * 4


def test_only_what_succeeded_counts_and_mostly_failed_runs_say_so_first(pool):
    """Issue 20: against a full pool, failed puts were counted as objects
    moved. Two of every three objects here are larger than the pool's only
    segment, so the master refuses them; the other third is stored."""
    rpc = pool(segment_size="64MiB")
    common = ["--master", rpc, "--host-id", "bench-test", "--workload", "put", "--object-size",
              "1MiB,96MiB,96MiB", "--batch", "1", "--threads", "1", "--ops", "30", "--warmup",
              "0", "--no-baseline", "--max-error-rate", "1"]
    doc = bench_json(*common)
    (w,) = doc["workloads"]
    (put,) = w["ops"]
    assert put["calls"] == 30 and put["handled"] == w["handled"] == 30
    assert put["objects"] == w["objects"] == 10
    assert put["bytes"] == w["bytes"] == 10 << 20
    assert sum(put["errors"].values()) == w["errors"] == 20
    assert w["error_rate"] == pytest.approx(20 / 30)
    assert w["objects_per_s"] == pytest.approx(10 / w["seconds"])
    # As a table: the warning comes before the workload's rows.
    r = bench(*common, "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    warning = next(i for i, l in enumerate(lines) if "MOST OBJECTS FAILED" in l)
    assert "20 of 30" in lines[warning] and "only the 10 that succeeded" in lines[warning]
    row = next(i for i, l in enumerate(lines) if re.match(r"put\s+put\s", l))
    assert warning < row
    assert re.search(r"^put: 10 objects \(20 failed\) in ", r.stdout, re.M), r.stdout
    # Within the default --max-error-rate (0) the same run fails.
    assert bench(*common[:-2], "--quiet").returncode == 1


@pytest.mark.skipif(not hooks_compiled(),
                    reason="this kvcached was built without KVCACHED_FAULT_HOOKS (a release "
                           "build), so its store cannot be told to corrupt reads")
def test_verify_catches_a_store_that_corrupts_what_it_serves(pool):
    rpc = pool(store_env={"KVCACHED_FAULT_CORRUPT_READS": "1"})
    common = ["--master", rpc, "--transport", "tcp", "--workload", "get", "--keys", "64",
              "--batch", "4", "--object-size", "64KiB", "--ops", "20", "--warmup", "0"]
    # Checksums off: only --verify stands between the caller and wrong bytes.
    doc = bench_json(*common, "--no-checksums", "--verify", expect_rc=1)
    (w,) = doc["workloads"]
    assert w["verify"]["wrong_objects"] == w["verify"]["checked_objects"] == 80
    assert re.search(r"byte 32768 is 0x[0-9a-f]{2}, expected", w["verify"]["examples"][0])
    assert doc["ok"] is False
    # Checksums on (the default): the client refuses the bytes instead.
    doc = bench_json(*common, expect_rc=1)
    (w,) = doc["workloads"]
    assert w["ops"][0]["errors"] == {"CHECKSUM_MISMATCH": 80}
    assert w["verify"]["wrong_objects"] == 0
    # ... and --max-error-rate decides whether that fails the run.
    doc = bench_json(*common, "--max-error-rate", "1")
    assert doc["ok"] is True


@pytest.mark.parametrize("args,message", [
    (["--workload", "scan"], "unknown workload 'scan'"),
    (["--model", "llama-3.1-8b"], "--model describes KV pages: it needs --workload sglang"),
    (["--workload", "sglang", "--model", "llama-3.1-8b", "--object-size", "1MiB"],
     "--model and --object-size"),
    (["--read-ratio", "0.5"], "--read-ratio is for --workload mixed"),
    (["--pages", "8"], "--pages is for --workload sglang"),
    (["--ops", "10", "--duration", "1s"], "--ops and --duration"),
    (["--baseline", "--no-baseline"], "--baseline and --no-baseline"),
    (["--master", "127.0.0.1:1", "--segment-size", "1GiB"], "--segment-size sizes the embedded"),
    (["--object-size", "12parsecs"], "--object-size: '12parsecs'"),
    (["--workload", "get", "--keys", "4", "--batch", "8"], "--keys (4) is smaller than --batch (8)"),
    (["--segment-size", "64MiB", "--object-size", "32MiB"], "raise --segment-size"),
    (["--batch", "0"], "--batch"),
    (["--model", "gpt-9"], "--model"),
    (["--master", "127.0.0.1:1", "--disk-path", "/var/tmp", "--disk-size", "1GiB"],
     "--disk-path sizes the embedded pool"),
    (["--disk-path", "/var/tmp"], "--disk-path and --disk-size go together"),
    (["--working-set", "1GiB"], "--working-set is for --workload tiered"),
    (["--workload", "tiered", "--working-set", "1GiB", "--keys", "8"], "--working-set and --keys"),
    (["--master-admin", "127.0.0.1:1"], "--master-admin names a running pool's admin port"),
])
def test_bad_combinations_are_refused_with_a_clear_error(args, message):
    r = bench(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    assert r.stdout == ""


def rdma_devices_here():
    r = run_cli("--version")
    m = re.search(r"rdma transport: compiled \(libibverbs\); devices: (.*)", r.stdout)
    return m is not None and not m.group(1).startswith("none")


@pytest.mark.skipif(rdma_devices_here(), reason="hardware: this host has RDMA devices, so the "
                    "fallback cannot be seen here (tests/rdma/softroce.sh covers RDMA itself)")
def test_rdma_without_a_device_falls_back_to_tcp_unless_demanded():
    # --protocol rdma: one warning each from the embedded store and the
    # client, then the run goes on over TCP (and shared memory).
    w = bench_json("--protocol", "rdma", "--workload", "put,get", *SHORT)
    for run in w["workloads"]:
        moved = run["transfers"]
        assert moved["rdma"] == 0
        assert moved["shm"] + moved["tcp"] == run["objects"] > 0, moved
    # --transport rdma demands it: a clear failure that says what is missing.
    r = bench("--transport", "rdma", *SHORT)
    assert r.returncode == 69, r.stderr
    assert "transport rdma: no RDMA devices" in r.stderr, r.stderr
    # So does a device named and absent.
    r = bench("--protocol", "rdma", "--device", "mlx5_9", *SHORT)
    assert r.returncode == 69, r.stderr
    assert "RDMA device 'mlx5_9' not found" in r.stderr, r.stderr
    r = bench("--transport", "rdma", "--protocol", "tcp", *SHORT)
    assert r.returncode == 2 and "--transport rdma needs --protocol rdma" in r.stderr, r.stderr


def test_unreachable_master_is_a_clear_failure():
    r = bench("--master", "127.0.0.1:1", *SHORT)
    assert r.returncode != 0
    assert "cannot open a client of 127.0.0.1:1" in r.stderr, r.stderr


def o_direct_refusal(directory):
    """Why files in `directory` cannot be opened with O_DIRECT, or None."""
    path = os.path.join(directory, "o-direct-check")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    except OSError as e:
        return f"{directory} refuses O_DIRECT ({e.strerror})"
    os.close(fd)
    os.unlink(path)
    return None


@pytest.fixture
def var_tmp():
    """A directory of this test's own under /var/tmp (the disk tier needs a
    real file system: /tmp may be tmpfs), removed afterwards."""
    d = tempfile.mkdtemp(prefix="kvcached-bench-test-", dir="/var/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_tiered_working_set_three_times_dram_comes_back_whole_from_disk(var_tmp):
    why = o_direct_refusal(var_tmp)
    if why:
        pytest.skip("hardware: the disk tier needs O_DIRECT and " + why)
    r = bench("--workload", "tiered", "--segment-size", "32MiB", "--disk-path", var_tmp,
              "--disk-size", "128MiB", "--object-size", "1MiB", "--working-set", "96MiB",
              "--verify", "--quiet")
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    print(r.stdout)
    ceiling = re.search(r"^ceiling disk O_DIRECT: write ([\d.]+) GB/s, read ([\d.]+) GB/s \("
                        + re.escape(var_tmp) + r", 4 MiB blocks, QD (\d+)", r.stdout, re.M)
    assert ceiling and float(ceiling.group(1)) > 0 and float(ceiling.group(2)) > 0, r.stdout
    assert re.search(r"^tiered put: 96 stored, 0 failed, in ", r.stdout, re.M), r.stdout
    gets = re.search(r"^tiered get: ([\d,]+) hits \(exact bytes\), ([\d,]+) misses, ([\d,]+) "
                     r"wrong: hit rate ([\d.]+)% of 96 gets", r.stdout, re.M)
    assert gets, r.stdout
    assert (gets.group(1), gets.group(2), gets.group(3), gets.group(4)) == (
        "96", "0", "0", "100.00"), gets.group(0)
    # Three times DRAM: most of the working set came back from the disk tier.
    split = re.search(r"; ([\d,]+) served from DRAM \([\d.]+%\), ([\d,]+) loaded from disk",
                      r.stdout)
    assert split and int(split.group(1)) + int(split.group(2)) == 96, r.stdout
    assert int(split.group(2)) >= 48, split.group(0)
    assert re.search(r"^tiered get: disk tier read [\d.]+ GB in [\d.]+ s: [\d.]+ GB/s = "
                     r"[\d.]+% of the O_DIRECT read ceiling", r.stdout, re.M), r.stdout
    assert r.stdout.rstrip().endswith("ok")
    # The bench's directory (tier file, probe file) is gone; what was there stays.
    assert os.listdir(var_tmp) == []


def test_tiered_json_without_the_probe(var_tmp):
    why = o_direct_refusal(var_tmp)
    if why:
        pytest.skip("hardware: the disk tier needs O_DIRECT and " + why)
    keep = os.path.join(var_tmp, "kvcached-bench.kvtier")  # a user's file of the same name
    with open(keep, "w") as f:
        f.write("not ours")
    doc = bench_json("--workload", "tiered", "--segment-size", "32MiB", "--disk-path", var_tmp,
                     "--disk-size", "128MiB", "--object-size", "1MiB", "--keys", "80",
                     "--batch", "4", "--threads", "2", "--no-baseline")
    assert doc["disk_ceiling"] is None and doc["baseline"] is None
    assert doc["settings"]["disk_path"] == var_tmp and doc["settings"]["disk_bytes"] == 128 << 20
    (w,) = doc["workloads"]
    t = w["tiered"]
    assert t["working_set_objects"] == 80 and t["working_set_bytes"] == 80 << 20
    assert t["put"]["stored"] == 80 and t["put"]["failed"] == 0 and t["put"]["demoted"] > 0
    g = t["get"]
    assert (g["hits"], g["misses"], g["wrong"], g["hit_rate"]) == (80, 0, 0, 1.0)
    assert g["from_dram"] + g["from_disk"] == 80 and g["from_disk"] > 0
    assert g["disk_dropped"] == 0 and g["promote_failures"] == 0
    # A load whose record was still in the tier's staging memory reads no file.
    assert 0 < g["disk_reads"] <= g["from_disk"] and not g["disk_read_bytes_estimated"]
    assert g["disk_read_bytes"] >= g["disk_reads"] << 20
    assert g["disk_gb_per_s"] > 0 and g["pct_of_disk_read_ceiling"] is None
    assert [op["op"] for op in w["ops"]] == ["put", "get"]
    assert w["ops"][1]["objects"] == 80 and w["ops"][1]["bytes"] == 80 << 20
    assert w["verify"]["checked_objects"] == 80 and w["verify"]["wrong_objects"] == 0
    assert doc["ok"] is True
    assert os.listdir(var_tmp) == ["kvcached-bench.kvtier"]
    with open(keep) as f:
        assert f.read() == "not ours"


def test_tiered_against_a_pool_reads_the_split_from_admin_metrics(var_tmp):
    why = o_direct_refusal(var_tmp)
    if why:
        pytest.skip("hardware: the disk tier needs O_DIRECT and " + why)
    master = Proc(["master", "--port", "0", "--admin-port", "0", "--no-meta"]).wait_ready()
    rpc = status_address(master, "rpc")
    store = Proc(["store", "--master", rpc, "--segment-size", "32MiB", "--host-id", "bench-test",
                  "--disk-path", var_tmp, "--disk-size", "128MiB"]).wait_ready()
    try:
        common = ["--master", rpc, "--host-id", "bench-test", "--workload", "tiered",
                  "--object-size", "1MiB", "--keys", "64", "--threads", "4", "--batch", "1"]
        doc = bench_json(*common, "--master-admin", master.url.removeprefix("http://"),
                         "--store-admin", store.url.removeprefix("http://"))
        assert doc["disk_ceiling"] is None  # the disk is the store's, not this host's to probe
        t = doc["workloads"][0]["tiered"]
        g = t["get"]
        assert (g["hits"], g["misses"], g["wrong"]) == (64, 0, 0)
        assert t["put"]["demoted"] > 0 and t["put"]["disk_write_bytes"] > 0
        assert g["from_dram"] + g["from_disk"] == 64 and g["from_disk"] > 0
        assert g["disk_reads"] > 0 and not g["disk_read_bytes_estimated"]
        assert t["per_tier_unknown_because"] == ""
        # Only the master's admin: the disk bytes are an estimate, and say so.
        r = bench(*common, "--master-admin", master.url.removeprefix("http://"))
        assert r.returncode == 0, r.stderr
        assert "(loads x mean object size)" in r.stdout, r.stdout
        # Neither: the split is unknown, and the line says what would give it.
        r = bench(*common)
        assert r.returncode == 0, r.stderr
        assert "per-tier split: unknown (give --master-admin" in r.stdout, r.stdout
        assert "hit rate 100.00% of 64 gets" in r.stdout, r.stdout
    finally:
        assert store.stop() == 0
        assert master.stop() == 0


def tmpfs_dir():
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "tmpfs" and os.access(fields[1], os.W_OK) and \
                    fields[1] in ("/dev/shm", "/tmp", "/run"):
                return fields[1]
    return None


def test_disk_path_on_tmpfs_is_refused_naming_it():
    d = tmpfs_dir()
    if d is None:
        pytest.skip("hardware: no writable tmpfs mount (/dev/shm, /tmp, /run) on this host")
    if o_direct_refusal(d) is None:
        pytest.skip(f"hardware: this kernel's tmpfs ({d}) takes O_DIRECT (Linux 6.6 and later), "
                    "so there is no refusal to see")
    r = bench("--workload", "tiered", "--segment-size", "32MiB", "--disk-path", d,
              "--disk-size", "64MiB", "--object-size", "1MiB", "--keys", "8", "--no-baseline")
    assert r.returncode == 69, (r.returncode, r.stdout, r.stderr)
    assert "does not support O_DIRECT" in r.stderr and d in r.stderr, r.stderr
    assert not [n for n in os.listdir(d) if n.startswith("kvcached-bench-")]
