// MemoryRegistry: the memory the RDMA transport may move bytes from or into,
// registered on every NIC in chunks (each below the devices' max_mr_size),
// with the keys looked up by address range. A RegisteredRegion is one such
// range; it owns its MRs ([chunk][nic]) and is immutable once made, so a
// transfer holds a shared_ptr to it while it uses the keys. MemoryRegistry is
// thread-safe (its mutex guards the map); RegisteredRegion needs no lock.
// The devices must outlive every region registered on them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "rdma/verbs_api.h"
#include "rdma/verbs_device.h"

namespace kvcached {

class RegisteredRegion {
 public:
  // Registers [base, base + length) on every device, chunk_bytes at a time,
  // on up to `threads` threads; logs progress at info for large ranges.
  // TRANSFER_FAIL names the refused chunk and device, and RLIMIT_MEMLOCK
  // (its current value) when the refusal is ENOMEM or EPERM. On failure
  // nothing stays registered.
  static Result<std::shared_ptr<RegisteredRegion>> Register(
      const std::vector<VerbsDevice*>& devices, uint8_t* base, uint64_t length,
      uint64_t chunk_bytes, int access, const std::string& what);

  uint8_t* base() const { return base_; }
  uint64_t length() const { return length_; }
  uint64_t chunk_bytes() const { return chunk_bytes_; }
  size_t chunks() const { return mrs_.size(); }
  bool Covers(const void* addr, uint64_t length) const;
  size_t ChunkOf(const void* addr) const {
    return static_cast<size_t>((static_cast<const uint8_t*>(addr) - base_) / chunk_bytes_);
  }
  uint32_t lkey(size_t chunk, size_t nic) const { return mrs_[chunk][nic]->lkey; }
  uint32_t rkey(size_t chunk, size_t nic) const { return mrs_[chunk][nic]->rkey; }

 private:
  RegisteredRegion() = default;
  uint8_t* base_ = nullptr;
  uint64_t length_ = 0;
  uint64_t chunk_bytes_ = 0;
  std::vector<std::vector<MrPtr>> mrs_;  // [chunk][nic]
};

class MemoryRegistry {
 public:
  // Adds a region; one with the same base replaces nothing (the caller
  // checks Exact first when it wants idempotence).
  void Add(std::shared_ptr<RegisteredRegion> region);
  // The region registered with exactly this base and length, if any.
  std::shared_ptr<RegisteredRegion> Exact(const void* base, uint64_t length) const;
  // A region covering all of [addr, addr + length), if any.
  std::shared_ptr<RegisteredRegion> Find(const void* addr, uint64_t length) const;
  // Drops the region(s) starting at `base`; false when there is none. The
  // MRs go when the last transfer using them lets go.
  bool Remove(const void* base);
  void Clear();

 private:
  mutable std::mutex mu_;
  std::multimap<const uint8_t*, std::shared_ptr<RegisteredRegion>> regions_;  // by base; mu_
};

// Chunk size for registrations on `devices`: at most max_chunk_bytes (0:
// 1 GiB) and at most every device's max_mr_size, page-aligned when it can be.
uint64_t RegistrationChunkBytes(const std::vector<VerbsDevice*>& devices, uint64_t max_chunk_bytes);

// "8 MiB" / "unlimited": the current RLIMIT_MEMLOCK, for error messages.
std::string MemlockLimitText();

}  // namespace kvcached
