// The client's transport (src/client/transport.h) against the store's real
// data port and shared-memory socket, run in-process on an io_context, and
// against fake stores that misbehave on purpose: framing across split
// pieces and several streams, every class of out-of-range request, answers
// that are out of order, oversized or of the wrong length, and a store that
// accepts and then never answers. Nothing may crash, hang, or be reported as
// a success that moved no bytes.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "client/checksum.h"
#include "client/transport.h"
#include "core/segment_endpoint.h"
#include "store/data_server.h"
#include "store/segment_memory.h"
#include "store/shm_server.h"
#include "net/socket_util.h"

namespace kvcached {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kSegment = 4 << 20;

// A store's data plane in this process: a segment, its TCP data port and its
// shm socket, served by one io thread.
class LocalStore {
 public:
  LocalStore() : work_(ioc_.get_executor()) {
    SegmentMemoryOptions m;
    m.size_bytes = kSegment;
    memory_ = std::move(SegmentMemory::Create(m)).value();
    DataServerOptions d;
    data_ = std::make_unique<DataServer>(ioc_, d, memory_->data(), kSegment, metrics_);
    REQUIRE(data_->Start().ok());
    ShmServerOptions s;
    s.path = "@kvcached-transport-test/" + std::to_string(getpid());
    s.segment = "seg";
    shm_ = std::make_unique<ShmServer>(ioc_, s, memory_->fd(), kSegment, metrics_);
    REQUIRE(shm_->Start().ok());
    thread_ = std::thread([this] { ioc_.run(); });
    endpoint_ = std::make_shared<SegmentEndpoint>();
    endpoint_->name = "seg";
    endpoint_->instance = "local-store";
    endpoint_->size = kSegment;
    endpoint_->tcp = data_->address();
    endpoint_->shm = s.path;
  }
  ~LocalStore() {
    data_->BeginShutdown();
    shm_->BeginShutdown();
    work_.reset();
    ioc_.stop();
    thread_.join();
  }
  std::shared_ptr<const SegmentEndpoint> endpoint() const { return endpoint_; }
  uint8_t* bytes() const { return memory_->data(); }

 private:
  MetricsRegistry metrics_;
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<SegmentMemory> memory_;
  std::unique_ptr<DataServer> data_;
  std::unique_ptr<ShmServer> shm_;
  std::thread thread_;
  std::shared_ptr<SegmentEndpoint> endpoint_;
};

TransportOptions Options(unsigned streams = 3, uint64_t split = 4096) {
  TransportOptions o;
  o.hello.client_id = "transport-test";
  o.hello.host_id = "h";
  o.tcp_streams = streams;
  o.tcp_split_bytes = split;
  o.io_timeout = 1000ms;
  o.connect_timeout = 1000ms;
  return o;
}

TransferOp Op(std::shared_ptr<const SegmentEndpoint> seg, Path path, uint64_t offset,
              uint64_t length, uint8_t* local, bool write) {
  TransferOp op;
  op.segment = std::move(seg);
  op.path = path;
  op.offset = offset;
  op.length = length;
  op.local = local;
  op.write = write;
  return op;
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 131 + (i >> 9));
  return v;
}

TEST_CASE("transport: split pieces over several streams land exactly, both paths") {
  LocalStore store;
  Transport t(Options());
  for (Path path : {Path::kTcp, Path::kShm}) {
    CAPTURE(static_cast<int>(path));
    // Odd sizes: pieces of 4 KiB plus a tail, spread over three streams.
    std::vector<std::vector<uint8_t>> src, dst;
    std::vector<TransferOp> writes, reads;
    uint64_t at = 0;
    for (int i = 0; i < 6; ++i) {
      size_t n = 1 + static_cast<size_t>(i) * 37'001;
      src.push_back(Pattern(n, static_cast<uint8_t>(i + (path == Path::kShm ? 100 : 0))));
      dst.emplace_back(n, 0);
      writes.push_back(Op(store.endpoint(), path, at, n, src.back().data(), true));
      reads.push_back(Op(store.endpoint(), path, at, n, dst.back().data(), false));
      at += n;
    }
    t.Run(writes);
    for (auto& op : writes) CHECK(op.result.ok());
    t.Run(reads);
    for (size_t i = 0; i < reads.size(); ++i) {
      CHECK(reads[i].result.ok());
      CHECK(dst[i] == src[i]);
      CHECK(std::memcmp(store.bytes() + reads[i].offset, src[i].data(), src[i].size()) == 0);
    }
  }
  CHECK(t.counters().shm_transfers == 12);
  CHECK(t.counters().tcp_transfers == 12);
  CHECK(t.counters().shm_attaches == 1);
}

