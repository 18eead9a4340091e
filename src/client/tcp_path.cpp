#include "client/tcp_path.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t
#include "client/checksum.h"
#include "core/wire.h"
#include "net/socket_util.h"

namespace kvcached {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kMaxPieceBytes = 1ull << 30;  // a frame body is at most 4 GiB - 1
constexpr uint32_t kMaxSmallBody = 8192;         // error and status answers
constexpr size_t kMaxIdlePerPeer = 16;
// SO_RCVLOWAT while read answers arrive (see Stream::SetLowWater): only
// when this many bytes are expected, and at most this much. A mark that
// counts on answers not yet announced is given up after kSpeculation
// without the socket becoming readable (an error answer was shorter).
constexpr uint64_t kMinLowWater = 128 << 10;
constexpr uint64_t kMaxLowWater = 1 << 20;
constexpr std::chrono::milliseconds kSpeculation{5};

std::string StoreName(const SegmentEndpoint& s, const std::string& where) {
  return "store of segment '" + s.name + "' (tcp " + where + ")";
}

}  // namespace

// The checksum of one TCP read, computed as its bytes arrive: each chunk
// is hashed right after the recv that wrote it (no more than the socket
// buffer held), while it is still in cache, instead of in a second pass
// over memory once the batch is done.
// The pieces of a read may travel on different connections; the hash
// takes the bytes in order, so a piece that arrives ahead of its
// predecessor waits (in memory) for it.
struct TcpPath::TcpHash {
  struct StateFree {
    void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
  };
  struct Part {
    const uint64_t* moved;  // the piece's bytes received so far
    uint64_t length;
    uint64_t offset;  // in the segment: orders the parts
  };

  TransferOp* op = nullptr;
  std::unique_ptr<XXH3_state_t, StateFree> state;
  std::vector<Part> parts;  // the op's pieces, in order
  size_t next = 0;          // the part holding byte `hashed`
  uint64_t next_start = 0;  // where that part starts in the op
  uint64_t hashed = 0;      // bytes from the op's start already hashed

  // Hashes what has become contiguous since the last call.
  void Advance() {
    while (next < parts.size()) {
      const Part& p = parts[next];
      uint64_t upto = next_start + *p.moved;
      if (upto > hashed) {
        KVCACHED_XXH3_UPDATE(state.get(), op->local + hashed, upto - hashed);
        hashed = upto;
      }
      if (*p.moved < p.length) return;
      next_start += p.length;
      ++next;
    }
  }
  uint64_t Digest() const {
    uint64_t h = XXH3_64bits_digest(state.get());
    return h == 0 ? 1 : h;  // as ObjectChecksum
  }
};

// One TCP connection's share of a batch: pieces sent back to back
// (pipelined) and answered in order.
struct TcpPath::Stream {
  struct Piece {
    TransferOp* op;
    uint64_t offset;
    uint64_t length;
    uint8_t* local;
    TcpHash* hash = nullptr;  // when the op's checksum is computed on the way
    uint64_t moved = 0;       // a read's bytes received into `local`
  };

  std::string address;
  std::string peer;
  int fd = -1;
  std::vector<Piece> pieces;
  uint64_t bytes = 0;  // assigned, for balancing
  // Sending: the frame of pieces[send_idx], `sent` bytes of it so far.
  static constexpr size_t kHeadBytes = kFrameHeaderBytes + kDataRangeBytes;
  std::vector<std::array<unsigned char, kHeadBytes>> heads;
  size_t send_idx = 0;
  uint64_t sent = 0;
  // Receiving: the answer to pieces[recv_idx].
  size_t recv_idx = 0;
  unsigned char recv_head[kFrameHeaderBytes] = {};
  size_t head_got = 0;
  FrameHeader head;
  std::string small;  // an error or status body
  uint64_t body_got = 0;
  Clock::time_point last_progress;
  int low_water = 1;  // the socket's SO_RCVLOWAT
  bool speculative = false;     // the mark counts bytes of answers not yet announced
  bool no_speculation = false;  // a speculative mark ran out its time in this batch
  Clock::time_point speculating_since;

