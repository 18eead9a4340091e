"""The master's admin paths in Mooncake's shapes (mooncake_master's HTTP
port), as tools written for Mooncake read them: Dynamo's KV router polls
/batch_query_keys; operators use /get_all_keys, /query_key, /query_segment
and /metrics/summary. Objects are put through the Python client."""

import json
import urllib.error
import urllib.parse
import urllib.request

from kvcached import MooncakeDistributedStore, ReplicateConfig


def get(cluster, path):
    url = "http://" + cluster.master.address("admin") + path
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type")


def q(text):
    return urllib.parse.quote(text, safe="")


def test_query_paths_in_mooncake_shapes(cluster, store, prefix):
    segment = cluster.stores[0].segment
    rc = ReplicateConfig(preferred_segment=segment)
    a, b = prefix + "a", prefix + "b"
    assert store.put(a, b"x" * 5000, rc) == 0
    assert store.put(b, b"y" * 70, rc) == 0

    status, body, ctype = get(cluster, f"/batch_query_keys?keys={q(a)},{q(prefix + 'none')},{q(b)}")
    assert status == 200 and ctype.startswith("application/json")
    doc = json.loads(body)
    assert doc["success"] is True
    assert set(doc["data"]) == {a, b, prefix + "none"}
    assert doc["data"][prefix + "none"] == {"ok": False, "error": "OBJECT_NOT_FOUND"}
    entry = doc["data"][a]
    assert entry["ok"] is True and len(entry["values"]) == 1
    desc = entry["values"][0]
    assert desc["size_"] == 5000 and desc["transport_endpoint_"] == segment
    assert isinstance(desc["buffer_address_"], int)
    assert doc["data"][b]["values"][0]["size_"] == 70

    status, body, _ = get(cluster, "/batch_query_keys")
    assert status == 400 and json.loads(body)["success"] is False

    status, body, _ = get(cluster, f"/query_key?key={q(a)}")
    assert status == 200
    lines = body.splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == desc
    status, body, _ = get(cluster, f"/query_key?key={q(prefix + 'none')}")
    assert status == 404 and body == "OBJECT_NOT_FOUND"
    assert get(cluster, "/query_key")[0] == 400

    status, body, _ = get(cluster, "/get_all_keys")
    keys = body.splitlines()
    assert status == 200 and a in keys and b in keys
    status, body, _ = get(cluster, "/get_key_count")
    assert status == 200 and int(body) >= 2

    status, body, _ = get(cluster, f"/query_segment?segment={q(segment)}")
    assert status == 200
    name, used, capacity = body.splitlines()
    assert name == segment
    assert int(used.split(":")[1]) >= 5000 + 70
    assert int(capacity.split(":")[1]) == 256 << 20
    assert get(cluster, "/query_segment?segment=no-such-segment")[0] == 404

    status, body, _ = get(cluster, "/metrics/summary")
    assert status == 200 and "keys=" in body and "used_bytes=" in body

    # A removed object is gone from every view.
    assert store.remove(a) == 0
    assert get(cluster, f"/query_key?key={q(a)}")[0] == 404
    assert a not in get(cluster, "/get_all_keys")[1].splitlines()
    doc = json.loads(get(cluster, f"/batch_query_keys?keys={q(a)}")[1])
    assert doc["data"][a]["ok"] is False


def test_admin_paths_are_read_only(cluster):
    url = "http://" + cluster.master.address("admin") + "/batch_query_keys?keys=k"
    req = urllib.request.Request(url, data=b"x", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("POST was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 405
