// ClientConfig::FromEnvironment: Mooncake's way of configuring a client,
// so deployments that follow its SGLang recipe need no new settings. Which
// variables and file fields are read, and their grammar, is the settings
// table's (client_settings.h).
#include "client/client_settings.h"
#include "core/config.h"
#include "kvcached/client.h"

namespace kvcached {

Result<ClientConfig> ClientConfig::FromEnvironment() {
  ClientConfig c;
  if (Status st = ApplyClientEnvironment(c, ProcessEnv()); !st.ok()) return st;
  return c;
}

}  // namespace kvcached
