#include "net/etcd_client.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>

#include "core/printable.h"
#include "core/units.h"
#include "net/http_call.h"

namespace kvcached {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxAnswerBytes = 4 << 20;
constexpr std::chrono::milliseconds kMinTry{200};

// The gateway writes int64 fields as JSON strings and leaves out zeros.
int64_t Int64Field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && end == s.data() + s.size() ? v : 0;
  }
  return 0;
}

std::string Id(int64_t v) { return std::to_string(v); }

Result<EtcdKeyValue> ParseKv(const json& kv) {
  EtcdKeyValue out;
  auto key = EtcdClient::Base64Decode(kv.value("key", ""));
  auto value = EtcdClient::Base64Decode(kv.value("value", ""));
  if (!key || !value) {
    return Status(ErrorCode::ETCD_OPERATION_ERROR, "etcd answered a key or value not in base64");
  }
  out.key = std::move(*key);
  out.value = std::move(*value);
  out.create_revision = Int64Field(kv, "create_revision");
  out.mod_revision = Int64Field(kv, "mod_revision");
  out.lease = Int64Field(kv, "lease");
  return out;
}

Result<std::vector<EtcdKeyValue>> ParseKvs(const json& range) {
  std::vector<EtcdKeyValue> out;
  auto it = range.find("kvs");
  if (it == range.end()) return out;
  if (!it->is_array()) return Status(ErrorCode::ETCD_OPERATION_ERROR, "etcd's kvs is not a list");
  for (const json& kv : *it) {
    if (!kv.is_object()) return Status(ErrorCode::ETCD_OPERATION_ERROR, "etcd's kv is not an object");
    Result<EtcdKeyValue> one = ParseKv(kv);
    if (!one.ok()) return one.status();
    out.push_back(std::move(*one));
  }
  return out;
}

Result<json> ParseJson(const std::string& text, std::string_view what) {
  // A streaming call (keepalive) wraps its answer: {"result":{...}}.
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Status(ErrorCode::ETCD_OPERATION_ERROR,
                  "etcd's answer to " + std::string(what) + " is not a JSON object");
  }
  if (auto err = doc.find("error"); err != doc.end()) {
    std::string msg = err->is_string() ? err->get<std::string>()
                                       : err->is_object() ? err->value("message", err->dump())
                                                          : err->dump();
    return Status(ErrorCode::ETCD_OPERATION_ERROR,
                  "etcd refused " + std::string(what) + ": " + Printable(msg));
  }
  if (auto res = doc.find("result"); res != doc.end() && res->is_object()) return *res;
  return doc;
}

}  // namespace

std::optional<std::string> EtcdEndpointsOf(std::string_view address) {
  constexpr std::string_view kScheme = "etcd://";
  if (address.size() < kScheme.size()) return std::nullopt;
  std::string lower(address.substr(0, kScheme.size()));
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower != kScheme) return std::nullopt;
  return std::string(address.substr(kScheme.size()));
}

Result<EtcdClient> EtcdClient::Create(std::string_view endpoints,
                                      std::chrono::milliseconds timeout) {
  std::string text(EtcdEndpointsOf(endpoints).value_or(std::string(endpoints)));
  auto bad = [&](const std::string& why) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "etcd endpoints '" + Printable(text) + "': " + why +
                      " (expected host:port[;host:port...], e.g. 10.0.0.1:2379;10.0.0.2:2379)");
  };
  if (timeout.count() <= 0) return bad("the timeout must be positive");
  EtcdClient c;
  c.timeout_ = timeout;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t cut = rest.find_first_of(";,");
    std::string_view item = rest.substr(0, cut);
    rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    if (item.rfind("https://", 0) == 0) return bad("https is not supported");
    if (item.rfind("http://", 0) == 0) item.remove_prefix(7);
    if (!item.empty() && item.back() == '/') item.remove_suffix(1);
    if (item.find('/') != std::string_view::npos) return bad("'" + std::string(item) + "' has a path");
    Endpoint e;
    size_t colon = item.rfind(':');
    if (colon == std::string_view::npos) return bad("'" + std::string(item) + "' has no port");
    std::string_view host = item.substr(0, colon);
    std::string_view port = item.substr(colon + 1);
    bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) host = host.substr(1, host.size() - 2);
    std::optional<uint16_t> port_number = ParsePort(port);
    if (host.empty() || !port_number) return bad("'" + std::string(item) + "' is not host:port");
    e.host = std::string(host);
    e.port = std::to_string(*port_number);
    e.host_header = (bracketed ? "[" + e.host + "]" : e.host) + ":" + e.port;
    if (!c.text_.empty()) c.text_ += ";";
    c.text_ += e.host_header;
    c.endpoints_.push_back(std::move(e));
  }
  if (c.endpoints_.empty()) return bad("no endpoint given");
  return c;
}

