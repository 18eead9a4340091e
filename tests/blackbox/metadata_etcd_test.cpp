// Black-box tests of MetadataClient's etcd backend against a real etcd
// (etcd_member.h): round trips, the keys as Mooncake's etcd plugin and
// etcdctl see them, the rpc_meta rule, a store publishing through it, and
// dead, silent and fake endpoints for the failures and the token.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/segment_endpoint.h"
#include "etcd_member.h"
#include "kvcached_process.h"
#include "metadata_checks.h"
#include "net/etcd_client.h"
#include "net/metadata_client.h"

namespace kvcached {
namespace {

using testing::EtcdMember;
using testing::FreePort;
using testing::KvcachedProcess;
using testing::WaitFor;
using namespace std::chrono_literals;

MetadataClientOptions Options(const std::string& url, std::chrono::milliseconds timeout = 3000ms) {
  MetadataClientOptions o;
  o.url = url;
  o.timeout = timeout;
  return o;
}

MetadataClient Client(const std::string& url, std::chrono::milliseconds timeout = 3000ms) {
  Result<MetadataClient> c = MetadataClient::Create(Options(url, timeout));
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  return std::move(c).value();
}

// The member's bytes under `key`, read the way any other etcd user reads them.
std::optional<std::string> Raw(const EtcdMember& etcd, const std::string& key) {
  Result<EtcdClient> c = EtcdClient::Create(etcd.client(), 3000ms);
  REQUIRE(c.ok());
  Result<std::optional<EtcdKeyValue>> kv = c->Get(key);
  REQUIRE_MESSAGE(kv.ok(), kv.status().ToString());
  if (!kv->has_value()) return std::nullopt;
  return (*kv)->value;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A listening socket on a free loopback port; `address` gets "127.0.0.1:port".
int ListenLoopback(std::string& address) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(fd, 8) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  return fd;
}

// A loopback listener that never accepts: the kernel completes connections,
// nothing ever answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ListenLoopback(address_);
  }
  ~SilentListener() { close(fd_); }
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  const std::string& address() const { return address_; }

 private:
  int fd_ = -1;
  std::string address_;
};

// Stands in for an etcd member: keeps each request it gets (head and body)
// and answers "{}", which the gateway's range answer for an absent key is.
class RecordingEtcd {
 public:
  RecordingEtcd() {
    fd_ = ListenLoopback(address_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~RecordingEtcd() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    close(fd_);
  }
  RecordingEtcd(const RecordingEtcd&) = delete;
  RecordingEtcd& operator=(const RecordingEtcd&) = delete;
  const std::string& address() const { return address_; }
  std::string Seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  void Serve() {
    while (!stop_) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string request;
      char buf[4096];
      ssize_t n;
      size_t head_end = std::string::npos;
      size_t want = 0;
      while ((head_end == std::string::npos || request.size() < head_end + 4 + want) &&
             (n = recv(c, buf, sizeof buf, 0)) > 0) {
        request.append(buf, static_cast<size_t>(n));
        if (head_end == std::string::npos &&
            (head_end = request.find("\r\n\r\n")) != std::string::npos) {
          size_t at = request.find("Content-Length: ");
          if (at != std::string::npos && at < head_end) want = std::stoul(request.substr(at + 16));
        }
      }
      {
        // Recorded before the answer leaves: the test reads it once answered.
        std::lock_guard<std::mutex> lock(mu_);
        seen_ += request;
      }
      const std::string answer =
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
          "Connection: close\r\n\r\n{}";
      (void)!send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      close(c);
    }
  }

  int fd_ = -1;
  std::string address_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string seen_;  // guarded by mu_
};

TEST_CASE("metadata over etcd: put, get and delete round trip, keys as etcd users see them") {
  REQUIRE_MESSAGE(access(testing::kEtcdBinary, X_OK) == 0, testing::kEtcdMissing);
  EtcdMember etcd;
  REQUIRE_MESSAGE(etcd.ready(), "etcd did not become healthy within 30 s");
  MetadataClient c = Client("etcd://" + etcd.client());
  CHECK(c.url() == "etcd://" + etcd.client());
  // The key and the bytes as stored: what Mooncake's etcd plugin reads.
  testing::CheckValueContract(c, "mooncake/ram/seg-0",
                              [&](const std::string& k) { return Raw(etcd, k); });

  // Keys are any bytes, stored as they are (no escaping, no prefix).
  const std::vector<std::string> keys = {
      "mooncake/ram/seg 0",
      "a+b",
      "x?y&key=z#frag",
      "100%",
      "%2F",
      "caf\xc3\xa9/\xe6\x97\xa5",
      std::string("nul\x00inside\xff", 11),
  };
  for (const std::string& k : keys) {
    CAPTURE(k);
    REQUIRE(c.Put(k, "value of " + k).ok());
    CHECK(Raw(etcd, k) == std::optional<std::string>("value of " + k));
    CHECK(c.Get(k)->value() == "value of " + k);
    CHECK(c.Delete(k).ok());
    CHECK_FALSE(c.Get(k)->has_value());
  }
  CHECK(c.Put("", "v").code() == ErrorCode::INVALID_PARAMS);
  CHECK(c.Get("").code() == ErrorCode::INVALID_PARAMS);
  CHECK(c.Delete("").code() == ErrorCode::INVALID_PARAMS);

  // A key another etcd user wrote is read as it is.
  Result<EtcdClient> direct = EtcdClient::Create(etcd.client(), 3000ms);
  REQUIRE(direct.ok());
  REQUIRE(direct->Put("mooncake/ram/from-mooncake", "{\"name\":\"m\"}\n").ok());
  CHECK(c.Get("mooncake/ram/from-mooncake")->value() == "{\"name\":\"m\"}\n");
}

