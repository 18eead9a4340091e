// kvcached: one executable, subcommands master, meta, store and bench.
// Everything below main() lives in src/cmd (the CLI) and the libraries.
// Invoked as mooncake_master, it is the master with Mooncake's flags.
#include "cmd/command.h"
#include "cmd/mooncake_master.h"

int main(int argc, char** argv) {
  // The kvcached-mooncake-compat package links mooncake_master to this binary.
  if (kvcached::InvokedAsMooncakeMaster(argv[0])) return kvcached::RunMooncakeMaster(argc, argv);
  return kvcached::RunCli(argc, argv);
}
