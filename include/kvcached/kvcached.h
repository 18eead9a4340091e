/* kvcached.h: the stable C ABI of the kvcached client (libkvcached.so.0),
 * for languages that cannot use the C++ API (include/kvcached/client.h):
 * Python's ctypes, Rust, Go. Plain C types only; no C++ type or exception
 * ever crosses it. Results are Mooncake Store's int error codes.
 *
 * Thread-safety: any number of threads may call one kvcached_client_t at
 * once, including kvcached_close(). kvcached_destroy() must be the last call
 * on a handle, made when no other call on it is running.
 * Ownership: the library owns the client behind the opaque handle; the
 * caller owns every buffer, key and array it passes, and the library keeps
 * no pointer to them after a call returns (registered buffers excepted: a
 * registered range must stay mapped until it is unregistered). A string the
 * library hands out for the caller to keep (kvcached_batch_replica_desc_json,
 * kvcached_mount_segment, kvcached_query_task) is the caller's, freed with kvcached_free_string().
 * docs/python.md describes the ABI; docs/client.md the semantics behind it. */
#ifndef KVCACHED_KVCACHED_H_
#define KVCACHED_KVCACHED_H_

#include <stddef.h>
#include <stdint.h>

#if defined(KVCACHED_BUILDING_CAPI)
#define KVCACHED_API __attribute__((visibility("default")))
#else
#define KVCACHED_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version: the soname's major number. Bumped only by an incompatible change. */
#define KVCACHED_ABI_VERSION 0

/* Error codes: Mooncake Store's values. The one table is src/core/error_code.cpp;
 * the ctest errors/copies checks that this list has the same names and values. */
#define KVCACHED_OK 0
#define KVCACHED_INTERNAL_ERROR (-1)
#define KVCACHED_BUFFER_OVERFLOW (-10)
#define KVCACHED_SHARD_INDEX_OUT_OF_RANGE (-100)
#define KVCACHED_SEGMENT_NOT_FOUND (-101)
#define KVCACHED_SEGMENT_ALREADY_EXISTS (-102)
#define KVCACHED_CLIENT_NOT_FOUND (-103)
#define KVCACHED_NO_AVAILABLE_HANDLE (-200)
#define KVCACHED_INVALID_VERSION (-300)
#define KVCACHED_INVALID_KEY (-400)
#define KVCACHED_WRITE_FAIL (-500)
#define KVCACHED_INVALID_PARAMS (-600)
#define KVCACHED_ILLEGAL_CLIENT (-601)
#define KVCACHED_INVALID_WRITE (-700)
#define KVCACHED_INVALID_READ (-701)
#define KVCACHED_INVALID_REPLICA (-702)
#define KVCACHED_REPLICA_IS_NOT_READY (-703)
#define KVCACHED_OBJECT_NOT_FOUND (-704)
#define KVCACHED_OBJECT_ALREADY_EXISTS (-705)
#define KVCACHED_OBJECT_HAS_LEASE (-706)
#define KVCACHED_LEASE_EXPIRED (-707)
#define KVCACHED_TRANSFER_FAIL (-800)
#define KVCACHED_CHECKSUM_MISMATCH (-801)
#define KVCACHED_RPC_FAIL (-900)
#define KVCACHED_RPC_TIMEOUT (-901)
#define KVCACHED_ETCD_OPERATION_ERROR (-1000)
#define KVCACHED_UNAVAILABLE_IN_CURRENT_STATUS (-1010)
#define KVCACHED_UNAVAILABLE_IN_CURRENT_MODE (-1011)
#define KVCACHED_NOT_SUPPORTED (-1012)
#define KVCACHED_TASK_NOT_FOUND (-1400)
#define KVCACHED_TASK_PENDING_LIMIT_EXCEEDED (-1401)

typedef struct kvcached_client kvcached_client_t;

/* The settings of a client. Always fill with kvcached_config_init() first,
 * then change fields: struct_size lets later versions append fields. NULL
 * strings and zero numbers (where noted) keep the defaults of docs/client.md.
 * The library copies everything during kvcached_open(). */