TEST_CASE("metadata over etcd: URL forms, a dead member first, and concurrent calls") {
  EtcdMember etcd;
  REQUIRE_MESSAGE(etcd.ready(), "etcd did not become healthy within 30 s");
  const std::string dead = "127.0.0.1:" + std::to_string(FreePort());

  // Mooncake's bare form is etcd; so is the scheme in any case, and a list
  // with ',' is normalised to ';'.
  MetadataClient bare = Client(etcd.client());
  CHECK(bare.url() == "etcd://" + etcd.client());
  CHECK(bare.Put("k", "v").ok());
  MetadataClient upper = Client("ETCD://" + etcd.client());
  CHECK(upper.Get("k")->value() == "v");
  MetadataClient list = Client("etcd://" + dead + "," + etcd.client());
  CHECK(list.url() == "etcd://" + dead + ";" + etcd.client());
  CHECK(list.Get("k")->value() == "v");  // the dead one refuses; the next one answers
  MetadataClient bare_list = Client(dead + ";" + etcd.client());
  CHECK(bare_list.url() == "etcd://" + dead + ";" + etcd.client());
  CHECK(bare_list.Delete("k").ok());
  CHECK_FALSE(bare.Get("k")->has_value());

  // One client, many threads.
  MetadataClient c = Client("etcd://" + etcd.client());
  CHECK(testing::RoundTripsFromThreads(c, 4, 10) == 0);
}

TEST_CASE("metadata over etcd: the rpc_meta rule and the bound on values") {
  EtcdMember etcd;
  REQUIRE_MESSAGE(etcd.ready(), "etcd did not become healthy within 30 s");
  MetadataClientOptions o = Options("etcd://" + etcd.client());
  o.max_response_body_bytes = 1000;
  Result<MetadataClient> made = MetadataClient::Create(o);
  REQUIRE(made.ok());
  const MetadataClient& c = *made;

  // An rpc_meta key keeps its bytes until deleted; the same bytes again are OK.
  const std::string node = "mooncake/rpc_meta/node-a";
  CHECK(c.Put(node, "10.0.0.1:1234").ok());
  CHECK(c.Put(node, "10.0.0.1:1234").ok());
  Status st = c.Put(node, "10.0.0.2:1234");
  CHECK(st.code() == ErrorCode::ETCD_OPERATION_ERROR);
  CHECK(Contains(st.message(), "Delete it first"));
  CHECK(Contains(st.message(), node));
  CHECK(Contains(st.message(), c.url()));
  CHECK(Raw(etcd, node) == std::optional<std::string>("10.0.0.1:1234"));
  CHECK(c.Delete(node).ok());
  CHECK(c.Put(node, "10.0.0.2:1234").ok());
  CHECK(Raw(etcd, node) == std::optional<std::string>("10.0.0.2:1234"));
  // Other keys are simply replaced.
  CHECK(c.Put("mooncake/ram/s", "1").ok());
  CHECK(c.Put("mooncake/ram/s", "2").ok());
  CHECK(c.Get("mooncake/ram/s")->value() == "2");

  // max_response_body_bytes bounds the value Get returns.
  CHECK(c.Put("small", std::string(1000, 's')).ok());
  CHECK(c.Put("large", std::string(1001, 'l')).ok());
  CHECK(c.Get("small")->value().size() == 1000);
  Result<std::optional<std::string>> large = c.Get("large");
  CHECK(large.code() == ErrorCode::BUFFER_OVERFLOW);
  CHECK(Contains(large.status().message(), "1000"));

  // etcd's own refusal: a request over its 1.5 MiB limit.
  st = c.Put("huge", std::string(2 << 20, 'h'));
  CHECK(st.code() == ErrorCode::ETCD_OPERATION_ERROR);
  CHECK_FALSE(Raw(etcd, "huge").has_value());
}

TEST_CASE("metadata over etcd: a store publishes its descriptor there and removes it") {
  EtcdMember etcd;
  REQUIRE_MESSAGE(etcd.ready(), "etcd did not become healthy within 30 s");
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  KvcachedProcess store({"store", "--master", master.Address("rpc"), "--segment-size", "8MiB",
                         "--segment-name", "seg-etcd", "--metadata-server",
                         "etcd://" + etcd.client()});
  // Published at the mount, before the store is ready.
  std::optional<std::string> value = Raw(etcd, "mooncake/ram/seg-etcd");
  REQUIRE(value.has_value());
  Result<SegmentEndpoint> e = ParseEndpoint(*value);
  REQUIRE(e.ok());
  CHECK(e->name == "seg-etcd");
  CHECK(e->size == 8u << 20);
  CHECK(e->tcp == store.Address("data"));
  CHECK(store.Stop(SIGTERM) == 0);
  CHECK_FALSE(Raw(etcd, "mooncake/ram/seg-etcd").has_value());
}

