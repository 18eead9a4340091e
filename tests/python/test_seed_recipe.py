"""The seed deployment recipe run as written (seed_recipe_scenario.py says
what it runs and checks), in a network namespace of its own so that its
fixed ports cannot meet another test's: `unshare --net` as root, with a user
namespace (`--map-root-user`) otherwise."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import BIN, PYTHON_DIR, daemon_env

HERE = os.path.dirname(os.path.abspath(__file__))


def unshare_prefix():
    """The unshare command line that gives this process's child a network
    namespace of its own, or a reason why there is none."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "no unshare program (util-linux)"
    prefix = [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--map-root-user", "--net"]
    probe = subprocess.run(prefix + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return None, f"cannot make a network namespace: {probe.stderr.strip()}"
    return prefix, ""


@pytest.fixture
def seed_bin_dir():
    """`mooncake_master`, `kvcached` and `python` as the packages install
    them (links to the programs under test)."""
    d = tempfile.mkdtemp(prefix="kvcached-seed-bin-")
    os.symlink(os.path.abspath(BIN), os.path.join(d, "kvcached"))
    os.symlink(os.path.abspath(BIN), os.path.join(d, "mooncake_master"))
    os.symlink(sys.executable, os.path.join(d, "python"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_the_seed_recipe_as_written(seed_bin_dir):
    prefix, why = unshare_prefix()
    if prefix is None:
        pytest.fail(f"the recipe runs on fixed ports and needs its own network namespace: {why}")
    shim = subprocess.run([sys.executable, "-m", "kvcached.shim", "path"], capture_output=True,
                          text=True, check=True, env=dict(os.environ, PYTHONPATH=PYTHON_DIR)).stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOONCAKE_", "SGLANG_"))}
    env["SEED_BIN_DIR"] = seed_bin_dir
    env["PYTHONPATH"] = os.pathsep.join([shim.strip(), PYTHON_DIR, HERE])
    run = subprocess.run(prefix + [sys.executable, os.path.join(HERE, "seed_recipe_scenario.py")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert "every check held" in run.stdout


def run_mooncake_master(seed_bin_dir, *args):
    return subprocess.run([os.path.join(seed_bin_dir, "mooncake_master"), *args],
                          capture_output=True, text=True, timeout=60, env=daemon_env())


def test_mooncake_master_refuses_what_kvcached_lacks_and_bad_flags(seed_bin_dir):
    for args in (["--root_fs_dir=/mnt/dfs"], ["--allocation_strategy=cxl"]):
        r = run_mooncake_master(seed_bin_dir, *args)
        assert r.returncode == 69, (args, r.stderr)  # not available in this build
        assert args[0].split("=")[0] in r.stderr
    for args in (["--rpc_port=abc"], ["--no_such_flag=1"], ["stray"], ["--enable_ha"]):
        r = run_mooncake_master(seed_bin_dir, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert "mooncake_master: error:" in r.stderr
    r = run_mooncake_master(seed_bin_dir, "--help")
    assert r.returncode == 0 and "--eviction_high_watermark_ratio" in r.stdout


def test_mooncake_master_takes_its_config_file_and_flags_over_it(seed_bin_dir, tmp_path):
    from conftest import Proc
    conf = tmp_path / "master.json"
    conf.write_text('{"metrics_port": 1, "enable_http_metadata_server": true, '
                    '"http_metadata_server_port": 0, "default_kv_lease_ttl": 2500, '
                    '"client_live_ttl_sec": 30, "default_kv_soft_pin_ttl": 60000, '
                    '"enable_metric_reporting": true}')
    master = Proc([f"--config_path={conf}", "--port=0", "--metrics_port", "0"],
                  command=[os.path.join(seed_bin_dir, "mooncake_master")])
    try:
        # The flag's admin port (any free) won over the file's 1; the file
        # turned the metadata service on.
        assert master.address("admin").split(":")[1] != "1"
        master.address("meta")
        log = master.log()
        assert "lease 2500ms, client ttl 30s" in log, log
        assert "soft pins 1m, placement" in log, log
        assert "--enable_metric_reporting: no effect" in log, log
    finally:
        master.stop()
    assert master.proc.returncode == 0


def test_compat_doc_lists_every_mooncake_master_flag_as_help_says(seed_bin_dir):
    """docs/compat.md's table of mooncake_master's flags is the --help text."""
    import re
    r = run_mooncake_master(seed_bin_dir, "--help")
    helped = [tuple(m.groups()) for m in re.finditer(r"^  (--\w+) +(.+)$", r.stdout, re.M)]
    assert len(helped) > 30
    doc = open(os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs", "compat.md"),
               encoding="utf-8").read()
    section = doc.split("### `mooncake_master`'s flags", 1)[1]
    documented = [tuple(m.groups()) for m in
                  re.finditer(r"^\| `(--\w+)` \| (.+) \|$", section, re.M)]
    assert documented == helped
