// BuildInfo: what this binary is — version, git revision, build type and
// which optional transports were compiled in. Filled by the build system
// (build_info.cpp is generated); constant; safe from any thread.
#pragma once

#include <string>

namespace kvcached {

struct BuildInfo {
  const char* version;     // "0.1.0"
  const char* revision;    // git describe of the source tree, "unknown" outside git
  const char* build_type;  // CMAKE_BUILD_TYPE
  bool rdma_compiled;      // src/rdma built against libibverbs/librdmacm
  bool sanitizers;         // address,undefined build
  bool fault_hooks;        // test-only fault hooks compiled in (KVCACHED_FAULT_HOOKS)
};

const BuildInfo& GetBuildInfo();
// "kvcached 0.1.0 (rev abc1234, Release, rdma compiled)"
std::string VersionLine();

}  // namespace kvcached
