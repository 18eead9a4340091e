// ConnectionRegistry<Conn>: the open connections of one server, so it can
// enforce --max-connections and stop them all on shutdown. Holds weak
// references only: a connection's lifetime is its own (its pending I/O),
// and it removes itself when destroyed. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace kvcached {

template <typename Conn>
class ConnectionRegistry {
 public:
  // Registers `conn` unless `max_connections` are open already (then false).
  bool Add(uint64_t id, const std::shared_ptr<Conn>& conn, size_t max_connections) {
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.size() >= max_connections) return false;
    map_.emplace(id, conn);
    return true;
  }
  void Remove(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    map_.erase(id);
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.size();
  }
  // The connections still alive, to stop them (outside the lock).
  std::vector<std::shared_ptr<Conn>> Live() const {
    std::vector<std::shared_ptr<Conn>> out;
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, weak] : map_) {
      if (auto c = weak.lock()) out.push_back(std::move(c));
    }
    return out;
  }

 private:
  mutable std::mutex mu_;  // guards map_
  std::unordered_map<uint64_t, std::weak_ptr<Conn>> map_;
};

}  // namespace kvcached
