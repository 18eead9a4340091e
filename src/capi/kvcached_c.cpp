// The C ABI (include/kvcached/kvcached.h) over kvcached::Client. Every entry
// point is a noexcept boundary: C++ exceptions become INTERNAL_ERROR with the
// text in the calling thread's last-error slot, and nothing but C types
// crosses. Arguments the C++ API would trip over (NULL pointers, zero sizes)
// are refused here, before anything is sent.
#include "kvcached/kvcached.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/client_settings.h"
#include "core/build_info.h"
#include "core/logging.h"
#include "core/units.h"
#include "kvcached/client.h"

struct kvcached_client {
  std::unique_ptr<kvcached::Client> client;
};

namespace kvcached {
namespace {

// The text of the calling thread's last failed call; "" after a success.
thread_local std::string t_last_error;

static_assert(static_cast<int32_t>(ErrorCode::OBJECT_NOT_FOUND) == KVCACHED_OBJECT_NOT_FOUND);
static_assert(static_cast<int32_t>(ErrorCode::INVALID_PARAMS) == KVCACHED_INVALID_PARAMS);
static_assert(static_cast<int32_t>(ErrorCode::BUFFER_OVERFLOW) == KVCACHED_BUFFER_OVERFLOW);
static_assert(static_cast<int32_t>(ErrorCode::NOT_SUPPORTED) == KVCACHED_NOT_SUPPORTED);
static_assert(static_cast<int32_t>(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS) ==
              KVCACHED_UNAVAILABLE_IN_CURRENT_STATUS);

void ClearError() noexcept { t_last_error.clear(); }

int32_t Fail(const Status& st) noexcept {
  try {
    t_last_error = st.ToString();
  } catch (...) {
    t_last_error.clear();  // out of memory: the code still tells what happened
  }
  return static_cast<int32_t>(st.code());
}

int32_t Fail(ErrorCode code, const char* message) noexcept {
  try {
    t_last_error = std::string(ErrorName(code)) + ": " + message;
  } catch (...) {
    t_last_error.clear();
  }
  return static_cast<int32_t>(code);
}

// Returns `st`'s code, recording its text when it failed.
int32_t Report(const Status& st) noexcept {
  if (st.ok()) {
    ClearError();
    return KVCACHED_OK;
  }
  return Fail(st);
}

// Runs `fn`; an escaping exception becomes INTERNAL_ERROR.
template <typename Fn>
auto Boundary(Fn&& fn) noexcept -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Fail(ErrorCode::INTERNAL_ERROR, "out of memory");
  } catch (const std::exception& e) {
    return Fail(ErrorCode::INTERNAL_ERROR, e.what());
  } catch (...) {
    return Fail(ErrorCode::INTERNAL_ERROR, "unknown exception");
  }
}

std::string_view KeyOf(const char* key, size_t key_len) { return std::string_view(key, key_len); }

// The checks every single-key call makes before anything is sent.
Status CheckCall(const kvcached_client* c, const char* key) {
  if (c == nullptr || !c->client) return Status(ErrorCode::INVALID_PARAMS, "client is NULL");
  if (key == nullptr) return Status(ErrorCode::INVALID_PARAMS, "key is NULL");
  return Status::Ok();
}

ReplicateConfig ToReplicate(const kvcached_replicate_config_t* rc) {
  ReplicateConfig out;
  if (rc == nullptr) return out;
  // The flag bits travel in replica_num's high bits; unknown bits stay and
  // make the count invalid (INVALID_PARAMS), so no flag is dropped unseen.
  out.with_soft_pin = (rc->replica_num & KVCACHED_REPLICATE_SOFT_PIN) != 0;
  out.with_hard_pin = (rc->replica_num & KVCACHED_REPLICATE_HARD_PIN) != 0;
  out.replica_num =
      rc->replica_num & ~static_cast<uint32_t>(KVCACHED_REPLICATE_SOFT_PIN | KVCACHED_REPLICATE_HARD_PIN);
  if (rc->preferred_segment != nullptr) out.preferred_segment = rc->preferred_segment;
  return out;
}

// ---- settings ----------------------------------------------------------------
// Names, grammar and ranges are the settings table's (client/client_settings.h).