TEST_CASE("metadata over etcd: no reachable member is an error naming every endpoint") {
  const std::string a = "127.0.0.1:" + std::to_string(FreePort());
  const std::string b = "127.0.0.1:" + std::to_string(FreePort());
  MetadataClient c = Client("etcd://" + a + ";" + b, 1000ms);
  auto start = std::chrono::steady_clock::now();
  Status st = c.Put("mooncake/ram/seg-0", "{}");
  // Unreachable, as the HTTP backend reports it; each reason is in the message.
  CHECK(st.code() == ErrorCode::RPC_FAIL);
  CHECK(Contains(st.message(), a));
  CHECK(Contains(st.message(), b));
  CHECK(Contains(st.message(), "refused"));
  CHECK(Contains(st.message(), "mooncake/ram/seg-0"));
  CHECK(c.Get("k").code() == ErrorCode::RPC_FAIL);
  CHECK(c.Delete("k").code() == ErrorCode::RPC_FAIL);

  // A member that never answers: the call ends at the deadline.
  SilentListener silent;
  MetadataClient slow = Client("etcd://" + silent.address(), 300ms);
  start = std::chrono::steady_clock::now();
  st = slow.Get("mooncake/ram/seg-0").status();
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(st.code() == ErrorCode::RPC_TIMEOUT);
  CHECK(Contains(st.message(), silent.address()));
  CHECK(Contains(st.message(), "no answer"));
  CHECK(took >= 250ms);
  CHECK(took < 10s);  // ended by the deadline, not hung (generous for a loaded machine)
}

TEST_CASE("metadata over etcd: the token is not sent to etcd") {
  RecordingEtcd fake;
  const std::string token = "0123456789abcdef0123456789abcdef";
  MetadataClientOptions o = Options("etcd://" + fake.address());
  o.token = token;
  Result<MetadataClient> c = MetadataClient::Create(o);
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  Result<std::optional<std::string>> got = c->Get("mooncake/ram/seg-0");
  REQUIRE_MESSAGE(got.ok(), got.status().ToString());
  CHECK_FALSE(got->has_value());
  std::string seen = fake.Seen();
  CHECK(Contains(seen, "POST /v3/kv/range"));
  CHECK_FALSE(Contains(seen, token));
  CHECK_FALSE(Contains(seen, "Authorization"));
}

TEST_CASE("metadata over etcd: bad addresses are INVALID_PARAMS at Create") {
  struct Case {
    std::string url;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"etcd://", "no endpoint"},
      {"etcd://;,", "no endpoint"},
      {"etcd://127.0.0.1", "no port"},
      {"etcd://127.0.0.1:0", "host:port"},
      {"etcd://127.0.0.1:65536", "host:port"},
      {"etcd://h:1;h:x", "'h:x' is not host:port"},
      {"etcd://:2379", "host:port"},
      {"etcd://https://h:2379", "https is not supported"},
      {"etcd://h:2379/v3", "has a path"},
      {"127.0.0.1", "a URL without a scheme is read as etcd"},
      {"127.0.0.1:8080/metadata", "write http://HOST:PORT/metadata"},
      {"P2PHANDSHAKE", "P2PHANDSHAKE"},
      {"https://127.0.0.1:8080/metadata", "only http:// and etcd://"},
      {"redis://127.0.0.1:6379", "only http:// and etcd://"},
  };
  for (const Case& k : cases) {
    CAPTURE(k.url);
    Result<MetadataClient> c = MetadataClient::Create(Options(k.url));
    CHECK(c.code() == ErrorCode::INVALID_PARAMS);
    CHECK(Contains(c.status().message(), k.says));
    CHECK(Contains(c.status().message(), "metadata server URL '" + k.url + "'"));
  }
  CHECK(MetadataClient::Create(Options("etcd://h:1", 0ms)).code() == ErrorCode::INVALID_PARAMS);

  // Accepted forms and their normalisation; Create contacts nobody.
  CHECK(Client("etcd://10.0.0.1:2379").url() == "etcd://10.0.0.1:2379");
  CHECK(Client("etcd://10.0.0.1:2379;10.0.0.2:2379").url() == "etcd://10.0.0.1:2379;10.0.0.2:2379");
  CHECK(Client("etcd://a:1, b:2,").url() == "etcd://a:1;b:2");
  CHECK(Client("etcd://http://a:1/").url() == "etcd://a:1");
  CHECK(Client("etcd://[::1]:02379").url() == "etcd://[::1]:2379");
  CHECK(Client("etcd-0.example:2379").url() == "etcd://etcd-0.example:2379");
  CHECK(Client("10.0.0.1:2379;10.0.0.2:2379").url() == "etcd://10.0.0.1:2379;10.0.0.2:2379");
}

}  // namespace
}  // namespace kvcached
