// The .npy format, read and written sequentially. A file is: the magic "\x93NUMPY", a
// major and minor version byte, the header length (uint16 for 1.0, uint32 for 2.0 and
// 3.0, little-endian), the header (a Python dict literal with exactly the keys 'descr',
// 'fortran_order' and 'shape', padded with spaces and ended by '\n'), then the elements.
// This file holds the format and the in-memory reader; npy_file.cpp reads and writes
// files with the same steps (npy_format.hpp), so the fuzzer exercises what load_npy runs.
#include <bit>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "npy_format.hpp"

namespace kiln {
namespace npy {

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw Error(Status::IOError, name + ": " + what);
}

namespace {

constexpr unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr size_t kAlign = 64;  // NumPy >= 1.24 aligns the data to 64 bytes
constexpr bool kHostLittle = std::endian::native == std::endian::little;

// Header text comes from the file, so show it escaped and bounded in messages.
std::string excerpt(std::string_view s, size_t max = 40) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

// Maps a descr string to a dtype; `swap` tells whether the bytes need reversing.
DType parse_descr(std::string_view d, bool& swap, const std::string& name) {
  struct Code { const char* code; DType dtype; };
  static constexpr Code codes[] = {{"b1", DType::Bool}, {"i4", DType::Int32}, {"i8", DType::Int64},
                                   {"f4", DType::Float32}, {"f8", DType::Float64}};
  if (d.size() == 3) {
    for (const Code& c : codes) {
      if (d.substr(1) != c.code) continue;
      char order = d[0];
      if (c.dtype == DType::Bool && (order == '|' || order == '<' || order == '>' || order == '=')) {
        swap = false;
        return c.dtype;
      }
      // '|' means "no byte order" and only fits single-byte types.
      if (order == '<' || order == '>' || order == '=') {
        bool little = order == '=' ? kHostLittle : order == '<';
        swap = little != kHostLittle;
        return c.dtype;
      }
    }
  }
  fail(name, "unsupported dtype '" + excerpt(d) + "' (kiln reads bool, int32, int64, float32, float64)");
}

// A reader for the small subset of Python literals a header uses (NumPy runs
// ast.literal_eval). It is iterative, so no nesting can exhaust the stack, and the only
// thing it allocates is a shape of at most kMaxDims entries.
class DictParser {
 public:
  DictParser(std::string_view text, const std::string& name, bool allow_long_suffix)
      : s_(text), name_(name), allow_long_(allow_long_suffix) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    if (!eat('{')) error("the header is not a dictionary (expected '{')");
    skip_ws();
    while (!eat('}')) {
      size_t key_pos = pos_;
      std::string_view key = string_literal();
      skip_ws();
      if (!eat(':')) error("expected ':' after key '" + excerpt(key) + "'");
      skip_ws();
      bool* seen = key == "descr" ? &have_descr
                   : key == "fortran_order" ? &have_fortran
                   : key == "shape" ? &have_shape
                                    : nullptr;
      if (!seen) error_at(key_pos, "unexpected key '" + excerpt(key) + "' (a header has only 'descr', "
                                   "'fortran_order' and 'shape')");
      if (*seen) error_at(key_pos, "duplicate key '" + excerpt(key) + "'");
      *seen = true;
      if (key == "descr") {
        // A list or tuple here is a structured or sub-array dtype.
        if (peek() == '[' || peek() == '(')
          fail(name_, "unsupported dtype: structured and sub-array dtypes are not supported "
                      "(kiln reads bool, int32, int64, float32, float64)");
        h.descr = std::string(string_literal());
        h.dtype = parse_descr(h.descr, h.swapped, name_);
      } else if (key == "fortran_order") {
        std::string_view word = identifier();
        if (word != "True" && word != "False") error("fortran_order must be True or False");
        h.fortran = word == "True";
      } else {
        h.shape = shape_tuple();
      }
      skip_ws();
      if (eat(',')) {
        skip_ws();
      } else if (peek() != '}') {
        error("expected ',' or '}' after the value of '" + excerpt(key) + "'");
      }
    }
    skip_ws();
    if (pos_ != s_.size()) error("unexpected text after the header dictionary");
    if (!have_descr || !have_fortran || !have_shape)
      fail(name_, std::string("malformed .npy header: missing the '") +
                      (!have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape") + "' key");
    return h;
  }

 private:
  [[noreturn]] void error_at(size_t at, const std::string& what) {
    fail(name_, "malformed .npy header: " + what + " at header byte " + std::to_string(at) + ": '" +
                    excerpt(s_.substr(at < s_.size() ? at : s_.size()), 24) + "'");
  }
  [[noreturn]] void error(const std::string& what) { error_at(pos_, what); }

  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) return ++pos_, true;
    return false;
  }
  // Python's whitespace inside brackets, newlines included.
  void skip_ws() {
    auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
    while (pos_ < s_.size() && ws(s_[pos_])) ++pos_;
  }