TEST_CASE("transport: every out-of-range class is refused, nothing moves, connections live on") {
  LocalStore store;
  Transport t(Options(1, 1 << 20));
  std::vector<uint8_t> buf(64, 0xAB);
  std::memset(store.bytes(), 0, kSegment);
  struct Range {
    uint64_t offset, length;
  };
  // Past the end; straddling it; well beyond it; offset + length wrapping
  // past 2^64 (both ways); an offset of 2^64 - 1.
  const Range bad[] = {{kSegment, 1},         {kSegment - 1, 2}, {kSegment + 4096, 64},
                       {UINT64_MAX - 7, 16},  {1, UINT64_MAX},   {UINT64_MAX, 1}};
  // The client refuses them itself, against the size in the descriptor,
  // before it connects anywhere.
  for (Path path : {Path::kTcp, Path::kShm}) {
    for (const Range& r : bad) {
      CAPTURE(r.offset);
      CAPTURE(r.length);
      for (bool write : {true, false}) {
        std::vector<TransferOp> ops = {Op(store.endpoint(), path, r.offset, r.length,
                                          buf.data(), write)};
        t.Run(ops);
        CHECK(ops[0].result.code() == ErrorCode::INVALID_PARAMS);
      }
    }
  }
  CHECK(t.counters().tcp_connections_opened == 0);
  CHECK(t.counters().shm_attaches == 0);

  // A descriptor that overstates the segment: the store's own check refuses
  // what reaches it, and the connection goes on.
  auto lying = std::make_shared<SegmentEndpoint>(*store.endpoint());
  lying->size = 2 * kSegment;
  std::vector<uint8_t> big(kSegment + 1);
  const Range beyond[] = {{kSegment, 1}, {kSegment - 1, 2}, {kSegment + 4096, 64}};
  for (const Range& r : beyond) {
    CAPTURE(r.offset);
    std::vector<TransferOp> ops = {Op(lying, Path::kTcp, r.offset, r.length, buf.data(), true),
                                   Op(lying, Path::kTcp, r.offset, r.length, buf.data(), false)};
    t.Run(ops);
    CHECK(ops[0].result.code() == ErrorCode::INVALID_WRITE);
    CHECK(ops[1].result.code() == ErrorCode::INVALID_READ);
    // Over shared memory the store's answer names the true size, and the
    // client will not map a segment whose descriptor disagrees with it.
    std::vector<TransferOp> shm = {Op(lying, Path::kShm, r.offset, r.length, buf.data(), true)};
    t.Run(shm);
    CHECK(shm[0].result.code() == ErrorCode::TRANSFER_FAIL);
  }
  std::vector<TransferOp> whole = {Op(lying, Path::kTcp, 0, kSegment + 1, big.data(), false)};
  t.Run(whole);
  CHECK(whole[0].result.code() == ErrorCode::INVALID_READ);
  // Nothing was written anywhere in the segment.
  std::vector<uint8_t> zero(kSegment, 0);
  CHECK(std::memcmp(store.bytes(), zero.data(), kSegment) == 0);
  // One TCP connection served every refusal and still works.
  std::vector<TransferOp> ok = {Op(store.endpoint(), Path::kTcp, 0, 64, buf.data(), true)};
  t.Run(ok);
  CHECK(ok[0].result.ok());
  CHECK(t.counters().tcp_connections_opened == 1);
}

