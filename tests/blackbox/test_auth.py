"""--token-file: every request but /health needs the bearer token."""

import os
import tempfile

import pytest

from conftest import Proc, curl

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


def test_non_loopback_without_token_warns(start_meta):
    # Binds the wildcard address but sends nothing anywhere but loopback.
    meta = start_meta("--host", "0.0.0.0")
    log = meta.log()
    assert "without --token-file" in log
    assert "segment descriptor" in log


def test_loopback_without_token_does_not_warn(meta):
    assert "without --token-file" not in meta.log()