typedef struct kvcached_config {
  size_t struct_size; /* sizeof(kvcached_config_t), set by kvcached_config_init */
  /* Mooncake's setup() arguments. */
  const char* local_hostname;     /* host id; NULL: the hostname */
  const char* metadata_server;    /* NULL: P2PHANDSHAKE */
  uint64_t global_segment_size;   /* bytes contributed to the pool; 0: none */
  uint64_t local_buffer_size;     /* accepted and unused */
  const char* protocol;           /* NULL: "tcp" */
  const char* rdma_devices;       /* comma list; unused over TCP */
  const char* master_server_addr; /* host:port; NULL: 127.0.0.1:50051 */
  /* kvcached's own settings. */
  const char* token;             /* cluster token; NULL: none */
  const char* transport;         /* "auto", "shm", "tcp" or "rdma"; NULL: auto */
  int32_t checksums;             /* 1 on, 0 off; init sets 1 */
  uint32_t rpc_timeout_ms;       /* 0: default (5000) */
  uint32_t io_timeout_ms;        /* 0: default (5000) */
  uint32_t connect_timeout_ms;   /* 0: default (3000) */
  uint32_t tcp_streams;          /* 0: default (4) */
  uint64_t tcp_split_bytes;      /* 0: default (1 MiB) */
  const char* segment_bind_host; /* contributed segment's data port; NULL: 127.0.0.1 */
  const char* segment_name;      /* NULL: <host id>:<pid>:<n> */
  int32_t hugepages;             /* contributed segment on 2 MiB huge pages */
  uint32_t ping_interval_ms;     /* 0: default (1000) */
  uint32_t copy_threads; /* shared-memory copy threads per batch; 0: one per core, at most 4 */
} kvcached_config_t;

/* Where a put goes. NULL wherever a `const kvcached_replicate_config_t*`
 * is taken means the defaults (one replica, the master chooses).
 * replica_num's high bits carry flags (OR them into the count, e.g.
 * `2 | KVCACHED_REPLICATE_HARD_PIN`); a library that does not know a flag
 * refuses the put with INVALID_PARAMS rather than ignore it. Pins
 * (docs/master.md, "Pins"): a soft-pinned object is evicted only after
 * every unpinned one while its soft pin lasts; a hard-pinned one never. */
#define KVCACHED_REPLICATE_SOFT_PIN (1u << 16)
#define KVCACHED_REPLICATE_HARD_PIN (1u << 17)
typedef struct kvcached_replicate_config {
  uint32_t replica_num;          /* 1 to 16, with flags in the high bits */
  const char* preferred_segment; /* a segment name to try first; NULL or "": none */
} kvcached_replicate_config_t;

/* What one client has done since it was opened (docs/client.md#statistics). */
typedef struct kvcached_stats {
  uint64_t puts, gets;
  uint64_t bytes_written, bytes_read;
  uint64_t shm_transfers, tcp_transfers;
  uint64_t checksum_mismatches, lease_expirations;
  uint64_t tcp_connections_opened;
} kvcached_stats_t;

/* ---- library ------------------------------------------------------------ */

/* "0.1.0": the library's version (the soname is libkvcached.so.0). */
KVCACHED_API const char* kvcached_version(void);

/* The text of the last failed call on the calling thread
 * ("OBJECT_NOT_FOUND: get of 'k': object not found"), or "" when the last
 * call on this thread succeeded. Valid until the thread's next call. */
KVCACHED_API const char* kvcached_last_error(void);

/* "OBJECT_NOT_FOUND" for -704; "INTERNAL_ERROR" for unknown values. Static text. */
KVCACHED_API const char* kvcached_error_name(int32_t code);

/* Sets the library's log threshold: trace, debug, info, warn, error,
 * critical, off. INVALID_PARAMS for another name. Logs go to stdout. */
KVCACHED_API int32_t kvcached_set_log_level(const char* level);

/* The client settings kvcached_open_settings takes, as one JSON array
 * (static text, valid while the library is loaded): per setting its
 * "name", "aliases", "mooncake_env" (read unless MOONCAKE_CONFIG_PATH is
 * set), "kvcached_env" (always read), "json_key" (its field in
 * MOONCAKE_CONFIG_PATH's file), "kind" (string, size, duration_ms, bool,
 * int, choice, file), "min", "max", "choices", "default" and "help".
 * Bindings read their names from here instead of keeping a copy. */