Result<ClientConfig> FromCStruct(const kvcached_config_t& in) {
  ClientConfig c;
  // Fields past what the caller's struct_size covers keep their defaults.
  auto has = [&in](size_t end_offset) { return in.struct_size >= end_offset; };
#define KVCACHED_HAS(field) has(offsetof(kvcached_config_t, field) + sizeof(in.field))
  // Strings go through the table's grammar (transport's names, protocol's
  // choices); NULL keeps the default.
  struct Text {
    bool present;
    const char* value;
    const char* setting;
  };
  for (Text t :
       {Text{KVCACHED_HAS(local_hostname), in.local_hostname, "local_hostname"},
        Text{KVCACHED_HAS(metadata_server), in.metadata_server, "metadata_server"},
        Text{KVCACHED_HAS(protocol), in.protocol, "protocol"},
        Text{KVCACHED_HAS(rdma_devices), in.rdma_devices, "rdma_devices"},
        Text{KVCACHED_HAS(master_server_addr), in.master_server_addr, "master_server_addr"},
        Text{KVCACHED_HAS(token), in.token, "token"},
        Text{KVCACHED_HAS(transport), in.transport, "transport"},
        Text{KVCACHED_HAS(segment_bind_host), in.segment_bind_host, "segment_bind_host"},
        Text{KVCACHED_HAS(segment_name), in.segment_name, "segment_name"}}) {
    if (!t.present || t.value == nullptr) continue;
    std::string source = std::string("config->") + t.setting;
    if (Status st = ApplyClientSetting(c, t.setting, t.value, source); !st.ok()) return st;
  }
  // Numbers are already numbers; 0 means the default where the header says so.
  if (KVCACHED_HAS(global_segment_size)) c.global_segment_size = in.global_segment_size;
  if (KVCACHED_HAS(local_buffer_size)) c.local_buffer_size = in.local_buffer_size;
  if (KVCACHED_HAS(checksums)) c.checksums = in.checksums != 0;
  if (KVCACHED_HAS(rpc_timeout_ms) && in.rpc_timeout_ms) {
    c.rpc_timeout = std::chrono::milliseconds(in.rpc_timeout_ms);
  }
  if (KVCACHED_HAS(io_timeout_ms) && in.io_timeout_ms) {
    c.io_timeout = std::chrono::milliseconds(in.io_timeout_ms);
  }
  if (KVCACHED_HAS(connect_timeout_ms) && in.connect_timeout_ms) {
    c.connect_timeout = std::chrono::milliseconds(in.connect_timeout_ms);
  }
  if (KVCACHED_HAS(tcp_streams) && in.tcp_streams) c.tcp_streams = in.tcp_streams;
  if (KVCACHED_HAS(tcp_split_bytes) && in.tcp_split_bytes) c.tcp_split_bytes = in.tcp_split_bytes;
  if (KVCACHED_HAS(hugepages)) c.hugepages = in.hugepages != 0;
  if (KVCACHED_HAS(ping_interval_ms) && in.ping_interval_ms) {
    c.ping_interval = std::chrono::milliseconds(in.ping_interval_ms);
  }
  if (KVCACHED_HAS(copy_threads)) c.copy_threads = in.copy_threads;
#undef KVCACHED_HAS
  return c;
}

int32_t OpenWith(const ClientConfig& config, kvcached_client_t** out) {
  Result<std::unique_ptr<Client>> opened = Client::Open(config);
  if (!opened.ok()) return Fail(opened.status());
  auto handle = std::make_unique<kvcached_client>();
  handle->client = std::move(opened).value();
  *out = handle.release();
  ClearError();
  return KVCACHED_OK;
}

// ---- batches -------------------------------------------------------------------

// Records the first failure of a batch as the thread's last error.
class FirstFailure {
 public:
  void Note(const Status& st) {
    if (!failed_ && !st.ok()) {
      failed_ = true;
      Fail(st);
    }
  }
  void Finish() {
    if (!failed_) ClearError();
  }

 private:
  bool failed_ = false;
};

// The entries of a batch that pass the per-key checks, as the C++ API takes
// them, and where each came from. `index` is empty when every entry passed,
// the common case, so no mapping back is needed.
struct Batch {
  std::vector<std::string> keys;
  std::vector<Slice> slices;
  std::vector<size_t> index;
};

