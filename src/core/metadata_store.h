// MetadataStore: the key -> bytes map behind the metadata HTTP service
// (Mooncake's http_metadata_server protocol). Stores segment descriptors
// and RPC locations as opaque bytes. Enforces key length, value size and
// total size limits, and the rpc_meta rule: a key containing "rpc_meta"
// that already holds different bytes is not overwritten, so a live node's
// location cannot be hijacked. Thread-safe (one shared_mutex); values are
// shared immutable strings, so a reader never copies under the lock.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/status.h"

namespace kvcached {

struct MetadataLimits {
  size_t max_key_bytes = 4096;
  size_t max_value_bytes = 16 << 20;
  uint64_t max_total_bytes = uint64_t{1} << 30;  // keys + values
};

class MetadataStore {
 public:
  using Value = std::shared_ptr<const std::string>;

  explicit MetadataStore(MetadataLimits limits = {}) : limits_(limits) {}

  // OBJECT_NOT_FOUND when absent; INVALID_KEY for an empty or too long key.
  Result<Value> Get(std::string_view key) const;
  // Stores `value` as-is. INVALID_KEY (empty or too long key),
  // BUFFER_OVERFLOW (value over max_value_bytes), NO_AVAILABLE_HANDLE (the
  // store would pass max_total_bytes), OBJECT_ALREADY_EXISTS (rpc_meta key
  // holding different bytes). Idempotent for identical bytes.
  Status Put(std::string_view key, std::string value);
  // OBJECT_NOT_FOUND when absent.
  Status Remove(std::string_view key);

  size_t KeyCount() const;
  uint64_t TotalBytes() const;  // keys + values
  const MetadataLimits& limits() const { return limits_; }

  // True for keys whose value must not be replaced by different bytes.
  static bool IsProtectedKey(std::string_view key);

 private:
  Status CheckKey(std::string_view key) const;

  const MetadataLimits limits_;
  mutable std::shared_mutex mu_;  // guards map_ and total_bytes_
  std::unordered_map<std::string, Value> map_;
  uint64_t total_bytes_ = 0;
};

}  // namespace kvcached