KVCACHED_API const char* kvcached_settings_json(void);

/* Parses a size as every size setting does ("4294967296", "4gb", "512 MiB";
 * binary multiples) into *out. INVALID_PARAMS, with the reason in
 * kvcached_last_error(), for anything else. */
KVCACHED_API int32_t kvcached_parse_size(const char* text, uint64_t* out);

/* ---- opening and closing ------------------------------------------------- */

/* Fills `config` with the defaults (struct_size included). */
KVCACHED_API void kvcached_config_init(kvcached_config_t* config);

/* Connects to the master (and mounts a segment when global_segment_size > 0).
 * On success stores a new handle in *out and returns OK; otherwise *out is
 * NULL and the code is Client::Open's: INVALID_PARAMS (a bad setting),
 * RPC_FAIL, RPC_TIMEOUT, ILLEGAL_CLIENT, UNAVAILABLE_IN_CURRENT_MODE (rdma),
 * NO_AVAILABLE_HANDLE, ... */
KVCACHED_API int32_t kvcached_open(const kvcached_config_t* config, kvcached_client_t** out);

/* As kvcached_open, from `count` name/value pairs of strings. The settings
 * start from the defaults, or when `from_environment` is non-zero from the
 * environment as Mooncake reads it (MOONCAKE_CONFIG_PATH's JSON, else
 * MOONCAKE_MASTER and the other MOONCAKE_* variables, plus the KVCACHED_*
 * variables of kvcached_settings_json); the pairs are then applied in
 * order. Names: the kvcached_config_t field names (sizes like "4gb",
 * durations as milliseconds in the *_ms names, booleans as
 * 1/0/true/false), rdma_gid_index, the aliases master_server_address and
 * device_name, and config_path (a JSON file in MOONCAKE_CONFIG_PATH's
 * format, applied where it appears) and token_file; kvcached_settings_json
 * lists them all. An unknown name or a bad or out-of-range value fails with
 * INVALID_PARAMS naming it. A NULL value keeps that setting unchanged. */
KVCACHED_API int32_t kvcached_open_settings(const char* const* names, const char* const* values,
                                            size_t count, int from_environment,
                                            kvcached_client_t** out);

/* kvcached_open_settings(NULL, NULL, 0, 1, out): settings from the environment. */
KVCACHED_API int32_t kvcached_open_env(kvcached_client_t** out);

/* Unmounts the client's segment, if any, and closes its connections. Later
 * calls on the handle fail with UNAVAILABLE_IN_CURRENT_STATUS. Idempotent;
 * INVALID_PARAMS for NULL. The handle stays valid until kvcached_destroy. */
KVCACHED_API int32_t kvcached_close(kvcached_client_t* client);

/* Closes (if needed) and frees the handle. NULL is ignored. */
KVCACHED_API void kvcached_destroy(kvcached_client_t* client);

/* 0 healthy; 1 closed (or NULL); 2 the master cannot be reached. Asks the
 * master (one round trip, no lease). */
KVCACHED_API int32_t kvcached_health_check(kvcached_client_t* client);

/* Host id in use, and the contributed segment's name ("" when none). Valid
 * while the handle lives; "" for NULL. */
KVCACHED_API const char* kvcached_host_id(kvcached_client_t* client);
KVCACHED_API const char* kvcached_segment_name(kvcached_client_t* client);

/* Fills *out. INVALID_PARAMS for NULL arguments. */
KVCACHED_API int32_t kvcached_stats(kvcached_client_t* client, kvcached_stats_t* out);

/* ---- single objects -------------------------------------------------------
 * Keys are `key_len` bytes at `key` (binary-safe, 1 to 4096 bytes). A NULL
 * client, key or buffer, or a zero size, fails with INVALID_PARAMS before
 * anything is sent; an empty or oversized key with INVALID_KEY. */

