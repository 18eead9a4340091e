// `kvcached master`: declared, not built yet.
#include "cmd/command.h"

namespace kvcached {

Command MasterCommand() {
  return UnavailableCommand("master", "Run the master: object index, placement, leases, eviction",
                            "The control plane of the pool: segment registry, object index, "
                            "placement, leases, eviction and liveness. Not in this build yet.");
}

}  // namespace kvcached
