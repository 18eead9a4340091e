"""Every limit answers with the right status, changes nothing, and the
server keeps serving everyone else."""

import socket
import time

from conftest import curl, raw_exchange, status_of


def md(meta, key):
    return f"{meta.url}/metadata?key={key}"


def test_body_size_limit(start_meta):
    meta = start_meta("--max-body-size", "1.5KB")  # 1536 bytes
    assert curl("-X", "PUT", md(meta, "k"), data=b"a" * 1536).status == 200
    r = curl("-X", "PUT", md(meta, "k"), data=b"b" * 1537)
    assert r.status == 413
    assert curl(md(meta, "k")).body == b"a" * 1536


def test_oversized_body_refused_before_it_is_sent(start_meta):
    meta = start_meta("--max-body-size", "1KiB")
    # Announced length far over the limit, body never sent: the answer must
    # come from the header alone.
    raw = raw_exchange(meta.port, b"PUT /metadata?key=k HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: 99999999999\r\n\r\n")
    assert status_of(raw) == 413
    # Expect: 100-continue with an acceptable size gets "100 Continue" first.
    with socket.create_connection(("127.0.0.1", meta.port), timeout=10) as s:
        s.sendall(b"PUT /metadata?key=e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        s.sendall(b"abcd")
        assert status_of(s.recv(4096)) == 200
    assert curl(md(meta, "e")).body == b"abcd"
    # curl sends Expect: 100-continue for large bodies; it must see the 413.
    r = curl("-X", "PUT", "-H", "Expect: 100-continue", md(meta, "big"), data=b"x" * 200000)
    assert r.status == 413
    assert curl(md(meta, "big")).status == 404


def test_key_length_limit(start_meta):
    meta = start_meta("--max-key-length", "64")
    assert curl("-X", "PUT", md(meta, "k" * 64), data=b"v").status == 200
    r = curl("-X", "PUT", md(meta, "k" * 65), data=b"v")
    assert r.status == 400
    assert b"exceeds" in r.body
    assert curl(md(meta, "k" * 65)).status == 400
    # Escapes count after decoding: 64 decoded bytes written as %6B.
    assert curl(md(meta, "%6B" * 64)).status == 200


def test_header_size_limit(start_meta):
    meta = start_meta("--max-header-size", "2KiB")
    r = curl("-H", "X-Filler: " + "f" * 4096, md(meta, "k"))
    assert r.status == 431
    assert curl(md(meta, "k")).status == 404  # server fine afterwards


def test_total_size_limit(start_meta):
    meta = start_meta("--max-total-size", "4KiB")
    assert curl("-X", "PUT", md(meta, "a"), data=b"x" * 3000).status == 200
    r = curl("-X", "PUT", md(meta, "b"), data=b"y" * 2000)
    assert r.status == 507
    assert curl(md(meta, "b")).status == 404
    assert curl(md(meta, "a")).body == b"x" * 3000
    assert curl("-X", "DELETE", md(meta, "a")).status == 200
    assert curl("-X", "PUT", md(meta, "b"), data=b"y" * 2000).status == 200


def test_connection_limit(start_meta):
    meta = start_meta("--max-connections", "4")
    held = []
    try:
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", meta.port), timeout=10)
            # A full request/response proves the server registered this one.
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(s.recv(4096)) == 200
            held.append(s)
        raw = raw_exchange(meta.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(raw) == 503
    finally:
        for s in held:
            s.close()
    # Once the held connections are gone, new ones are served again.
    deadline = time.monotonic() + 10
    while True:
        if curl(f"{meta.url}/health").status == 200:
            break
        assert time.monotonic() < deadline, "server did not recover after connections closed"


def test_idle_and_slow_clients_are_closed(start_meta):
    meta = start_meta("--read-timeout", "300ms")
    started = time.monotonic()
    # Idle: connects and says nothing.
    assert raw_exchange(meta.port, b"", timeout_s=10) == b""
    # Slow: half a request header, then silence.
    assert raw_exchange(meta.port, b"GET /metadata?key=k HTTP/1.1\r\nHo", timeout_s=10) == b""
    assert time.monotonic() - started < 9  # closed by the server, not by our own timeout
    text = curl(f"{meta.url}/metrics").body.decode()
    assert 'kvcached_http_read_timeouts_total{server="meta"} 2' in text


MALFORMED = [
    b"\x00\x01\x02\x03garbage\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /metadata?key=k HTTP/9.9\r\n\r\n",
    b"G@T /metadata?key=k HTTP/1.1\r\n\r\n",
    b"GET /metadata?key=k HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"PUT /metadata?key=k HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"PUT /metadata?key=k HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"PUT /metadata?key=k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"PUT /metadata?key=k HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"GET /metadata?key=k HTTP/1.1\r\nHost: x\r\n\x7f\x80: y\r\n\r\n",
]


def test_malformed_http_gets_400_and_harms_nobody(meta):
    assert curl("-X", "PUT", md(meta, "keep"), data=b"safe").status == 200
    for payload in MALFORMED:
        raw = raw_exchange(meta.port, payload, shutdown_write=True)
        assert raw == b"" or status_of(raw) == 400, payload
        assert meta.proc.poll() is None, payload
    assert curl(md(meta, "keep")).body == b"safe"
    assert curl(md(meta, "k")).status == 404
    text = curl(f"{meta.url}/metrics").body.decode()
    assert 'kvcached_http_malformed_requests_total{server="meta"} 0' not in text
