"""Tenants (docs/master.md, "Tenants"): each tenant_id is its own key space on
one master, with per-tenant metrics and byte quotas. Clients are the Python
MooncakeDistributedStore, set up the three ways SGLang sets it up (the
tenant_id keyword, a setup dict, MOONCAKE_TENANT_ID); every value read is
checked against the one its tenant wrote."""
import re
import subprocess
import urllib.request

from conftest import BIN, daemon_env
from kvcached import MooncakeDistributedStore, errors

MiB = 1 << 20


def value(tenant, key, size=4096):
    """Bytes derived from the tenant and the key: a read of another tenant's
    object shows."""
    seed = f"{tenant}/{key}/".encode()
    return (seed * (size // len(seed) + 1))[:size]


def admin(cluster, path):
    with urllib.request.urlopen("http://" + cluster.master.address("admin") + path,
                                timeout=10) as r:
        return r.read().decode()


def metric(text, name, tenant):
    m = re.search(rf'^{name}{{tenant="{re.escape(tenant)}"}} (\d+)$', text, re.M)
    return int(m.group(1)) if m else None


def open_clients(cluster, monkeypatch):
    default = MooncakeDistributedStore()
    assert default.setup(*cluster.setup_args()) == 0
    team_a = MooncakeDistributedStore()
    assert team_a.setup(*cluster.setup_args(), None, tenant_id="team-a") == 0
    team_b = MooncakeDistributedStore()
    assert team_b.setup({"master_server_address": cluster.rpc, "tenant_id": "team-b"}) == 0
    monkeypatch.setenv("MOONCAKE_MASTER", cluster.rpc)
    monkeypatch.setenv("MOONCAKE_TENANT_ID", "team-a")
    team_a_env = MooncakeDistributedStore()
    assert team_a_env.setup_from_env() == 0
    return {"default": default, "team-a": team_a, "team-b": team_b}, team_a_env


def test_each_tenant_has_its_own_key_space(fresh_cluster, monkeypatch):
    cluster = fresh_cluster("64MiB")
    clients, team_a_env = open_clients(cluster, monkeypatch)
    try:
        for tenant, c in clients.items():
            assert c.put("shared", value(tenant, "shared")) == 0
            assert c.put(f"only-{tenant}", value(tenant, f"only-{tenant}")) == 0
        for tenant, c in clients.items():
            assert c.get("shared") == value(tenant, "shared")
            for other in clients:
                want = 1 if other == tenant else 0
                assert c.is_exist(f"only-{other}") == want, (tenant, other)
        # MOONCAKE_TENANT_ID names the same key space as tenant_id=.
        assert team_a_env.get("shared") == value("team-a", "shared")
        assert team_a_env.get("only-team-a") == value("team-a", "only-team-a")

        # The master's admin paths take tenant=; without it, the default's.
        assert admin(cluster, "/get_all_keys?tenant=team-b").split() == \
            ["shared", "only-team-b"]
        assert sorted(admin(cluster, "/get_all_keys").split()) == ["only-default", "shared"]
        assert '"size_":4096' in admin(cluster, "/query_key?key=only-team-a&tenant=team-a")
        assert admin(cluster, "/get_key_count?tenant=team-a") == "2"
        assert admin(cluster, "/get_key_count") == "6"
        metrics = admin(cluster, "/metrics")
        for tenant in clients:
            assert metric(metrics, "kvcached_master_tenant_objects", tenant) == 2
            assert metric(metrics, "kvcached_master_tenant_bytes", tenant) == 2 * 4096

        # remove_all removes the caller's tenant's objects only.
        assert clients["team-a"].remove_all() == 2
        assert clients["team-a"].is_exist("shared") == 0
        assert team_a_env.get("shared") == b""
        assert clients["default"].get("shared") == value("default", "shared")
        assert clients["team-b"].get("shared") == value("team-b", "shared")
        assert metric(admin(cluster, "/metrics"), "kvcached_master_tenant_objects",
                      "team-a") is None
    finally:
        for c in [*clients.values(), team_a_env]:
            c.close()


def test_a_key_beginning_with_nul_is_refused(cluster):
    # Such keys would name other tenants' objects (core/tenant.h).
    c = MooncakeDistributedStore()
    assert c.setup(*cluster.setup_args()) == 0
    try:
        assert c.put("\0team-a\0shared", b"x") == errors.INVALID_KEY
        assert c.is_exist("\0team-a\0shared") != 1
        assert c.put("fine\0inside", b"x") == 0
        assert c.get("fine\0inside") == b"x"
    finally:
        c.close()


def test_a_quota_evicts_the_tenants_own_oldest_objects(fresh_cluster):
    cluster = fresh_cluster("64MiB", master_extra=["--tenant-quotas", "team-q=4MiB"])
    tenants = {"team-q": MooncakeDistributedStore(), "default": MooncakeDistributedStore()}
    assert tenants["team-q"].setup(*cluster.setup_args(), None, tenant_id="team-q") == 0
    assert tenants["default"].setup(*cluster.setup_args()) == 0
    q, d = tenants["team-q"], tenants["default"]
    try:
        assert d.put("default-0", value("default", "default-0", MiB)) == 0
        for i in range(6):  # 6 MiB into a 4 MiB quota
            assert q.put(f"q-{i}", value("team-q", f"q-{i}", MiB)) == 0
        # The newest four are there, exact; the two oldest went for them.
        for i in range(6):
            got = q.get(f"q-{i}")
            assert got == (value("team-q", f"q-{i}", MiB) if i >= 2 else b""), i
        # The default tenant (no quota) lost nothing.
        assert d.get("default-0") == value("default", "default-0", MiB)
        # An object larger than the whole quota can never fit.
        assert q.put("too-big", bytes(5 * MiB)) != 0
        metrics = admin(cluster, "/metrics")
        assert metric(metrics, "kvcached_master_tenant_quota_bytes", "team-q") == 4 * MiB
        assert metric(metrics, "kvcached_master_tenant_bytes", "team-q") == 4 * MiB
        assert metric(metrics, "kvcached_master_tenant_quota_evictions_total", "team-q") == 2
        assert metric(metrics, "kvcached_master_tenant_quota_refusals_total", "team-q") == 1
    finally:
        q.close()
        d.close()


def test_bad_tenant_quotas_stop_the_master_with_the_reason():
    for bad, why in [("team-a", "is not NAME=SIZE"), ("team a=1MiB", "letters, digits"),
                     ("team-a=lots", "is not a size"), ("a=1MiB,a=2MiB", "named twice")]:
        r = subprocess.run([BIN, "master", "--port", "0", "--admin-port", "0", "--no-meta",
                            "--tenant-quotas", bad],
                           capture_output=True, text=True, timeout=30, env=daemon_env())
        assert r.returncode == 78, (bad, r.stderr)
        assert "--tenant-quotas" in r.stderr and why in r.stderr, (bad, r.stderr)