// Fills `batch` from the C arrays; entries with a NULL key or buffer or a
// zero size get INVALID_PARAMS in `results[i]` (noted in `first`) and are
// left out. `buffers`/`sizes` are NULL for calls that move no bytes (exist).
template <typename T>
void Collect(size_t count, const char* const* keys, const size_t* key_lens,
             const void* const* buffers, const uint64_t* sizes, Batch& batch, T* results,
             FirstFailure& first) {
  batch.keys.reserve(count);
  if (buffers != nullptr) batch.slices.reserve(count);
  bool all_valid = true;
  std::vector<size_t> index;
  for (size_t i = 0; i < count; ++i) {
    const char* why = nullptr;
    if (keys[i] == nullptr) {
      why = "key is NULL";
    } else if (buffers != nullptr && buffers[i] == nullptr) {
      why = "buffer is NULL";
    } else if (buffers != nullptr && sizes[i] == 0) {
      why = "size is 0";
    }
    if (why != nullptr) {
      if (all_valid) {
        all_valid = false;
        index.reserve(count);
        for (size_t j = 0; j < i; ++j) index.push_back(j);
      }
      results[i] = static_cast<T>(KVCACHED_INVALID_PARAMS);
      first.Note(
          Status(ErrorCode::INVALID_PARAMS, "batch entry " + std::to_string(i) + ": " + why));
      continue;
    }
    size_t len = key_lens != nullptr ? key_lens[i] : std::strlen(keys[i]);
    batch.keys.emplace_back(keys[i], len);
    if (buffers != nullptr) batch.slices.push_back({const_cast<void*>(buffers[i]), sizes[i]});
    if (!all_valid) index.push_back(i);
  }
  batch.index = std::move(index);
}

size_t Origin(const Batch& b, size_t i) { return b.index.empty() ? i : b.index[i]; }

// One key's entry of kvcached_batch_replica_desc_json's array.
nlohmann::json PlacesJson(const Result<ObjectPlaces>& r) {
  if (!r.ok()) return {{"code", static_cast<int32_t>(r.code())}};
  nlohmann::json replicas = nlohmann::json::array();
  for (const ReplicaPlace& p : r->replicas) {
    replicas.push_back(
        {{"segment", p.segment}, {"data_endpoint", p.data_endpoint}, {"offset", p.offset}});
  }
  return {{"code", 0}, {"size", r->size}, {"version", r->version}, {"replicas", replicas}};
}

// A copy of `text` in memory from malloc, which kvcached_free_string frees.
char* MallocCopy(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out == nullptr) throw std::bad_alloc();
  std::memcpy(out, text.c_str(), text.size() + 1);
  return out;
}

template <typename T>
int32_t RefuseBatch(size_t count, T* results, const char* why) {
  if (results != nullptr) {
    for (size_t i = 0; i < count; ++i) results[i] = KVCACHED_INVALID_PARAMS;
  }
  return Fail(ErrorCode::INVALID_PARAMS, why);
}

}  // namespace
}  // namespace kvcached

using kvcached::Boundary;
using kvcached::ErrorCode;
using kvcached::Status;

extern "C" {

const char* kvcached_version(void) { return kvcached::GetBuildInfo().version; }

const char* kvcached_last_error(void) { return kvcached::t_last_error.c_str(); }

const char* kvcached_error_name(int32_t code) {
  std::optional<ErrorCode> c = kvcached::ErrorCodeFromInt(code);
  // The table's names are string literals: NUL-terminated static text.
  return kvcached::ErrorName(c.value_or(ErrorCode::INTERNAL_ERROR)).data();
}

int32_t kvcached_set_log_level(const char* level) {
  return Boundary([&]() -> int32_t {
    if (level == nullptr) return kvcached::Fail(ErrorCode::INVALID_PARAMS, "level is NULL");
    return kvcached::Report(kvcached::SetLogLevel(level));
  });
}

const char* kvcached_settings_json(void) {
  // Built once; the text lives as long as the library.
  static const std::string* const text = []() -> const std::string* {
    try {
      return new std::string(kvcached::ClientSettingsJson());
    } catch (...) {
      return nullptr;
    }
  }();
  return text != nullptr ? text->c_str() : "[]";
}

int32_t kvcached_parse_size(const char* text, uint64_t* out) {
  return Boundary([&]() -> int32_t {
    if (text == nullptr || out == nullptr) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "text or out is NULL");
    }
    kvcached::Result<uint64_t> size = kvcached::ParseSize(text);
    if (!size.ok()) {
      return kvcached::Fail(
          Status(size.code(), "'" + std::string(text) + "': " + size.status().message()));
    }
    *out = *size;
    kvcached::ClearError();
    return KVCACHED_OK;
  });
}

void kvcached_config_init(kvcached_config_t* config) {
  if (config == nullptr) return;
  std::memset(config, 0, sizeof *config);
  config->struct_size = sizeof *config;
  config->checksums = 1;
}

