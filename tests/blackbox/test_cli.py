"""The command line: help, version, errors and configuration precedence."""

import json
import os
import re
import tempfile

from conftest import Proc, curl, run_cli


def test_help_and_version():
    r = run_cli("--help")
    assert r.returncode == 0
    for sub in ("master", "meta", "store", "bench"):
        assert re.search(rf"^\s+{sub}\s", r.stdout, re.M), sub
    for sub in ("master", "meta", "store", "bench"):
        r = run_cli(sub, "--help")
        assert r.returncode == 0, sub
        assert "--log-level" in r.stdout
    r = run_cli("meta", "--help")
    for opt in ("--host", "--port", "--threads", "--max-body-size", "--max-key-length",
                "--max-header-size", "--max-connections", "--read-timeout", "--token-file",
                "KVCACHED_PORT"):
        assert opt in r.stdout, opt
    r = run_cli("--version")
    assert r.returncode == 0
    assert re.match(r"kvcached \d+\.\d+\.\d+ \(rev \S+", r.stdout)
    assert "build type:" in r.stdout
    assert "rdma transport:" in r.stdout


def test_no_subcommand_is_a_usage_error():
    r = run_cli()
    assert r.returncode == 2
    assert "a subcommand is required" in r.stderr


def one_error_line(r):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_bad_flags_exit_2_with_one_line_naming_the_option():
    cases = [
        (["meta", "--bogus"], "--bogus"),
        (["meta", "--port", "http"], "--port"),
        (["meta", "--port", "65536"], "--port"),
        (["meta", "--max-body-size", "lots"], "--max-body-size"),
        (["meta", "--max-body-size", "-4gb"], "--max-body-size"),
        (["meta", "--max-body-size", "99999999999999999999999"], "--max-body-size"),
        (["meta", "--read-timeout", "forever"], "--read-timeout"),
        (["meta", "--log-level", "loud"], "--log-level"),
        (["nosuch"], "nosuch"),
    ]
    for args, name in cases:
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert name in one_error_line(r), args



def test_store_disk_options_without_their_partner_exit_2_naming_it():
    """A disk tier needs both --disk-path and --disk-size; its other options
    alone would be ignored, so the store refuses to start instead (before it
    allocates or contacts anything: the master address is not listening)."""
    store = ["store", "--master", "127.0.0.1:1", "--segment-size", "16MiB"]
    cases = [
        (store + ["--disk-size", "1GiB"], {}, "--disk-size is for a disk tier"),
        (store + ["--disk-staging", "8MiB"], {}, "--disk-staging is for a disk tier"),
        (store + ["--disk-fsync"], {}, "--disk-fsync is for a disk tier"),
        (store, {"KVCACHED_DISK_SIZE": "1GiB"}, "KVCACHED_DISK_SIZE (--disk-size) is for a disk"),
        (store + ["--disk-path", tempfile.gettempdir()], {}, "--disk-path needs --disk-size"),
    ]
    for args, env, message in cases:
        r = run_cli(*args, env=env)
        assert r.returncode == 2, (args, env, r.stderr)
        assert message in one_error_line(r), (args, env)

def test_bad_environment_or_file_exits_78():
    r = run_cli("meta", env={"KVCACHED_MAX_BODY_SIZE": "12 parsecs"})
    assert r.returncode == 78
    line = one_error_line(r)
    assert "KVCACHED_MAX_BODY_SIZE" in line and "--max-body-size" in line
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.json")
        for content, expect in (('{"port": 1,}', "not valid JSON"),
                                ('{"prot": 1}', "unknown setting 'prot'"),
                                ('{"port": "x"}', "--port"),
                                ('[]', "JSON object")):
            with open(path, "w") as f:
                f.write(content)
            r = run_cli("meta", "--config", path)
            assert r.returncode == 78, content
            assert expect in one_error_line(r), content
        r = run_cli("meta", "--config", os.path.join(d, "missing.json"))
        assert r.returncode == 78
        assert "cannot read config file" in r.stderr


def test_precedence_flag_over_env_over_file_over_default():
    """Which limit is in force is observed through the server's behaviour."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.json")
        with open(path, "w") as f:
            json.dump({"max_key_length": 10, "max_body_size": "100"}, f)

        def limits(args, env):
            p = Proc(["meta", "--port", "0", "--config", path] + args, env=env).wait_ready()
            try:
                url = f"{p.url}/metadata?key="
                key_ok = max(n for n in (5, 10, 20, 40)
                             if curl("-X", "PUT", url + "k" * n, data=b"v").status == 200)
                body_ok = curl("-X", "PUT", url + "b", data=b"x" * 100).status == 200
                return key_ok, body_ok
            finally:
                assert p.stop() == 0

        assert limits([], {}) == (10, True)                                   # file
        assert limits([], {"KVCACHED_MAX_KEY_LENGTH": "20"}) == (20, True)    # env > file
        assert limits(["--max-key-length", "40"],
                      {"KVCACHED_MAX_KEY_LENGTH": "20"}) == (40, True)        # flag > env
        assert limits(["--max-body-size", "99"], {}) == (10, False)           # flag > file
        # KVCACHED_CONFIG names the file when --config is absent.
        p = Proc(["meta", "--port", "0"], env={"KVCACHED_CONFIG": path}).wait_ready()
        try:
            assert curl("-X", "PUT", f"{p.url}/metadata?key=" + "k" * 11,
                        data=b"v").status == 400
        finally:
            assert p.stop() == 0


def test_port_in_use_fails_clearly(meta):
    r = run_cli("meta", "--port", str(meta.port))
    assert r.returncode == 75  # EX_TEMPFAIL: systemd may retry
    assert f"cannot listen on 127.0.0.1:{meta.port}" in r.stderr