EtcdClient::EtcdClient(const EtcdClient& o)
    : endpoints_(o.endpoints_), text_(o.text_), timeout_(o.timeout_), preferred_(o.preferred_.load()) {}

EtcdClient& EtcdClient::operator=(const EtcdClient& o) {
  endpoints_ = o.endpoints_;
  text_ = o.text_;
  timeout_ = o.timeout_;
  preferred_ = o.preferred_.load();
  return *this;
}

Result<std::string> EtcdClient::Post(std::string_view path, const std::string& body,
                                     std::string_view what) const {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout_;
  const size_t n = endpoints_.size();
  const size_t first = preferred_.load() % n;
  std::string reasons;
  bool answered = false;     // some endpoint gave an HTTP answer (an error)
  bool only_timeouts = true;  // every failure so far ran out of time
  for (size_t i = 0; i < n; ++i) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      reasons += std::string(reasons.empty() ? "" : "; ") + "no time left for " +
                 std::to_string(n - i) + " more endpoint(s)";
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    auto share = std::max(kMinTry, left / static_cast<int64_t>(n - i));
    const Endpoint& e = endpoints_[(first + i) % n];
    HttpCallRequest call;
    call.host = e.host;
    call.port = e.port;
    call.host_header = e.host_header;
    call.method = "POST";
    call.target = std::string(path);
    call.body = body;
    call.content_type = "application/json";
    call.timeout = std::min(share, left);
    call.deadline = now + call.timeout;
    call.max_response_body_bytes = kMaxAnswerBytes;
    call.peer = "etcd " + e.host_header;
    call.what = std::string(what);
    Result<HttpAnswer> res = HttpCall(call);
    std::string why;
    if (!res.ok()) {
      if (res.code() == ErrorCode::BUFFER_OVERFLOW) return res.status();
      only_timeouts = only_timeouts && res.code() == ErrorCode::RPC_TIMEOUT;
      why = res.status().message();
    } else if (res->status >= 200 && res->status < 300) {
      preferred_ = (first + i) % n;
      return std::move(res->body);
    } else {
      answered = true;
      why = "etcd " + e.host_header + " answered " + std::to_string(res->status) + " to " +
            std::string(what) + ": " + res->reason;
    }
    reasons += (reasons.empty() ? "" : "; ") + why;
  }
  // Refused by a member (no quorum, a request over its limit), unreachable,
  // or silent until the deadline: three codes, each message with every reason.
  ErrorCode code = answered        ? ErrorCode::ETCD_OPERATION_ERROR
                   : only_timeouts ? ErrorCode::RPC_TIMEOUT
                                   : ErrorCode::RPC_FAIL;
  return Status(code, "no etcd endpoint of " + text_ + " did " + std::string(what) + " within " +
                          std::to_string(timeout_.count()) + " ms: " + reasons);
}

Result<nlohmann::json> EtcdClient::Call(std::string_view path, const nlohmann::json& request,
                                       std::string_view what) const {
  Result<std::string> text = Post(path, request.dump(), what);
  if (!text.ok()) return text.status();
  // A streaming call (keepalive) answers one line per request sent; only the
  // first matters, and every other answer is one line of compact JSON.
  return ParseJson(text->substr(0, text->find('\n')), what);
}

Result<std::optional<EtcdKeyValue>> EtcdClient::Get(std::string_view key) const {
  json req = {{"key", Base64Encode(key)}};
  std::string what = "range '" + Printable(key) + "'";
  Result<json> doc = Call("/v3/kv/range", req, what);
  if (!doc.ok()) return doc.status();
  Result<std::vector<EtcdKeyValue>> kvs = ParseKvs(*doc);
  if (!kvs.ok()) return kvs.status();
  if (kvs->empty()) return std::optional<EtcdKeyValue>();
  return std::optional<EtcdKeyValue>(std::move(kvs->front()));
}

Result<std::vector<EtcdKeyValue>> EtcdClient::GetPrefix(std::string_view prefix,
                                                        int64_t limit) const {
  // range_end: the prefix with its last byte below 0xff incremented.
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) {
    end = std::string(1, '\0');  // every key
  } else {
    end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  }
  json req = {{"key", Base64Encode(prefix.empty() ? std::string_view("\0", 1) : prefix)},
              {"range_end", Base64Encode(end)}};
  if (limit > 0) req["limit"] = Id(limit);
  std::string what = "range of prefix '" + Printable(prefix) + "'";
  Result<json> doc = Call("/v3/kv/range", req, what);
  if (!doc.ok()) return doc.status();
  return ParseKvs(*doc);
}

