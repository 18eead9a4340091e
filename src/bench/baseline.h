// The machine's own ceilings, measured in the same run as a benchmark so its
// figures can be read as ratios: single-thread memcpy bandwidth (what the
// shared-memory path can at best reach) and single-stream loopback TCP
// bandwidth with 1 MiB writes, iperf3-style (what the TCP path can at best
// reach on one host). Each call takes a second or two; not thread-safe
// with other measurements (they would share the cores).
#pragma once

#include <string>

#include "kvcached/status.h"

namespace kvcached {

struct Baseline {
  double memcpy_gb_per_s = 0;  // 1 GB = 1e9 bytes
  double loopback_tcp_gb_per_s = 0;
  std::string memcpy_method;  // how it was measured, for reports
  std::string loopback_tcp_method;
};

// memcpy of 256 MiB between pre-faulted buffers, best of `runs`.
Result<double> MeasureMemcpyGBps(int runs = 5);
// One sender and one receiver thread over one 127.0.0.1 connection, 1 MiB
// writes for `seconds`, default socket buffers; best of `runs`. TRANSFER_FAIL
// when the loopback connection cannot be made. With `streams` > 1, that many
// such pairs at once, each on its own connection, and their sum: what
// loopback TCP carries when several clients share the machine's cores.
Result<double> MeasureLoopbackTcpGBps(double seconds = 1.0, int runs = 3, unsigned streams = 1);
// The congestion control a new TCP socket gets here (the system's
// net.ipv4.tcp_congestion_control), e.g. "cubic" or "bbr"; "unknown" when
// it cannot be read. It changes loopback figures a lot (bbr paces every
// connection, loopback ones too: on the 2-core machine of docs/benchmarks.md
// the loopback ceiling was 4.1 GB/s under bbr and 9.6 GB/s under cubic), so
// reports print it beside the ceiling.
std::string TcpCongestionControl();
// Both, with their method texts (the TCP one names the congestion control).
Result<Baseline> MeasureBaseline();

}  // namespace kvcached
