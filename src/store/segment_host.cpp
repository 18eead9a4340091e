#include "store/segment_host.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/printable.h"
#include "core/units.h"
#include "net/leader_lookup.h"
#include "store/shm_access_policy.h"
#include "store/shm_runtime_dir.h"

namespace kvcached {
namespace {

std::string MetadataKey(const std::string& segment) { return "mooncake/ram/" + segment; }

bool PublishesMetadata(const std::string& server) {
  return !server.empty() && server != "P2PHANDSHAKE";
}

}  // namespace

Result<std::unique_ptr<SegmentHost>> SegmentHost::Create(SegmentHostOptions options) {
  if (options.segment_name.empty() || options.segment_name.size() > kMaxIdBytes) {
    return Status(ErrorCode::INVALID_PARAMS, "segment name must be 1 to 256 bytes");
  }
  options.memory.name = "kvcached:" + options.segment_name;
  std::unique_ptr<SegmentHost> host(new SegmentHost(std::move(options)));
  Result<std::unique_ptr<SegmentMemory>> mem = SegmentMemory::Create(host->options_.memory);
  if (!mem.ok()) return mem.status();
  host->memory_ = std::move(mem).value();
  return host;
}

SegmentHost::~SegmentHost() {
  BeginShutdown();
  (void)Unmount();
}

Status SegmentHost::Serve(boost::asio::io_context& ioc, MetricsRegistry& metrics) {
  DataServerOptions data;
  data.host = options_.bind_host;
  data.port = options_.data_port;
  data.token = options_.token;
  data.max_connections = options_.data_max_connections;
  data.max_connections_per_peer = options_.data_max_connections_per_peer;
  data.idle_timeout = options_.data_idle_timeout;
  data.rdma = rdma_;
  data.segment_name = options_.segment_name;
  data_ = std::make_unique<DataServer>(ioc, data, memory_->data(), memory_->size(), metrics);
  if (Status st = data_->Start(); !st.ok()) return st;

  if (!data_->bound_to_loopback() && !options_.token) {
    std::string why = "data port " + data_->address() + " of segment '" + options_.segment_name +
                      "' is reachable beyond this host without a cluster token: any peer can "
                      "read and overwrite every byte of the segment";
    if (!options_.insecure) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "refusing to serve: " + why +
                        ". Give a token (--token-file), bind loopback (--host 127.0.0.1), or say "
                        "--insecure");
    }
    spdlog::warn("{} (--insecure)", why);
  }
  endpoint_.name = options_.segment_name;
  endpoint_.host_id = options_.host_id;
  endpoint_.instance = options_.client_id;
  endpoint_.size = memory_->size();
  if (rdma_) {
    endpoint_.protocol = "rdma";
    endpoint_.rdma = rdma_->Describe();
  }
  // Peers need an address they can dial: a wildcard bind publishes the host id.
  endpoint_.tcp = data_->bound_to_wildcard()
                      ? options_.host_id + ":" + std::to_string(data_->port())
                      : data_->address();
  return ServeShm(ioc, metrics);
}

Status SegmentHost::ServeShm(boost::asio::io_context& ioc, MetricsRegistry& metrics) {
  if (options_.shm_socket == kShmSocketOff) return Status::Ok();
  // A peer maps the descriptor it is handed from offset 0 (ShmAttachResponse
  // carries no offset), which would be the wrong bytes.
  if (memory_->file_offset() != 0) {
    spdlog::info("segment '{}' maps its file from offset {}: served over TCP only, not shared "
                 "memory",
                 options_.segment_name, memory_->file_offset());
    return Status::Ok();
  }
  Result<ShmAccessPolicy> access = ShmAccessPolicy::WithGroupNamed(::geteuid(), options_.shm_group);
  if (!access.ok()) return access.status();
  ShmServerOptions shm;
  shm.access = *access;
  shm.segment = options_.segment_name;
  shm.token = options_.token;
  shm.max_connections = options_.shm_max_connections;
  if (options_.shm_socket.empty()) {
    ShmRuntimeDir dir = ShmRuntimeDir::Resolve(ShmRuntimeDirEnv::FromProcess());
    if (Status st = dir.Prepare(::geteuid(), access->group()); !st.ok()) return st;
    shm.path = dir.SocketPath(options_.client_id);
  } else if (options_.shm_socket[0] == '@') {
    if (!options_.allow_abstract_shm) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "refusing the abstract shm socket " + options_.shm_socket +
                        ": abstract sockets have no permissions and any local user can take the "
                        "name, so clients could hand their bytes to an impostor. Leave "
                        "--shm-socket empty (a private socket file), give a path, or say "
                        "--insecure");
    }
    spdlog::warn(
        "shm socket {} is abstract (--insecure): it has no permissions, and any local "
        "user can take the name once this store is gone; only peer credentials ({}) "
        "guard it",
        options_.shm_socket, access->Describe());
    shm.path = options_.shm_socket;
  } else {
    shm.path = options_.shm_socket;
  }
  shm_ = std::make_unique<ShmServer>(ioc, shm, memory_->fd(), memory_->size(), metrics);
  if (Status st = shm_->Start(); !st.ok()) return st;
  endpoint_.shm = shm.path;
  return Status::Ok();
}