// A fake store: says Hello properly, then answers the first request with
// whatever `answer` produces for its header, or not at all.
class FakeStore {
 public:
  using Answer = std::function<std::string(const FrameHeader&)>;
  // `close_after`: close the connection once the answer is sent, instead of
  // holding it until the client gives up. `chunk` > 0: send the answer
  // `chunk` bytes at a time, `gap` apart (a slow link).
  explicit FakeStore(Answer answer, bool close_after = false, size_t chunk = 0,
                     std::chrono::milliseconds gap = {})
      : answer_(std::move(answer)), close_after_(close_after), chunk_(chunk), gap_(gap) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listen_fd_, 8) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeStore() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
  }
  std::shared_ptr<const SegmentEndpoint> endpoint() const {
    auto e = std::make_shared<SegmentEndpoint>();
    e->name = "fake";
    e->size = kSegment;
    e->tcp = "127.0.0.1:" + std::to_string(port_);
    return e;
  }

 private:
  void Serve() {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    Deadline d = std::chrono::steady_clock::now() + 5s;
    FrameHeader head;
    std::string body;
    if (RecvFrame(fd, head, body, kMaxBodyBeforeHello, d, "client").ok()) {
      std::string hello = EncodeFrame(MsgType::kHello, kFlagResponse, head.request_id,
                                      HelloResponse{});
      (void)SendAll(fd, hello.data(), hello.size(), d, "client");
      unsigned char raw[kFrameHeaderBytes];
      if (RecvExact(fd, raw, sizeof raw, d, "client").ok() &&
          DecodeHeader(raw, UINT32_MAX, head).ok()) {
        // The request's range too, so that a close below is an orderly
        // end of stream rather than a reset for unread bytes.
        std::string range(std::min<uint32_t>(head.body_bytes, kDataRangeBytes), '\0');
        (void)RecvExact(fd, range.data(), range.size(), d, "client");
        std::string reply = answer_(head);
        size_t step = chunk_ > 0 ? chunk_ : reply.size();
        for (size_t at = 0; at < reply.size(); at += step) {
          if (at > 0) std::this_thread::sleep_for(gap_);
          d = std::chrono::steady_clock::now() + 5s;
          size_t n = std::min(step, reply.size() - at);
          if (!SendAll(fd, reply.data() + at, n, d, "client").ok()) break;
        }
      }
    }
    // Hold the connection until the client gives up.
    char c;
    while (!close_after_ && ::recv(fd, &c, 1, 0) > 0) {
    }
    ::close(fd);
  }

  Answer answer_;
  const bool close_after_;
  const size_t chunk_;
  const std::chrono::milliseconds gap_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

