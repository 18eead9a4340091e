#include "store/store_agent.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/identity.h"
#include "core/printable.h"
#include "store/disk_tier.h"

namespace kvcached {

namespace {

constexpr std::chrono::seconds kLeaderWaitAtStart{15};

RpcClientOptions WithUpdates(RpcClientOptions o, StoreAgent* agent,
                             void (StoreAgent::*apply)(const TableUpdate&)) {
  o.on_table_update = [agent, apply](const TableUpdate& u) { (agent->*apply)(u); };
  o.ack_table_updates = true;
  // The segment's owner proof: only this process can remount, unmount or
  // ping for the segment, whoever learns its client id.
  if (o.hello.owner_proof.empty()) o.hello.owner_proof = RandomId("", 32);
  // The ping loop is the retry: one connect attempt per ping keeps the gap
  // between pings a measure of how long this process was stopped.
  o.connect_attempts = 1;
  return o;
}

}  // namespace

StoreAgent::StoreAgent(StoreAgentOptions options)
    : options_(std::move(options)),
      client_(WithUpdates(options_.rpc, this, &StoreAgent::Apply)),
      segment_(options_.segment) {
  segment_.flags |= kSegmentFreshMemory;
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  for (const ObjectEntry& e : options_.disk_records) {
    table_[e.key] = e;
    table_bytes_ += e.size;
  }
}

StoreAgent::~StoreAgent() {
  (void)Stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status StoreAgent::Start() {
  Status connected = client_.Connect();
  // Following a leader in etcd, a store started during an election (or
  // with every master down for a moment) waits for one, for a while.
  const auto until = std::chrono::steady_clock::now() + kLeaderWaitAtStart;
  bool told = false;
  while (!connected.ok() && options_.rpc.resolve_address &&
         (connected.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS ||
          connected.code() == ErrorCode::RPC_FAIL) &&
         std::chrono::steady_clock::now() < until) {
    if (!told) {
      spdlog::info("waiting up to {} s for a master to lead: {}", kLeaderWaitAtStart.count(),
                   connected.message());
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    connected = client_.Connect();
  }
  if (!connected.ok()) return connected;
  if (!table_.empty()) {
    // Records the disk tier kept across a restart: the master takes back
    // those it has no newer record of (and says which to drop).
    uint64_t arrived = 0;
    if (Status st = SendTable(arrived); !st.ok()) return st;
  } else {
    StatusResponse r;
    if (Status st = client_.Call(MsgType::kMountSegment, MountRequest{segment_}, r); !st.ok()) {
      return st;
    }
    if (r.code != 0) {
      return Status(ErrorCodeFromInt(r.code).value_or(ErrorCode::INTERNAL_ERROR), r.message);
    }
  }
  segment_.flags &= static_cast<uint8_t>(~kSegmentFreshMemory);  // readers may map it from now on
  reachable_ = true;
  synced_connection_ = client_.connections();
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
  updates_applied_++;
  std::vector<const TableChange*> tier_ops;  // run once the table lock is given back
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    for (const TableChange& c : update.changes) {
      if (c.op == 0 || c.op > kMaxTableOp) continue;  // not a table operation
      if (c.op == static_cast<uint8_t>(TableOp::kDemote) ||
          c.op == static_cast<uint8_t>(TableOp::kPromote)) {
        tier_ops.push_back(&c);
        continue;
      }
      auto it = table_.find(c.entry.key);
      bool add = c.op == static_cast<uint8_t>(TableOp::kAdd);
      // A removal names the record it drops; a newer record of the key stays.
      if (it != table_.end() && (add || it->second.version <= c.entry.version)) {
        table_bytes_ -= it->second.size;
        table_.erase(it);
      }
      if (add) {
        table_[c.entry.key] = c.entry;
        table_bytes_ += c.entry.size;
      } else {
        tier_ops.push_back(&c);  // its disk record goes too
      }
    }
  }
  for (const TableChange* c : tier_ops) {
    switch (static_cast<TableOp>(c->op)) {
      case TableOp::kDemote:
        Demote(c->entry);
        break;
      case TableOp::kPromote:
        Promote(c->entry);
        break;
      default:
        if (options_.tier != nullptr) options_.tier->Drop(c->entry.key, c->entry.version);
        break;
    }
  }
}

namespace {

// Whether [offset, offset + size) lies in a segment of `segment_size` bytes.
bool InSegment(const ObjectEntry& e, uint64_t segment_size) {
  return e.offset != kOnDiskOffset && e.size > 0 && e.offset <= segment_size &&
         e.size <= segment_size - e.offset;
}

}  // namespace

void StoreAgent::Demote(const ObjectEntry& e) {
  DiskTier* tier = options_.tier;
  if (tier == nullptr || options_.memory == nullptr || !InSegment(e, options_.segment.size)) {
    Report(TierEvent::kDemoteFailed, e);
    return;
  }
  if (tier->Contains(e.key, e.version)) {  // written before (a promoted copy): nothing to write
    MoveEntry(e, kOnDiskOffset);
    Report(TierEvent::kDemoted, e);
    return;
  }
  auto copied_ok = std::make_shared<bool>(false);
  tier->Write(
      DiskRecord{e.key, e.version, e.size, e.checksum, e.pin}, options_.memory + e.offset,
      [this, e, copied_ok](Status st) {
        // The bytes are in staging memory: the master may reuse the range.
        if (st.ok()) {
          *copied_ok = true;
          MoveEntry(e, kOnDiskOffset);
          Report(TierEvent::kDemoted, e);
        } else {
          Report(TierEvent::kDemoteFailed, e);
        }
      },
      [this, e, copied_ok](Status st) {
        if (st.ok() || !*copied_ok) return;
        spdlog::warn("segment '{}': demoted object '{}' did not reach the disk tier: {}",
                     options_.segment.name, Printable(e.key), st.ToString());
        ObjectEntry gone = e;
        gone.offset = kOnDiskOffset;
        OnDiskDropped(gone);
      });
}

void StoreAgent::Promote(const ObjectEntry& e) {
  DiskTier* tier = options_.tier;
  if (tier == nullptr || options_.memory == nullptr || !InSegment(e, options_.segment.size)) {
    Report(TierEvent::kPromoteFailed, e);
    return;
  }
  tier->Read(e.key, e.version, options_.memory + e.offset, e.size, [this, e](Status st) {
    if (st.ok()) {
      MoveEntry(e, e.offset);
      Report(TierEvent::kPromoted, e);
      return;
    }
    spdlog::warn("segment '{}': load of object '{}' from the disk tier failed: {}",
                 options_.segment.name, Printable(e.key), st.ToString());
    Report(TierEvent::kPromoteFailed, e);
  });
}

void StoreAgent::OnDiskDropped(const ObjectEntry& e) {
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    auto it = table_.find(e.key);
    if (it != table_.end() && it->second.version == e.version &&
        it->second.offset == kOnDiskOffset) {
      table_bytes_ -= it->second.size;
      table_.erase(it);
    }
  }
  Report(TierEvent::kDiskDropped, e);
}

void StoreAgent::MoveEntry(const ObjectEntry& e, uint64_t offset) {
  std::lock_guard<std::mutex> lock(table_mu_);
  auto it = table_.find(e.key);
  if (it != table_.end() && it->second.version == e.version) it->second.offset = offset;
}

void StoreAgent::Report(TierEvent event, ObjectEntry e) {
  {
    std::lock_guard<std::mutex> lock(reports_mu_);
    reports_.push_back({static_cast<uint8_t>(event), std::move(e)});
  }
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
}

void StoreAgent::SendReports() {
  uint64_t drained = 0;
  if (wake_fd_ >= 0) (void)!::read(wake_fd_, &drained, sizeof drained);
  std::vector<TableChange> pending;
  {
    std::lock_guard<std::mutex> lock(reports_mu_);
    pending.swap(reports_);
  }
  size_t sent = 0;
  while (sent < pending.size()) {
    size_t n = std::min(kMaxTierReportChanges, pending.size() - sent);
    TableUpdate report{
        options_.segment.name,
        std::vector<TableChange>(pending.begin() + static_cast<ptrdiff_t>(sent),
                                 pending.begin() + static_cast<ptrdiff_t>(sent + n))};
    if (!client_.Send(MsgType::kTierReport, report).ok()) break;  // kept for the next connection
    sent += n;
  }
  if (sent == pending.size()) return;
  std::lock_guard<std::mutex> lock(reports_mu_);
  reports_.insert(reports_.begin(), pending.begin() + static_cast<ptrdiff_t>(sent), pending.end());
}

void StoreAgent::Forget(int64_t silent_ms, uint64_t client_ttl_ms) {
  size_t n = 0;
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    // Records on disk stay offered: the master refuses those it removed or
    // replaced since (their tombstones), and takes back the others.
    for (auto it = table_.begin(); it != table_.end();) {
      if (it->second.offset == kOnDiskOffset && options_.tier != nullptr &&
          options_.tier->Contains(it->first, it->second.version)) {
        ++it;
        continue;
      }
      table_bytes_ -= it->second.size;
      it = table_.erase(it);
      ++n;
    }
  }
  forgotten_ += n;
  spdlog::warn(
      "segment '{}': this process was stopped or stalled for {} ms, longer than the master's "
      "client TTL ({} ms): the master has dropped the segment's objects and others may have "
      "replaced or "
      "removed them since, so its {} table entr{} are forgotten and the segment is remounted "
      "empty",
      options_.segment.name, silent_ms, client_ttl_ms, n, n == 1 ? "y" : "ies");
}

