// WireWriter and WireReader: the little-endian primitives every kvcached
// binary message is built from (fixed-width integers, length-prefixed
// strings, counted lists). The reader bounds every length by both a
// protocol limit and the bytes actually left, before allocating, so a
// hostile length can never make it allocate more than the frame it was
// handed. Both expose the same method names so one field list per message
// (see rpc_protocol.cpp) drives encoding and decoding. Not thread-safe;
// one instance per message.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace kvcached {

class WireWriter {
 public:
  static constexpr bool kReading = false;

  void U8(const uint8_t& v) { Put(&v, 1); }
  void U16(const uint16_t& v) { PutLe(v); }
  void U32(const uint32_t& v) { PutLe(v); }
  void U64(const uint64_t& v) { PutLe(v); }
  void I32(const int32_t& v) { PutLe(static_cast<uint32_t>(v)); }
  void Bool(const bool& v) { U8(v ? 1 : 0); }
  // `max_bytes` is the reader's limit; the writer trusts its caller.
  void Str(const std::string& s, size_t /*max_bytes*/) {
    U32(static_cast<uint32_t>(s.size()));
    Put(s.data(), s.size());
  }
  // Writes the count then each element through `each`.
  template <typename T, typename Fn>
  void List(const std::vector<T>& v, size_t /*max_count*/, size_t /*min_elem_bytes*/, Fn&& each) {
    U32(static_cast<uint32_t>(v.size()));
    for (const T& x : v) each(const_cast<T&>(x));
  }

  bool ok() const { return true; }
  std::string& buffer() { return buf_; }
  std::string Take() { return std::move(buf_); }

 private:
  void Put(const void* p, size_t n) { buf_.append(static_cast<const char*>(p), n); }
  template <typename T>
  void PutLe(T v) {
    unsigned char b[sizeof(T)];
    for (size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    Put(b, sizeof(T));
  }
  std::string buf_;
};

class WireReader {
 public:
  static constexpr bool kReading = true;

  explicit WireReader(std::string_view data)
      : p_(reinterpret_cast<const unsigned char*>(data.data())), end_(p_ + data.size()) {}

  void U8(uint8_t& v) { GetLe(v); }
  void U16(uint16_t& v) { GetLe(v); }
  void U32(uint32_t& v) { GetLe(v); }
  void U64(uint64_t& v) { GetLe(v); }
  void I32(int32_t& v) {
    uint32_t u = 0;
    GetLe(u);
    v = static_cast<int32_t>(u);
  }
  void Bool(bool& v) {
    uint8_t b = 0;
    GetLe(b);
    if (ok_ && b > 1) Fail("boolean byte is neither 0 nor 1");
    v = b == 1;
  }
  void Str(std::string& s, size_t max_bytes) {
    uint32_t n = 0;
    U32(n);
    if (!ok_) return;
    if (n > max_bytes)
      return Fail("string of " + std::to_string(n) + " bytes over the limit of " +
                  std::to_string(max_bytes));
    if (n > Left()) return Fail("string runs past the end of the frame");
    s.assign(reinterpret_cast<const char*>(p_), n);
    p_ += n;
  }
  // Reads a count bounded by `max_count` and by the bytes left (each element
  // takes at least `min_elem_bytes`), then each element through `each`.
  template <typename T, typename Fn>
  void List(std::vector<T>& v, size_t max_count, size_t min_elem_bytes, Fn&& each) {
    uint32_t n = 0;
    U32(n);
    if (!ok_) return;
    if (n > max_count) {
      return Fail("list of " + std::to_string(n) + " items over the limit of " +
                  std::to_string(max_count));
    }
    if (min_elem_bytes > 0 && n > Left() / min_elem_bytes) {
      return Fail("list of " + std::to_string(n) + " items cannot fit in the frame");
    }
    v.clear();
    v.resize(n);
    for (T& x : v) {
      each(x);
      if (!ok_) return;
    }
  }

  bool ok() const { return ok_; }
  bool AtEnd() const { return p_ == end_; }
  size_t Left() const { return static_cast<size_t>(end_ - p_); }
  const std::string& error() const { return error_; }
  void Fail(std::string why) {
    if (ok_) error_ = std::move(why);
    ok_ = false;
    p_ = end_;
  }

 private:
  template <typename T>
  void GetLe(T& v) {
    v = 0;
    if (!ok_) return;
    if (Left() < sizeof(T)) return Fail("frame ends inside a field");
    for (size_t i = 0; i < sizeof(T); ++i)
      v = static_cast<T>(v | (static_cast<T>(p_[i]) << (8 * i)));
    p_ += sizeof(T);
  }
  const unsigned char* p_;
  const unsigned char* end_;
  bool ok_ = true;
  std::string error_;
};

}  // namespace kvcached
