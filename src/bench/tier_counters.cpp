#include "bench/tier_counters.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <utility>
#include <vector>

#include "net/http_call.h"

namespace kvcached {
namespace {

// Calls `f(name, value)` for every sample line without labels.
template <typename F>
void ForEachSample(std::string_view text, F f) {
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.find(' ');
    if (space == std::string_view::npos ||
        line.substr(0, space).find('{') != std::string_view::npos)
      continue;
    std::string value(line.substr(space + 1));
    char* end = nullptr;
    double v = std::strtod(value.c_str(), &end);
    if (end == value.c_str() || !std::isfinite(v) || v < 0) continue;
    f(line.substr(0, space), v);
  }
}

uint64_t Whole(double v) { return static_cast<uint64_t>(std::llround(v)); }

uint64_t Minus(uint64_t later, uint64_t earlier) { return later >= earlier ? later - earlier : 0; }

}  // namespace

TierCounters TierCounters::operator-(const TierCounters& e) const {
  TierCounters d;
  d.master_known = master_known && e.master_known;
  if (d.master_known) {
    d.demotions = Minus(demotions, e.demotions);
    d.demoted = Minus(demoted, e.demoted);
    d.demote_failures = Minus(demote_failures, e.demote_failures);
    d.clean_drops = Minus(clean_drops, e.clean_drops);
    d.promotions = Minus(promotions, e.promotions);
    d.promoted = Minus(promoted, e.promoted);
    d.promote_failures = Minus(promote_failures, e.promote_failures);
    d.promote_no_room = Minus(promote_no_room, e.promote_no_room);
    d.disk_dropped = Minus(disk_dropped, e.disk_dropped);
    d.tier_waits = Minus(tier_waits, e.tier_waits);
    d.tier_wait_ns = Minus(tier_wait_ns, e.tier_wait_ns);
  }
  d.disk_known = disk_known && e.disk_known;
  if (d.disk_known) {
    d.disk_reads = Minus(disk_reads, e.disk_reads);
    d.disk_read_bytes = Minus(disk_read_bytes, e.disk_read_bytes);
    d.disk_read_ns = Minus(disk_read_ns, e.disk_read_ns);
    d.disk_writes = Minus(disk_writes, e.disk_writes);
    d.disk_write_bytes = Minus(disk_write_bytes, e.disk_write_bytes);
    d.disk_write_ns = Minus(disk_write_ns, e.disk_write_ns);
    d.disk_evictions = Minus(disk_evictions, e.disk_evictions);
    d.disk_corrupt = Minus(disk_corrupt, e.disk_corrupt);
    d.disk_read_errors = Minus(disk_read_errors, e.disk_read_errors);
    d.disk_write_errors = Minus(disk_write_errors, e.disk_write_errors);
  }
  d.problem = !e.problem.empty() ? e.problem : problem;
  return d;
}

void ReadMasterMetrics(std::string_view text, TierCounters& c) {
  const std::pair<std::string_view, uint64_t TierCounters::*> fields[] = {
      {"kvcached_master_demotions_total", &TierCounters::demotions},
      {"kvcached_master_demoted_total", &TierCounters::demoted},
      {"kvcached_master_demote_failures_total", &TierCounters::demote_failures},
      {"kvcached_master_clean_drops_total", &TierCounters::clean_drops},
      {"kvcached_master_promotions_total", &TierCounters::promotions},
      {"kvcached_master_promoted_total", &TierCounters::promoted},
      {"kvcached_master_promote_failures_total", &TierCounters::promote_failures},
      {"kvcached_master_promote_no_room_total", &TierCounters::promote_no_room},
      {"kvcached_master_disk_dropped_total", &TierCounters::disk_dropped},
  };
  bool found = false;
  ForEachSample(text, [&](std::string_view name, double v) {
    if (name == "kvcached_master_tier_wait_seconds_count") c.tier_waits = Whole(v);
    if (name == "kvcached_master_tier_wait_seconds_sum") c.tier_wait_ns = Whole(v * 1e9);
    for (const auto& [n, field] : fields) {
      if (name != n) continue;
      c.*field = Whole(v);
      if (n == "kvcached_master_promoted_total") found = true;
    }
  });
  c.master_known = found;
  if (!found && c.problem.empty()) {
    c.problem = "the master exports no disk tier counters (kvcached_master_promoted_total)";
  }
}