int32_t kvcached_open(const kvcached_config_t* config, kvcached_client_t** out) {
  return Boundary([&]() -> int32_t {
    if (out == nullptr) return kvcached::Fail(ErrorCode::INVALID_PARAMS, "out is NULL");
    *out = nullptr;
    if (config == nullptr) return kvcached::Fail(ErrorCode::INVALID_PARAMS, "config is NULL");
    if (config->struct_size < offsetof(kvcached_config_t, token)) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS,
                            "config->struct_size is too small: call kvcached_config_init first");
    }
    kvcached::Result<kvcached::ClientConfig> c = kvcached::FromCStruct(*config);
    if (!c.ok()) return kvcached::Fail(c.status());
    return kvcached::OpenWith(*c, out);
  });
}

int32_t kvcached_open_settings(const char* const* names, const char* const* values, size_t count,
                               int from_environment, kvcached_client_t** out) {
  return Boundary([&]() -> int32_t {
    if (out == nullptr) return kvcached::Fail(ErrorCode::INVALID_PARAMS, "out is NULL");
    *out = nullptr;
    if (count > 0 && (names == nullptr || values == nullptr)) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "names or values is NULL");
    }
    kvcached::ClientConfig c;
    if (from_environment != 0) {
      kvcached::Result<kvcached::ClientConfig> env = kvcached::ClientConfig::FromEnvironment();
      if (!env.ok()) return kvcached::Fail(env.status());
      c = std::move(env).value();
    }
    for (size_t i = 0; i < count; ++i) {
      if (names[i] == nullptr) {
        return kvcached::Fail(ErrorCode::INVALID_PARAMS,
                              ("setting name " + std::to_string(i) + " is NULL").c_str());
      }
      if (values[i] == nullptr) continue;
      if (Status st = kvcached::ApplyClientSetting(c, names[i], values[i]); !st.ok()) {
        return kvcached::Fail(st);
      }
    }
    return kvcached::OpenWith(c, out);
  });
}

int32_t kvcached_open_env(kvcached_client_t** out) {
  return kvcached_open_settings(nullptr, nullptr, 0, 1, out);
}

int32_t kvcached_close(kvcached_client_t* client) {
  return Boundary([&]() -> int32_t {
    if (client == nullptr || !client->client) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "client is NULL");
    }
    client->client->Close();
    kvcached::ClearError();
    return KVCACHED_OK;
  });
}

void kvcached_destroy(kvcached_client_t* client) {
  // Close() and the destructor return no errors; a throw here would be a
  // bug, and must still not unwind into C.
  try {
    delete client;
  } catch (...) {
  }
}

int32_t kvcached_health_check(kvcached_client_t* client) {
  return Boundary([&]() -> int32_t {
    if (client == nullptr || !client->client) return 1;
    // GetSize of a key no one uses: one master round trip, and no lease.
    static constexpr char kProbe[] = "\x01kvcached-health-probe";
    kvcached::Result<uint64_t> r =
        client->client->GetSize(std::string_view(kProbe, sizeof kProbe - 1));
    switch (r.code()) {
      case ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS:
        kvcached::Fail(r.status());
        return 1;
      case ErrorCode::RPC_FAIL:
      case ErrorCode::RPC_TIMEOUT:
      case ErrorCode::ILLEGAL_CLIENT:
      case ErrorCode::INVALID_VERSION:
        kvcached::Fail(r.status());
        return 2;
      default:
        kvcached::ClearError();
        return 0;
    }
  });
}

const char* kvcached_host_id(kvcached_client_t* client) {
  if (client == nullptr || !client->client) return "";
  return client->client->host_id().c_str();
}

const char* kvcached_segment_name(kvcached_client_t* client) {
  if (client == nullptr || !client->client) return "";
  return client->client->segment_name().c_str();
}

int32_t kvcached_stats(kvcached_client_t* client, kvcached_stats_t* out) {
  return Boundary([&]() -> int32_t {
    if (client == nullptr || !client->client || out == nullptr) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "client or out is NULL");
    }
    kvcached::ClientStats s = client->client->stats();
    out->puts = s.puts;
    out->gets = s.gets;
    out->bytes_written = s.bytes_written;
    out->bytes_read = s.bytes_read;
    out->shm_transfers = s.shm_transfers;
    out->tcp_transfers = s.tcp_transfers;
    out->checksum_mismatches = s.checksum_mismatches;
    out->lease_expirations = s.lease_expirations;
    out->tcp_connections_opened = s.tcp_connections_opened;
    kvcached::ClearError();
    return KVCACHED_OK;
  });
}

