// Device choice for the RDMA transport, against FakeVerbs: named, missing,
// inactive, discovered and absent devices, and the GID choice.
#include <doctest/doctest.h>

#include <cerrno>

#include "fake_verbs.h"
#include "rdma/rdma_devices.h"
#include "rdma/rdma_transport.h"
#include "rdma/verbs_device.h"

namespace kvcached {
namespace {

TEST_CASE("rdma devices: discovery takes every active port, RoCE v2 IPv4-mapped GID first") {
  FakeDeviceSpec down = FakeRoceDevice("rxe2", "10.0.0.3");
  down.ports[0].active = false;
  FakeVerbs fake({FakeRoceDevice("rxe0", "10.0.0.1"), FakeRoceDevice("rxe1", "10.0.0.2"), down});
  auto choice = ChooseRdmaDevices(fake.api(), RdmaOptions{});
  REQUIRE(choice.ok());
  REQUIRE(choice->nics.size() == 2);
  CHECK(choice->nics[0].name == "rxe0");
  CHECK(choice->nics[1].name == "rxe1");
  CHECK(choice->nics[0].gid == FakeGid("::ffff:10.0.0.1"));
  CHECK(choice->nics[1].gid == FakeGid("::ffff:10.0.0.2"));
  CHECK(choice->why_none.empty());
  CHECK(fake.LiveContexts() == 0);  // probing leaves nothing open

  std::string why;
  auto opened = OpenVerbsDevices(fake.api(), RdmaOptions{}, &why, false);
  REQUIRE(opened.ok());
  REQUIRE(opened->size() == 2);
  CHECK((*opened)[0]->gid_index() == 3);
  CHECK((*opened)[0]->port() == 1);
}

TEST_CASE("rdma devices: GID preference without an IPv4-mapped v2 entry") {
  FakeDeviceSpec spec = FakeRoceDevice("rxe0", "10.0.0.1");
  spec.ports[0].gids = {{FakeGid("::"), IBV_GID_TYPE_ROCE_V2},
                        {FakeGid("fe80::1"), IBV_GID_TYPE_ROCE_V1},
                        {FakeGid("::ffff:10.0.0.1"), IBV_GID_TYPE_ROCE_V1},
                        {FakeGid("fd00::5"), IBV_GID_TYPE_ROCE_V2}};
  FakeVerbs fake({spec});
  std::string why;
  auto opened = OpenVerbsDevices(fake.api(), RdmaOptions{}, &why, false);
  REQUIRE(opened.ok());
  REQUIRE(opened->size() == 1);
  CHECK((*opened)[0]->gid_index() == 3);  // RoCE v2 beats an IPv4-mapped v1

  CHECK(GidPreference(FakeGid("::"), true, IBV_GID_TYPE_ROCE_V2) == -1);
  CHECK(GidPreference(FakeGid("::ffff:1.2.3.4"), true, IBV_GID_TYPE_ROCE_V2) >
        GidPreference(FakeGid("fd00::1"), true, IBV_GID_TYPE_ROCE_V2));
  CHECK(GidPreference(FakeGid("fd00::1"), true, IBV_GID_TYPE_ROCE_V2) >
        GidPreference(FakeGid("::ffff:1.2.3.4"), true, IBV_GID_TYPE_ROCE_V1));
  CHECK(GidPreference(FakeGid("::ffff:1.2.3.4"), false, IBV_GID_TYPE_IB) >
        GidPreference(FakeGid("fe80::1"), false, IBV_GID_TYPE_IB));
}

TEST_CASE("rdma devices: gid_index override") {
  FakeVerbs fake({FakeRoceDevice("rxe0", "10.0.0.1")});
  RdmaOptions options;
  options.gid_index = 1;
  std::string why;
  auto opened = OpenVerbsDevices(fake.api(), options, &why, false);
  REQUIRE(opened.ok());
  REQUIRE(opened->size() == 1);
  CHECK((*opened)[0]->gid_index() == 1);
  CHECK((*opened)[0]->gid() == FakeGid("fe80::1"));

  options.gid_index = 9;
  auto bad = ChooseRdmaDevices(fake.api(), options);
  CHECK(bad.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_MODE);
  CHECK(bad.status().message().find("index 9") != std::string::npos);
}

TEST_CASE("rdma devices: named devices and ports") {
  FakeDeviceSpec two = FakeRoceDevice("mlx5_0", "10.0.0.1");
  two.ports.push_back(two.ports[0]);
  two.ports[1].gids[3].gid = FakeGid("::ffff:10.0.1.1");
  FakeDeviceSpec down = FakeRoceDevice("mlx5_1", "10.0.0.2");
  down.ports[0].active = false;
  FakeVerbs fake({two, down, FakeRoceDevice("rxe0", "10.0.0.3")});

  RdmaOptions options;
  options.devices = {"mlx5_0:2", "rxe0"};
  auto choice = ChooseRdmaDevices(fake.api(), options);
  REQUIRE(choice.ok());
  REQUIRE(choice->nics.size() == 2);
  CHECK(choice->nics[0].name == "mlx5_0");
  CHECK(choice->nics[0].gid == FakeGid("::ffff:10.0.1.1"));
  CHECK(choice->nics[1].name == "rxe0");

  options.devices = {"mlx5_0"};
  choice = ChooseRdmaDevices(fake.api(), options);
  REQUIRE(choice.ok());
  CHECK(choice->nics.size() == 2);  // both ports of mlx5_0

  options.devices = {"mlx5_9"};
  auto missing = ChooseRdmaDevices(fake.api(), options);
  CHECK(missing.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_MODE);
  CHECK(missing.status().message().find("mlx5_9") != std::string::npos);

  options.devices = {"mlx5_1"};
  auto inactive = ChooseRdmaDevices(fake.api(), options);
  CHECK(inactive.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_MODE);
  CHECK(inactive.status().message().find("mlx5_1") != std::string::npos);
  CHECK(inactive.status().message().find("active") != std::string::npos);

  options.devices = {"mlx5_0:3"};
  CHECK(ChooseRdmaDevices(fake.api(), options).code() == ErrorCode::UNAVAILABLE_IN_CURRENT_MODE);
  options.devices = {"mlx5_0:x"};
  CHECK(ChooseRdmaDevices(fake.api(), options).code() == ErrorCode::INVALID_PARAMS);
  CHECK(fake.LiveContexts() == 0);
}

TEST_CASE("rdma devices: none is not an error") {
  FakeVerbs fake({FakeRoceDevice("rxe0", "10.0.0.1")});
  fake.SetNoDevices(ENOSYS);
  auto choice = ChooseRdmaDevices(fake.api(), RdmaOptions{});
  REQUIRE(choice.ok());
  CHECK(choice->nics.empty());
  CHECK(choice->why_none == "no RDMA devices (ibv_get_device_list: Function not implemented)");

  std::string why;
  CHECK(ListRdmaDevices(fake.api(), &why).empty());
  CHECK(why.find("Function not implemented") != std::string::npos);

  // A named device on a host without RDMA is an error naming it.
  RdmaOptions options;
  options.devices = {"rxe0"};
  auto named = ChooseRdmaDevices(fake.api(), options);
  CHECK(named.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_MODE);
  CHECK(named.status().message().find("rxe0") != std::string::npos);

  // Engine and target refuse to open without devices.
  CHECK(RdmaEngine::Open(fake.api(), RdmaOptions{},
                         [](const std::string&, const RdmaConnectRequest&,
                            std::unique_ptr<RdmaLink>&) -> Result<RdmaConnectResponse> {
                           return Status(ErrorCode::RPC_FAIL, "unused");
                         })
            .code() == ErrorCode::NOT_SUPPORTED);
  uint8_t byte = 0;
  CHECK(RdmaTarget::Open(fake.api(), RdmaOptions{}, &byte, 1).code() == ErrorCode::NOT_SUPPORTED);
}

TEST_CASE("rdma devices: every port down") {
  FakeDeviceSpec down = FakeRoceDevice("rxe0", "10.0.0.1");
  down.ports[0].active = false;
  FakeVerbs fake({down});
  auto choice = ChooseRdmaDevices(fake.api(), RdmaOptions{});
  REQUIRE(choice.ok());
  CHECK(choice->nics.empty());
  CHECK(choice->why_none.find("active port") != std::string::npos);
}

TEST_CASE("rdma devices: ListRdmaDevices goes through the table") {
  FakeVerbs fake({FakeRoceDevice("rxe0", "10.0.0.1"), FakeRoceDevice("rxe1", "10.0.0.2")});
  auto list = ListRdmaDevices(fake.api(), nullptr);
  REQUIRE(list.size() == 2);
  CHECK(list[1].name == "rxe1");
  CHECK(list[1].ports == 1);
}

TEST_CASE("rdma devices: the real table answers cleanly") {
  // Here (no kernel RDMA) there are no devices and a reason; on a host with
  // Soft-RoCE or a NIC, there are some.
  auto choice = ChooseRdmaDevices(RealVerbs(), RdmaOptions{});
  REQUIRE(choice.ok());
  CHECK(choice->nics.empty() == !choice->why_none.empty());
}

}  // namespace
}  // namespace kvcached
