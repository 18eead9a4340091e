"""kvcached.sglang.KvcachedHiCacheStorage, loaded and constructed the way
SGLang's dynamic backend loading does (importlib, cls(storage_config,
kwargs), register_mem_pool_host), driven through SGLang's v1 call sequence
over a fake page_first host pool, against a real master and store."""

import importlib
import json
import urllib.request

import pytest

import hicache_scenario
from fake_sglang import FakeHostPool, page_keys, storage_config
from kvcached import MooncakeDistributedStore


def load_backend(config):
    """What SGLang's StorageBackendFactory does for backend 'dynamic'."""
    extra = config.extra_config
    cls = getattr(importlib.import_module(extra["module_path"]), extra["class_name"])
    return cls(config, {})


@pytest.fixture
def backends():
    made = []

    def make(config, pool):
        b = load_backend(config)
        b.register_mem_pool_host(pool)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


@pytest.mark.parametrize("mla", [False, True], ids=["mha", "mla"])
def test_hicache_v1_sequence(cluster, backends, store, prefix, mla):
    config = storage_config(cluster.rpc, mla=mla)
    hicache_scenario.run(lambda pool: backends(config, pool), prefix, mla=mla)
    # The objects carry SGLang's Mooncake names: <hash>_<rank>_k/_v, MLA <hash>__k.
    key = page_keys(prefix, 1)[0]
    if mla:
        assert store.batch_is_exist([f"{key}__k", f"{key}_0_k"]) == [1, 0]
    else:
        assert store.batch_is_exist([f"{key}_0_k", f"{key}_0_v", f"{key}__k"]) == [1, 1, 0]
    assert store.get_size(f"{key}_0_k" if not mla else f"{key}__k") == \
        FakeHostPool(mla=mla).page_object_bytes()


def test_ranks_and_model_prefix(cluster, backends, store, prefix):
    """Each tensor-parallel rank stores its own objects; the model name and the
    backend tag prefix the keys, as SGLang's Mooncake backend does."""
    pools = [FakeHostPool(pages=8), FakeHostPool(pages=8)]
    ranks = [backends(storage_config(cluster.rpc, tp_rank=r, tp_size=2,
                                     model_name="meta-llama/Llama-3.1-8B",
                                     extra_backend_tag="t1"), pools[r]) for r in range(2)]
    keys = page_keys(prefix, 2)
    pools[0].fill_page(0, "r0")
    pools[0].fill_page(1, "r0b")
    assert ranks[0].batch_set_v1(keys, pools[0].indices([0, 1])) == [True, True]
    assert ranks[0].batch_exists(keys) == 2
    assert ranks[1].batch_exists(keys) == 0  # rank 1's halves are not there yet
    assert store.is_exist(f"t1_meta-llama-Llama-3.1-8B_{keys[0]}_0_k") == 1
    assert store.is_exist(f"t1_meta-llama-Llama-3.1-8B_{keys[0]}_1_k") == 0
    # Another model sees nothing of it.
    other = backends(storage_config(cluster.rpc, model_name="other/model"), FakeHostPool(pages=8))
    assert other.batch_exists(keys) == 0


def test_tenant_id_gives_the_backend_its_own_key_space(cluster, backends, store, prefix):
    """SGLang's extra_config (or MOONCAKE_TENANT_ID) tenant_id: the backend
    serves as usual, in that tenant's key space only."""
    pool = FakeHostPool(pages=8)
    team = backends(storage_config(cluster.rpc, tenant_id="team-a"), pool)
    keys = page_keys(prefix, 2)
    pool.fill_page(0, "team-a-0")
    pool.fill_page(1, "team-a-1")
    assert team.batch_set_v1(keys, pool.indices([0, 1])) == [True, True]
    assert team.batch_exists(keys) == 2
    assert team.batch_get_v1(keys, pool.indices([2, 3])) == [True, True]
    assert pool.page_bytes(2) == pool.page_bytes(0)
    assert pool.page_bytes(3) == pool.page_bytes(1)
    # The default tenant's clients and backends do not see the pages.
    assert store.is_exist(f"{keys[0]}_0_k") == 0
    plain = backends(storage_config(cluster.rpc), FakeHostPool(pages=8))
    assert plain.batch_exists(keys) == 0
    tenant_store = MooncakeDistributedStore()
    assert tenant_store.setup(*cluster.setup_args(), None, tenant_id="team-a") == 0
    assert tenant_store.is_exist(f"{keys[0]}_0_k") == 1
    tenant_store.close()


def test_standalone_storage_serves_through_the_local_store(cluster, backends, store, prefix):
    """SGLang's standalone_storage with client_server_address: the backend
    contributes nothing, reaches the pool through the store on this host by
    shared memory, and runs SGLang's v1 sequence."""
    config = storage_config(cluster.rpc, standalone_storage=True,
                            client_server_address=cluster.stores[0].address("admin"))
    del config.extra_config["master_server_address"]  # the store names the master
    made = []

    def make(pool):
        made.append(backends(config, pool))
        return made[-1]

    hicache_scenario.run(make, prefix)
    assert made and all(b.store.segment_name() == "" for b in made)
    assert sum(b.store.stats()["shm_transfers"] for b in made) > 0
    assert all(b.store.stats()["tcp_transfers"] == 0 for b in made)
    key = page_keys(prefix, 1)[0]
    assert store.is_exist(f"{key}_0_k") == 1


def test_standalone_storage_without_an_address_fails_clearly(cluster):
    from kvcached.sglang import KvcachedHiCacheStorage
    with pytest.raises(ValueError, match="client_server_address"):
        KvcachedHiCacheStorage(storage_config(cluster.rpc, standalone_storage=True), {})


