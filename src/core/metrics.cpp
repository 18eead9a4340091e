#include "core/metrics.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace kvcached {
namespace {

std::string FormatDouble(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.12g", v);
  return buf;
}

std::string WithLabel(const std::string& rendered, const std::string& extra) {
  if (rendered.empty()) return "{" + extra + "}";
  return rendered.substr(0, rendered.size() - 1) + "," + extra + "}";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds_seconds)
    : bounds_(std::move(bounds_seconds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::ObserveSeconds(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::Snapshot(std::vector<uint64_t>& cumulative, double& sum_seconds,
                         uint64_t& count) const {
  cumulative.assign(bounds_.size() + 1, 0);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    cumulative[i] = running;
  }
  sum_seconds = static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6;
  count = running;
}

std::vector<double> LatencyBucketsSeconds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

std::string RenderLabels(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ",";
    out += labels[i].first + "=\"";
    for (char c : labels[i].second) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c == '"') {
        out += "\\\"";
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    out += "\"";
  }
  return out + "}";
}

MetricsRegistry::Family& MetricsRegistry::FamilyFor(const std::string& name,
                                                    const std::string& help, Type type) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.type = type;
    it->second.help = help;
  } else if (it->second.type != type) {
    throw std::logic_error("metric " + name + " registered with two types");
  }
  return it->second;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help,
                                     const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = FamilyFor(name, help, Type::kCounter).series[RenderLabels(labels)];
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return *s.counter;
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help,
                                 const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = FamilyFor(name, help, Type::kGauge).series[RenderLabels(labels)];
  if (!s.gauge && !s.callback) s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

void MetricsRegistry::AddCallback(const std::string& name, const std::string& help, Type type,
                                  const MetricLabels& labels, std::function<double()> read) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = FamilyFor(name, help, type).series[RenderLabels(labels)];
  s.counter.reset();
  s.gauge.reset();
  s.callback = std::move(read);
}

void MetricsRegistry::AddGaugeCallback(const std::string& name, const std::string& help,
                                       const MetricLabels& labels, std::function<double()> read) {
  AddCallback(name, help, Type::kGauge, labels, std::move(read));
}

void MetricsRegistry::AddCounterCallback(const std::string& name, const std::string& help,
                                         const MetricLabels& labels, std::function<double()> read) {
  AddCallback(name, help, Type::kCounter, labels, std::move(read));
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const std::vector<double>& bounds_seconds,
                                         const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = FamilyFor(name, help, Type::kHistogram).series[RenderLabels(labels)];
  if (!s.histogram) s.histogram = std::make_unique<Histogram>(bounds_seconds);
  return *s.histogram;
}

void MetricsRegistry::AddCollector(std::function<void(std::string& out)> collect) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(collect));
}

std::string MetricsRegistry::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out.reserve(4096);
  for (const auto& [name, family] : families_) {
    out += "# HELP " + name + " " + family.help + "\n";
    out += "# TYPE " + name + " " +
           (family.type == Type::kCounter ? "counter"
            : family.type == Type::kGauge ? "gauge"
                                          : "histogram") +
           "\n";
    for (const auto& [labels, s] : family.series) {
      if (s.counter) {
        out += name + labels + " " + std::to_string(s.counter->Value()) + "\n";
      } else if (s.gauge) {
        out += name + labels + " " + std::to_string(s.gauge->Value()) + "\n";
      } else if (s.callback) {
        out += name + labels + " " + FormatDouble(s.callback()) + "\n";
      } else if (s.histogram) {
        std::vector<uint64_t> cumulative;
        double sum = 0;
        uint64_t count = 0;
        s.histogram->Snapshot(cumulative, sum, count);
        const std::vector<double>& bounds = s.histogram->bounds();
        for (size_t i = 0; i <= bounds.size(); ++i) {
          std::string le = i < bounds.size() ? FormatDouble(bounds[i]) : "+Inf";
          out += name + "_bucket" + WithLabel(labels, "le=\"" + le + "\"") + " " +
                 std::to_string(cumulative[i]) + "\n";
        }
        out += name + "_sum" + labels + " " + FormatDouble(sum) + "\n";
        out += name + "_count" + labels + " " + std::to_string(count) + "\n";
      }
    }
  }
  for (const auto& collect : collectors_) collect(out);
  return out;
}

}  // namespace kvcached
