#include "rdma/memory_registry.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace kvcached {
namespace {

constexpr uint64_t kProgressBytes = 1ull << 30;  // log progress for ranges at least this big
constexpr unsigned kMaxRegisterThreads = 8;

std::string Hex(const void* p) { return fmt::format("{}", p); }

}  // namespace

std::string MemlockLimitText() {
  rlimit limit{};
  if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return "unknown";
  if (limit.rlim_cur == RLIM_INFINITY) return "unlimited";
  return std::to_string(limit.rlim_cur) + " bytes";
}

uint64_t RegistrationChunkBytes(const std::vector<VerbsDevice*>& devices,
                                uint64_t max_chunk_bytes) {
  constexpr uint64_t kPage = 4096;
  uint64_t chunk = max_chunk_bytes == 0 ? (1ull << 30) : max_chunk_bytes;
  for (const VerbsDevice* dev : devices) {
    if (dev->max_mr_size() > 0) chunk = std::min(chunk, dev->max_mr_size());
  }
  if (chunk >= kPage) chunk -= chunk % kPage;
  return std::max<uint64_t>(chunk, 1);
}

bool RegisteredRegion::Covers(const void* addr, uint64_t length) const {
  auto* p = static_cast<const uint8_t*>(addr);
  return p >= base_ && static_cast<uint64_t>(p - base_) <= length_ &&
         length <= length_ - static_cast<uint64_t>(p - base_);
}

Result<std::shared_ptr<RegisteredRegion>> RegisteredRegion::Register(
    const std::vector<VerbsDevice*>& devices, uint8_t* base, uint64_t length, uint64_t chunk_bytes,
    int access, const std::string& what) {
  using Out = Result<std::shared_ptr<RegisteredRegion>>;
  if (devices.empty() || base == nullptr || length == 0 || chunk_bytes == 0) {
    return Out(ErrorCode::INVALID_PARAMS, "cannot register " + what + ": empty range or no NIC");
  }
  std::shared_ptr<RegisteredRegion> region(new RegisteredRegion());
  region->base_ = base;
  region->length_ = length;
  region->chunk_bytes_ = chunk_bytes;
  const size_t chunks = static_cast<size_t>((length + chunk_bytes - 1) / chunk_bytes);
  region->mrs_.resize(chunks);
  for (auto& row : region->mrs_) row.resize(devices.size());

  const bool large = length >= kProgressBytes;
  const auto start = std::chrono::steady_clock::now();
  if (large) {
    spdlog::info("registering {} ({} bytes at {}) on {} NIC(s) in {} chunk(s) of {} bytes", what,
                 length, Hex(base), devices.size(), chunks, chunk_bytes);
  }
  std::atomic<size_t> next{0};
  std::atomic<size_t> done{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  std::string error;  // error_mu
  auto worker = [&] {
    for (;;) {
      size_t chunk = next.fetch_add(1);
      if (chunk >= chunks || failed.load()) return;
      uint8_t* addr = base + chunk * chunk_bytes;
      uint64_t len = std::min<uint64_t>(chunk_bytes, length - chunk * chunk_bytes);
      for (size_t nic = 0; nic < devices.size(); ++nic) {
        const VerbsApi& verbs = devices[nic]->verbs();
        errno = 0;
        ibv_mr* mr = verbs.reg_mr(devices[nic]->pd(), addr, len, access);
        if (mr == nullptr) {
          int err = errno;
          std::string msg = fmt::format("ibv_reg_mr refused {} chunk {} ({} bytes at {}) on {}: {}",
                                        what, chunk, len, Hex(addr), devices[nic]->name(),
                                        err != 0 ? std::strerror(err) : "unknown error");
          if (err == ENOMEM || err == EPERM || err == 0) {
            msg += "; RLIMIT_MEMLOCK is " + MemlockLimitText() +
                   " (raise it: ulimit -l unlimited, or LimitMEMLOCK=infinity in the unit)";
          }
          std::lock_guard<std::mutex> lock(error_mu);
          if (!failed.exchange(true)) error = std::move(msg);
          return;
        }
        region->mrs_[chunk][nic] = MrPtr(mr, VerbsDeleter<ibv_mr>{&verbs});
      }
      size_t finished = done.fetch_add(1) + 1;
      // Roughly every tenth of the way.
      if (large && chunks >= 10 && finished % (chunks / 10) == 0 && finished < chunks) {
        spdlog::info("registering {}: {}/{} chunks", what, finished, chunks);
      }
    }
  };
  unsigned threads =
      std::max(1u, std::min<unsigned>(kMaxRegisterThreads, std::thread::hardware_concurrency()));
  threads = static_cast<unsigned>(std::min<size_t>(threads, chunks));
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (unsigned i = 0; i < threads; ++i) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
  }
  if (failed.load()) return Out(ErrorCode::TRANSFER_FAIL, error);  // region's MRs go with it
  if (large) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    spdlog::info("registered {}: {} bytes in {} ms", what, length, ms);
  }
  return region;
}

void MemoryRegistry::Add(std::shared_ptr<RegisteredRegion> region) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint8_t* base = region->base();
  regions_.emplace(base, std::move(region));
}

std::shared_ptr<RegisteredRegion> MemoryRegistry::Exact(const void* base, uint64_t length) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto [first, last] = regions_.equal_range(static_cast<const uint8_t*>(base));
  for (auto it = first; it != last; ++it) {
    if (it->second->length() == length) return it->second;
  }
  return nullptr;
}

std::shared_ptr<RegisteredRegion> MemoryRegistry::Find(const void* addr, uint64_t length) const {
  std::lock_guard<std::mutex> lock(mu_);
  // Regions are few (a store's segment, a client's buffers): a scan of those
  // starting at or below addr is cheap and handles overlapping ones.
  auto it = regions_.upper_bound(static_cast<const uint8_t*>(addr));
  while (it != regions_.begin()) {
    --it;
    if (it->second->Covers(addr, length)) return it->second;
  }
  return nullptr;
}

bool MemoryRegistry::Remove(const void* base) {
  std::lock_guard<std::mutex> lock(mu_);
  return regions_.erase(static_cast<const uint8_t*>(base)) > 0;
}

void MemoryRegistry::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  regions_.clear();
}

}  // namespace kvcached