  // While read answers are coming, poll wakes only once the bytes still
  // expected (up to kMaxLowWater) have arrived: one wake-up and one recv
  // per megabyte instead of one per segment the kernel delivers, also for a
  // batch of small objects. Bytes the store has announced (the rest of the
  // body being read) are sure to come; those of later answers only if each
  // succeeds, since an error answer is shorter. Such a mark is
  // `speculative`: when it has held the poll for kSpeculation without the
  // socket becoming readable, the stream falls back, for the rest of the
  // batch, to announced bytes only. Back to 1 when nothing large is due.
  void SetLowWater() {
    uint64_t promised = 0, expected = 0;
    if (recv_idx < pieces.size()) {
      if (head_got == kFrameHeaderBytes) {
        if (body_got < head.body_bytes) promised = head.body_bytes - body_got;
        expected = promised;
      } else {
        expected = kFrameHeaderBytes - head_got + AnswerBody(pieces[recv_idx]);
      }
      for (size_t i = recv_idx + 1; i < pieces.size() && expected < kMaxLowWater; ++i) {
        expected += kFrameHeaderBytes + AnswerBody(pieces[i]);
      }
    }
    uint64_t rest = no_speculation ? promised : expected;
    int want = rest >= kMinLowWater ? static_cast<int>(std::min(rest, kMaxLowWater)) : 1;
    bool spec = want > 1 && static_cast<uint64_t>(want) > promised;
    if (spec && !speculative) speculating_since = Clock::now();
    speculative = spec;
    if (want == low_water || fd < 0) return;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof want) == 0) {
      low_water = want;
    } else if (want == 1) {
      // Left raised it could hold back a short answer; the connection is
      // not reused (the kernel caps the mark at half the receive buffer,
      // so a large body itself always arrives).
      Broken("cannot reset SO_RCVLOWAT on the connection to " + peer + ": " + std::strerror(errno));
    }
  }

  static uint64_t AnswerBody(const Piece& p) { return p.op->write ? 0 : p.length; }

  bool active() const { return fd >= 0 && recv_idx < pieces.size(); }
  bool write() const { return pieces[0].op->write; }

  void Broken(const std::string& why) {
    for (size_t i = recv_idx; i < pieces.size(); ++i) {
      FailOp(*pieces[i].op, ErrorCode::TRANSFER_FAIL, why);
    }
    recv_idx = pieces.size();
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  // Encodes every piece's request head (header + range) once, up front.
  void PrepareHeads() {
    heads.resize(pieces.size());
    for (size_t i = 0; i < pieces.size(); ++i) {
      const Piece& p = pieces[i];
      FrameHeader h;
      h.type = static_cast<uint16_t>(p.op->write ? MsgType::kDataWrite : MsgType::kDataRead);
      h.request_id = i;
      h.body_bytes = static_cast<uint32_t>(kDataRangeBytes + (p.op->write ? p.length : 0));
      EncodeHeader(h, heads[i].data());
      WireWriter w;
      w.U64(p.offset);
      w.U64(p.length);
      std::memcpy(heads[i].data() + kFrameHeaderBytes, w.buffer().data(), kDataRangeBytes);
    }
  }

  uint64_t FrameBytes(size_t i) const {
    return kHeadBytes + (pieces[i].op->write ? pieces[i].length : 0);
  }

  // Sends as much as the socket takes, many frames per system call (a
  // batch of reads is a few KB of heads in one segment, not one per key).
  // False when the connection broke.
  bool Send() {
    constexpr size_t kMaxIov = 64;
    while (send_idx < pieces.size()) {
      iovec iov[kMaxIov];
      size_t n_iov = 0;
      uint64_t skip = sent;  // bytes of pieces[send_idx]'s frame already sent
      for (size_t i = send_idx; i < pieces.size() && n_iov + 2 <= kMaxIov; ++i) {
        const Piece& p = pieces[i];
        if (skip < kHeadBytes) {
          iov[n_iov++] = {heads[i].data() + skip, kHeadBytes - skip};
          if (p.op->write) iov[n_iov++] = {p.local, p.length};
        } else {
          iov[n_iov++] = {p.local + (skip - kHeadBytes), p.length - (skip - kHeadBytes)};
        }
        skip = 0;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = n_iov;
      ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
        Broken("send to " + peer + " failed: " + std::strerror(errno));
        return false;
      }
      last_progress = Clock::now();
      uint64_t left = static_cast<uint64_t>(n);
      while (left > 0) {
        uint64_t rest = FrameBytes(send_idx) - sent;
        if (left < rest) {
          sent += left;
          break;
        }
        left -= rest;
        sent = 0;
        ++send_idx;
      }
    }
    return true;
  }

  // Reads as much as has arrived. The rest of a read's body and the next
  // answer's header come in one system call. False when the connection
  // broke.
  bool Receive() {
    while (recv_idx < pieces.size()) {
      ssize_t n;
      if (head_got < kFrameHeaderBytes) {
        n = ::recv(fd, recv_head + head_got, kFrameHeaderBytes - head_got, MSG_DONTWAIT);
        if (!Progress(n)) return fd >= 0;
        head_got += static_cast<size_t>(n);
        if (head_got == kFrameHeaderBytes && !CheckHeader()) return false;
        continue;
      }
      uint64_t next_head = 0;  // bytes of the next answer's header that came along
      if (body_got < head.body_bytes) {
        Piece& p = pieces[recv_idx];
        // A read's bytes land in the caller's memory; status and error
        // answers in `small`.
        bool into_local = !p.op->write && !(head.flags & kFlagError);
        char* dst = into_local ? reinterpret_cast<char*>(p.local) : small.data();
        uint64_t want = head.body_bytes - body_got;
        iovec iov[2] = {{dst + body_got, want}, {recv_head, kFrameHeaderBytes}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = recv_idx + 1 < pieces.size() ? 2 : 1;
        n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
        if (!Progress(n)) return fd >= 0;
        uint64_t got = std::min<uint64_t>(static_cast<uint64_t>(n), want);
        next_head = static_cast<uint64_t>(n) - got;
        body_got += got;
        if (into_local) {
          p.moved = body_got;
          if (p.hash != nullptr) p.hash->Advance();
        }
      }
      if (body_got == head.body_bytes) {
        Answered();
        head_got = next_head;
        if (head_got == kFrameHeaderBytes && !CheckHeader()) return false;
      }
    }
    return true;
  }

  // Accounts for a recv() result; false when nothing more can be read now
  // (the stream is marked broken on EOF or error).
  bool Progress(ssize_t n) {
    if (n > 0) {
      last_progress = Clock::now();
      return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
    Broken(n == 0 ? peer + " closed the connection"
                  : "receive from " + peer + " failed: " + std::strerror(errno));
    return false;
  }

  bool CheckHeader() {
    const Piece& p = pieces[recv_idx];
    Status st = DecodeHeader(recv_head, UINT32_MAX, head);
    MsgType want = p.op->write ? MsgType::kDataWrite : MsgType::kDataRead;
    std::string why;
    if (!st.ok()) {
      why = st.message();
    } else if (head.version != kRpcVersion) {
      why = "protocol version " + std::to_string(head.version);
    } else if (!(head.flags & kFlagResponse) || head.type != static_cast<uint16_t>(want) ||
               head.request_id != recv_idx) {
      why = "an answer out of order";
    } else if (head.flags & kFlagError || p.op->write) {
      if (head.body_bytes > kMaxSmallBody) why = "an oversized status answer";
    } else if (head.body_bytes != p.length) {
      why = "a read answer of " + std::to_string(head.body_bytes) + " bytes for " +
            std::to_string(p.length);
    }
    if (!why.empty()) {
      Broken("bad answer from " + peer + ": " + why);
      return false;
    }
    body_got = 0;
    if (head.flags & kFlagError || p.op->write) small.resize(head.body_bytes);
    return true;
  }

  void Answered() {
    const Piece& p = pieces[recv_idx];
    if (head.flags & kFlagError) {
      ErrorBody err;
      (void)DecodeBody(small, err);
      FailOp(*p.op, ErrorCodeFromInt(err.code).value_or(ErrorCode::TRANSFER_FAIL),
             peer + " refused the transfer: " + err.message);
    } else if (p.op->write) {
      StatusResponse res;
      if (!DecodeBody(small, res).ok()) {
        FailOp(*p.op, ErrorCode::TRANSFER_FAIL, "bad write answer from " + peer);
      } else if (res.code != 0) {
        FailOp(*p.op, ErrorCodeFromInt(res.code).value_or(ErrorCode::TRANSFER_FAIL),
               peer + " refused the write: " + res.message);
      }
    }
    ++recv_idx;
    head_got = 0;
    body_got = 0;
  }
};

TcpPath::TcpPath(const TransportOptions& options, TransportCounters& counters)
    : options_(options), counters_(counters) {}

TcpPath::~TcpPath() { Close(); }

void TcpPath::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [address, fds] : idle_) {
    for (int fd : fds) ::close(fd);
  }
  idle_.clear();
}

