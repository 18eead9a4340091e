"""The metadata HTTP protocol, as Mooncake's clients and recipes use it."""

import os

from conftest import curl, raw_exchange, status_of


def md(meta, key):
    return f"{meta.url}/metadata?key={key}"


def test_put_get_delete_roundtrip(meta):
    descriptor = b'{"name":"seg1","buffers":[{"addr":1,"length":2}]}'
    r = curl("-X", "PUT", md(meta, "mooncake%2Fram%2Fseg1"), data=descriptor)
    assert r.status == 200
    r = curl(md(meta, "mooncake/ram/seg1"))
    assert r.status == 200
    assert r.body == descriptor
    assert r.header("Content-Type") == "application/json"
    r = curl("-X", "DELETE", md(meta, "mooncake/ram/seg1"))
    assert r.status == 200
    assert curl(md(meta, "mooncake/ram/seg1")).status == 404
    assert curl("-X", "DELETE", md(meta, "mooncake/ram/seg1")).status == 404


def test_missing_keys_are_404(meta):
    assert curl(md(meta, "never-written")).status == 404
    assert curl("-X", "DELETE", md(meta, "never-written")).status == 404


def test_values_are_stored_byte_for_byte(meta):
    blob = os.urandom(65536) + b"\x00\r\n\r\n"
    assert curl("-X", "PUT", md(meta, "bin"), data=blob).status == 200
    assert curl(md(meta, "bin")).body == blob
    assert curl("-X", "PUT", md(meta, "empty"), data=b"").status == 200
    r = curl(md(meta, "empty"))
    assert r.status == 200 and r.body == b""


def test_put_replaces_ordinary_keys(meta):
    assert curl("-X", "PUT", md(meta, "k"), data=b"one").status == 200
    assert curl("-X", "PUT", md(meta, "k"), data=b"two").status == 200
    assert curl(md(meta, "k")).body == b"two"


def test_rpc_meta_keys_refuse_different_bytes(meta):
    key = md(meta, "mooncake/rpc_meta/node-a")
    assert curl("-X", "PUT", key, data=b'{"ip":"10.0.0.1","port":1}').status == 200
    assert curl("-X", "PUT", key, data=b'{"ip":"10.0.0.1","port":1}').status == 200
    r = curl("-X", "PUT", key, data=b'{"ip":"10.6.6.6","port":1}')
    assert r.status == 400
    assert b"rpc_meta" in r.body
    assert curl(key).body == b'{"ip":"10.0.0.1","port":1}'
    assert curl("-X", "DELETE", key).status == 200
    assert curl("-X", "PUT", key, data=b'{"ip":"10.6.6.6","port":1}').status == 200


def test_missing_or_empty_key_is_400(meta):
    for url in (f"{meta.url}/metadata", f"{meta.url}/metadata?key=",
                f"{meta.url}/metadata?other=1", f"{meta.url}/metadata?key"):
        for method in ("GET", "PUT", "DELETE"):
            args = ["-X", method, url]
            r = curl(*args, data=b"x") if method == "PUT" else curl(*args)
            assert r.status == 400, (method, url)


def test_keys_are_stripped_and_blank_keys_refused(meta):
    # Mooncake's reference server strips the key: blanks alone are no key.
    for key in ("%20%20%20", "%09", "%20%0A%20"):
        for method in ("GET", "PUT", "DELETE"):
            args = ["-X", method, md(meta, key)]
            r = curl(*args, data=b"x") if method == "PUT" else curl(*args)
            assert r.status == 400, (method, key)
            assert b"key is required" in r.body
    assert curl("-X", "PUT", md(meta, "%20padded%09"), data=b"v").status == 200
    assert curl(md(meta, "padded")).body == b"v"
    assert curl(md(meta, "%20%20padded")).body == b"v"
    assert curl("-X", "DELETE", md(meta, "padded%20")).status == 200
    assert curl(md(meta, "padded")).status == 404


def test_answers_are_labelled_json_as_mooncake_labels_them(meta):
    answers = [
        curl("-X", "PUT", md(meta, "j"), data=b"{}"),                 # 200
        curl(md(meta, "missing")),                                     # 404
        curl(md(meta, "%20")),                                         # 400
        curl("-X", "POST", md(meta, "j"), data=b"x"),                 # 405
        curl("-X", "DELETE", md(meta, "j")),                           # 200
    ]
    assert [r.status for r in answers] == [200, 404, 400, 405, 200]
    for r in answers:
        assert r.header("Content-Type") == "application/json", r.status
    assert answers[1].body == b"metadata not found"


def test_a_keyless_request_is_400_whatever_its_method(meta):
    # The reference checks the key before the method.
    assert curl("-X", "POST", f"{meta.url}/metadata", data=b"x").status == 400
    assert curl("-X", "POST", md(meta, "k"), data=b"x").status == 405


def test_other_methods_are_405(meta):
    for method in ("POST", "PATCH", "OPTIONS"):
        r = curl("-X", method, md(meta, "k"), data=b"x")
        assert r.status == 405, method
        assert "PUT" in (r.header("Allow") or "")
    assert curl(md(meta, "k")).status == 404  # nothing was stored


def test_keys_are_url_decoded(meta):
    assert curl("-X", "PUT", md(meta, "a%2Fb%20c%2Bd"), data=b"v1").status == 200
    assert curl(md(meta, "a/b+c%2Bd")).body == b"v1"  # '+' in a query is a space
    assert curl(md(meta, "a%2fb%20c%2bd")).body == b"v1"
    r = curl(md(meta, "bad%zzescape"))
    assert r.status == 400


def test_head_health_metrics_and_unknown_paths(meta):
    assert curl("-X", "PUT", md(meta, "h"), data=b"12345").status == 200
    raw = raw_exchange(meta.port, b"HEAD /metadata?key=h HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n")
    assert status_of(raw) == 200
    assert b"Content-Length: 5\r\n" in raw and raw.endswith(b"\r\n\r\n")  # no body
    r = curl(f"{meta.url}/health")
    assert r.status == 200
    assert curl("-X", "PUT", f"{meta.url}/health", data=b"x").status == 405
    r = curl(f"{meta.url}/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    for name in ("kvcached_build_info{", "kvcached_http_requests_total{",
                 "kvcached_http_request_duration_seconds_bucket{", "kvcached_meta_keys ",
                 "kvcached_meta_stored_bytes ", "kvcached_http_open_connections{"):
        assert name in text, name
    assert 'kvcached_meta_operations_total{op="put",result="ok"} 1' in text
    assert curl(f"{meta.url}/nope").status == 404


def test_pipelined_requests_on_one_connection(meta):
    body = b"pipelined-value"
    req = (b"PUT /metadata?key=p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
           b"GET /metadata?key=p HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /metadata?key=p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
           % (len(body), body))
    raw = raw_exchange(meta.port, req)
    assert raw.count(b"HTTP/1.1 200 OK") == 3
    assert raw.endswith(body)
    assert raw.count(body) == 2


def test_http10_and_chunked_bodies(meta):
    raw = raw_exchange(meta.port, b"PUT /metadata?key=c HTTP/1.1\r\nHost: x\r\n"
                                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                  b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert status_of(raw) == 200
    raw = raw_exchange(meta.port, b"GET /metadata?key=c HTTP/1.0\r\n\r\n")
    assert status_of(raw) == 200 and raw.endswith(b"abcde")