namespace {

int32_t PutOrUpsert(kvcached_client_t* client, const char* key, size_t key_len,
                    const void* buffer, uint64_t size, const kvcached_replicate_config_t* config,
                    bool upsert) {
  return Boundary([&]() -> int32_t {
    if (Status st = kvcached::CheckCall(client, key); !st.ok()) return kvcached::Fail(st);
    if (buffer == nullptr) return kvcached::Fail(ErrorCode::INVALID_PARAMS, "buffer is NULL");
    if (size == 0) return kvcached::Fail(ErrorCode::INVALID_PARAMS, "size is 0");
    std::string_view k = kvcached::KeyOf(key, key_len);
    kvcached::ReplicateConfig rc = kvcached::ToReplicate(config);
    return kvcached::Report(upsert ? client->client->Upsert(k, buffer, size, rc)
                                   : client->client->Put(k, buffer, size, rc));
  });
}

int32_t BatchPutOrUpsert(kvcached_client_t* client, size_t count, const char* const* keys,
                         const size_t* key_lens, const void* const* buffers,
                         const uint64_t* sizes, const kvcached_replicate_config_t* config,
                         int32_t* results, bool upsert) {
  return Boundary([&]() -> int32_t {
    if (client == nullptr || !client->client || results == nullptr ||
        (count > 0 && (keys == nullptr || buffers == nullptr || sizes == nullptr))) {
      return kvcached::RefuseBatch(count, results,
                                   "client, keys, buffers, sizes or results is NULL");
    }
    kvcached::FirstFailure first;
    kvcached::Batch batch;
    kvcached::Collect(count, keys, key_lens, buffers, sizes, batch, results, first);
    if (!batch.keys.empty()) {
      kvcached::ReplicateConfig rc = kvcached::ToReplicate(config);
      std::vector<Status> out = upsert ? client->client->BatchUpsert(batch.keys, batch.slices, rc)
                                       : client->client->BatchPut(batch.keys, batch.slices, rc);
      for (size_t i = 0; i < out.size(); ++i) {
        results[kvcached::Origin(batch, i)] = static_cast<int32_t>(out[i].code());
        first.Note(out[i]);
      }
    }
    first.Finish();
    return KVCACHED_OK;
  });
}

}  // namespace

int32_t kvcached_put_from(kvcached_client_t* client, const char* key, size_t key_len,
                          const void* buffer, uint64_t size,
                          const kvcached_replicate_config_t* config) {
  return PutOrUpsert(client, key, key_len, buffer, size, config, /*upsert=*/false);
}

int32_t kvcached_upsert_from(kvcached_client_t* client, const char* key, size_t key_len,
                             const void* buffer, uint64_t size,
                             const kvcached_replicate_config_t* config) {
  return PutOrUpsert(client, key, key_len, buffer, size, config, /*upsert=*/true);
}

int32_t kvcached_put(kvcached_client_t* client, const char* key, size_t key_len, const void* data,
                     uint64_t size, const kvcached_replicate_config_t* config) {
  return kvcached_put_from(client, key, key_len, data, size, config);
}

int64_t kvcached_get_into(kvcached_client_t* client, const char* key, size_t key_len, void* buffer,
                          uint64_t size) {
  return Boundary([&]() -> int64_t {
    if (Status st = kvcached::CheckCall(client, key); !st.ok()) return kvcached::Fail(st);
    if (buffer == nullptr) return kvcached::Fail(ErrorCode::INVALID_PARAMS, "buffer is NULL");
    if (size == 0) return kvcached::Fail(ErrorCode::INVALID_PARAMS, "size is 0");
    kvcached::Result<uint64_t> r = client->client->Get(kvcached::KeyOf(key, key_len), buffer, size);
    if (!r.ok()) return kvcached::Fail(r.status());
    kvcached::ClearError();
    return static_cast<int64_t>(*r);
  });
}

