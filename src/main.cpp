// kvcached: one executable, subcommands master, meta, store and bench.
// Everything below main() lives in src/cmd (the CLI) and the libraries.
#include "cmd/command.h"

int main(int argc, char** argv) { return kvcached::RunCli(argc, argv); }