std::string Header(uint16_t type, uint16_t flags, uint64_t id, uint32_t body_bytes) {
  FrameHeader h;
  h.type = type;
  h.flags = flags;
  h.request_id = id;
  h.body_bytes = body_bytes;
  std::string out(kFrameHeaderBytes, '\0');
  EncodeHeader(h, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

TEST_CASE("transport: a misbehaving store fails the transfer, never the client") {
  std::vector<uint8_t> buf(4096, 0x5A);
  struct Case {
    const char* name;
    FakeStore::Answer answer;
  };
  const Case cases[] = {
      {"wrong request id",
       [](const FrameHeader& h) { return Header(h.type, kFlagResponse, h.request_id + 7, 4096) +
                                         std::string(4096, 'x'); }},
      {"read answer of the wrong length",
       [](const FrameHeader& h) { return Header(h.type, kFlagResponse, h.request_id, 100) +
                                         std::string(100, 'x'); }},
      {"oversized error body",
       [](const FrameHeader& h) {
         return Header(h.type, kFlagResponse | kFlagError, h.request_id, 1u << 30);
       }},
      {"bad magic", [](const FrameHeader&) { return std::string(kFrameHeaderBytes, 'Z'); }},
      {"not a response",
       [](const FrameHeader& h) { return Header(h.type, 0, h.request_id, 0); }},
      {"closes mid-answer",
       [](const FrameHeader& h) { return Header(h.type, kFlagResponse, h.request_id, 4096) +
                                         std::string(10, 'x'); }},
      {"never answers", [](const FrameHeader&) { return std::string(); }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    std::fill(buf.begin(), buf.end(), 0x5A);
    FakeStore fake(c.answer);
    TransportOptions o = Options(1, 1 << 20);
    o.io_timeout = 300ms;
    Transport t(o);
    std::vector<TransferOp> ops = {Op(fake.endpoint(), Path::kTcp, 0, 4096, buf.data(), false)};
    auto started = std::chrono::steady_clock::now();
    t.Run(ops);
    CHECK(ops[0].result.code() == ErrorCode::TRANSFER_FAIL);
    // Bounded by the inactivity timeout (generously: no timing is asserted
    // beyond "does not hang").
    CHECK(std::chrono::steady_clock::now() - started < 10s);
    t.Close();
  }
}

// The client raises SO_RCVLOWAT while a large read's body arrives (fewer
// wake-ups). It must never wait for more than the store promised, and a
// connection must go back to the pool ready to read a single byte again.
TEST_CASE(
    "transport: large reads with errors between them, then small reads on the same connections") {
  LocalStore store;
  Transport t(Options(1, 1 << 20));
  // Two objects of 1.5 MiB (pieces of 1 MiB and 512 KiB), one byte, and a
  // read past the segment's end between them, which only the store refuses
  // (the descriptor overstates the segment): a short error answer where a
  // large body was asked for.
  constexpr uint64_t kBig = (3u << 20) / 2;
  auto lying = std::make_shared<SegmentEndpoint>(*store.endpoint());
  lying->size = 2 * kSegment;
  std::vector<uint8_t> a = Pattern(kBig, 7), b = Pattern(kBig, 9), one = Pattern(1, 3);
  std::vector<TransferOp> writes = {
      Op(store.endpoint(), Path::kTcp, 0, kBig, a.data(), true),
      Op(store.endpoint(), Path::kTcp, kBig, kBig, b.data(), true),
      Op(store.endpoint(), Path::kTcp, 2 * kBig, 1, one.data(), true)};
  t.Run(writes);
  for (auto& op : writes) REQUIRE(op.result.ok());
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    std::vector<uint8_t> ga(kBig, 0), gb(kBig, 0), gone(1, 0), junk(kBig, 0);
    std::vector<TransferOp> reads = {
        Op(store.endpoint(), Path::kTcp, 0, kBig, ga.data(), false),
        Op(lying, Path::kTcp, kSegment - 10, kBig, junk.data(), false),
        Op(store.endpoint(), Path::kTcp, kBig, kBig, gb.data(), false),
        Op(store.endpoint(), Path::kTcp, 2 * kBig, 1, gone.data(), false)};
    t.Run(reads);
    CHECK(reads[0].result.ok());
    CHECK(reads[1].result.code() == ErrorCode::INVALID_READ);
    CHECK(reads[2].result.ok());
    CHECK(reads[3].result.ok());
    CHECK(ga == a);
    CHECK(gb == b);
    CHECK(gone == one);
    // The pooled connection then serves a read of one byte at once: a low
    // water mark left raised would stall it until the inactivity timeout.
    std::vector<uint8_t> small(1, 0);
    std::vector<TransferOp> tiny = {
        Op(store.endpoint(), Path::kTcp, 2 * kBig, 1, small.data(), false)};
    t.Run(tiny);
    CHECK(tiny[0].result.ok());
    CHECK(small == one);
  }
  CHECK(t.counters().tcp_connections_opened == 1);
}

// For a batch of small reads the mark also counts the answers still to
// come, which only holds while each succeeds: an error answer is shorter,
// and the stream must then fall back to the bytes announced instead of
// waiting for io_timeout. The worst place for the error is last.
TEST_CASE("transport: a batch of small reads with error answers, last and in the middle") {
  LocalStore store;
  TransportOptions o = Options(1, 1 << 20);
  o.io_timeout = 2000ms;  // a stall would fail the batch with "no progress"
  Transport t(o);
  constexpr uint64_t kObj = 64 << 10;
  constexpr int kCount = 24;  // 1.5 MiB of answers expected when all succeed
  std::vector<std::vector<uint8_t>> src;
  std::vector<TransferOp> writes;
  for (int i = 0; i < kCount; ++i) {
    src.push_back(Pattern(kObj, static_cast<uint8_t>(i)));
    writes.push_back(Op(store.endpoint(), Path::kTcp, i * kObj, kObj, src.back().data(), true));
  }
  t.Run(writes);
  for (auto& op : writes) REQUIRE(op.result.ok());
  auto lying = std::make_shared<SegmentEndpoint>(*store.endpoint());
  lying->size = 2 * kSegment;  // the client sends it; the store refuses it
  for (std::vector<int> refused :
       {std::vector<int>{kCount - 1}, std::vector<int>{3, 11}, std::vector<int>{0, kCount - 1}}) {
    CAPTURE(refused[0]);
    std::vector<std::vector<uint8_t>> got(kCount, std::vector<uint8_t>(kObj, 0));
    std::vector<TransferOp> reads;
    for (int i = 0; i < kCount; ++i) {
      bool bad = std::find(refused.begin(), refused.end(), i) != refused.end();
      reads.push_back(bad ? Op(lying, Path::kTcp, kSegment + i * kObj, kObj, got[i].data(), false)
                          : Op(store.endpoint(), Path::kTcp, i * kObj, kObj, got[i].data(), false));
    }
    t.Run(reads);
    for (int i = 0; i < kCount; ++i) {
      CAPTURE(i);
      bool bad = std::find(refused.begin(), refused.end(), i) != refused.end();
      if (bad) {
        CHECK(reads[i].result.code() == ErrorCode::INVALID_READ);
      } else {
        CHECK(reads[i].result.ok());
        CHECK(got[i] == src[i]);
      }
    }
    // The connection goes back to the pool and serves one byte at once.
    std::vector<uint8_t> one(1, 0);
    std::vector<TransferOp> tiny = {Op(store.endpoint(), Path::kTcp, kObj, 1, one.data(), false)};
    t.Run(tiny);
    CHECK(tiny[0].result.ok());
    CHECK(one[0] == src[1][0]);
  }
  CHECK(t.counters().tcp_connections_opened == 1);
}

// A slow link: a 2 MiB answer comes 64 KiB every 120 ms, so a megabyte
// (1.9 s) takes longer than io_timeout (1.5 s) although bytes never stop
// coming, at most 120 ms apart. A raised low-water mark keeps poll from
// waking for them; they still count as progress.
TEST_CASE("transport: a large answer that trickles in slower than the mark is not a timeout") {
  constexpr uint32_t kBody = 2u << 20;
  FakeStore fake(
      [](const FrameHeader& h) {
        std::string body(kBody, '\0');
        for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 + (i >> 12));
        return Header(h.type, kFlagResponse, h.request_id, kBody) + body;
      },
      /*close_after=*/false, 64 << 10, 120ms);
  TransportOptions o = Options(1, 4 << 20);  // one piece of 2 MiB
  o.io_timeout = 1500ms;
  Transport t(o);
  std::vector<uint8_t> buf(kBody, 0);
  std::vector<TransferOp> ops = {Op(fake.endpoint(), Path::kTcp, 0, kBody, buf.data(), false)};
  t.Run(ops);
  CAPTURE(ops[0].result.message());
  REQUIRE(ops[0].result.ok());
  bool same = true;
  for (size_t i = 0; i < buf.size() && same; ++i) {
    same = buf[i] == static_cast<uint8_t>(i * 7 + (i >> 12));
  }
  CHECK(same);
  t.Close();
}

TEST_CASE("transport: a store that closes in the middle of a large body fails the read at once") {
  // Announces a 1 MiB body, sends 300 KiB of it and closes: the end of the
  // stream must wake the client although fewer bytes than it waits for came.
  FakeStore fake(
      [](const FrameHeader& h) {
        return Header(h.type, kFlagResponse, h.request_id, 1u << 20) + std::string(300u << 10, 'x');
      },
      /*close_after=*/true);
  TransportOptions o = Options(1, 1 << 20);
  o.io_timeout = 60s;  // a wait for the timeout would fail the message check below
  Transport t(o);
  std::vector<uint8_t> buf(1 << 20, 0);
  std::vector<TransferOp> ops = {Op(fake.endpoint(), Path::kTcp, 0, 1 << 20, buf.data(), false)};
  t.Run(ops);
  CHECK(ops[0].result.code() == ErrorCode::TRANSFER_FAIL);
  CAPTURE(ops[0].result.message());
  CHECK(ops[0].result.message().find("closed the connection") != std::string::npos);
}

TEST_CASE("transport: a store that is not there fails fast with the reason") {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // the port is now (almost certainly) closed
  auto seg = std::make_shared<SegmentEndpoint>();
  seg->name = "gone";
  seg->size = kSegment;
  seg->tcp = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  seg->shm = "@kvcached-transport-test/nobody-" + std::to_string(getpid());
  Transport t(Options());
  std::vector<uint8_t> buf(100);
  std::vector<TransferOp> ops = {Op(seg, Path::kTcp, 0, 100, buf.data(), false),
                                 Op(seg, Path::kShm, 0, 100, buf.data(), false)};
  t.Run(ops);
  CHECK(ops[0].result.code() == ErrorCode::TRANSFER_FAIL);
  CHECK(ops[0].result.message().find("refused") != std::string::npos);
  CHECK(ops[1].result.code() == ErrorCode::TRANSFER_FAIL);
  CHECK_FALSE(t.Reaches(Path::kShm, *seg));
}

TEST_CASE("transport: checksums are never 0, so 0 can mean none") {
  std::vector<uint8_t> a = Pattern(1000, 1), b = a;
  CHECK(ObjectChecksum(a.data(), a.size()) == ObjectChecksum(b.data(), b.size()));
  b[999] ^= 1;
  CHECK(ObjectChecksum(a.data(), a.size()) != ObjectChecksum(b.data(), b.size()));
  CHECK(ObjectChecksum(nullptr, 0) != 0);
}

}  // namespace
}  // namespace kvcached
