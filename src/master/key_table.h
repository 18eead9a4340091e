// KeyTable<V>: a string-keyed hash map built for the master's index, where
// per-object overhead is the budget (ARCHITECTURE.md: at most 200 bytes an
// object at a million objects). Entries live in one slab vector addressed by
// 32-bit ids; each key is one exact-size heap block; the hash index is open
// addressing with linear probing over 4-byte slots (at most 3/4 full) and backward-shift
// deletion (no tombstones). Ids stay valid until their entry is erased;
// references into the slab are invalidated by Insert (the slab may grow),
// so callers keep ids, not pointers, across inserts. Not thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string_view>
#include <vector>

namespace kvcached {

template <typename V>
class KeyTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  KeyTable() : slots_(16, kNone) {}
  ~KeyTable() { Clear(); }
  KeyTable(const KeyTable&) = delete;
  KeyTable& operator=(const KeyTable&) = delete;

  size_t size() const { return live_; }

  uint32_t Find(std::string_view key) const {
    uint32_t h = Hash(key);
    for (size_t i = h & mask(); slots_[i] != kNone; i = (i + 1) & mask()) {
      const Entry& e = slab_[slots_[i]];
      if (e.hash == h && e.len == key.size() && std::memcmp(e.key, key.data(), key.size()) == 0) {
        return slots_[i];
      }
    }
    return kNone;
  }

  // Adds `key`, which must be absent; the value is default-constructed.
  uint32_t Insert(std::string_view key) {
    // Linear probing stays short (about 8.5 probes for a miss) below 3/4 load.
    if ((live_ + 1) * 4 > slots_.size() * 3) Grow();
    uint32_t id;
    if (free_head_ != kNone) {
      id = free_head_;
      free_head_ = slab_[id].hash;  // a free entry's hash field links the free list
      slab_[id] = Entry();
    } else {
      id = static_cast<uint32_t>(slab_.size());
      slab_.emplace_back();
    }
    Entry& e = slab_[id];
    e.key = new char[key.size() > 0 ? key.size() : 1];
    std::memcpy(e.key, key.data(), key.size());
    e.len = static_cast<uint32_t>(key.size());
    e.hash = Hash(key);
    Place(id);
    ++live_;
    return id;
  }

  void Erase(uint32_t id) {
    Entry& e = slab_[id];
    size_t i = e.hash & mask();
    while (slots_[i] != id) i = (i + 1) & mask();
    // Backward-shift deletion keeps every probe chain unbroken.
    size_t hole = i;
    for (size_t j = (i + 1) & mask(); slots_[j] != kNone; j = (j + 1) & mask()) {
      size_t home = slab_[slots_[j]].hash & mask();
      bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
      if (movable) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = kNone;
    delete[] e.key;
    e = Entry();
    e.hash = free_head_;
    free_head_ = id;
    --live_;
  }

  V& operator[](uint32_t id) { return slab_[id].value; }
  const V& operator[](uint32_t id) const { return slab_[id].value; }
  std::string_view Key(uint32_t id) const { return {slab_[id].key, slab_[id].len}; }

  // Calls fn(id) for every live entry; fn may Erase(id) of the entry it got.
  template <typename Fn>
  void ForEach(Fn&& fn) {
    for (uint32_t id = 0; id < slab_.size(); ++id) {
      if (slab_[id].key != nullptr) fn(id);
    }
  }

  // Calls fn(id) for the live entries from id `start` on until fn returns
  // false; returns the id to resume from (past the end once all are seen).
  // Between two walks, entries added or erased may be seen or missed.
  template <typename Fn>
  uint32_t ForEachFrom(uint32_t start, Fn&& fn) const {
    uint32_t id = start;
    for (; id < slab_.size(); ++id) {
      if (slab_[id].key != nullptr && !fn(id)) return id + 1;
    }
    return id;
  }
  uint32_t end_id() const { return static_cast<uint32_t>(slab_.size()); }

  void Clear() {
    for (Entry& e : slab_) delete[] e.key;
    slab_.clear();
    slots_.assign(16, kNone);
    free_head_ = kNone;
    live_ = 0;
  }

 private:
  struct Entry {
    char* key = nullptr;  // nullptr: free
    uint32_t hash = 0;    // of the key; for a free entry, the next free id
    uint32_t len = 0;
    V value{};
  };

  size_t mask() const { return slots_.size() - 1; }
  static uint32_t Hash(std::string_view key) {
    uint64_t h = std::hash<std::string_view>{}(key);
    return static_cast<uint32_t>(h ^ (h >> 32));
  }
  void Place(uint32_t id) {
    size_t i = slab_[id].hash & mask();
    while (slots_[i] != kNone) i = (i + 1) & mask();
    slots_[i] = id;
  }
  void Grow() {
    slots_.assign(slots_.size() * 2, kNone);
    for (uint32_t id = 0; id < slab_.size(); ++id) {
      if (slab_[id].key != nullptr) Place(id);
    }
  }

  std::vector<Entry> slab_;
  std::vector<uint32_t> slots_;  // ids; kNone = empty; size is a power of two
  uint32_t free_head_ = kNone;
  size_t live_ = 0;
};

}  // namespace kvcached
