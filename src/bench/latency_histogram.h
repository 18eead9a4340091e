// LatencyHistogram: a fixed-size log-linear histogram of durations in
// nanoseconds (32 sub-buckets per power of two: any quantile is reported
// within about 3% of the true value), plus exact count, sum and maximum.
// Recording is a few instructions and never allocates. Not thread-safe:
// each thread records into its own and the results are merged.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace kvcached {

class LatencyHistogram {
 public:
  void Record(uint64_t ns) {
    ++buckets_[Index(ns)];
    ++count_;
    sum_ns_ += ns;
    max_ns_ = std::max(max_ns_, ns);
  }

  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    sum_ns_ += other.sum_ns_;
    max_ns_ = std::max(max_ns_, other.max_ns_);
  }

  // The value below which a share `q` (0..1) of the recorded durations lie:
  // the upper edge of the bucket holding that rank, never above the maximum.
  // 0 when nothing was recorded.
  uint64_t Quantile(double q) const {
    if (count_ == 0) return 0;
    q = std::clamp(q, 0.0, 1.0);
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) return std::min(UpperEdge(i), max_ns_);
    }
    return max_ns_;
  }

  uint64_t count() const { return count_; }
  uint64_t max_ns() const { return max_ns_; }
  double mean_ns() const {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_ns_) / static_cast<double>(count_);
  }

 private:
  static constexpr unsigned kSubBits = 5;  // 32 sub-buckets per power of two
  static constexpr size_t kSub = size_t{1} << kSubBits;
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSub;

  // Values below 2^kSubBits get a bucket each; above, the bucket is the
  // power of two and the next kSubBits bits below the leading one.
  static size_t Index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(v));
    unsigned shift = msb - kSubBits;
    size_t sub = static_cast<size_t>((v >> shift) & (kSub - 1));
    return (shift + 1) * kSub + sub;
  }
  static uint64_t UpperEdge(size_t index) {
    if (index < kSub) return index;
    size_t shift = index / kSub - 1;
    uint64_t sub = index % kSub;
    uint64_t low = (kSub + sub) << shift;
    return low + ((uint64_t{1} << shift) - 1);
  }
  static_assert(kBuckets > 0 && (64 - kSubBits) * kSub + kSub - 1 < kBuckets);

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_ns_ = 0;
  uint64_t max_ns_ = 0;
};

}  // namespace kvcached