int64_t kvcached_get(kvcached_client_t* client, const char* key, size_t key_len, void* buffer,
                     uint64_t capacity, uint64_t* size_needed) {
  return Boundary([&]() -> int64_t {
    if (Status st = kvcached::CheckCall(client, key); !st.ok()) return kvcached::Fail(st);
    if (buffer == nullptr && capacity != 0) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "buffer is NULL with a capacity");
    }
    std::string_view k = kvcached::KeyOf(key, key_len);
    // A few tries: the object may be replaced by one of another size
    // between the two calls (objects are immutable, keys are not).
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (buffer != nullptr) {
        kvcached::Result<uint64_t> r = client->client->Get(k, buffer, capacity);
        if (r.ok()) {
          kvcached::ClearError();
          return static_cast<int64_t>(*r);
        }
        // INVALID_PARAMS from a call with a valid key and buffer means the
        // buffer is too small: learn the size below.
        if (r.code() != ErrorCode::INVALID_PARAMS) return kvcached::Fail(r.status());
      }
      kvcached::Result<uint64_t> size = client->client->GetSize(k);
      if (!size.ok()) return kvcached::Fail(size.status());
      if (*size > capacity) {
        if (size_needed != nullptr) *size_needed = *size;
        return kvcached::Fail(
            ErrorCode::BUFFER_OVERFLOW,
            ("object of " + std::to_string(*size) + " bytes, buffer of " + std::to_string(capacity))
                .c_str());
      }
    }
    return kvcached::Fail(ErrorCode::BUFFER_OVERFLOW, "the object kept changing size");
  });
}

int32_t kvcached_exist(kvcached_client_t* client, const char* key, size_t key_len) {
  return Boundary([&]() -> int32_t {
    if (Status st = kvcached::CheckCall(client, key); !st.ok()) return kvcached::Fail(st);
    kvcached::Result<bool> r = client->client->Exist(kvcached::KeyOf(key, key_len));
    if (!r.ok()) return kvcached::Fail(r.status());
    kvcached::ClearError();
    return *r ? 1 : 0;
  });
}

int64_t kvcached_get_size(kvcached_client_t* client, const char* key, size_t key_len) {
  return Boundary([&]() -> int64_t {
    if (Status st = kvcached::CheckCall(client, key); !st.ok()) return kvcached::Fail(st);
    kvcached::Result<uint64_t> r = client->client->GetSize(kvcached::KeyOf(key, key_len));
    if (!r.ok()) return kvcached::Fail(r.status());
    kvcached::ClearError();
    return static_cast<int64_t>(*r);
  });
}

int32_t kvcached_remove(kvcached_client_t* client, const char* key, size_t key_len, int force) {
  return Boundary([&]() -> int32_t {
    if (Status st = kvcached::CheckCall(client, key); !st.ok()) return kvcached::Fail(st);
    return kvcached::Report(client->client->Remove(kvcached::KeyOf(key, key_len), force != 0));
  });
}

int64_t kvcached_remove_all(kvcached_client_t* client, int force) {
  return Boundary([&]() -> int64_t {
    if (client == nullptr || !client->client) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "client is NULL");
    }
    kvcached::Result<uint64_t> r = client->client->RemoveAll(force != 0);
    if (!r.ok()) return kvcached::Fail(r.status());
    kvcached::ClearError();
    return static_cast<int64_t>(*r);
  });
}

int64_t kvcached_remove_by_regex(kvcached_client_t* client, const char* pattern, int force) {
  return Boundary([&]() -> int64_t {
    if (client == nullptr || !client->client || pattern == nullptr) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "client or pattern is NULL");
    }
    kvcached::Result<uint64_t> r = client->client->RemoveByRegex(pattern, force != 0);
    if (!r.ok()) return kvcached::Fail(r.status());
    kvcached::ClearError();
    return static_cast<int64_t>(*r);
  });
}

int32_t kvcached_batch_put_from(kvcached_client_t* client, size_t count, const char* const* keys,
                                const size_t* key_lens, const void* const* buffers,
                                const uint64_t* sizes, const kvcached_replicate_config_t* config,
                                int32_t* results) {
  return BatchPutOrUpsert(client, count, keys, key_lens, buffers, sizes, config, results,
                          /*upsert=*/false);
}

int32_t kvcached_batch_upsert_from(kvcached_client_t* client, size_t count,
                                   const char* const* keys, const size_t* key_lens,
                                   const void* const* buffers, const uint64_t* sizes,
                                   const kvcached_replicate_config_t* config, int32_t* results) {
  return BatchPutOrUpsert(client, count, keys, key_lens, buffers, sizes, config, results,
                          /*upsert=*/true);
}

