// libFuzzer target: arbitrary bytes through the same Beast parser
// configuration the server uses (header and body limits), then every
// complete request through MetadataService::Handle. State carries over
// between inputs, so sequences of PUT/GET/DELETE are explored too.
#include <cstddef>
#include <cstdint>

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "master/metadata_service.h"

namespace {

namespace http = boost::beast::http;

kvcached::MetadataService& Service() {
  static boost::asio::io_context ioc;
  static kvcached::MetricsRegistry metrics;
  static kvcached::MetadataService service = [] {
    kvcached::HttpServerOptions http;
    http.name = "fuzz";
    kvcached::MetadataLimits limits;
    limits.max_key_bytes = 64;
    limits.max_value_bytes = 4096;
    limits.max_total_bytes = 1 << 20;
    return kvcached::MetadataService(ioc, http, limits, metrics);
  }();
  return service;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvcached::MetadataService& service = Service();
  boost::beast::error_code ec;
  size_t offset = 0;
  // Several pipelined requests may sit in one input.
  for (int i = 0; i < 8 && offset < size; ++i) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(2048);
    parser.body_limit(4096);
    parser.eager(true);
    size_t used = parser.put(boost::asio::buffer(data + offset, size - offset), ec);
    if (ec == http::error::need_more) {
      parser.put_eof(ec);
    }
    if (ec || !parser.is_done()) return 0;
    offset += used;
    kvcached::HttpResponse res;
    kvcached::HttpRequestContext ctx{1, static_cast<uint64_t>(i + 1), "fuzz"};
    service.Handle(parser.get(), ctx, res);
    if (res.result_int() < 200 || res.result_int() > 599) __builtin_trap();
    if (used == 0) break;
  }
  return 0;
}
