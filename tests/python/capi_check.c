/* A C program over include/kvcached/kvcached.h: proves the header is plain C
 * (this file is compiled as C99) and checks the C ABI's argument handling
 * and a round trip against a running pool.
 *
 *   capi_check                 checks that need no pool (NULL arguments)
 *   capi_check HOST:PORT HOSTID  also opens a client on that master and
 *                              checks bad arguments on a live client, a put /
 *                              get round trip, where the object lives, and a batch
 *
 * Prints one line per failed check and exits 1 if any failed; run by
 * tests/python/test_capi.py. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvcached/kvcached.h"

static int failures = 0;

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      fprintf(stderr, "FAIL %s:%d: %s (last error: '%s')\n", __FILE__, __LINE__, #cond, \
              kvcached_last_error());                                                   \
      ++failures;                                                                       \
    }                                                                                   \
  } while (0)

/* The call failed with INVALID_PARAMS and said why. */
#define CHECK_INVALID(expr)                                         \
  do {                                                              \
    int64_t rc_ = (int64_t)(expr);                                  \
    CHECK(rc_ == KVCACHED_INVALID_PARAMS);                          \
    CHECK(strstr(kvcached_last_error(), "INVALID_PARAMS") != NULL); \
  } while (0)

static void without_pool(void) {
  char buf[16] = {0};
  uint64_t need = 0;
  int32_t results[2] = {1, 1};
  const char* keys[2] = {"a", "b"};
  kvcached_client_t* out = (kvcached_client_t*)&need; /* must be reset to NULL */

  CHECK(strcmp(kvcached_version(), "") != 0);
  CHECK(strcmp(kvcached_error_name(KVCACHED_OBJECT_NOT_FOUND), "OBJECT_NOT_FOUND") == 0);
  CHECK(strcmp(kvcached_error_name(12345), "INTERNAL_ERROR") == 0);

  CHECK_INVALID(kvcached_put(NULL, "k", 1, buf, sizeof buf, NULL));
  CHECK(strstr(kvcached_last_error(), "client is NULL") != NULL);
  CHECK_INVALID(kvcached_get(NULL, "k", 1, buf, sizeof buf, &need));
  CHECK_INVALID(kvcached_get_into(NULL, "k", 1, buf, sizeof buf));
  CHECK_INVALID(kvcached_exist(NULL, "k", 1));
  CHECK_INVALID(kvcached_get_size(NULL, "k", 1));
  CHECK_INVALID(kvcached_remove(NULL, "k", 1, 0));
  CHECK_INVALID(kvcached_remove_all(NULL, 0));
  CHECK_INVALID(kvcached_close(NULL));
  CHECK_INVALID(kvcached_register_buffer(NULL, buf, sizeof buf));
  CHECK_INVALID(kvcached_batch_exist(NULL, 2, keys, NULL, results));
  CHECK(results[0] == KVCACHED_INVALID_PARAMS && results[1] == KVCACHED_INVALID_PARAMS);
  CHECK(kvcached_health_check(NULL) == 1);
  CHECK(strcmp(kvcached_host_id(NULL), "") == 0);
  {
    char* json = (char*)buf; /* must be reset to NULL */
    CHECK_INVALID(kvcached_batch_replica_desc_json(NULL, 2, keys, NULL, &json));
    CHECK(json == NULL);
    kvcached_free_string(NULL); /* ignored */
  }
  kvcached_destroy(NULL); /* ignored */

  CHECK_INVALID(kvcached_open(NULL, &out));
  CHECK(out == NULL);
  CHECK_INVALID(kvcached_open_settings(NULL, NULL, 1, 0, &out));
  {
    const char* names[1] = {"no_such_setting"};
    const char* values[1] = {"1"};
    CHECK_INVALID(kvcached_open_settings(names, values, 1, 0, &out));
    CHECK(strstr(kvcached_last_error(), "no_such_setting") != NULL);
  }
  {
    const char* names[1] = {"global_segment_size"};
    const char* values[1] = {"lots"};
    CHECK_INVALID(kvcached_open_settings(names, values, 1, 0, &out));
    CHECK(strstr(kvcached_last_error(), "global_segment_size") != NULL);
  }
  CHECK(kvcached_set_log_level("warn") == KVCACHED_OK);
  CHECK(strcmp(kvcached_last_error(), "") == 0); /* a success clears it */
  CHECK_INVALID(kvcached_set_log_level("loud"));
}

