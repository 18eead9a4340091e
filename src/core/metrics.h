// MetricsRegistry: counters, gauges and histograms rendered in the
// Prometheus text exposition format (version 0.0.4). Series are created
// once (under the registry's mutex) and then updated lock-free through the
// returned references, which stay valid for the registry's lifetime.
// Render() may run concurrently with updates from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace kvcached {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) { value_.fetch_add(d, std::memory_order_relaxed); }
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Fixed upper bounds in seconds; observations in microseconds internally so
// the sum stays an integer.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds_seconds);
  void ObserveSeconds(double seconds);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative count per bound (plus +Inf last), sum in seconds, count.
  void Snapshot(std::vector<uint64_t>& cumulative, double& sum_seconds, uint64_t& count) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<uint64_t> sum_us_{0};
  std::atomic<uint64_t> count_{0};
};

// Request-latency buckets from 100 us to 10 s.
std::vector<double> LatencyBucketsSeconds();

class MetricsRegistry {
 public:
  Counter& GetCounter(const std::string& name, const std::string& help,
                      const MetricLabels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help,
                  const MetricLabels& labels = {});
  // A gauge whose value is read at render time (e.g. a map's size). The
  // callback must be thread-safe and outlive the registry's use.
  void AddGaugeCallback(const std::string& name, const std::string& help,
                        const MetricLabels& labels, std::function<double()> read);
  // The same for a counter whose total is kept elsewhere (a component's own
  // statistics): `read` must never go down.
  void AddCounterCallback(const std::string& name, const std::string& help,
                          const MetricLabels& labels, std::function<double()> read);
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& bounds_seconds,
                          const MetricLabels& labels = {});

  // Appends whole families at render time, for series whose label sets
  // change (one per mounted segment). The callback writes complete
  // "# HELP/# TYPE" blocks; it must be thread-safe.
  void AddCollector(std::function<void(std::string& out)> collect);

  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::function<double()> callback;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, Series> series;  // rendered label set -> series
  };
  Family& FamilyFor(const std::string& name, const std::string& help, Type type);
  void AddCallback(const std::string& name, const std::string& help, Type type,
                   const MetricLabels& labels, std::function<double()> read);

  mutable std::mutex mu_;  // guards families_ (structure only; values are atomic)
  std::map<std::string, Family> families_;
  std::vector<std::function<void(std::string&)>> collectors_;
};

// {a="x",b="y"} with Prometheus escaping; "" for no labels.
std::string RenderLabels(const MetricLabels& labels);

}  // namespace kvcached