// A master that had dropped the segment (it expired this owner, or it is a
// new master) rebuilds it from the table sent; one that still has it mounted
// answers with the TableUpdates that make the table equal its view. An update
// that arrives while the call is in flight was applied after the table was
// read, and after a rebuild it may be one the master sent for the segment's
// previous mount, before it dropped it: an add the rebuilt index never
// learns of, which a later master would take back from this table over a
// newer version or over bytes since reused (found by the chaos test: a store
// resumed from SIGSTOP read such an add after its empty remount). So when any
// arrived the table is sent once more: the segment is mounted by then, and the
// master reconciles that second table against its index.
Status StoreAgent::Remount() {
  uint64_t arrived = 0;
  Status st = SendTable(arrived);
  if (st.ok() && arrived > 0) {
    spdlog::info(
        "segment '{}': {} table update(s) arrived during the remount; sending the table again "
        "so the master reconciles it",
        options_.segment.name, arrived);
    st = SendTable(arrived);
  }
  return st;
}

Status StoreAgent::SendTable(uint64_t& arrived) {
  uint64_t connection = client_.connections();
  uint64_t applied_before = updates_applied_;
  std::vector<ObjectEntry> table = Table();
  StatusResponse r;
  Status st = client_.Call(MsgType::kRemountSegment, RemountRequest{segment_, table}, r);
  arrived = updates_applied_ - applied_before;
  if (st.ok() && r.code != 0) {
    st = Status(ErrorCodeFromInt(r.code).value_or(ErrorCode::INTERNAL_ERROR), r.message);
  }
  if (st.ok()) {
    // Any change the master makes from now on comes on this connection.
    synced_connection_ = std::max(connection, client_.connections());
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
  using Clock = std::chrono::steady_clock;
  auto next_ping = Clock::now();
  auto last_ping_end = Clock::now();
  uint64_t client_ttl_ms = 0;  // the master's, from its last pong
  while (true) {
    {
      std::unique_lock<std::mutex> lock(stop_mu_);
      if (stopping_) return;
    }
    if (Clock::now() >= next_ping) {
      auto now = Clock::now();
      next_ping = now + options_.ping_interval;
      // A gap longer than the master's client TTL, between calls or inside
      // one, means this process was stopped (SIGSTOP, a frozen VM) or its
      // calls stalled for that long: the master may have expired the segment
      // and removed or replaced its objects since, so the table is forgotten
      // and the segment remounted empty. Calls fail within the connect and
      // call timeouts, which stay below the default TTL.
      bool forgot = false;
      // True when this check made the table forgotten.
      auto check_gap = [&](Clock::time_point since) {
        int64_t gap_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
        if (forgot || client_ttl_ms == 0 || gap_ms <= static_cast<int64_t>(client_ttl_ms)) {
          return false;
        }
        Forget(gap_ms, client_ttl_ms);
        return forgot = true;
      };
      check_gap(last_ping_end);
      PingResponse pong;
      Status st = client_.Call(MsgType::kPing, PingRequest{1}, pong);
      check_gap(now);
      last_ping_end = Clock::now();
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
      if (pong.client_ttl_ms > 0) client_ttl_ms = pong.client_ttl_ms;
      // A new connection may have missed TableUpdates sent on the old one.
      if (pong.remount_needed || forgot || client_.connections() != synced_connection_) {
        auto remount_start = Clock::now();
        (void)Remount();
        // Stopped while remounting: the table just sent may be stale; send it again empty.
        if (check_gap(remount_start)) (void)Remount();
      }
      last_ping_end = Clock::now();
    }
    // Between pings, listen for table updates in short slices so Stop() is prompt.
    auto wait = std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(100), std::chrono::duration_cast<std::chrono::milliseconds>(
                                            next_ping - std::chrono::steady_clock::now()));
    SendReports();
    if (Status st = wait.count() > 0 ? client_.PollNotifications(wait, wake_fd_) : Status::Ok();
        !st.ok()) {
      // The connection dropped; the next ping reconnects and remounts.
      spdlog::warn("segment '{}': connection to master {} lost: {}; reconnecting at the next ping",
                   options_.segment.name, options_.rpc.address, st.ToString());
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
