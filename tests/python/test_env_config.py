"""Settings from the environment, as Mooncake reads them: the JSON file named
by MOONCAKE_CONFIG_PATH (or SGLang's SGLANG_HICACHE_MOONCAKE_CONFIG_PATH),
else the MOONCAKE_* variables, with sizes like "64mb"; plus
KVCACHED_TOKEN_FILE and KVCACHED_TRANSPORT. The library reads the
variables with getenv, so monkeypatch's os.environ changes reach it."""

import json

import pytest

from kvcached import MooncakeDistributedStore, errors

VARS = ("MOONCAKE_CONFIG_PATH", "SGLANG_HICACHE_MOONCAKE_CONFIG_PATH", "MOONCAKE_MASTER",
        "MOONCAKE_LOCAL_HOSTNAME", "MOONCAKE_TE_META_DATA_SERVER", "MOONCAKE_GLOBAL_SEGMENT_SIZE",
        "MOONCAKE_LOCAL_BUFFER_SIZE", "MOONCAKE_PROTOCOL", "MOONCAKE_DEVICE",
        "KVCACHED_TOKEN_FILE", "KVCACHED_TRANSPORT")


@pytest.fixture
def env(monkeypatch):
    for v in VARS:
        monkeypatch.delenv(v, raising=False)
    return monkeypatch


def opened(**overrides):
    s = MooncakeDistributedStore()
    rc = s.setup_from_env(**overrides)
    return s, rc


def test_variables(cluster, env, prefix):
    env.setenv("MOONCAKE_MASTER", cluster.rpc)
    env.setenv("MOONCAKE_LOCAL_HOSTNAME", "pytest-host")
    env.setenv("MOONCAKE_GLOBAL_SEGMENT_SIZE", "32mb")
    env.setenv("MOONCAKE_PROTOCOL", "tcp")
    env.setenv("KVCACHED_TRANSPORT", "tcp")
    s, rc = opened()
    assert rc == 0
    assert s.segment_name().startswith("pytest-host:")  # 32mb contributed, on this host id
    assert s.get_hostname() == s.segment_name()
    assert s.put(prefix + "a", b"v" * 1000) == 0 and s.get(prefix + "a") == b"v" * 1000
    s.close()


def test_bad_values_name_the_variable(cluster, env, caplog):
    env.setenv("MOONCAKE_MASTER", cluster.rpc)
    env.setenv("MOONCAKE_GLOBAL_SEGMENT_SIZE", "lots")
    s, rc = opened()
    assert rc == errors.INVALID_PARAMS
    assert "MOONCAKE_GLOBAL_SEGMENT_SIZE" in caplog.text
    env.setenv("MOONCAKE_GLOBAL_SEGMENT_SIZE", "0")
    env.setenv("KVCACHED_TRANSPORT", "carrier-pigeon")
    assert opened()[1] == errors.INVALID_PARAMS
    env.delenv("KVCACHED_TRANSPORT")
    assert opened()[1] == 0


def test_config_files(cluster, env, tmp_path, prefix):
    good = tmp_path / "mooncake.json"
    good.write_text(json.dumps({"local_hostname": "pytest-host", "metadata_server": "P2PHANDSHAKE",
                                "master_server_address": cluster.rpc,
                                "global_segment_size": "16mb", "local_buffer_size": 0,
                                "protocol": "tcp", "device_name": "", "check_server": False}))
    env.setenv("MOONCAKE_CONFIG_PATH", str(good))
    env.setenv("MOONCAKE_MASTER", "127.0.0.1:1")  # not read: the file wins
    s, rc = opened()
    # A contributing client's hostname is its segment's name, which carries the host id.
    assert rc == 0 and s.segment_name().startswith("pytest-host:")
    assert s.get_hostname() == s.segment_name()
    s.close()

    # SGLang's variable names a file applied on top.
    sglang = tmp_path / "sglang.json"
    sglang.write_text(json.dumps({"master_server_address": cluster.rpc,
                                  "local_hostname": "from-sglang-file",
                                  "global_segment_size": 0}))
    env.setenv("SGLANG_HICACHE_MOONCAKE_CONFIG_PATH", str(sglang))
    s, rc = opened()
    assert rc == 0 and s.get_hostname() == "from-sglang-file" and s.segment_name() == ""
    s.close()

    # Overrides come last.
    s, rc = opened(local_hostname="override")
    assert rc == 0 and s.get_hostname() == "override"
    s.close()

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"master_server_address": 50051}))
    env.setenv("SGLANG_HICACHE_MOONCAKE_CONFIG_PATH", str(bad))
    assert opened()[1] == errors.INVALID_PARAMS


def test_token_file(fresh_cluster, env, tmp_path, prefix):
    token = tmp_path / "token"
    token.write_text("a-cluster-token-of-enough-bytes\n")
    token.chmod(0o600)
    c = fresh_cluster("64MiB", extra=["--token-file", str(token)])
    args = ("pytest-host", "P2PHANDSHAKE", 0, 0, "tcp", "", c.rpc)
    s = MooncakeDistributedStore()
    assert s.setup(*args) == errors.ILLEGAL_CLIENT  # no token
    env.setenv("KVCACHED_TOKEN_FILE", str(token))  # applies to setup() too
    assert s.setup(*args) == 0
    assert s.put(prefix + "t", b"v" * 100) == 0 and s.get(prefix + "t") == b"v" * 100
    s.close()
    assert s.setup({"master_server_address": c.rpc, "token": "a-wrong-token-of-enough-bytes"}) \
        == errors.ILLEGAL_CLIENT
    short = tmp_path / "short-token"
    short.write_text("too-short")
    env.setenv("KVCACHED_TOKEN_FILE", str(short))
    assert s.setup(*args) == errors.INVALID_PARAMS