Result<int64_t> EtcdClient::Put(std::string_view key, std::string_view value, int64_t lease) const {
  json req = {{"key", Base64Encode(key)}, {"value", Base64Encode(value)}};
  if (lease != 0) req["lease"] = Id(lease);
  std::string what = "put '" + Printable(key) + "'";
  Result<json> doc = Call("/v3/kv/put", req, what);
  if (!doc.ok()) return doc.status();
  return Int64Field(doc->value("header", json::object()), "revision");
}

Result<int64_t> EtcdClient::Delete(std::string_view key) const {
  json req = {{"key", Base64Encode(key)}};
  std::string what = "delete '" + Printable(key) + "'";
  Result<json> doc = Call("/v3/kv/deleterange", req, what);
  if (!doc.ok()) return doc.status();
  return Int64Field(*doc, "deleted");
}

Result<EtcdCreateResult> EtcdClient::CreateIfAbsent(std::string_view key, std::string_view value,
                                                    int64_t lease) const {
  json put = {{"key", Base64Encode(key)}, {"value", Base64Encode(value)}};
  if (lease != 0) put["lease"] = Id(lease);
  json req = {
      {"compare", json::array({{{"key", Base64Encode(key)},
                                {"target", "CREATE"},
                                {"result", "EQUAL"},
                                {"create_revision", "0"}}})},
      {"success", json::array({{{"request_put", put}}})},
      {"failure", json::array({{{"request_range", {{"key", Base64Encode(key)}}}}})}};
  std::string what = "create '" + Printable(key) + "'";
  Result<json> doc = Call("/v3/kv/txn", req, what);
  if (!doc.ok()) return doc.status();
  EtcdCreateResult out;
  out.created = doc->value("succeeded", false);
  out.revision = Int64Field(doc->value("header", json::object()), "revision");
  if (!out.created) {
    const json& responses = doc->value("responses", json::array());
    if (responses.is_array() && !responses.empty() && responses[0].is_object()) {
      const json& range = responses[0].value("response_range", json::object());
      Result<std::vector<EtcdKeyValue>> kvs = ParseKvs(range);
      if (!kvs.ok()) return kvs.status();
      if (!kvs->empty()) out.current = std::move(kvs->front());
    }
  }
  return out;
}

Result<bool> EtcdClient::DeleteIfCreatedAt(std::string_view key, int64_t create_revision) const {
  json req = {{"compare", json::array({{{"key", Base64Encode(key)},
                                        {"target", "CREATE"},
                                        {"result", "EQUAL"},
                                        {"create_revision", Id(create_revision)}}})},
              {"success", json::array({{{"request_delete_range", {{"key", Base64Encode(key)}}}}})}};
  std::string what = "delete of own '" + Printable(key) + "'";
  Result<json> doc = Call("/v3/kv/txn", req, what);
  if (!doc.ok()) return doc.status();
  return doc->value("succeeded", false);
}

Result<int64_t> EtcdClient::LeaseGrant(int64_t ttl_seconds, int64_t* granted_ttl) const {
  json req = {{"TTL", Id(ttl_seconds)}};
  Result<json> doc = Call("/v3/lease/grant", req, "lease grant");
  if (!doc.ok()) return doc.status();
  int64_t id = Int64Field(*doc, "ID");
  if (id == 0) {
    return Status(ErrorCode::ETCD_OPERATION_ERROR,
                  "etcd granted no lease: " + doc->value("error", std::string("no ID")));
  }
  if (granted_ttl) *granted_ttl = Int64Field(*doc, "TTL");
  return id;
}

Result<int64_t> EtcdClient::LeaseKeepAlive(int64_t id) const {
  json req = {{"ID", Id(id)}};
  Result<json> doc = Call("/v3/lease/keepalive", req, "lease keepalive");
  if (!doc.ok()) return doc.status();
  return Int64Field(*doc, "TTL");
}

Status EtcdClient::LeaseRevoke(int64_t id) const {
  json req = {{"ID", Id(id)}};
  return Call("/v3/lease/revoke", req, "lease revoke").status();
}

std::string EtcdClient::Base64Encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) |
                 uint8_t(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (size_t left = in.size() - i; left > 0) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (left == 2) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += left == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> EtcdClient::Base64Decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace kvcached