int32_t kvcached_batch_get_into(kvcached_client_t* client, size_t count, const char* const* keys,
                                const size_t* key_lens, void* const* buffers, const uint64_t* sizes,
                                int64_t* results) {
  return Boundary([&]() -> int32_t {
    if (client == nullptr || !client->client || results == nullptr ||
        (count > 0 && (keys == nullptr || buffers == nullptr || sizes == nullptr))) {
      return kvcached::RefuseBatch(count, results,
                                   "client, keys, buffers, sizes or results is NULL");
    }
    kvcached::FirstFailure first;
    kvcached::Batch batch;
    kvcached::Collect(count, keys, key_lens, buffers, sizes, batch, results, first);
    if (!batch.keys.empty()) {
      std::vector<kvcached::Result<uint64_t>> out =
          client->client->BatchGet(batch.keys, batch.slices);
      for (size_t i = 0; i < out.size(); ++i) {
        size_t at = kvcached::Origin(batch, i);
        if (out[i].ok()) {
          results[at] = static_cast<int64_t>(*out[i]);
        } else {
          results[at] = static_cast<int64_t>(out[i].code());
          first.Note(out[i].status());
        }
      }
    }
    first.Finish();
    return KVCACHED_OK;
  });
}

int32_t kvcached_batch_exist(kvcached_client_t* client, size_t count, const char* const* keys,
                             const size_t* key_lens, int32_t* results) {
  return Boundary([&]() -> int32_t {
    if (client == nullptr || !client->client || results == nullptr ||
        (count > 0 && keys == nullptr)) {
      return kvcached::RefuseBatch(count, results, "client, keys or results is NULL");
    }
    kvcached::FirstFailure first;
    kvcached::Batch batch;
    kvcached::Collect(count, keys, key_lens, nullptr, nullptr, batch, results, first);
    if (!batch.keys.empty()) {
      std::vector<kvcached::Result<bool>> out = client->client->BatchExist(batch.keys);
      for (size_t i = 0; i < out.size(); ++i) {
        size_t at = kvcached::Origin(batch, i);
        if (out[i].ok()) {
          results[at] = *out[i] ? 1 : 0;
        } else {
          results[at] = static_cast<int32_t>(out[i].code());
          first.Note(out[i].status());
        }
      }
    }
    first.Finish();
    return KVCACHED_OK;
  });
}

int32_t kvcached_batch_replica_desc_json(kvcached_client_t* client, size_t count,
                                         const char* const* keys, const size_t* key_lens,
                                         char** json_out) {
  return Boundary([&]() -> int32_t {
    if (json_out != nullptr) *json_out = nullptr;
    if (client == nullptr || !client->client || json_out == nullptr ||
        (count > 0 && keys == nullptr)) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "client, keys or json_out is NULL");
    }
    kvcached::FirstFailure first;
    kvcached::Batch batch;
    // Entries refused here (a NULL key) get their code in `codes`.
    std::vector<int32_t> codes(count, KVCACHED_OK);
    kvcached::Collect(count, keys, key_lens, nullptr, nullptr, batch, codes.data(), first);
    std::vector<kvcached::Result<kvcached::ObjectPlaces>> out;
    if (!batch.keys.empty()) out = client->client->GetReplicaDesc(batch.keys);
    std::vector<nlohmann::json> entries(count);
    for (size_t i = 0; i < count; ++i) entries[i] = {{"code", codes[i]}};
    for (size_t i = 0; i < out.size(); ++i) {
      entries[kvcached::Origin(batch, i)] = kvcached::PlacesJson(out[i]);
      first.Note(out[i].status());
    }
    // Segment names are the stores' ids: anything not UTF-8 in one is
    // shown as U+FFFD rather than failing the call.
    std::string text = nlohmann::json(std::move(entries))
                           .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    *json_out = kvcached::MallocCopy(text);
    first.Finish();
    return KVCACHED_OK;
  });
}

void kvcached_free_string(char* text) { std::free(text); }

int32_t kvcached_register_buffer(kvcached_client_t* client, void* buffer, uint64_t size) {
  return Boundary([&]() -> int32_t {
    if (client == nullptr || !client->client) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "client is NULL");
    }
    return kvcached::Report(client->client->RegisterBuffer(buffer, size));
  });
}

int32_t kvcached_unregister_buffer(kvcached_client_t* client, void* buffer) {
  return Boundary([&]() -> int32_t {
    if (client == nullptr || !client->client) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "client is NULL");
    }
    return kvcached::Report(client->client->UnregisterBuffer(buffer));
  });
}

