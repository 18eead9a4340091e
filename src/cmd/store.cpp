// `kvcached store`: declared, not built yet.
#include "cmd/command.h"

namespace kvcached {

Command StoreCommand() {
  return UnavailableCommand("store", "Contribute a memory segment to the pool and serve it",
                            "The data plane of the pool: a memory segment served over TCP, shared "
                            "memory and RDMA. Not in this build yet.");
}

}  // namespace kvcached