Result<int> TcpPath::AcquireConnection(const std::string& address, const std::string& peer) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = idle_.find(address);
    while (it != idle_.end() && !it->second.empty()) {
      int fd = it->second.back();
      it->second.pop_back();
      if (IdleConnectionAlive(fd)) return fd;
      ::close(fd);  // the store closed it while idle
    }
  }
  Deadline deadline = Clock::now() + options_.connect_timeout;
  Result<int> fd = ConnectTcp(address, deadline, peer);
  if (!fd.ok()) return fd;
  Result<HelloResponse> hello =
      SayHello(*fd, options_.hello, Clock::now() + options_.io_timeout, peer);
  if (!hello.ok()) {
    ::close(*fd);
    return hello.status();
  }
  if (!hello->segment.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    served_[address] = {hello->segment, hello->segment_size};
  }
  counters_.tcp_connections_opened++;
  return fd;
}

void TcpPath::ReleaseConnection(const std::string& address, int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int>& fds = idle_[address];
  if (fds.size() >= kMaxIdlePerPeer) {
    ::close(fd);
    return;
  }
  fds.push_back(fd);
}

void TcpPath::Run(std::vector<TransferOp*>& ops) {
  std::vector<std::unique_ptr<Stream>> streams;
  std::map<std::string, std::vector<TransferOp*>> by_store;
  for (TransferOp* op : ops) by_store[op->segment->tcp].push_back(op);
  for (auto& [address, store_ops] : by_store) Plan(address, store_ops, streams);
  std::map<TransferOp*, std::unique_ptr<TcpHash>> hashes = HashOnTheWay(streams);
  Drive(streams);
  for (auto& s : streams) {
    if (s->fd >= 0) ReleaseConnection(s->address, s->fd);
    s->fd = -1;
  }
  for (auto& [op, h] : hashes) {
    if (op->result.ok() && h->state && h->hashed == op->length) op->checksum = h->Digest();
  }
}

