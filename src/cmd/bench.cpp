// `kvcached bench`: declared, not built yet.
#include "cmd/command.h"

namespace kvcached {

Command BenchCommand() {
  return UnavailableCommand("bench", "Measure throughput and latency of a pool",
                            "The load generator: with no cluster given it starts an embedded "
                            "master and store. Not in this build yet.");
}

}  // namespace kvcached
