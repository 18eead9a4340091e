"""The HiCache storage scenario, as SGLang drives an L3 backend with
interface v1 (write-back: batch_exists, then batch_set_v1 of the pages that
missed; prefetch: batch_exists, then batch_get_v1 of the leading hits into
free host-pool slots), run by test_sglang_backend.py with kvcached's backend
and by test_shim.py with SGLang-Mooncake-style code over `mooncake.store`.

`make_backend(pool)` returns a backend bound to that host pool (one per
simulated server). Every page read back is compared byte for byte with the
page written."""

from fake_sglang import FakeHostPool, page_keys


def write_back(backend, pool, keys, pages):
    """SGLang's backup of `keys` held at host `pages`: returns pages stored."""
    hits = backend.batch_exists(keys)
    misses = keys[hits:]
    if not misses:
        return len(keys)
    ok = backend.batch_set_v1(misses, pool.indices(pages[hits:]))
    assert isinstance(ok, list) and len(ok) == len(misses)
    return hits + (ok.index(False) if False in ok else len(ok))


def prefetch(backend, pool, keys, free_pages):
    """SGLang's prefetch: the leading hits, read into `free_pages`."""
    hits = backend.batch_exists(keys)
    if hits == 0:
        return 0
    ok = backend.batch_get_v1(keys[:hits], pool.indices(free_pages[:hits]))
    assert isinstance(ok, list) and len(ok) == hits
    return ok.index(False) if False in ok else hits


def run(make_backend, tag, mla=False):
    pool_a = FakeHostPool(pages=48, mla=mla)
    server_a = make_backend(pool_a)
    keys = page_keys(tag, 12)

    # Server A computes 8 pages and writes them back.
    for p in range(8):
        pool_a.fill_page(p, f"{tag}-{p}")
    assert server_a.batch_exists(keys[:8]) == 0
    assert write_back(server_a, pool_a, keys[:8], list(range(8))) == 8
    assert server_a.batch_exists(keys[:8]) == 8

    # A longer request sharing the first 8 pages: only the 4 new ones are written.
    for p in range(8, 12):
        pool_a.fill_page(p, f"{tag}-{p}")
    assert server_a.batch_exists(keys) == 8
    assert write_back(server_a, pool_a, keys, list(range(12))) == 12
    assert server_a.batch_exists(keys) == 12

    # Server B, empty pool, prefetches into slots 20.. of its own pool.
    pool_b = FakeHostPool(pages=48, mla=mla)
    server_b = make_backend(pool_b)
    free = list(range(20, 32))
    assert prefetch(server_b, pool_b, keys, free) == 12
    for i, p in enumerate(free):
        assert pool_b.page_bytes(p) == pool_a.page_bytes(i), f"page {i}"

    # A prefix with a hole: prefetch stops at the first miss.
    holed = keys[:3] + page_keys(tag + "-never-stored", 1) + keys[3:6]
    assert server_b.batch_exists(holed) == 3
    assert prefetch(server_b, pool_b, holed, list(range(40, 47))) == 3

    # batch_get_v1 of a page that is not there: False for it alone.
    missing = page_keys(tag + "-missing", 1)
    ok = server_b.batch_get_v1([keys[0]] + missing, pool_b.indices([0, 1]))
    assert ok == [True, False]
    return server_a, server_b
