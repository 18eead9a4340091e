// TcpPath: the TCP data path. Pooled connections to the stores' data ports
// (Hello once per connection); a batch is split into pieces of at most
// `tcp_split_bytes`, spread over up to `tcp_streams` connections per store,
// pipelined, and driven by one poll() loop on the calling thread. A
// connection on which nothing moved for `io_timeout` fails the transfers it
// carried; a store's refusal fails that transfer only. A read's checksum is
// computed as its chunks arrive. The store behind an address must be the
// segment the descriptor names (its Hello answer says which), or nothing
// moves. Thread-safe: connections are checked out of the pool for a batch.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "client/data_path.h"

namespace kvcached {

class TcpPath : public DataPath {
 public:
  // `options` and `counters` must outlive the path.
  TcpPath(const TransportOptions& options, TransportCounters& counters);
  ~TcpPath() override;
  TcpPath(const TcpPath&) = delete;
  TcpPath& operator=(const TcpPath&) = delete;

  void Run(std::vector<TransferOp*>& ops) override;
  bool Reaches(const SegmentEndpoint& segment) override { return !segment.tcp.empty(); }
  void Close() override;

 private:
  struct Stream;
  struct TcpHash;
  // The stages of Run.
  void Plan(const std::string& address, std::vector<TransferOp*>& store_ops,
            std::vector<std::unique_ptr<Stream>>& streams);
  void RefuseWrongStore(const std::string& address, const std::string& peer,
                        std::vector<TransferOp*>& store_ops);
  std::map<TransferOp*, std::unique_ptr<TcpHash>> HashOnTheWay(
      std::vector<std::unique_ptr<Stream>>& streams);
  void Drive(std::vector<std::unique_ptr<Stream>>& streams);
  Result<int> AcquireConnection(const std::string& address, const std::string& peer);
  void ReleaseConnection(const std::string& address, int fd);

  const TransportOptions& options_;
  TransportCounters& counters_;

  std::mutex mu_;                                 // guards idle_ and served_
  std::map<std::string, std::vector<int>> idle_;  // by "host:port"
  // What the store at each "host:port" said it serves (its Hello answer):
  // segment name and size.
  std::map<std::string, std::pair<std::string, uint64_t>> served_;
};

}  // namespace kvcached
