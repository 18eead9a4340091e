#include "core/metrics.h"

#include <doctest/doctest.h>

namespace kvcached {
namespace {

TEST_CASE("counters, gauges and callbacks render in Prometheus text format") {
  MetricsRegistry m;
  m.GetCounter("kvcached_x_total", "X things", {{"op", "get"}}).Inc(3);
  m.GetCounter("kvcached_x_total", "X things", {{"op", "get"}}).Inc();
  m.GetGauge("kvcached_y_bytes", "Y").Set(42);
  m.AddGaugeCallback("kvcached_z", "Z", {}, [] { return 7.0; });
  uint64_t total = 5;
  m.AddCounterCallback("kvcached_w_total", "W", {{"k", "v"}},
                       [&total] { return static_cast<double>(total); });
  total = 9;
  std::string text = m.Render();
  CHECK(text.find("# HELP kvcached_x_total X things\n# TYPE kvcached_x_total counter\n") !=
        std::string::npos);
  CHECK(text.find("kvcached_x_total{op=\"get\"} 4\n") != std::string::npos);
  CHECK(text.find("kvcached_y_bytes 42\n") != std::string::npos);
  CHECK(text.find("kvcached_z 7\n") != std::string::npos);
  // Read at render time, typed as a counter.
  CHECK(text.find("# TYPE kvcached_w_total counter\nkvcached_w_total{k=\"v\"} 9\n") !=
        std::string::npos);
}

TEST_CASE("histograms are cumulative with +Inf, _sum and _count") {
  MetricsRegistry m;
  Histogram& h = m.GetHistogram("kvcached_lat_seconds", "L", {0.001, 0.01}, {{"s", "a"}});
  h.ObserveSeconds(0.0005);
  h.ObserveSeconds(0.005);
  h.ObserveSeconds(5);
  std::string text = m.Render();
  CHECK(text.find("kvcached_lat_seconds_bucket{s=\"a\",le=\"0.001\"} 1\n") != std::string::npos);
  CHECK(text.find("kvcached_lat_seconds_bucket{s=\"a\",le=\"0.01\"} 2\n") != std::string::npos);
  CHECK(text.find("kvcached_lat_seconds_bucket{s=\"a\",le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(text.find("kvcached_lat_seconds_count{s=\"a\"} 3\n") != std::string::npos);
  CHECK(text.find("kvcached_lat_seconds_sum{s=\"a\"} 5.0055") != std::string::npos);
}

TEST_CASE("label values are escaped") {
  CHECK(RenderLabels({{"k", "a\"b\\c\nd"}}) == "{k=\"a\\\"b\\\\c\\nd\"}");
  CHECK(RenderLabels({}).empty());
}

}  // namespace
}  // namespace kvcached