  // A quoted string without escapes (no key or descr kiln accepts needs one).
  std::string_view string_literal() {
    char quote = peek();
    if (quote != '\'' && quote != '"') error("expected a quoted string");
    size_t start = ++pos_;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      if (s_[pos_] == '\\') error("escape sequences in strings are not supported");
      if (s_[pos_] == '\n') break;
      ++pos_;
    }
    if (pos_ >= s_.size() || s_[pos_] != quote) error_at(start - 1, "unterminated string");
    return s_.substr(start, pos_++ - start);
  }

  std::string_view identifier() {
    size_t start = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) ++pos_;
    return s_.substr(start, pos_ - start);
  }

  // "()", "(5,)", "(3, 4)" or "(3, 4,)". "(5)" is an int in Python, so it is refused.
  Shape shape_tuple() {
    if (!eat('(')) error("shape must be a tuple of integers");
    Shape shape;
    bool trailing_comma = false;
    skip_ws();
    while (!eat(')')) {
      if (shape.size() == static_cast<size_t>(kMaxDims))
        error("shape has more than " + std::to_string(kMaxDims) + " dimensions");
      shape.push_back(dimension());
      skip_ws();
      trailing_comma = eat(',');
      skip_ws();
      if (!trailing_comma && peek() != ')') error("expected ',' or ')' in shape");
    }
    if (shape.size() == 1 && !trailing_comma) error("shape must be a tuple: write (n,) not (n)");
    return shape;
  }

  int64_t dimension() {
    size_t start = pos_;
    if (peek() == '-') {
      ++pos_;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) error("expected an integer in shape");
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++pos_;
      error_at(start, "negative dimension in shape");
    }
    if (!std::isdigit(static_cast<unsigned char>(peek()))) error("expected an integer in shape");
    int64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      int digit = s_[pos_++] - '0';
      if (v > (INT64_MAX - digit) / 10) error_at(start, "dimension does not fit in 64 bits");
      v = v * 10 + digit;
    }
    // Python 2 wrote long integers as "3L"; NumPy still strips that for 1.0 and 2.0 files.
    if (allow_long_ && (peek() == 'L' || peek() == 'l')) ++pos_;
    return v;
  }

  std::string_view s_;
  size_t pos_ = 0;
  const std::string& name_;
  bool allow_long_;
};

// Checks the element count and byte size against what the file holds, before any
// allocation. Even an empty array must have a product of non-zero dimensions that fits,
// or its strides would overflow (NumPy refuses such shapes too).
void check_data_size(NpyHeader& h, uint64_t file_size, const std::string& name) {
  const int64_t item = static_cast<int64_t>(itemsize(h.dtype));
  int64_t span = item;
  bool empty = false;
  for (int64_t d : h.shape) {
    if (d == 0) { empty = true; continue; }
    if (span > INT64_MAX / d) fail(name, "shape " + shape_str(h.shape) + " is too large");
    span *= d;
  }
  h.data_bytes = empty ? 0 : static_cast<size_t>(span);
  uint64_t have = file_size - h.data_offset;
  if (h.data_bytes > have)
    fail(name, "file is truncated: header says " + std::to_string(h.data_bytes) + " bytes of data, file has " +
                   std::to_string(have));
}

template <class U> void byteswap_all(char* p, size_t n) {
  for (size_t i = 0; i < n; i += sizeof(U)) {
    U v;
    std::memcpy(&v, p + i, sizeof v);
    if constexpr (sizeof(U) == 4) v = __builtin_bswap32(v); else v = __builtin_bswap64(v);
    std::memcpy(p + i, &v, sizeof v);
  }
}

}  // namespace