/* Stores `size` bytes from `data`. OK also when the key exists (the object
 * is left unchanged). NO_AVAILABLE_HANDLE when the pool is full. */
KVCACHED_API int32_t kvcached_put(kvcached_client_t* client, const char* key, size_t key_len,
                                  const void* data, uint64_t size,
                                  const kvcached_replicate_config_t* config);

/* Copies the object into `buffer` and returns its size (>= 0), or a
 * negative code (OBJECT_NOT_FOUND, ...). When the object is larger than
 * `capacity`, nothing is written and BUFFER_OVERFLOW comes back with the
 * object's size in *size_needed (when not NULL). A NULL buffer with capacity
 * 0 is a size query: BUFFER_OVERFLOW with *size_needed, or OBJECT_NOT_FOUND. */
KVCACHED_API int64_t kvcached_get(kvcached_client_t* client, const char* key, size_t key_len,
                                  void* buffer, uint64_t capacity, uint64_t* size_needed);

/* Zero-copy forms, for memory passed to kvcached_register_buffer (RDMA will
 * need the registration; over TCP and shared memory any memory works, and
 * these behave as kvcached_put / kvcached_get). get_into returns the size,
 * or INVALID_PARAMS (nothing written) when `size` is smaller than the
 * object, or another negative code. */
KVCACHED_API int32_t kvcached_put_from(kvcached_client_t* client, const char* key, size_t key_len,
                                       const void* buffer, uint64_t size,
                                       const kvcached_replicate_config_t* config);
KVCACHED_API int64_t kvcached_get_into(kvcached_client_t* client, const char* key, size_t key_len,
                                       void* buffer, uint64_t size);

/* As kvcached_put_from, but an object of the key that exists is replaced.
 * The old object leaves the pool once the new one is placed (a reader that
 * already holds it reads it whole; lookups until the commit find nothing);
 * refused by the master (no room) it stays; failed after placement, the
 * key has no object. */
KVCACHED_API int32_t kvcached_upsert_from(kvcached_client_t* client, const char* key,
                                          size_t key_len, const void* buffer, uint64_t size,
                                          const kvcached_replicate_config_t* config);

/* 1 the object exists, 0 it does not, or a negative code. Grants a read lease. */
KVCACHED_API int32_t kvcached_exist(kvcached_client_t* client, const char* key, size_t key_len);

/* The object's size, or a negative code (OBJECT_NOT_FOUND). */
KVCACHED_API int64_t kvcached_get_size(kvcached_client_t* client, const char* key, size_t key_len);

/* OK, OBJECT_NOT_FOUND, OBJECT_HAS_LEASE (unless force), REPLICA_IS_NOT_READY. */
KVCACHED_API int32_t kvcached_remove(kvcached_client_t* client, const char* key, size_t key_len,
                                     int force);

/* How many objects were removed (>= 0), or a negative code. Without force,
 * objects under a read lease are skipped. */
KVCACHED_API int64_t kvcached_remove_all(kvcached_client_t* client, int force);

/* Removes the objects whose keys match `pattern` (a NUL-terminated
 * regular expression of 1 to 1024 bytes in the ECMAScript subset of
 * docs/protocol.md, matched anywhere in the key in time linear in its
 * length; no back-references or lookaround) and returns how many (>= 0), or a negative
 * code: INVALID_PARAMS for a bad pattern. Without force, objects under a
 * read lease are kept. Objects put while it runs may or may not go. */
KVCACHED_API int64_t kvcached_remove_by_regex(kvcached_client_t* client, const char* pattern,
                                              int force);

/* ---- batches ----------------------------------------------------------------
 * `count` keys: keys[i] of key_lens[i] bytes (key_lens NULL: NUL-terminated
 * keys). One result per key is written to results[0..count), in order; the
 * call returns OK once every result is written, even when some keys failed.
 * A NULL client, keys, buffers, sizes or results array fails the whole call
 * with INVALID_PARAMS (every result, when `results` is not NULL, is set to
 * it). A NULL key, NULL buffer or zero size fails only that key, with
 * INVALID_PARAMS. count 0 is OK. One master round trip per step for the
 * whole batch; the transfers of all keys run at once. */