Status SegmentHost::Mount() {
  StoreAgentOptions agent;
  if (Status st = ApplyMasterAddress(agent.rpc, options_.master, options_.cluster_id); !st.ok()) {
    return st;
  }
  agent.rpc.hello.role = static_cast<uint8_t>(PeerRole::kStore);
  agent.rpc.hello.client_id = options_.client_id;
  agent.rpc.hello.host_id = options_.host_id;
  agent.rpc.hello.owner_proof = options_.owner_proof;
  if (options_.token) agent.rpc.hello.token = options_.token->secret();
  agent.rpc.connect_timeout = options_.connect_timeout;
  agent.rpc.connect_attempts = options_.connect_attempts;
  agent.segment = {options_.segment_name, reinterpret_cast<uint64_t>(memory_->data()),
                   memory_->size(), FormatEndpoint(endpoint_)};
  agent.ping_interval = options_.ping_interval;
  OpenDiskTier(agent);
  agent_ = std::make_unique<StoreAgent>(agent);
  if (tier_) {
    tier_->set_on_dropped([a = agent_.get()](const DiskRecord& r, std::string_view why) {
      spdlog::debug("disk tier dropped '{}' version {}: {}", Printable(r.key), r.version, why);
      a->OnDiskDropped({r.key, kOnDiskOffset, r.size, r.checksum, r.version, r.pin});
    });
  }
  if (Status st = agent_->Start(); !st.ok()) {
    tier_.reset();
    agent_.reset();
    return st;
  }
  Publish();
  return Status::Ok();
}

void SegmentHost::OpenDiskTier(StoreAgentOptions& agent) {
  if (options_.disk.dir.empty()) return;
  std::vector<DiskRecord> found;
  Result<std::unique_ptr<DiskTier>> opened = DiskTier::Open(options_.disk, &found);
  if (!opened.ok()) {
    disk_error_ = opened.status().message();
    spdlog::error("disk tier in {} not opened: {}; this store keeps objects in memory only",
                  options_.disk.dir, disk_error_);
    return;
  }
  tier_ = std::move(opened).value();
  agent.tier = tier_.get();
  agent.memory = memory_->data();
  agent.segment.disk_bytes = tier_->stats().capacity_bytes;
  for (DiskRecord& r : found) {
    agent.disk_records.push_back(
        {std::move(r.key), kOnDiskOffset, r.size, r.checksum, r.version, r.pin});
  }
  DiskTierStats st = tier_->stats();
  spdlog::info(
      "disk tier {} of {}: {} object(s) ({}) found and offered to the master{}", tier_->path(),
      FormatSize(st.capacity_bytes), agent.disk_records.size(), FormatSize(st.bytes),
      st.scan_dropped > 0
          ? ", " + std::to_string(st.scan_dropped) + " torn or superseded record(s) dropped"
          : "");
}

Result<MetadataClient> SegmentHost::Metadata() const {
  MetadataClientOptions o;
  o.url = options_.metadata_server;
  if (options_.token) o.token = options_.token->secret();
  return MetadataClient::Create(o);
}

void SegmentHost::Publish() {
  if (!PublishesMetadata(options_.metadata_server)) return;
  Result<MetadataClient> meta = Metadata();
  Status st = meta.ok() ? meta.value().Put(MetadataKey(name()), FormatEndpoint(endpoint_))
                        : meta.status();
  if (!st.ok()) {
    spdlog::warn("could not publish segment '{}' to the metadata service {}: {} (clients take "
                 "descriptors from the master, so the pool works without it)",
                 name(), options_.metadata_server, st.ToString());
    return;
  }
  published_ = true;
  spdlog::info("published segment '{}' as {} at {}", name(), MetadataKey(name()),
               options_.metadata_server);
}

void SegmentHost::Unpublish() {
  if (!published_) return;
  published_ = false;
  Result<MetadataClient> meta = Metadata();
  Status st = meta.ok() ? meta.value().Delete(MetadataKey(name())) : meta.status();
  if (!st.ok()) {
    spdlog::warn("could not remove {} from the metadata service: {}", MetadataKey(name()),
                 st.ToString());
  }
}

void SegmentHost::BeginShutdown() {
  if (data_) data_->BeginShutdown();
  if (shm_) shm_->BeginShutdown();
}

Status SegmentHost::Unmount() {
  Unpublish();
  Status st = agent_ ? agent_->Stop() : Status::Ok();
  tier_.reset();  // writes in flight finish; the memory they copy from stays until then
  return st;
}

void SegmentHost::ReleaseMemory() { memory_->Release(); }

size_t SegmentHost::open_connections() const {
  return (data_ ? data_->open_connections() : 0) + (shm_ ? shm_->open_connections() : 0);
}

}  // namespace kvcached