def test_v1_calls_always_return_lists(cluster, prefix):
    from kvcached.sglang import KvcachedHiCacheStorage
    b = KvcachedHiCacheStorage(storage_config(cluster.rpc), {})
    keys = page_keys(prefix, 2)
    # No host pool registered: failures, reported as lists of False.
    assert b.batch_get_v1(keys, list(range(32))) == [False, False]
    assert b.batch_set_v1(keys, list(range(32))) == [False, False]
    pool = FakeHostPool(pages=8)
    b.register_mem_pool_host(pool)
    # Wrong number of host slots for the keys.
    assert b.batch_set_v1(keys, list(range(16))) == [False, False]
    b.close()
    # A closed store: still lists.
    assert b.batch_set_v1(keys, pool.indices([0, 1])) == [False, False]
    assert b.batch_get_v1(keys, pool.indices([0, 1])) == [False, False]
    assert b.batch_exists(keys) == 0


def test_legacy_interface_and_clear(fresh_cluster):
    c = fresh_cluster("64MiB")
    from kvcached.sglang import KvcachedHiCacheStorage
    b = KvcachedHiCacheStorage(storage_config(c.rpc), {})
    pool = FakeHostPool(pages=4)
    b.register_mem_pool_host(pool)
    pool.fill_page(0, "legacy")
    ptrs, sizes = pool.get_page_buffer_meta(pool.indices([0]))
    assert b.set("legacy-k", None, ptrs[0], sizes[0])
    assert b.exists("legacy-k")
    assert b.batch_set(["legacy-a", "legacy-b"], None, ptrs, sizes)
    out_ptrs, _ = pool.get_page_buffer_meta(pool.indices([2]))
    assert b.get("legacy-k", out_ptrs[0], sizes[0])
    assert b.batch_get(["legacy-a", "legacy-missing"], out_ptrs, sizes) == 1
    b.clear()
    assert not b.exists("legacy-k")
    b.close()


def test_construction_fails_clearly_without_a_master(monkeypatch):
    from kvcached.sglang import KvcachedHiCacheStorage
    for var in ("MOONCAKE_MASTER", "MOONCAKE_CONFIG_PATH", "SGLANG_HICACHE_MOONCAKE_CONFIG_PATH"):
        monkeypatch.delenv(var, raising=False)
    config = storage_config("127.0.0.1:1", rpc_timeout_ms=500, connect_timeout_ms=300)
    with pytest.raises(RuntimeError, match="RPC_FAIL"):
        KvcachedHiCacheStorage(config, {})


def test_segment_size_is_divided_among_ranks(cluster, monkeypatch):
    """global_segment_size is the server's total; each rank contributes its share."""
    from kvcached.sglang import KvcachedHiCacheStorage, parse_size
    assert parse_size("4gb") == 4 << 30 and parse_size("512 MiB") == 512 << 20
    assert parse_size(123) == 123 and parse_size("1.5k") == 1536
    monkeypatch.setenv("MOONCAKE_GLOBAL_SEGMENT_SIZE", "64mb")
    b = KvcachedHiCacheStorage(storage_config(cluster.rpc, tp_size=2), {})
    name = b.store.segment_name()
    admin = cluster.master.address("admin")
    with urllib.request.urlopen(f"http://{admin}/api/v1/segments", timeout=10) as r:
        segments = {s["name"]: s for s in json.load(r)["segments"]}
    assert segments[name]["capacity_bytes"] == 32 << 20
    b.close()


class SplitHeadsPool(FakeHostPool):
    """A pool that also answers get_split_heads_page_buffer_meta: per page,
    K and V of each of `split` head groups, as SGLang's MHA host pool does
    when the storage is shared with servers of a larger TP size."""

    def get_split_heads_page_buffer_meta(self, indices, split):
        ptrs, sizes = self.get_page_buffer_meta(indices)
        out_p, out_s = [], []
        for i in range(0, len(ptrs), 2):
            part = sizes[i] // split
            for g in range(split):
                out_p += [ptrs[i] + g * part, ptrs[i + 1] + g * part]
                out_s += [part, part]
        return out_p, out_s


def test_split_heads_and_pipeline_names(cluster, backends, store, prefix):
    """With should_split_heads a rank stores one K/V pair per head group under
    the ranks of the larger TP size; with pipeline parallelism the PP rank
    joins the suffix (MHA `<tp>_<pp>`, MLA `<pp>`)."""
    config = storage_config(cluster.rpc, tp_rank=1, tp_size=2)
    config.should_split_heads, config.tp_lcm_size = True, 4
    pool = SplitHeadsPool(pages=4)
    b = backends(config, pool)
    keys = page_keys(prefix, 2)
    pool.fill_page(0, "s0")
    pool.fill_page(1, "s1")
    assert b.batch_set_v1(keys, pool.indices([0, 1])) == [True, True]
    assert b.batch_exists(keys) == 2
    assert store.batch_is_exist([f"{keys[0]}_{r}_{kv}" for r in (2, 3) for kv in "kv"]) == [1] * 4
    assert store.is_exist(f"{keys[0]}_1_k") == 0
    assert b.batch_get_v1(keys, pool.indices([2, 3])) == [True, True]
    assert pool.page_bytes(2) == pool.page_bytes(0) and pool.page_bytes(3) == pool.page_bytes(1)

    for mla, name in ((False, f"{keys[0]}_0_1_k"), (True, f"{keys[0]}_1_k")):
        config = storage_config(cluster.rpc, mla=mla)
        config.pp_rank, config.pp_size = 1, 2
        pool = FakeHostPool(pages=2, mla=mla)
        b = backends(config, pool)
        pool.fill_page(0, "pp")
        assert b.batch_set_v1(keys[:1], pool.indices([0])) == [True]
        assert store.is_exist(name) == 1
