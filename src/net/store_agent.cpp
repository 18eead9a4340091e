#include "net/store_agent.h"

#include <spdlog/spdlog.h>

namespace kvcached {

namespace {

RpcClientOptions WithUpdates(RpcClientOptions o, StoreAgent* agent,
                             void (StoreAgent::*apply)(const TableUpdate&)) {
  o.on_table_update = [agent, apply](const TableUpdate& u) { (agent->*apply)(u); };
  return o;
}

}  // namespace

StoreAgent::StoreAgent(StoreAgentOptions options)
    : options_(std::move(options)), client_(WithUpdates(options_.rpc, this, &StoreAgent::Apply)) {}

StoreAgent::~StoreAgent() { (void)Stop(); }

Status StoreAgent::Start() {
  if (Status st = client_.Connect(); !st.ok()) return st;
  StatusResponse r;
  if (Status st = client_.Call(MsgType::kMountSegment, MountRequest{options_.segment}, r);
      !st.ok()) {
    return st;
  }
  if (r.code != 0) {
    return Status(ErrorCodeFromInt(r.code).value_or(ErrorCode::INTERNAL_ERROR), r.message);
  }
  reachable_ = true;
  spdlog::info("segment '{}' ({} bytes) mounted at master {} (master id {})", options_.segment.name,
               options_.segment.size, options_.rpc.address, client_.hello().master_id);
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

Status StoreAgent::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stopping_ || !started_) return Status::Ok();
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  StatusResponse r;
  Status st = client_.Call(MsgType::kUnmountSegment, UnmountRequest{options_.segment.name}, r);
  if (st.ok() && r.code != 0) {
    st = Status(ErrorCodeFromInt(r.code).value_or(ErrorCode::INTERNAL_ERROR), r.message);
  }
  if (st.ok()) {
    spdlog::info("segment '{}' unmounted; the master dropped its {} object(s)",
                 options_.segment.name, objects());
  } else {
    spdlog::warn("unmount of segment '{}' failed: {} (the master drops it after --client-ttl)",
                 options_.segment.name, st.ToString());
  }
  client_.Close();
  return st;
}

void StoreAgent::Apply(const TableUpdate& update) {
  if (update.segment != options_.segment.name) return;
  std::lock_guard<std::mutex> lock(table_mu_);
  for (const TableChange& c : update.changes) {
    auto it = table_.find(c.entry.key);
    if (it != table_.end()) {
      table_bytes_ -= it->second.size;
      table_.erase(it);
    }
    if (c.op == static_cast<uint8_t>(TableOp::kAdd)) {
      table_[c.entry.key] = c.entry;
      table_bytes_ += c.entry.size;
    }
  }
}

Status StoreAgent::Remount() {
  std::vector<ObjectEntry> table = Table();
  StatusResponse r;
  Status st = client_.Call(MsgType::kRemountSegment, RemountRequest{options_.segment, table}, r);
  if (st.ok() && r.code != 0) {
    st = Status(ErrorCodeFromInt(r.code).value_or(ErrorCode::INTERNAL_ERROR), r.message);
  }
  if (st.ok()) {
    remounts_++;
    spdlog::info("segment '{}' remounted at master {} with {} object(s) (master id {})",
                 options_.segment.name, options_.rpc.address, table.size(),
                 client_.hello().master_id);
  } else {
    spdlog::warn("remount of segment '{}' failed: {}; retrying at the next ping",
                 options_.segment.name, st.ToString());
  }
  return st;
}

void StoreAgent::Run() {
  auto next_ping = std::chrono::steady_clock::now();
  while (true) {
    {
      std::unique_lock<std::mutex> lock(stop_mu_);
      if (stopping_) return;
    }
    if (std::chrono::steady_clock::now() >= next_ping) {
      next_ping = std::chrono::steady_clock::now() + options_.ping_interval;
      PingResponse pong;
      Status st = client_.Call(MsgType::kPing, PingRequest{1}, pong);
      if (!st.ok()) {
        if (reachable_.exchange(false)) {
          spdlog::warn("master {} unreachable: {}; retrying every {} ms", options_.rpc.address,
                       st.ToString(), options_.ping_interval.count());
        }
        std::unique_lock<std::mutex> lock(stop_mu_);
        stop_cv_.wait_until(lock, next_ping, [this] { return stopping_; });
        continue;
      }
      if (!reachable_.exchange(true)) {
        spdlog::info("master {} reachable again", options_.rpc.address);
      }
      if (pong.remount_needed) (void)Remount();
    }
    // Between pings, listen for table updates in short slices so Stop() is prompt.
    auto wait = std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(100), std::chrono::duration_cast<std::chrono::milliseconds>(
                                            next_ping - std::chrono::steady_clock::now()));
    if (wait.count() > 0 && !client_.PollNotifications(wait).ok()) {
      // The connection dropped; the next ping reconnects.
      std::unique_lock<std::mutex> lock(stop_mu_);
      stop_cv_.wait_until(lock, next_ping, [this] { return stopping_; });
    }
  }
}

size_t StoreAgent::objects() const {
  std::lock_guard<std::mutex> lock(table_mu_);
  return table_.size();
}

uint64_t StoreAgent::table_bytes() const {
  std::lock_guard<std::mutex> lock(table_mu_);
  return table_bytes_;
}

std::vector<ObjectEntry> StoreAgent::Table() const {
  std::lock_guard<std::mutex> lock(table_mu_);
  std::vector<ObjectEntry> out;
  out.reserve(table_.size());
  for (const auto& [key, e] : table_) out.push_back(e);
  return out;
}

}  // namespace kvcached