// One store's ops: up to tcp_streams connections (fewer for a small batch),
// each op split into pieces spread over them by bytes assigned.
void TcpPath::Plan(const std::string& address, std::vector<TransferOp*>& store_ops,
                   std::vector<std::unique_ptr<Stream>>& streams) {
  // Client::Open refuses other values; the clamp guards direct users.
  uint64_t split = std::clamp<uint64_t>(options_.tcp_split_bytes, 4096, kMaxPieceBytes);
  std::string peer = StoreName(*store_ops[0]->segment, address);
  uint64_t total = 0;
  for (TransferOp* op : store_ops) total += op->length;
  uint64_t want =
      std::clamp<uint64_t>((total + split - 1) / split, 1, std::max(1u, options_.tcp_streams));
  std::vector<std::unique_ptr<Stream>> mine;
  Status first_error;
  for (uint64_t i = 0; i < want; ++i) {
    Result<int> fd = AcquireConnection(address, peer);
    if (!fd.ok()) {
      first_error = fd.status();
      break;  // use the connections there are
    }
    auto s = std::make_unique<Stream>();
    s->address = address;
    s->peer = peer;
    s->fd = *fd;
    mine.push_back(std::move(s));
  }
  if (mine.empty()) {
    for (TransferOp* op : store_ops) FailOp(*op, ErrorCode::TRANSFER_FAIL, first_error.message());
    return;
  }
  RefuseWrongStore(address, peer, store_ops);
  for (TransferOp* op : store_ops) {
    for (uint64_t at = 0; at < op->length; at += split) {
      uint64_t len = std::min(split, op->length - at);
      Stream* s = std::min_element(mine.begin(), mine.end(), [](const auto& a, const auto& b) {
                    return a->bytes < b->bytes;
                  })->get();
      s->pieces.push_back({op, op->offset + at, len, op->local + at});
      s->bytes += len + 64;  // a little per piece, so empty ones balance too
    }
    counters_.tcp_transfers++;
  }
  for (auto& s : mine) {
    if (s->pieces.empty()) {
      ReleaseConnection(s->address, s->fd);
      s->fd = -1;
    } else {
      streams.push_back(std::move(s));
    }
  }
}