void AddStoreMetrics(std::string_view text, TierCounters& c) {
  const std::pair<std::string_view, uint64_t TierCounters::*> counts[] = {
      {"kvcached_store_disk_reads_total", &TierCounters::disk_reads},
      {"kvcached_store_disk_read_bytes_total", &TierCounters::disk_read_bytes},
      {"kvcached_store_disk_writes_total", &TierCounters::disk_writes},
      {"kvcached_store_disk_write_bytes_total", &TierCounters::disk_write_bytes},
      {"kvcached_store_disk_evictions_total", &TierCounters::disk_evictions},
      {"kvcached_store_disk_corrupt_total", &TierCounters::disk_corrupt},
      {"kvcached_store_disk_read_errors_total", &TierCounters::disk_read_errors},
      {"kvcached_store_disk_write_errors_total", &TierCounters::disk_write_errors},
  };
  bool found = false;
  ForEachSample(text, [&](std::string_view name, double v) {
    if (name == "kvcached_store_disk_read_seconds_total") c.disk_read_ns += Whole(v * 1e9);
    if (name == "kvcached_store_disk_write_seconds_total") c.disk_write_ns += Whole(v * 1e9);
    for (const auto& [n, field] : counts) {
      if (name != n) continue;
      c.*field += Whole(v);
      if (n == "kvcached_store_disk_read_bytes_total") found = true;
    }
  });
  if (found) {
    c.disk_known = true;
  } else if (c.problem.empty()) {
    c.problem = "a store exports no disk tier counters (kvcached_store_disk_read_bytes_total)";
  }
}

void AddDiskTierStats(const DiskTierStats& s, TierCounters& c) {
  c.disk_known = true;
  c.disk_reads += s.reads;
  c.disk_read_bytes += s.read_bytes;
  c.disk_read_ns += s.read_ns;
  c.disk_writes += s.writes;
  c.disk_write_bytes += s.write_bytes;
  c.disk_write_ns += s.write_ns;
  c.disk_evictions += s.evictions;
  c.disk_corrupt += s.corrupt;
  c.disk_read_errors += s.read_errors;
  c.disk_write_errors += s.write_errors;
}

Result<std::string> ScrapeMetrics(const std::string& host_port, const std::string& token) {
  HttpCallRequest req;
  size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon + 1 == host_port.size()) {
    return Status(ErrorCode::INVALID_PARAMS, "'" + host_port + "' is not host:port");
  }
  req.host = host_port.substr(0, colon);
  if (req.host.size() >= 2 && req.host.front() == '[' && req.host.back() == ']') {
    req.host = req.host.substr(1, req.host.size() - 2);
  }
  req.port = host_port.substr(colon + 1);
  req.host_header = host_port;
  req.method = "GET";
  req.target = "/metrics";
  if (!token.empty()) req.authorization = "Bearer " + token;
  req.timeout = std::chrono::milliseconds(5000);
  req.deadline = std::chrono::steady_clock::now() + req.timeout;
  req.max_response_body_bytes = 16 << 20;
  req.peer = "admin http://" + host_port;
  req.what = "GET /metrics";
  Result<HttpAnswer> answer = HttpCall(req);
  if (!answer.ok()) return answer.status();
  if (answer->status != 200) {
    return Status(ErrorCode::RPC_FAIL, "GET http://" + host_port + "/metrics answered " +
                                           std::to_string(answer->status) + " " + answer->reason);
  }
  return std::move(answer->body);
}

}  // namespace kvcached