/* results[i]: 0 or a negative code, as kvcached_put. */
KVCACHED_API int32_t kvcached_batch_put_from(kvcached_client_t* client, size_t count,
                                             const char* const* keys, const size_t* key_lens,
                                             const void* const* buffers, const uint64_t* sizes,
                                             const kvcached_replicate_config_t* config,
                                             int32_t* results);

/* results[i]: 0 or a negative code, as kvcached_upsert_from. */
KVCACHED_API int32_t kvcached_batch_upsert_from(kvcached_client_t* client, size_t count,
                                                const char* const* keys, const size_t* key_lens,
                                                const void* const* buffers, const uint64_t* sizes,
                                                const kvcached_replicate_config_t* config,
                                                int32_t* results);

/* results[i]: the object's size, or a negative code, as kvcached_get_into. */
KVCACHED_API int32_t kvcached_batch_get_into(kvcached_client_t* client, size_t count,
                                             const char* const* keys, const size_t* key_lens,
                                             void* const* buffers, const uint64_t* sizes,
                                             int64_t* results);

/* results[i]: 1, 0 or a negative code, as kvcached_exist. */
KVCACHED_API int32_t kvcached_batch_exist(kvcached_client_t* client, size_t count,
                                          const char* const* keys, const size_t* key_lens,
                                          int32_t* results);

/* ---- where objects live ------------------------------------------------------ */

/* Where the objects of `count` keys live (Mooncake's get_replica_desc and
 * batch_get_replica_desc), moving no bytes: one master round trip per 8192
 * keys, whose read leases are ended before the call returns, so asking pins
 * nothing. Keys as in the batch calls above.
 *
 * On OK, *json_out is a NUL-terminated JSON array of `count` objects, in
 * key order, e.g. (members in any order)
 *   [{"code":0,"replicas":[{"data_endpoint":"10.0.0.5:7000","offset":1048576,
 *                           "segment":"node-a/seg0"}],"size":4096,"version":7},
 *    {"code":-704}]
 * "code" is 0 or the key's negative code (OBJECT_NOT_FOUND for a missing
 * key or a put in progress, INVALID_KEY, INVALID_PARAMS for a NULL key,
 * UNAVAILABLE_IN_CURRENT_STATUS after kvcached_close, RPC_FAIL, ...); the
 * other fields are there only with code 0. "segment" is the holding
 * segment's name, "data_endpoint" its TCP data port ("" when it serves
 * none), "offset" the object's first byte in the segment; "size" and
 * "offset" are bytes, "version" the master's version of the object. The
 * first failing key's text is in kvcached_last_error(). The array belongs
 * to the caller: free it with kvcached_free_string().
 *
 * Fails as a whole with INVALID_PARAMS, *json_out set to NULL (when
 * json_out is not NULL), for a NULL client, json_out, or keys with
 * count > 0. count 0 gives "[]". */
KVCACHED_API int32_t kvcached_batch_replica_desc_json(kvcached_client_t* client, size_t count,
                                                      const char* const* keys,
                                                      const size_t* key_lens, char** json_out);

/* Frees a string the library handed to the caller (kvcached_batch_replica_desc_json's
 * array, kvcached_mount_segment's name). NULL is ignored. */
KVCACHED_API void kvcached_free_string(char* text);

/* ---- registered memory ------------------------------------------------------ */

/* INVALID_PARAMS for a NULL or empty range, or one overlapping a registered
 * range; unregister: for an address at which no registered range starts. */
KVCACHED_API int32_t kvcached_register_buffer(kvcached_client_t* client, void* buffer,
                                              uint64_t size);
KVCACHED_API int32_t kvcached_unregister_buffer(kvcached_client_t* client, void* buffer);

/* ---- segments added after open ---------------------------------------------- */

