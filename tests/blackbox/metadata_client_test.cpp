// Black-box tests of MetadataClient against the real `kvcached meta` (round
// trips, key escaping, 404s, the token, server-side refusals), plus a closed
// port, a silent listener and a canned-answer server for transport failures.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "kvcached_process.h"
#include "metadata_checks.h"
#include "net/metadata_client.h"

namespace kvcached {
namespace {

using testing::KvcachedProcess;
using namespace std::chrono_literals;

std::unique_ptr<KvcachedProcess> StartMeta(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"meta", "--port", "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<KvcachedProcess>(args);
}

// The readiness STATUS is "meta listening on http://127.0.0.1:PORT/metadata".
std::string MetaUrl(const KvcachedProcess& meta) {
  return "http://" + meta.Address("on") + "/metadata";
}

MetadataClientOptions Options(const std::string& url, const std::string& token = "",
                              std::chrono::milliseconds timeout = 3000ms) {
  MetadataClientOptions o;
  o.url = url;
  o.token = token;
  o.timeout = timeout;
  return o;
}

MetadataClient Client(const std::string& url, const std::string& token = "",
                      std::chrono::milliseconds timeout = 3000ms) {
  Result<MetadataClient> c = MetadataClient::Create(Options(url, token, timeout));
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  return std::move(c).value();
}

// A loopback socket bound to a free port; listening when `listen_backlog` >= 0.
int BoundSocket(uint16_t& port, int listen_backlog) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  if (listen_backlog >= 0) REQUIRE(listen(fd, listen_backlog) == 0);
  return fd;
}

// Raw HTTP request on a fresh connection; returns the whole answer.
std::string RawHttp(uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

// The body of GET /metadata?<query>, or "<404>" when the server has no such key.
std::string RawGet(uint16_t port, const std::string& query) {
  std::string out =
      RawHttp(port, "GET /metadata?" + query + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  if (out.rfind("HTTP/1.1 404", 0) == 0) return "<404>";
  size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? "<no answer>" : out.substr(body + 4);
}

// Answers each connection with `answer` (after reading the request head)
// and closes it, until destroyed.
class CannedServer {
 public:
  explicit CannedServer(std::string answer) : answer_(std::move(answer)) {
    fd_ = BoundSocket(port_, 8);
    thread_ = std::thread([this] {
      while (!stop_) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) continue;
        std::string head;
        char buf[4096];
        ssize_t n;
        while (head.find("\r\n\r\n") == std::string::npos &&
               (n = recv(c, buf, sizeof buf, 0)) > 0) {
          head.append(buf, static_cast<size_t>(n));
        }
        (void)!send(c, answer_.data(), answer_.size(), MSG_NOSIGNAL);
        close(c);
      }
    });
  }
  ~CannedServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/metadata"; }

 private:
  std::string answer_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("metadata client: put, get and delete round trip") {
  auto meta = StartMeta();
  MetadataClient c = Client(MetaUrl(*meta));
  testing::CheckValueContract(c, "mooncake/ram/seg-0");
}

TEST_CASE("metadata client: URL forms, host names and concurrent calls") {
  auto meta = StartMeta();
  uint16_t port = meta->Port("on");
  // No path means /metadata; "localhost" goes through the resolver (which may
  // answer ::1 first, where nothing listens, before 127.0.0.1).
  MetadataClient bare = Client("HTTP://localhost:" + std::to_string(port));
  CHECK(bare.url() == "http://localhost:" + std::to_string(port) + "/metadata");
  CHECK(bare.Put("k", "v").ok());
  MetadataClient slash = Client("http://127.0.0.1:" + std::to_string(port) + "/");
  CHECK(slash.Get("k")->value() == "v");

  // One client, many threads: calls share nothing.
  MetadataClient c = Client(MetaUrl(*meta));
  CHECK(testing::RoundTripsFromThreads(c, 4, 25) == 0);
}

TEST_CASE("metadata client: keys are percent-encoded") {
  auto meta = StartMeta();
  uint16_t port = meta->Port("on");
  MetadataClient c = Client(MetaUrl(*meta));
  const std::vector<std::string> keys = {
      "mooncake/ram/seg 0",
      "a+b",
      "a b",
      "x?y&key=z#frag",
      "100%",
      "%2F",
      "caf\xc3\xa9/\xe6\x97\xa5",
      std::string("nul\x00inside\xff", 11),
      "quote'\"<>\\",
      "~unreserved-._",
  };
  for (const std::string& key : keys) {
    CAPTURE(key);
    REQUIRE(c.Put(key, "value of " + key).ok());
  }
  for (const std::string& key : keys) {
    CAPTURE(key);
    Result<std::optional<std::string>> v = c.Get(key);
    REQUIRE(v.ok());
    REQUIRE(v->has_value());
    CHECK(**v == "value of " + key);
  }
  // The server stored exactly these keys, not some decoding of them: '+'
  // and ' ' are different keys, and other spellings reach the same one.
  CHECK(RawGet(port, "key=a%2Bb") == "value of a+b");
  CHECK(RawGet(port, "key=a+b") == "value of a b");
  CHECK(RawGet(port, "key=mooncake/ram/seg%200") == "value of mooncake/ram/seg 0");
  CHECK(RawGet(port, "key=100%25") == "value of 100%");
  CHECK(RawGet(port, "key=%252F") == "value of %2F");
  CHECK(RawGet(port, "key=x") == "<404>");
  for (const std::string& key : keys) {
    CAPTURE(key);
    CHECK(c.Delete(key).ok());
    CHECK_FALSE(c.Get(key)->has_value());
  }
  CHECK(RawGet(port, "key=a%2Bb") == "<404>");

  Status empty = c.Put("", "v");
  CHECK(empty.code() == ErrorCode::INVALID_PARAMS);
  CHECK(c.Get("").code() == ErrorCode::INVALID_PARAMS);
  CHECK(c.Delete("").code() == ErrorCode::INVALID_PARAMS);
}

TEST_CASE("metadata client: refusals map to ETCD_OPERATION_ERROR with the server's reason") {
  auto meta = StartMeta({"--max-body-size", "1KiB", "--max-key-length", "64"});
  MetadataClient c = Client(MetaUrl(*meta));

  // The rpc_meta rule: another value for a live node's location is refused.
  CHECK(c.Put("mooncake/rpc_meta/node-a", "10.0.0.1:1234").ok());
  CHECK(c.Put("mooncake/rpc_meta/node-a", "10.0.0.1:1234").ok());
  Status st = c.Put("mooncake/rpc_meta/node-a", "10.0.0.2:1234");
  CHECK(st.code() == ErrorCode::ETCD_OPERATION_ERROR);
  CHECK(Contains(st.message(), "400"));
  CHECK(Contains(st.message(), "DELETE it first"));
  CHECK(Contains(st.message(), MetaUrl(*meta)));
  CHECK(Contains(st.message(), "mooncake/rpc_meta/node-a"));
  CHECK(c.Get("mooncake/rpc_meta/node-a")->value() == "10.0.0.1:1234");

  // Over the server's body and key limits.
  st = c.Put("big", std::string(4096, 'x'));
  CHECK(st.code() == ErrorCode::ETCD_OPERATION_ERROR);
  CHECK(Contains(st.message(), "413"));
  st = c.Put(std::string(100, 'k'), "v");
  CHECK(st.code() == ErrorCode::ETCD_OPERATION_ERROR);
  CHECK(Contains(st.message(), "exceeds the limit"));

  // A wrong path: a PUT's 404 is an error, not "not found".
  MetadataClient wrong = Client("http://" + meta->Address("on") + "/metdata");
  st = wrong.Put("k", "v");
  CHECK(st.code() == ErrorCode::ETCD_OPERATION_ERROR);
  CHECK(Contains(st.message(), "404"));
  CHECK(Contains(st.message(), "no such path"));
}

TEST_CASE("metadata client: a token-protected server needs the token") {
  char path[] = "/tmp/kvcached-meta-token-XXXXXX";
  int fd = mkstemp(path);
  const std::string token = "0123456789abcdef0123456789abcdef";
  const std::string file_text = token + "\n";
  REQUIRE(write(fd, file_text.data(), file_text.size()) == static_cast<ssize_t>(file_text.size()));
  close(fd);
  auto meta = StartMeta({"--token-file", path});
  std::remove(path);

  MetadataClient none = Client(MetaUrl(*meta));
  Status st = none.Put("mooncake/ram/seg-0", "{}");
  CHECK(st.code() == ErrorCode::ILLEGAL_CLIENT);
  CHECK(Contains(st.message(), "401"));
  CHECK(Contains(st.message(), "no token was sent"));
  CHECK(none.Get("mooncake/ram/seg-0").code() == ErrorCode::ILLEGAL_CLIENT);
  CHECK(none.Delete("mooncake/ram/seg-0").code() == ErrorCode::ILLEGAL_CLIENT);

  MetadataClient wrong = Client(MetaUrl(*meta), "wrong-token-000000000000000000000");
  st = wrong.Put("mooncake/ram/seg-0", "{}");
  CHECK(st.code() == ErrorCode::ILLEGAL_CLIENT);
  CHECK_FALSE(Contains(st.message(), token));

  MetadataClient good = Client(MetaUrl(*meta), token);
  CHECK(good.Put("mooncake/ram/seg-0", "{}").ok());
  CHECK(good.Get("mooncake/ram/seg-0")->value() == "{}");
  CHECK(good.Delete("mooncake/ram/seg-0").ok());
  CHECK_FALSE(good.Get("mooncake/ram/seg-0")->has_value());
}

TEST_CASE("metadata client: an unreachable server fails fast with RPC_FAIL") {
  uint16_t port = 0;
  int fd = BoundSocket(port, -1);  // bound, not listening: connections are refused
  MetadataClient c = Client("http://127.0.0.1:" + std::to_string(port) + "/metadata");
  auto start = std::chrono::steady_clock::now();
  Status st = c.Put("mooncake/ram/seg-0", "{}");
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK(st.code() == ErrorCode::RPC_FAIL);
  CHECK(Contains(st.message(), c.url()));
  CHECK(Contains(st.message(), "refused"));
  CHECK(c.Get("k").code() == ErrorCode::RPC_FAIL);
  CHECK(c.Delete("k").code() == ErrorCode::RPC_FAIL);
  close(fd);

  Result<MetadataClient> nowhere =
      MetadataClient::Create(Options("http://no-such-host.invalid:8080/metadata"));
  REQUIRE(nowhere.ok());
  st = nowhere->Put("k", "v");
  CHECK(st.code() == ErrorCode::RPC_FAIL);
  CHECK(Contains(st.message(), "resolve"));
}

TEST_CASE("metadata client: a server that never answers times out with RPC_TIMEOUT") {
  uint16_t port = 0;
  int fd = BoundSocket(port, 8);  // listening, never accepting: the kernel completes connects
  MetadataClient c = Client("http://127.0.0.1:" + std::to_string(port) + "/metadata", "", 300ms);
  auto start = std::chrono::steady_clock::now();
  Status st = c.Get("mooncake/ram/seg-0").status();
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(st.code() == ErrorCode::RPC_TIMEOUT);
  CHECK(Contains(st.message(), c.url()));
  CHECK(Contains(st.message(), "300 ms"));
  CHECK(took >= 250ms);
  CHECK(took < 2s);
  close(fd);
}

TEST_CASE("metadata client: odd answers are bounded and reported") {
  SUBCASE("a body over the limit is refused before it is read") {
    CannedServer server("HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\nxxxx");
    MetadataClient c = Client(server.url());
    Result<std::optional<std::string>> v = c.Get("k");
    CHECK(v.code() == ErrorCode::BUFFER_OVERFLOW);
    CHECK(Contains(v.status().message(), "1048576"));
  }
  SUBCASE("a chunked body over the limit too") {
    std::string answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 40; ++i) answer += "8000\r\n" + std::string(0x8000, 'x') + "\r\n";
    answer += "0\r\n\r\n";
    CannedServer server(answer);
    MetadataClient c = Client(server.url());
    CHECK(c.Get("k").code() == ErrorCode::BUFFER_OVERFLOW);
  }
  SUBCASE("an absurd Content-Length is refused, not reserved") {
    CannedServer server("HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387904\r\n\r\nxxxx");
    CHECK(Client(server.url()).Get("k").code() == ErrorCode::BUFFER_OVERFLOW);
  }
  SUBCASE("a body up to the close over the limit too") {
    CannedServer server("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" +
                        std::string((1 << 20) + 1, 'x'));
    CHECK(Client(server.url()).Get("k").code() == ErrorCode::BUFFER_OVERFLOW);
  }
  SUBCASE("an endless header is cut off") {
    CannedServer server("HTTP/1.1 200 OK\r\nX-Junk: " + std::string(1 << 20, 'j'));
    Status st = Client(server.url()).Get("k").status();
    CHECK(st.code() == ErrorCode::RPC_FAIL);
    CHECK(Contains(st.message(), "header"));
  }
  SUBCASE("only the first line of an error text, with control bytes escaped") {
    const std::string text = "boom\x1b[31m\r\nsecond line here";
    CannedServer server("HTTP/1.1 500 Internal Server Error\r\nContent-Length: " +
                        std::to_string(text.size()) + "\r\n\r\n" + text);
    MetadataClient c = Client(server.url());
    Status st = c.Put("k", "v");
    CHECK(st.code() == ErrorCode::ETCD_OPERATION_ERROR);
    CHECK(Contains(st.message(), "answered 500"));
    CHECK(Contains(st.message(), "boom\\x1B[31m"));
    CHECK_FALSE(Contains(st.message(), "second"));
  }
  SUBCASE("403 is ILLEGAL_CLIENT") {
    CannedServer server("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    Status st = Client(server.url(), "0123456789abcdef").Delete("k");
    CHECK(st.code() == ErrorCode::ILLEGAL_CLIENT);
    CHECK(Contains(st.message(), "Forbidden"));
  }
  SUBCASE("not HTTP at all") {
    CannedServer server("SSH-2.0-OpenSSH_9.2\r\n\r\n");
    CHECK(Client(server.url()).Get("k").code() == ErrorCode::RPC_FAIL);
  }
  SUBCASE("closed without an answer") {
    CannedServer server("");
    Status st = Client(server.url()).Put("k", "v");
    CHECK(st.code() == ErrorCode::RPC_FAIL);
    CHECK(Contains(st.message(), "no answer"));
  }
  SUBCASE("a value over a lowered limit from the real server") {
    auto meta = StartMeta();
    MetadataClientOptions o;
    o.url = MetaUrl(*meta);
    o.max_response_body_bytes = 1000;
    Result<MetadataClient> c = MetadataClient::Create(o);
    REQUIRE(c.ok());
    CHECK(c->Put("small", std::string(1000, 's')).ok());
    CHECK(c->Put("large", std::string(1001, 'l')).ok());
    CHECK(c->Get("small")->value().size() == 1000);
    CHECK(c->Get("large").code() == ErrorCode::BUFFER_OVERFLOW);
  }
}

TEST_CASE("metadata client: bad options are INVALID_PARAMS") {
  struct Case {
    std::string url;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"https://127.0.0.1:8080/metadata", "only http://"},
      {"redis://127.0.0.1:6379", "only http://"},
      {"P2PHANDSHAKE", "P2PHANDSHAKE"},
      {"http://", "no host"},
      {"http://:8080/metadata", "no host"},
      {"http:///metadata", "no host"},
      {"http://127.0.0.1:/metadata", "port"},
      {"http://127.0.0.1:0/metadata", "port"},
      {"http://127.0.0.1:65536/metadata", "port"},
      {"http://127.0.0.1:80a/metadata", "port"},
      {"http://127.0.0.1:-1/metadata", "port"},
      {"http://user:pw@127.0.0.1:8080/metadata", "user info"},
      {"http://127.0.0.1:8080/metadata?key=x", "query"},
      {"http://127.0.0.1:8080/metadata#x", "fragment"},
      {"http://::1:8080/metadata", "brackets"},
      {"http://[::1:8080/metadata", "unterminated"},
      {"http://[::1]x:8080/metadata", "IPv6"},
      {"http://127.0.0.1:8080/meta data", "path"},
      {"http://127.0.0.1:8080/meta\r\nX-Evil: 1", "path"},
  };
  for (const Case& k : cases) {
    CAPTURE(k.url);
    Result<MetadataClient> c = MetadataClient::Create(Options(k.url));
    CHECK(c.code() == ErrorCode::INVALID_PARAMS);
    CHECK(Contains(c.status().message(), k.says));
  }
  CHECK(MetadataClient::Create(Options("http://h:1/m", "has space")).code() ==
        ErrorCode::INVALID_PARAMS);
  CHECK(MetadataClient::Create(Options("http://h:1/m", "x\r\nX-Evil: 1")).code() ==
        ErrorCode::INVALID_PARAMS);
  CHECK(MetadataClient::Create(Options("http://h:1/m", "", 0ms)).code() ==
        ErrorCode::INVALID_PARAMS);

  // Accepted forms and their normalisation.
  CHECK(Client("http://10.1.2.3:8080/metadata").url() == "http://10.1.2.3:8080/metadata");
  CHECK(Client("http://meta.example:8080").url() == "http://meta.example:8080/metadata");
  CHECK(Client("http://meta.example/").url() == "http://meta.example:80/metadata");
  CHECK(Client("http://[::1]:8080/metadata").url() == "http://[::1]:8080/metadata");
  CHECK(Client("http://[::1]").url() == "http://[::1]:80/metadata");
  CHECK(Client("http://10.1.2.3:08080/kv/meta").url() == "http://10.1.2.3:8080/kv/meta");
}

}  // namespace
}  // namespace kvcached
