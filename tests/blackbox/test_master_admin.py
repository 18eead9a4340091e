"""`kvcached master` from the outside: its admin HTTP API, the embedded
metadata service, and its command line. (The RPC protocol is exercised by
the C++ black-box tests in master_test.cpp.)"""

import json
import os
import re
import tempfile

from conftest import Proc, curl, run_cli


def start_master(*args):
    p = Proc(["master", "--port", "0", "--admin-port", "0", "--meta-port", "0"] + list(args))
    p.wait_ready()
    status = p.messages[-1]
    p.rpc = re.search(r"rpc (\S+)", status).group(1)
    meta = re.search(r"meta (\S+)", status).group(1)
    p.meta = None if meta == "off" else meta
    return p


def test_admin_api_and_embedded_metadata_service():
    p = start_master()
    try:
        assert curl(f"{p.url}/health").status == 200
        r = curl(f"{p.url}/api/v1/segments")
        assert r.status == 200 and r.header("Content-Type") == "application/json"
        doc = json.loads(r.body)
        assert doc["segments"] == [] and len(doc["master_id"]) == 32
        assert curl(f"{p.url}/get_all_segments").body == b""
        assert curl(f"{p.url}/api/v1/key?key=nope").status == 404
        assert curl(f"{p.url}/api/v1/key").status == 400
        assert curl("-X", "POST", f"{p.url}/api/v1/segments", data=b"x").status == 405
        assert curl(f"{p.url}/nope").status == 404
        text = curl(f"{p.url}/metrics").body.decode()
        for name in ("kvcached_master_keys 0", "kvcached_master_active_clients 0",
                     "kvcached_master_evictions_total 0", "kvcached_master_lease_refusals_total 0",
                     'kvcached_master_requests_total{op="ExistKey"} 0',
                     "kvcached_master_rpc_duration_seconds_bucket{", "kvcached_build_info{",
                     'kvcached_rpc_open_connections{server="rpc"} 0'):
            assert name in text, name
        # The metadata service runs in-process on --meta-port.
        assert p.meta and p.meta.endswith("/metadata")
        assert curl("-X", "PUT", f"{p.meta}?key=mooncake%2Fram%2Fs", data=b"{}").status == 200
        assert curl(f"{p.meta}?key=mooncake/ram/s").body == b"{}"
        assert p.stop() == 0
    finally:
        p.close()


def test_no_meta_and_token():
    fd, token_path = tempfile.mkstemp()
    os.write(fd, b"0123456789abcdef0123456789abcdef")
    os.close(fd)
    p = start_master("--no-meta", "--token-file", token_path)
    try:
        assert p.meta is None
        assert curl(f"{p.url}/health").status == 200
        assert curl(f"{p.url}/get_all_segments").status == 200  # SGLang's probe has no token
        assert curl(f"{p.url}/metrics").status == 401
        assert curl(f"{p.url}/api/v1/segments").status == 401
        for path in ("/get_all_keys", "/get_key_count", "/query_key?key=k",
                     "/batch_query_keys?keys=k", "/query_segment?segment=s", "/metrics/summary"):
            assert curl(f"{p.url}{path}").status == 401, path
        r = curl("-H", "Authorization: Bearer 0123456789abcdef0123456789abcdef",
                 f"{p.url}/batch_query_keys?keys=k")
        assert r.status == 200 and b'"OBJECT_NOT_FOUND"' in r.body
        r = curl("-H", "Authorization: Bearer 0123456789abcdef0123456789abcdef",
                 f"{p.url}/api/v1/segments")
        assert r.status == 200
        assert p.stop() == 0
    finally:
        p.close()
        os.remove(token_path)


def test_master_command_line():
    r = run_cli("master", "--help")
    assert r.returncode == 0
    for opt in ("--default-kv-lease-ttl", "--eviction-high-watermark-ratio", "--eviction-ratio",
                "--client-ttl", "--allocation-strategy", "--admin-port", "--meta-port",
                "--no-meta", "--put-start-discard-timeout", "--put-start-release-timeout",
                "--token-file", "--max-frame-size"):
        assert opt in r.stdout, opt
    for args, name in ((["--eviction-ratio", "1.5"], "--eviction-ratio"),
                       (["--allocation-strategy", "fastest"], "--allocation-strategy"),
                       (["--default-kv-lease-ttl", "soon"], "--default-kv-lease-ttl")):
        r = run_cli("master", *args)
        assert r.returncode == 2, args
        assert name in r.stderr
    r = run_cli("master", "--port", "0", "--admin-port", "0", "--meta-port", "0",
                "--put-start-discard-timeout", "1m", "--put-start-release-timeout", "30s")
    assert r.returncode == 78
    assert "must not be shorter" in r.stderr


def test_mooncake_metadata_server_flag():
    p = start_master("--enable_http_metadata_server=false")
    try:
        assert p.meta is None
        assert p.stop() == 0
    finally:
        p.close()


def test_mooncake_flag_spellings():
    # Mooncake's master flags work unchanged; a bare lease TTL is milliseconds.
    p = start_master("--default_kv_lease_ttl", "2500", "--eviction_high_watermark_ratio", "0.8",
                     "--client_ttl", "20")
    try:
        log = p.log()
        assert "lease 2500ms, client ttl 20s, eviction at 80%" in log
        assert p.stop() == 0
    finally:
        p.close()