/* Contributes one more segment to the pool, served by this process like the
 * one opened with global_segment_size (its own data port, shm socket and
 * owner identity at the master). `path` NULL or "": `size` bytes of new
 * memory, rounded up to the page size (2 MiB with hugepages); otherwise
 * `size` bytes of that existing regular file from `offset` (page-aligned),
 * mapped MAP_SHARED and never grown or removed; a non-zero offset serves
 * the segment over TCP only. `protocol` NULL is "tcp"; "rdma" adds RDMA
 * where this host has it (else a warning and TCP).
 *
 * On OK, *name_out is the segment's name (its id: what preferred_segment
 * takes and replica descriptions report), the caller's to free with
 * kvcached_free_string(), and *size_out (when not NULL) the bytes
 * contributed. INVALID_PARAMS for a NULL client or name_out, size 0, a bad
 * protocol, offset or file (nothing is changed); NO_AVAILABLE_HANDLE when
 * the memory cannot be had; the master's code when it refuses;
 * UNAVAILABLE_IN_CURRENT_STATUS after kvcached_close(). */
KVCACHED_API int32_t kvcached_mount_segment(kvcached_client_t* client, const char* path,
                                            uint64_t offset, uint64_t size, const char* protocol,
                                            char** name_out, uint64_t* size_out);

/* Unmounts `count` segments kvcached_mount_segment added, all or none: the
 * master drops their objects and their memory is given back (a file is
 * left as it is). With free_memory != 0 only allocated segments (path NULL)
 * are accepted. INVALID_PARAMS for a NULL client, names or name, count 0,
 * a file segment with free_memory, or the segment opened with the client;
 * SEGMENT_NOT_FOUND for a name this client has not mounted; nothing is
 * unmounted then. Otherwise all are unmounted and the first failure to
 * tell the master (RPC_FAIL, ...) is returned. */
KVCACHED_API int32_t kvcached_unmount_segments(kvcached_client_t* client, size_t count,
                                               const char* const* names, int free_memory);

/* ---- replica tasks ------------------------------------------------------------
 * Mooncake's create_copy_task, create_move_task and query_task; the
 * semantics are kvcached::Client's (docs/client.md, "Replica tasks"). A task
 * id is 128 random bits; {0, 0} names none. */

typedef struct kvcached_task_id {
  uint64_t hi;
  uint64_t lo;
} kvcached_task_id_t;

#define KVCACHED_TASK_REPLICA_COPY 0
#define KVCACHED_TASK_REPLICA_MOVE 1
#define KVCACHED_TASK_PENDING 0
#define KVCACHED_TASK_PROCESSING 1
#define KVCACHED_TASK_SUCCESS 2
#define KVCACHED_TASK_FAILED 3

typedef struct kvcached_task_info {
  kvcached_task_id_t id;
  int32_t type;    /* KVCACHED_TASK_REPLICA_COPY or _MOVE */
  int32_t status;  /* KVCACHED_TASK_PENDING .. KVCACHED_TASK_FAILED */
  uint64_t created_at_ms_epoch;
  uint64_t last_updated_at_ms_epoch;
  char* assigned_client; /* the caller's: kvcached_free_string() */
  char* message;         /* why it failed, "" otherwise; the caller's: kvcached_free_string() */
} kvcached_task_info_t;

/* Adds a replica of `key`'s object (NUL-terminated) in each of the `count`
 * target segments that lacks one; the task id goes to *id_out ({0, 0} on
 * failure). OK once the master has recorded the task; this client then
 * copies in the background. INVALID_PARAMS for a NULL argument or count 0;
 * the master's code (OBJECT_NOT_FOUND, SEGMENT_NOT_FOUND, ...). */
KVCACHED_API int32_t kvcached_create_copy_task(kvcached_client_t* client, const char* key,
                                               const char* const* targets, size_t count,
                                               kvcached_task_id_t* id_out);
/* Moves the replica in segment `source` to segment `target`. */
KVCACHED_API int32_t kvcached_create_move_task(kvcached_client_t* client, const char* key,
                                               const char* source, const char* target,
                                               kvcached_task_id_t* id_out);
/* Fills *info_out (its strings NULL on failure). TASK_NOT_FOUND for an id
 * the master does not know; INVALID_PARAMS for a NULL argument. */
KVCACHED_API int32_t kvcached_query_task(kvcached_client_t* client, kvcached_task_id_t id,
                                         kvcached_task_info_t* info_out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KVCACHED_KVCACHED_H_ */