size_t parse_preamble(const unsigned char* p, size_t avail, uint64_t file_size, const std::string& name,
                      size_t& dict_len) {
  size_t magic_n = avail < sizeof kMagic ? avail : sizeof kMagic;
  if (magic_n > 0 && std::memcmp(p, kMagic, magic_n) != 0)
    fail(name, "not a .npy file (bad magic; expected \\x93NUMPY)");
  if (avail < 8) fail(name, "file is too short to be a .npy file (" + std::to_string(avail) + " bytes)");
  int major = p[6], minor = p[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    fail(name, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                   " (kiln reads 1.0, 2.0 and 3.0)");
  size_t len_bytes = major == 1 ? 2 : 4;
  if (avail < 8 + len_bytes) fail(name, "file is truncated inside the header length");
  dict_len = p[8] | size_t(p[9]) << 8;
  if (len_bytes == 4) dict_len |= size_t(p[10]) << 16 | size_t(p[11]) << 24;
  size_t start = 8 + len_bytes;
  size_t have = start > file_size ? 0 : file_size - start;
  if (dict_len > have)
    fail(name, "header is truncated: header length says " + std::to_string(dict_len) + " bytes, file has " +
                   std::to_string(have) + " after the preamble");
  return start;
}

NpyHeader parse_header(int major, std::string_view dict_text, size_t dict_offset, uint64_t file_size,
                       const std::string& name) {
  NpyHeader h = DictParser(dict_text, name, /*allow_long_suffix=*/major <= 2).parse();
  h.version = major;
  h.data_offset = dict_offset + dict_text.size();
  h.file_size = file_size;
  check_data_size(h, file_size, name);
  return h;
}

Shape storage_shape(const NpyHeader& h) {
  return h.fortran ? Shape(h.shape.rbegin(), h.shape.rend()) : h.shape;
}

Array allocate(const NpyHeader& h) { return Array::empty(h.dtype, storage_shape(h)); }

void fix_up(char* p, size_t n, const NpyHeader& h) {
  if (h.swapped && itemsize(h.dtype) == 4) byteswap_all<uint32_t>(p, n);
  if (h.swapped && itemsize(h.dtype) == 8) byteswap_all<uint64_t>(p, n);
  if (h.dtype == DType::Bool)
    for (size_t i = 0; i < n; ++i) p[i] = p[i] != 0;
}

Array view(const Array& a, const NpyHeader& h) { return h.fortran ? a.transpose() : a; }

// NumPy 1.24: sorted keys, Python reprs, room for the first axis
// to grow to 21 digits, then spaces and '\n' so the data starts at a multiple of 64.
std::string header_bytes(DType dtype, const Shape& shape) {
  static const char* descrs[] = {"|b1", "<i4", "<i8", "<f4", "<f8"};
  std::string dict = std::string("{'descr': '") + descrs[static_cast<int>(dtype)] +
                     "', 'fortran_order': False, 'shape': " + shape_str(shape) + ", }";
  if (!shape.empty()) dict.append(21 - std::to_string(shape[0]).size(), ' ');
  // Version 2.0 only when the padded header overflows uint16, which kMaxDims rules out
  // today; NumPy's padding is never zero (1..64 spaces), kept for byte-identical files.
  int major = 1;
  size_t prefix = 10, hlen = dict.size() + 1;
  size_t pad = kAlign - (prefix + hlen) % kAlign;
  if (hlen + pad > 0xFFFF) {
    major = 2;
    prefix = 12;
    pad = kAlign - (prefix + hlen) % kAlign;
  }
  size_t total = hlen + pad;
  std::string out(reinterpret_cast<const char*>(kMagic), sizeof kMagic);
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((total >> (8 * i)) & 0xFF);
  out += dict;
  out.append(pad, ' ');
  out += '\n';
  return out;
}

}  // namespace npy

Array parse_npy(const void* bytes, size_t size, const std::string& name_for_errors) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  size_t dict_len = 0;
  size_t dict_offset = npy::parse_preamble(p, size, size, name_for_errors, dict_len);
  std::string_view text(reinterpret_cast<const char*>(p) + dict_offset, dict_len);
  NpyHeader h = npy::parse_header(p[6], text, dict_offset, size, name_for_errors);
  Array a = npy::allocate(h);
  if (h.data_bytes) std::memcpy(a.data(), p + h.data_offset, h.data_bytes);
  npy::fix_up(a.data(), h.data_bytes, h);
  return npy::view(a, h);
}

std::string encode_npy(const Array& a) {
  if (!a.valid()) throw Error(Status::BadArgument, "cannot encode an empty array handle");
  std::string out = npy::header_bytes(a.dtype(), a.shape());
  // C order, little-endian: the array itself when it already is, else a fresh copy.
  Array c = a.is_c_contiguous() ? a : a.copy();
  size_t header = out.size(), nbytes = static_cast<size_t>(c.size()) * c.itemsize();
  out.resize(header + nbytes);
  if (nbytes) std::memcpy(out.data() + header, c.data(), nbytes);
  static_assert(npy::kHostLittle, "kiln writes little-endian .npy files from a little-endian host only");
  return out;
}

}  // namespace kiln
