// FakeDataPath: a data path to segments held in this process's memory, one
// byte vector per segment name, with faults per segment: every transfer
// failing with a code, or reads arriving with one byte flipped. Also can
// advance a test clock by a fixed step per batch, so lease expiry is driven
// by the test, not by how fast a thread runs. Not thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "client/data_path.h"

namespace kvcached {

class FakeDataPath : public DataPath {
 public:
  void Run(std::vector<TransferOp*>& ops) override {
    ++batches;
    if (clock != nullptr) *clock += step;
    for (TransferOp* op : ops) {
      const std::string& name = op->segment->name;
      (op->write ? writes : reads)[name]++;
      if (auto it = fail.find(name); it != fail.end()) {
        FailOp(*op, it->second, "fake path: segment '" + name + "' fails");
        continue;
      }
      std::vector<uint8_t>& mem = Memory(name, op->segment->size);
      if (op->write) {
        std::copy(op->local, op->local + op->length, mem.begin() + op->offset);
      } else {
        std::copy(mem.begin() + op->offset, mem.begin() + op->offset + op->length, op->local);
        if (corrupt_reads.count(name) != 0) op->local[op->length / 2] ^= 0x5a;
      }
    }
  }

  std::vector<uint8_t>& Memory(const std::string& name, uint64_t size) {
    std::vector<uint8_t>& mem = segments[name];
    if (mem.size() < size) mem.resize(size);
    return mem;
  }

  std::map<std::string, std::vector<uint8_t>> segments;
  std::map<std::string, ErrorCode> fail;  // segment name -> every transfer's error
  std::set<std::string> corrupt_reads;    // segments whose reads come back altered
  std::map<std::string, int> reads, writes;
  int batches = 0;
  std::chrono::steady_clock::time_point* clock = nullptr;  // advanced by `step` per batch
  std::chrono::milliseconds step{0};
};

}  // namespace kvcached