static void with_pool(const char* master, const char* host_id) {
  kvcached_config_t config;
  kvcached_client_t* c = NULL;
  char key[64];
  char src[4096], dst[4096];
  uint64_t need = 0;
  int64_t n;
  size_t i;

  kvcached_config_init(&config);
  CHECK(config.struct_size == sizeof config && config.checksums == 1);
  config.master_server_addr = master;
  config.local_hostname = host_id;
  config.global_segment_size = 0;
  CHECK(kvcached_open(&config, &c) == KVCACHED_OK);
  if (c == NULL) return;
  CHECK(kvcached_health_check(c) == 0);
  CHECK(strcmp(kvcached_host_id(c), host_id) == 0);

  snprintf(key, sizeof key, "capi-check-%ld", (long)rand());
  for (i = 0; i < sizeof src; ++i) src[i] = (char)(i * 7 + 3);

  /* Bad arguments on a live client: refused before anything is sent. */
  CHECK_INVALID(kvcached_put(c, NULL, 3, src, sizeof src, NULL));
  CHECK(strstr(kvcached_last_error(), "key is NULL") != NULL);
  CHECK_INVALID(kvcached_put(c, key, strlen(key), NULL, sizeof src, NULL));
  CHECK(strstr(kvcached_last_error(), "buffer is NULL") != NULL);
  CHECK_INVALID(kvcached_put(c, key, strlen(key), src, 0, NULL));
  CHECK(strstr(kvcached_last_error(), "size is 0") != NULL);
  CHECK_INVALID(kvcached_put_from(c, key, strlen(key), src, 0, NULL));
  CHECK_INVALID(kvcached_get_into(c, key, strlen(key), NULL, sizeof dst));
  CHECK_INVALID(kvcached_get_into(c, key, strlen(key), dst, 0));
  CHECK_INVALID(kvcached_get_into(c, NULL, 1, dst, sizeof dst));
  CHECK_INVALID(kvcached_exist(c, NULL, 1));
  CHECK_INVALID(kvcached_register_buffer(c, NULL, 4096));
  CHECK(kvcached_put(c, key, 0, src, sizeof src, NULL) == KVCACHED_INVALID_KEY);
  CHECK(kvcached_exist(c, key, strlen(key)) == 0);

  /* Round trip. */
  CHECK(kvcached_put(c, key, strlen(key), src, sizeof src, NULL) == KVCACHED_OK);
  CHECK(strcmp(kvcached_last_error(), "") == 0);
  CHECK(kvcached_exist(c, key, strlen(key)) == 1);
  CHECK(kvcached_get_size(c, key, strlen(key)) == (int64_t)sizeof src);

  /* Where the object lives: its entry, then a missing key's; asking leaves
   * no lease, so a remove right after goes through. */
  {
    const char* keys[2];
    size_t lens[2];
    char* json = NULL;
    keys[0] = key;
    lens[0] = strlen(key);
    keys[1] = "capi-missing";
    lens[1] = 12;
    CHECK(kvcached_batch_replica_desc_json(c, 2, keys, lens, &json) == KVCACHED_OK);
    CHECK(json != NULL);
    if (json != NULL) {
      CHECK(strncmp(json, "[{\"code\":0,", 11) == 0);
      CHECK(strstr(json, "\"size\":4096") != NULL);
      CHECK(strstr(json, "\"segment\":") != NULL);
      CHECK(strstr(json, "},{\"code\":-704}]") != NULL);
      kvcached_free_string(json);
    }
    CHECK(kvcached_remove(c, key, strlen(key), 0) == KVCACHED_OK); /* no lease left */
    CHECK(kvcached_put(c, key, strlen(key), src, sizeof src, NULL) == KVCACHED_OK);
  }
  n = kvcached_get(c, key, strlen(key), NULL, 0, &need); /* size query */
  CHECK(n == KVCACHED_BUFFER_OVERFLOW && need == sizeof src);
  n = kvcached_get(c, key, strlen(key), dst, 100, &need); /* too small: nothing written */
  CHECK(n == KVCACHED_BUFFER_OVERFLOW && need == sizeof src);
  memset(dst, 0, sizeof dst);
  n = kvcached_get(c, key, strlen(key), dst, sizeof dst, &need);
  CHECK(n == (int64_t)sizeof src && memcmp(src, dst, sizeof src) == 0);
  CHECK(kvcached_get_into(c, "capi-missing", 12, dst, sizeof dst) == KVCACHED_OBJECT_NOT_FOUND);
  CHECK(strstr(kvcached_last_error(), "OBJECT_NOT_FOUND") != NULL);

  /* A batch with one bad entry: only that entry fails. */
  {
    char k1[80], k2[80];
    const char* keys[3];
    const void* bufs[3];
    void* outs[3];
    uint64_t sizes[3] = {sizeof src, sizeof src, sizeof src};
    int32_t put_results[3];
    int64_t get_results[3];
    int32_t exist_results[3];
    snprintf(k1, sizeof k1, "%s-b1", key);
    snprintf(k2, sizeof k2, "%s-b2", key);
    keys[0] = k1;
    keys[1] = NULL;
    keys[2] = k2;
    bufs[0] = src;
    bufs[1] = src;
    bufs[2] = src;
    CHECK(kvcached_batch_put_from(c, 3, keys, NULL, bufs, sizes, NULL, put_results) == 0);
    CHECK(put_results[0] == 0 && put_results[1] == KVCACHED_INVALID_PARAMS && put_results[2] == 0);
    CHECK(strstr(kvcached_last_error(), "key is NULL") != NULL);
    keys[1] = key;
    outs[0] = dst;
    outs[1] = NULL;
    outs[2] = dst;
    CHECK(kvcached_batch_get_into(c, 3, keys, NULL, outs, sizes, get_results) == 0);
    CHECK(get_results[0] == (int64_t)sizeof src && get_results[1] == KVCACHED_INVALID_PARAMS &&
          get_results[2] == (int64_t)sizeof src);
    CHECK(kvcached_batch_exist(c, 3, keys, NULL, exist_results) == 0);
    CHECK(exist_results[0] == 1 && exist_results[1] == 1 && exist_results[2] == 1);
    CHECK(kvcached_batch_put_from(c, 3, keys, NULL, NULL, sizes, NULL, put_results) ==
          KVCACHED_INVALID_PARAMS);
    CHECK(put_results[0] == KVCACHED_INVALID_PARAMS);
  }

  CHECK(kvcached_close(c) == KVCACHED_OK);
  CHECK(kvcached_exist(c, key, strlen(key)) == KVCACHED_UNAVAILABLE_IN_CURRENT_STATUS);
  CHECK(kvcached_health_check(c) == 1);
  CHECK(kvcached_close(c) == KVCACHED_OK); /* idempotent */
  kvcached_destroy(c);
}

int main(int argc, char** argv) {
  without_pool();
  if (argc >= 3) with_pool(argv[1], argv[2]);
  if (failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("capi_check: all checks passed%s\n", argc >= 3 ? " (with a pool)" : "");
  return 0;
}