// The store at this address must be the segment the master named: an
// endpoint that points at another store's port (a stale descriptor, or a
// mount that names someone else's store) would read or write bytes of
// objects that are not the caller's. Fails and drops the ops it refuses.
void TcpPath::RefuseWrongStore(const std::string& address, const std::string& peer,
                               std::vector<TransferOp*>& store_ops) {
  std::optional<std::pair<std::string, uint64_t>> served;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = served_.find(address); it != served_.end()) served = it->second;
  }
  if (!served) return;
  auto wrong = [&](TransferOp* op) {
    if (op->segment->name == served->first && op->segment->size == served->second) return false;
    FailOp(*op, ErrorCode::TRANSFER_FAIL,
           peer + " serves segment '" + served->first + "' of " + std::to_string(served->second) +
               " bytes, not segment '" + op->segment->name + "' of " +
               std::to_string(op->segment->size));
    return true;
  };
  store_ops.erase(std::remove_if(store_ops.begin(), store_ops.end(), wrong), store_ops.end());
}

// Checksums on the way: each wanting read's pieces, in segment order.
std::map<TransferOp*, std::unique_ptr<TcpPath::TcpHash>> TcpPath::HashOnTheWay(
    std::vector<std::unique_ptr<Stream>>& streams) {
  std::map<TransferOp*, std::unique_ptr<TcpHash>> hashes;
  for (auto& s : streams) {
    for (Stream::Piece& p : s->pieces) {
      if (p.op->write || !p.op->want_checksum) continue;
      std::unique_ptr<TcpHash>& h = hashes[p.op];
      if (!h) {
        h = std::make_unique<TcpHash>();
        h->op = p.op;
        h->state.reset(XXH3_createState());
        if (h->state) XXH3_64bits_reset(h->state.get());
      }
      if (!h->state) continue;  // no memory for it: the caller hashes afterwards
      h->parts.push_back({&p.moved, p.length, p.offset});
      p.hash = h.get();
    }
  }
  for (auto& [op, h] : hashes) {
    std::sort(h->parts.begin(), h->parts.end(),
              [](const TcpHash::Part& a, const TcpHash::Part& b) { return a.offset < b.offset; });
  }
  return hashes;
}

// One poll() loop over every stream until each is answered or broken; a
// stream on which nothing moved for io_timeout is broken.
void TcpPath::Drive(std::vector<std::unique_ptr<Stream>>& streams) {
  auto now = Clock::now();
  for (auto& s : streams) {
    s->last_progress = now;
    s->PrepareHeads();
    s->SetLowWater();  // a batch of reads is woken for once its first megabyte is in
  }
  std::vector<pollfd> fds;
  std::vector<Stream*> polled;
  while (true) {
    fds.clear();
    polled.clear();
    now = Clock::now();
    auto next_timeout = now + options_.io_timeout;
    for (auto& s : streams) {
      if (!s->active()) continue;
      if (now - s->last_progress >= options_.io_timeout && s->low_water > 1) {
        // Bytes may have come that the mark held back from poll (a slow
        // link): they are progress. Read them before judging.
        s->Receive();
        s->SetLowWater();
        if (!s->active()) continue;
      }
      if (now - s->last_progress >= options_.io_timeout) {
        s->Broken("no progress from " + s->peer + " for " +
                  std::to_string(options_.io_timeout.count()) + " ms");
        continue;
      }
      short events = POLLIN;
      if (s->send_idx < s->pieces.size()) events |= POLLOUT;
      fds.push_back({s->fd, events, 0});
      polled.push_back(s.get());
      next_timeout = std::min(next_timeout, s->last_progress + options_.io_timeout);
      if (s->speculative) {
        next_timeout =
            std::min(next_timeout, std::max(s->speculating_since, s->last_progress) + kSpeculation);
      }
    }
    if (polled.empty()) return;
    int rc = ::poll(fds.data(), fds.size(), std::max(1, RemainingMs(next_timeout)));
    if (rc < 0 && errno != EINTR) {
      for (Stream* s : polled) s->Broken(std::string("poll: ") + std::strerror(errno));
      return;
    }
    now = Clock::now();
    for (size_t i = 0; rc >= 0 && i < polled.size(); ++i) {
      Stream* s = polled[i];
      short re = fds[i].revents;
      if (re == 0) {
        if (s->speculative &&
            now - std::max(s->speculating_since, s->last_progress) >= kSpeculation) {
          s->no_speculation = true;
          s->SetLowWater();
        }
        continue;
      }
      if ((re & POLLOUT) && !s->Send()) continue;
      if (re & (POLLIN | POLLERR | POLLHUP)) {
        s->Receive();
        s->SetLowWater();
      }
    }
  }
}

}  // namespace kvcached
