#include "core/metadata_store.h"

#include <mutex>

namespace kvcached {

bool MetadataStore::IsProtectedKey(std::string_view key) {
  return key.find("rpc_meta") != std::string_view::npos;
}

Status MetadataStore::CheckKey(std::string_view key) const {
  if (key.empty()) return Status(ErrorCode::INVALID_KEY, "empty key");
  if (key.size() > limits_.max_key_bytes) {
    return Status(ErrorCode::INVALID_KEY, "key of " + std::to_string(key.size()) +
                                              " bytes exceeds the limit of " +
                                              std::to_string(limits_.max_key_bytes));
  }
  return Status::Ok();
}

Result<MetadataStore::Value> MetadataStore::Get(std::string_view key) const {
  if (Status st = CheckKey(key); !st.ok()) return st;
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = map_.find(std::string(key));
  if (it == map_.end()) return Status(ErrorCode::OBJECT_NOT_FOUND, "no such key");
  return it->second;
}

Status MetadataStore::Put(std::string_view key, std::string value) {
  if (Status st = CheckKey(key); !st.ok()) return st;
  if (value.size() > limits_.max_value_bytes) {
    return Status(ErrorCode::BUFFER_OVERFLOW, "value of " + std::to_string(value.size()) +
                                                  " bytes exceeds the limit of " +
                                                  std::to_string(limits_.max_value_bytes));
  }
  auto fresh = std::make_shared<const std::string>(std::move(value));
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto it = map_.find(std::string(key));
  uint64_t old_bytes = 0;
  if (it != map_.end()) {
    if (*it->second == *fresh) return Status::Ok();
    if (IsProtectedKey(key)) {
      return Status(ErrorCode::OBJECT_ALREADY_EXISTS,
                    "rpc_meta key already holds a different value; DELETE it first");
    }
    old_bytes = key.size() + it->second->size();
  }
  uint64_t new_bytes = key.size() + fresh->size();
  if (total_bytes_ - old_bytes + new_bytes > limits_.max_total_bytes) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                  "metadata store full (" + std::to_string(total_bytes_) + " of " +
                      std::to_string(limits_.max_total_bytes) + " bytes used)");
  }
  total_bytes_ = total_bytes_ - old_bytes + new_bytes;
  if (it != map_.end()) {
    it->second = std::move(fresh);
  } else {
    map_.emplace(std::string(key), std::move(fresh));
  }
  return Status::Ok();
}

Status MetadataStore::Remove(std::string_view key) {
  if (Status st = CheckKey(key); !st.ok()) return st;
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto it = map_.find(std::string(key));
  if (it == map_.end()) return Status(ErrorCode::OBJECT_NOT_FOUND, "no such key");
  total_bytes_ -= key.size() + it->second->size();
  map_.erase(it);
  return Status::Ok();
}

size_t MetadataStore::KeyCount() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return map_.size();
}

uint64_t MetadataStore::TotalBytes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return total_bytes_;
}

}  // namespace kvcached
