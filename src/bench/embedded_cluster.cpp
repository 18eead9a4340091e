#include "bench/embedded_cluster.h"

#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "core/identity.h"
#include "core/metrics.h"
#include "master/master_service.h"
#include "store/segment_host.h"

namespace kvcached {

namespace net = boost::asio;
using WorkGuard = net::executor_work_guard<net::io_context::executor_type>;

// Declaration order is destruction order in reverse: the servers go before
// the io_contexts and registries they use.
struct EmbeddedCluster::Parts {
  MetricsRegistry master_metrics, store_metrics;
  net::io_context master_ioc, store_ioc;
  std::optional<WorkGuard> master_work, store_work;
  std::unique_ptr<MasterService> master;
  std::unique_ptr<SegmentHost> store;
  std::vector<std::thread> threads;
  std::string master_address, segment_name, data_address;
  uint64_t segment_bytes = 0;
  bool stopped = false;

  void RunThreads(net::io_context& ioc, unsigned n) {
    for (unsigned i = 0; i < n; ++i) threads.emplace_back([&ioc] { ioc.run(); });
  }

  void Stop() {
    if (stopped) return;
    stopped = true;
    if (store) {
      store->BeginShutdown();
      if (Status st = store->Unmount(); !st.ok()) {
        spdlog::warn("embedded store: unmount: {}", st.ToString());
      }
    }
    if (master) master->BeginShutdown();
    master_work.reset();
    store_work.reset();
    master_ioc.stop();
    store_ioc.stop();
    for (std::thread& t : threads) t.join();
    threads.clear();
  }
};

EmbeddedCluster::EmbeddedCluster(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

EmbeddedCluster::~EmbeddedCluster() { Stop(); }

void EmbeddedCluster::Stop() { parts_->Stop(); }

const std::string& EmbeddedCluster::master_address() const { return parts_->master_address; }
const std::string& EmbeddedCluster::segment_name() const { return parts_->segment_name; }
const std::string& EmbeddedCluster::data_address() const { return parts_->data_address; }
uint64_t EmbeddedCluster::segment_bytes() const { return parts_->segment_bytes; }
std::string EmbeddedCluster::MasterMetrics() const { return parts_->master_metrics.Render(); }
const DiskTier* EmbeddedCluster::disk_tier() const {
  return parts_->store && !parts_->stopped ? parts_->store->disk_tier() : nullptr;
}
const std::string& EmbeddedCluster::disk_error() const {
  static const std::string kNone;
  return parts_->store ? parts_->store->disk_error() : kNone;
}

Result<std::unique_ptr<EmbeddedCluster>> EmbeddedCluster::Start(
    const EmbeddedClusterOptions& options) {
  auto p = std::make_unique<Parts>();
  // Stops whatever was started when a later step fails.
  std::unique_ptr<EmbeddedCluster> cluster(new EmbeddedCluster(std::move(p)));
  Parts& parts = *cluster->parts_;

  MasterServiceOptions mo;
  mo.rpc.name = "rpc";
  mo.rpc.host = "127.0.0.1";
  mo.rpc.port = 0;
  mo.rpc.token = options.token;
  mo.admin.name = "admin";
  mo.admin.host = "127.0.0.1";
  mo.admin.port = 0;
  mo.admin.token = options.token;
  parts.master = std::make_unique<MasterService>(parts.master_ioc, mo, parts.master_metrics);
  if (Status st = parts.master->Start(); !st.ok()) {
    return Status(st.code(), "embedded master: " + st.message());
  }
  parts.master_address = parts.master->rpc().address();
  parts.master_work.emplace(parts.master_ioc.get_executor());
  parts.RunThreads(parts.master_ioc, 1);

  SegmentHostOptions so;
  so.master = parts.master_address;
  so.client_id = RandomId("store");
  so.host_id = options.host_id.empty() ? LocalHostname() : options.host_id;
  so.segment_name = options.segment_name.empty() ? so.host_id + ":bench" : options.segment_name;
  so.memory.size_bytes = options.segment_bytes;
  so.bind_host = "127.0.0.1";
  so.token = options.token;
  so.metadata_server = "P2PHANDSHAKE";
  so.disk = options.disk;
  Result<std::unique_ptr<SegmentHost>> host = SegmentHost::Create(so);
  if (!host.ok()) return Status(host.code(), "embedded store: " + host.status().message());
  parts.store = std::move(host).value();
  if (options.rdma) {
    Result<std::shared_ptr<RdmaAcceptor>> rdma =
        options.rdma(parts.store->memory().data(), parts.store->memory().size());
    if (!rdma.ok()) return Status(rdma.code(), "embedded store: rdma: " + rdma.status().message());
    if (*rdma) parts.store->SetRdma(*rdma);
  }
  if (Status st = parts.store->Serve(parts.store_ioc, parts.store_metrics); !st.ok()) {
    return Status(st.code(), "embedded store: " + st.message());
  }
  parts.store_work.emplace(parts.store_ioc.get_executor());
  parts.RunThreads(parts.store_ioc, std::max(1u, options.store_threads));
  if (Status st = parts.store->Mount(); !st.ok()) {
    return Status(st.code(), "embedded store: mount: " + st.message());
  }
  parts.segment_name = so.segment_name;
  parts.data_address = parts.store->data_server()->address();
  parts.segment_bytes = parts.store->memory().size();
  return cluster;
}

}  // namespace kvcached
