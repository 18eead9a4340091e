// Chunked memory registration and key lookup for the RDMA transport, against
// FakeVerbs.
#include <doctest/doctest.h>

#include <cerrno>
#include <vector>

#include "core/segment_endpoint.h"
#include "fake_verbs.h"
#include "rdma/memory_registry.h"
#include "rdma/rdma_transport.h"
#include "rdma/verbs_device.h"

namespace kvcached {
namespace {

constexpr uint64_t kMiB = 1 << 20;

std::vector<std::unique_ptr<VerbsDevice>> Open(FakeVerbs& fake) {
  std::string why;
  auto opened = OpenVerbsDevices(fake.api(), RdmaOptions{}, &why, false);
  REQUIRE(opened.ok());
  return std::move(opened).value();
}

TEST_CASE("rdma registration: chunks below max_mr_size and max_chunk_bytes") {
  FakeDeviceSpec a = FakeRoceDevice("rxe0", "10.0.0.1");
  FakeDeviceSpec b = FakeRoceDevice("rxe1", "10.0.0.2");
  a.max_mr_size = 3 * kMiB + 100;  // not page-aligned: chunks round down
  FakeVerbs fake({a, b});
  auto devices = Open(fake);
  std::vector<VerbsDevice*> raw{devices[0].get(), devices[1].get()};
  CHECK(RegistrationChunkBytes(raw, 1ull << 30) == 3 * kMiB);
  CHECK(RegistrationChunkBytes(raw, 1 * kMiB) == 1 * kMiB);
  CHECK(RegistrationChunkBytes(raw, 0) == 3 * kMiB);

  std::vector<uint8_t> memory(10 * kMiB + 123);
  auto region = RegisteredRegion::Register(raw, memory.data(), memory.size(), 3 * kMiB,
                                           IBV_ACCESS_LOCAL_WRITE, "test memory");
  REQUIRE(region.ok());
  const RegisteredRegion& r = **region;
  CHECK(r.chunks() == 4);
  CHECK(fake.LiveMrs() == 8);
  CHECK(r.ChunkOf(memory.data()) == 0);
  CHECK(r.ChunkOf(memory.data() + 3 * kMiB - 1) == 0);
  CHECK(r.ChunkOf(memory.data() + 3 * kMiB) == 1);
  CHECK(r.ChunkOf(memory.data() + memory.size() - 1) == 3);
  CHECK(r.lkey(0, 0) != r.lkey(0, 1));
  CHECK(r.lkey(0, 0) != r.lkey(1, 0));

  MemoryRegistry registry;
  registry.Add(region.value());
  // Ranges spanning chunks, at the edges, and outside.
  CHECK(registry.Find(memory.data() + 2 * kMiB, 2 * kMiB) == region.value());
  CHECK(registry.Find(memory.data(), memory.size()) == region.value());
  CHECK(registry.Find(memory.data() + memory.size() - 1, 1) == region.value());
  CHECK(registry.Find(memory.data() + memory.size() - 1, 2) == nullptr);
  CHECK(registry.Find(memory.data() - 1, 2) == nullptr);
  CHECK(registry.Find(memory.data() + memory.size(), 1) == nullptr);
  CHECK(registry.Exact(memory.data(), memory.size()) == region.value());
  CHECK(registry.Exact(memory.data(), 1) == nullptr);
  CHECK(registry.Remove(memory.data()));
  CHECK_FALSE(registry.Remove(memory.data()));
  CHECK(registry.Find(memory.data(), 1) == nullptr);
  region = Status(ErrorCode::INTERNAL_ERROR, "dropped");
  CHECK(fake.LiveMrs() == 0);
}

TEST_CASE("rdma registration: the target describes its chunks and keys") {
  FakeDeviceSpec a = FakeRoceDevice("rxe0", "10.0.0.1");
  a.max_mr_size = 1 * kMiB;
  FakeVerbs fake({a, FakeRoceDevice("rxe1", "10.0.0.2")});
  std::vector<uint8_t> segment(5 * kMiB + kMiB / 2);
  auto target = RdmaTarget::Open(fake.api(), RdmaOptions{}, segment.data(), segment.size());
  REQUIRE(target.ok());
  RdmaSegmentInfo info = (*target)->Describe();
  CHECK(info.base == reinterpret_cast<uint64_t>(segment.data()));
  CHECK(info.chunk_bytes == 1 * kMiB);
  REQUIRE(info.nics.size() == 2);
  CHECK(info.nics[0].name == "rxe0");
  CHECK(info.nics[1].gid == FakeGid("::ffff:10.0.0.2"));
  REQUIRE(info.rkeys.size() == 6);
  for (const auto& row : info.rkeys) CHECK(row.size() == 2);
  CHECK(fake.LiveMrs() == 12);
  target = Status(ErrorCode::INTERNAL_ERROR, "closed");
  CHECK(fake.LiveMrs() == 0);
  CHECK(fake.LiveContexts() == 0);
  CHECK(fake.LiveCqs() == 0);
}

TEST_CASE("rdma registration: a large segment takes larger chunks to fit the descriptor") {
  // 4096 keys at most: on 2 NICs, 2048 chunks. A 32 MiB segment with 4 KiB
  // chunks asked for would need 8192; the chunk grows to 16 KiB.
  FakeVerbs fake({FakeRoceDevice("rxe0", "10.0.0.1"), FakeRoceDevice("rxe1", "10.0.0.2")});
  std::vector<uint8_t> segment(32 * kMiB);
  RdmaOptions options;
  options.max_chunk_bytes = 4096;
  auto target = RdmaTarget::Open(fake.api(), options, segment.data(), segment.size());
  REQUIRE_MESSAGE(target.ok(), target.status().ToString());
  RdmaSegmentInfo info = (*target)->Describe();
  CHECK(info.chunk_bytes == 16 * 1024);
  CHECK(info.rkeys.size() * info.nics.size() <= kMaxRdmaKeys);
  CHECK(info.rkeys.size() * info.chunk_bytes >= segment.size());
  // Unless the devices cannot register chunks that large.
  FakeDeviceSpec small = FakeRoceDevice("rxe0", "10.0.0.1");
  small.max_mr_size = 8192;
  FakeVerbs tiny({small, FakeRoceDevice("rxe1", "10.0.0.2")});
  auto refused = RdmaTarget::Open(tiny.api(), options, segment.data(), segment.size());
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("max_mr_size") != std::string::npos);
}

TEST_CASE("rdma registration: discovered NICs on the segment's NUMA node are preferred") {
  FakeDeviceSpec n0 = FakeRoceDevice("mlx5_0", "10.0.0.1"), n1 = FakeRoceDevice("mlx5_1", "10.0.1.1");
  FakeDeviceSpec n1b = FakeRoceDevice("mlx5_2", "10.0.1.2");
  n0.numa_node = 0;
  n1.numa_node = 1;
  n1b.numa_node = 1;
  FakeVerbs fake({n0, n1, n1b});
  std::vector<uint8_t> segment(4 * kMiB);
  auto names = [&](const RdmaOptions& o) {
    auto target = RdmaTarget::Open(fake.api(), o, segment.data(), segment.size());
    REQUIRE_MESSAGE(target.ok(), target.status().ToString());
    std::vector<std::string> out;
    for (const RdmaNic& nic : (*target)->Describe().nics) out.push_back(nic.name);
    return out;
  };
  using V = std::vector<std::string>;
  fake.SetMemoryNode(1);
  CHECK(names(RdmaOptions{}) == V{"mlx5_1", "mlx5_2"});
  fake.SetMemoryNode(0);
  CHECK(names(RdmaOptions{}) == V{"mlx5_0"});
  // Unknown node, or a node without NICs: every NIC.
  fake.SetMemoryNode(-1);
  CHECK(names(RdmaOptions{}).size() == 3);
  fake.SetMemoryNode(7);
  CHECK(names(RdmaOptions{}).size() == 3);
  // Devices named are taken as named, wherever they are.
  fake.SetMemoryNode(1);
  RdmaOptions named;
  named.devices = {"mlx5_0", "mlx5_2"};
  CHECK(names(named) == V{"mlx5_0", "mlx5_2"});
}

TEST_CASE("rdma registration: a refused registration names RLIMIT_MEMLOCK") {
  FakeVerbs fake({FakeRoceDevice("rxe0", "10.0.0.1")});
  std::vector<uint8_t> segment(4 * kMiB);
  RdmaOptions options;
  options.max_chunk_bytes = 1 * kMiB;
  for (int err : {ENOMEM, EPERM}) {
    fake.SetMaxRegBytes(64 * 1024, err);
    auto target = RdmaTarget::Open(fake.api(), options, segment.data(), segment.size());
    REQUIRE_FALSE(target.ok());
    CHECK(target.code() == ErrorCode::TRANSFER_FAIL);
    CHECK(target.status().message().find("RLIMIT_MEMLOCK is ") != std::string::npos);
    CHECK(target.status().message().find("rxe0") != std::string::npos);
    CHECK(fake.LiveMrs() == 0);
  }
  fake.SetMaxRegBytes(64 * 1024, EINVAL);
  auto target = RdmaTarget::Open(fake.api(), options, segment.data(), segment.size());
  REQUIRE_FALSE(target.ok());
  CHECK(target.status().message().find("RLIMIT_MEMLOCK") == std::string::npos);

  // Chunks that fit are fine.
  fake.SetMaxRegBytes(1 * kMiB, ENOMEM);
  target = RdmaTarget::Open(fake.api(), options, segment.data(), segment.size());
  CHECK(target.ok());
}

TEST_CASE("rdma registration: many chunks in parallel") {
  FakeVerbs fake({FakeRoceDevice("rxe0", "10.0.0.1"), FakeRoceDevice("rxe1", "10.0.0.2")});
  auto devices = Open(fake);
  std::vector<VerbsDevice*> raw{devices[0].get(), devices[1].get()};
  std::vector<uint8_t> memory(300 * 4096);
  auto region = RegisteredRegion::Register(raw, memory.data(), memory.size(), 4096,
                                           IBV_ACCESS_LOCAL_WRITE, "many chunks");
  REQUIRE(region.ok());
  CHECK((*region)->chunks() == 300);
  CHECK(fake.LiveMrs() == 600);
  for (size_t c = 0; c < 300; ++c) {
    CHECK((*region)->lkey(c, 0) != 0);
    CHECK((*region)->lkey(c, 1) != 0);
  }
}

}  // namespace
}  // namespace kvcached
