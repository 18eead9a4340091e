"""--token-file: every request but /health needs the bearer token."""

import os
import tempfile

import pytest

from conftest import Proc, curl, run_cli

TOKEN = "3f8a1c0d9b7e6f5a4c3b2a1908f7e6d5"


@pytest.fixture
def token_file():
    fd, path = tempfile.mkstemp(prefix="kvcached-token-")
    os.write(fd, (TOKEN + "\n").encode())
    os.close(fd)
    os.chmod(path, 0o600)
    yield path
    os.remove(path)


def test_token_required(start_meta, token_file):
    meta = start_meta("--token-file", token_file)
    url = f"{meta.url}/metadata?key=k"
    auth = ["-H", f"Authorization: Bearer {TOKEN}"]
    r = curl("-X", "PUT", url, data=b"v")
    assert r.status == 401
    assert r.header("WWW-Authenticate").startswith("Bearer")
    r = curl("-X", "PUT", "-H", "Authorization: Bearer wrong-token-000000000000", url, data=b"v")
    assert r.status == 401
    assert curl("-X", "PUT", "-H", f"Authorization: Basic {TOKEN}", url, data=b"v").status == 401
    assert curl(url).status == 401
    assert curl(f"{meta.url}/metrics").status == 401
    assert curl(f"{meta.url}/health").status == 200
    assert curl(*auth, url).status == 404  # nothing was stored by the refused PUTs
    assert curl("-X", "PUT", *auth, url, data=b"v").status == 200
    assert curl(*auth, url).body == b"v"
    assert curl("-X", "DELETE", url).status == 401
    assert curl(*auth, url).body == b"v"
    assert curl(*auth, f"{meta.url}/metrics").status == 200
    assert "missing or wrong bearer token" in meta.log()


def test_bad_token_files_fail_start_up_with_78(token_file):
    empty = token_file + ".empty"
    open(empty, "w").close()
    try:
        for path, why in ((empty, "empty"), ("/nonexistent/token", "cannot read")):
            p = Proc(["meta", "--port", "0", "--token-file", path])
            try:
                assert p.proc.wait(30) == 78
                assert why in p.log()
            finally:
                p.close()
    finally:
        os.remove(empty)


def test_world_readable_token_file_warns(start_meta, token_file):
    os.chmod(token_file, 0o644)
    meta = start_meta("--token-file", token_file)
    assert "chmod 600" in meta.log()


# Each daemon with --host 0.0.0.0 (bound, but nothing is sent anywhere but
# loopback) and no token: refused with exit 78 unless --insecure.
EXPOSED = {
    "meta": ["meta", "--port", "0"],
    "master": ["master", "--port", "0", "--admin-port", "0", "--meta-port", "0"],
    # The data port is checked before the master is contacted.
    "store": ["store", "--master", "127.0.0.1:9", "--segment-size", "1MiB", "--data-port", "0",
              "--admin-port", "0"],
}


@pytest.mark.parametrize("role", sorted(EXPOSED))
def test_non_loopback_without_token_is_refused(role):
    r = run_cli(*EXPOSED[role], "--host", "0.0.0.0")
    assert r.returncode == 78, r.stderr
    assert "refusing" in r.stderr and "--insecure" in r.stderr and "--token-file" in r.stderr


def test_non_loopback_with_insecure_warns(start_meta):
    meta = start_meta("--host", "0.0.0.0", "--insecure")
    log = meta.log()
    assert "without --token-file (--insecure)" in log
    assert "segment descriptor" in log


def test_non_loopback_with_a_token_serves_quietly(start_meta, token_file):
    meta = start_meta("--host", "0.0.0.0", "--token-file", token_file)
    assert "without --token-file" not in meta.log()


def test_loopback_without_token_does_not_warn(meta):
    assert "without --token-file" not in meta.log()