int32_t kvcached_mount_segment(kvcached_client_t* client, const char* path, uint64_t offset,
                               uint64_t size, const char* protocol, char** name_out,
                               uint64_t* size_out) {
  return Boundary([&]() -> int32_t {
    if (name_out != nullptr) *name_out = nullptr;
    if (client == nullptr || !client->client || name_out == nullptr) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "client or name_out is NULL");
    }
    kvcached::SegmentSpec spec;
    spec.size_bytes = size;
    if (path != nullptr) spec.file_path = path;
    spec.file_offset = offset;
    if (protocol != nullptr) spec.protocol = protocol;
    if (spec.file_path.empty() && offset != 0) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "an offset needs a path");
    }
    kvcached::Result<kvcached::MountedSegment> r = client->client->MountSegment(spec);
    if (!r.ok()) return kvcached::Fail(r.status());
    *name_out = kvcached::MallocCopy(r->name);
    if (size_out != nullptr) *size_out = r->size_bytes;
    kvcached::ClearError();
    return KVCACHED_OK;
  });
}

int32_t kvcached_unmount_segments(kvcached_client_t* client, size_t count,
                                  const char* const* names, int free_memory) {
  return Boundary([&]() -> int32_t {
    if (client == nullptr || !client->client || (count > 0 && names == nullptr)) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "client or names is NULL");
    }
    std::vector<std::string> list;
    for (size_t i = 0; i < count; ++i) {
      if (names[i] == nullptr) return kvcached::Fail(ErrorCode::INVALID_PARAMS, "a name is NULL");
      list.emplace_back(names[i]);
    }
    return kvcached::Report(client->client->UnmountSegments(list, free_memory != 0));
  });
}

namespace {

int32_t CreateTask(kvcached_client_t* client, kvcached_task_id_t* id_out,
                   const std::function<kvcached::Result<kvcached::TaskId>()>& create) {
  if (id_out != nullptr) *id_out = {0, 0};
  kvcached::Result<kvcached::TaskId> r = create();
  if (!r.ok()) return kvcached::Fail(r.status());
  *id_out = {r->hi, r->lo};
  kvcached::ClearError();
  return KVCACHED_OK;
}

}  // namespace

int32_t kvcached_create_copy_task(kvcached_client_t* client, const char* key,
                                  const char* const* targets, size_t count,
                                  kvcached_task_id_t* id_out) {
  return Boundary([&]() -> int32_t {
    if (id_out != nullptr) *id_out = {0, 0};
    if (client == nullptr || !client->client || key == nullptr || targets == nullptr ||
        count == 0 || id_out == nullptr) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS,
                            "client, key, targets or id_out is NULL, or count is 0");
    }
    std::vector<std::string> list;
    for (size_t i = 0; i < count; ++i) {
      if (targets[i] == nullptr) {
        return kvcached::Fail(ErrorCode::INVALID_PARAMS, "a target is NULL");
      }
      list.emplace_back(targets[i]);
    }
    return CreateTask(client, id_out, [&] { return client->client->CreateCopyTask(key, list); });
  });
}

int32_t kvcached_create_move_task(kvcached_client_t* client, const char* key, const char* source,
                                  const char* target, kvcached_task_id_t* id_out) {
  return Boundary([&]() -> int32_t {
    if (id_out != nullptr) *id_out = {0, 0};
    if (client == nullptr || !client->client || key == nullptr || source == nullptr ||
        target == nullptr || id_out == nullptr) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS,
                            "client, key, source, target or id_out is NULL");
    }
    return CreateTask(client, id_out,
                      [&] { return client->client->CreateMoveTask(key, source, target); });
  });
}

int32_t kvcached_query_task(kvcached_client_t* client, kvcached_task_id_t id,
                            kvcached_task_info_t* info_out) {
  return Boundary([&]() -> int32_t {
    if (info_out != nullptr) *info_out = {};
    if (client == nullptr || !client->client || info_out == nullptr) {
      return kvcached::Fail(ErrorCode::INVALID_PARAMS, "client or info_out is NULL");
    }
    kvcached::Result<kvcached::ReplicaTaskInfo> r = client->client->QueryTask({id.hi, id.lo});
    if (!r.ok()) return kvcached::Fail(r.status());
    info_out->id = {r->id.hi, r->id.lo};
    info_out->type = static_cast<int32_t>(r->type);
    info_out->status = static_cast<int32_t>(r->status);
    info_out->created_at_ms_epoch = r->created_at_ms_epoch;
    info_out->last_updated_at_ms_epoch = r->last_updated_at_ms_epoch;
    info_out->assigned_client = kvcached::MallocCopy(r->assigned_client);
    info_out->message = kvcached::MallocCopy(r->message);
    kvcached::ClearError();
    return KVCACHED_OK;
  });
}

}  // extern "C"
