// Tests for the .npy reader and writer: round trips over every dtype and layout, the exact
// bytes NumPy's format spec prescribes, handcrafted files of every version and byte order,
// a list of hostile inputs that must each be refused with IOError, atomic saves, and
// (when /usr/bin/python3 has NumPy) files exchanged with NumPy itself.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "io_helpers.hpp"
#include "npy.hpp"
#include "runtime.hpp"

using namespace kiln;
using namespace kiln::test_io;
namespace fs = std::filesystem;

namespace {

// A .npy image with a header dict given verbatim (plus the final '\n').
std::string npy_image(int major, const std::string& dict, const std::string& data, int minor = 0) {
  std::string h = dict + "\n";
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += static_cast<char>(minor);
  size_t len_bytes = major == 1 ? 2 : 4;
  for (size_t i = 0; i < len_bytes; ++i) out += static_cast<char>((h.size() >> (8 * i)) & 0xFF);
  return out + h + data;
}

template <class T> std::string raw(std::initializer_list<T> values, bool big_endian = false) {
  std::string out;
  for (T v : values) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    if (big_endian) std::reverse(b, b + sizeof(T));
    out.append(b, sizeof(T));
  }
  return out;
}

// Element at a multi-index, through the strides (so it works for any view).
template <class T> T at(const Array& a, std::initializer_list<int64_t> idx) {
  REQUIRE(idx.size() == a.shape().size());
  const char* p = a.data();
  size_t k = 0;
  for (int64_t i : idx) p += i * a.strides()[k++];
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// The status and message parse_npy ends with; Ok if it accepted the bytes.
std::pair<Status, std::string> outcome(const std::string& bytes) {
  try {
    parse_npy(bytes.data(), bytes.size(), "x.npy");
    return {Status::Ok, ""};
  } catch (const Error& e) {
    return {e.status(), e.what()};
  }
}

Array parse(const std::string& bytes) { return parse_npy(bytes.data(), bytes.size(), "x.npy"); }


}  // namespace

TEST_CASE("save_npy then load_npy returns the same values for every dtype and shape", "[npy]") {
  TempDir dir;
  const Shape shapes[] = {{}, {0}, {5}, {3, 4}, {2, 3, 4}, {4, 0, 2}};
  for (DType t : kAllDTypes) {
    for (const Shape& shape : shapes) {
      INFO(dtype_name(t) << " " << shape_str(shape));
      Array a = filled(t, shape);
      save_npy(dir / "a.npy", a);
      Array b = load_npy(dir / "a.npy");
      CHECK(b.dtype() == t);
      CHECK(b.shape() == shape);
      CHECK(b.is_c_contiguous());
      CHECK(elements(b) == elements(a));
    }
  }
}

TEST_CASE("non-contiguous views are saved in C order", "[npy]") {
  TempDir dir;
  for (DType t : kAllDTypes) {
    INFO(dtype_name(t));
    Array v = filled(t, {10});
    for (const Array& view : views_of(t)) {
      save_npy(dir / "v.npy", view);
      Array b = load_npy(dir / "v.npy");
      CHECK(b.shape() == view.shape());
      CHECK(elements(b) == elements(view));
    }
    // The reversed slice really is reversed: elements 9, 7, 5, 3, 1.
    save_npy(dir / "r.npy", v.slice(0, 9, -11, -2));
    std::vector<std::string> r = elements(load_npy(dir / "r.npy")), src = elements(v);
    REQUIRE(r.size() == 5);
    CHECK(r[0] == src[9]);
    CHECK(r[4] == src[1]);
  }
}

TEST_CASE("the header bytes of a small float64 array follow the format spec exactly", "[npy]") {
  TempDir dir;
  Array a = Array::empty(DType::Float64, {3});
  a.data_as<double>()[0] = 1.0;
  a.data_as<double>()[1] = -2.5;
  a.data_as<double>()[2] = 1e300;
  save_npy(dir / "h.npy", a);
  std::string bytes = read_bytes(dir / "h.npy");

  // magic, version 1.0, header length 118 = 0x76 (little-endian uint16), so that magic (6)
  // + version (2) + length (2) + 118 = 128, a multiple of 64. The dict is NumPy's repr:
  // sorted keys, "(3,)" for a 1-tuple, a trailing ", ", then 20 spaces NumPy reserves so the
  // first axis can grow to 21 digits, then padding spaces and '\n'.
  std::string expected("\x93NUMPY\x01\x00\x76\x00", 10);
  expected += "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  expected += std::string(20, ' ');
  expected += std::string(127 - expected.size(), ' ');
  expected += '\n';
  REQUIRE(expected.size() == 128);
  REQUIRE(bytes.size() == 128 + 24);
  CHECK(bytes.substr(0, 128) == expected);
  CHECK(bytes.substr(128) == raw<double>({1.0, -2.5, 1e300}));
}


TEST_CASE("headers are padded so the data starts at a multiple of 64", "[npy]") {
  TempDir dir;
  const Shape shapes[] = {{}, {1}, {7, 0}, {0, 123456789012}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
                          Shape(32, 0)};
  for (const Shape& shape : shapes) {
    INFO(shape_str(shape));
    save_npy(dir / "p.npy", Array::zeros(DType::Int32, shape));
    std::string bytes = read_bytes(dir / "p.npy");
    size_t hlen = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
    CHECK(bytes.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
    CHECK((10 + hlen) % 64 == 0);
    CHECK(bytes[9 + hlen] == '\n');
    CHECK(bytes.find("'shape': " + shape_str(shape) + ", }") != std::string::npos);
    CHECK(load_npy(dir / "p.npy").shape() == shape);
  }
}

TEST_CASE("version 2.0 and 3.0 headers are read", "[npy]") {
  Array a = parse(npy_image(2, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
                            raw<int64_t>({-5, 1LL << 40})));
  REQUIRE(a.dtype() == DType::Int64);
  REQUIRE(a.shape() == Shape{2});
  CHECK(at<int64_t>(a, {0}) == -5);
  CHECK(at<int64_t>(a, {1}) == 1LL << 40);

  Array b = parse(npy_image(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }",
                            raw<float>({0.75f, -3.0f})));
  REQUIRE(b.dtype() == DType::Float32);
  REQUIRE(b.shape() == Shape{1, 2});
  CHECK(at<float>(b, {0, 1}) == -3.0f);
}

TEST_CASE("big-endian int32 and float64 are byte-swapped on load", "[npy]") {
  Array a = parse(npy_image(1, "{'descr': '>i4', 'fortran_order': False, 'shape': (3,), }",
                            raw<int32_t>({1, -2, 0x01020304}, /*big_endian=*/true)));
  REQUIRE(a.dtype() == DType::Int32);
  CHECK(at<int32_t>(a, {0}) == 1);
  CHECK(at<int32_t>(a, {1}) == -2);
  CHECK(at<int32_t>(a, {2}) == 0x01020304);

  Array b = parse(npy_image(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2), }",
                            raw<double>({1.5, -0.25, 1e-300, 6.02e23}, true)));
  REQUIRE(b.dtype() == DType::Float64);
  CHECK(at<double>(b, {0, 0}) == 1.5);
  CHECK(at<double>(b, {0, 1}) == -0.25);
  CHECK(at<double>(b, {1, 0}) == 1e-300);
  CHECK(at<double>(b, {1, 1}) == 6.02e23);

  Array c = parse(npy_image(1, "{'descr': '>i8', 'fortran_order': False, 'shape': (1,), }",
                            raw<int64_t>({-1234567890123LL}, true)));
  CHECK(at<int64_t>(c, {0}) == -1234567890123LL);
  Array d = parse(npy_image(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                            raw<float>({-7.125f}, true)));
  CHECK(at<float>(d, {0}) == -7.125f);
}

TEST_CASE("fortran_order True gives a view whose [i][j] is the right element", "[npy]") {
  // v[i][j] = 10*i + j stored column by column.
  std::string data = raw<int32_t>({0, 10, 1, 11, 2, 12});
  Array a = parse(npy_image(1, "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", data));
  REQUIRE(a.shape() == Shape{2, 3});
  CHECK(a.strides() == Shape{4, 8});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) CHECK(at<int32_t>(a, {i, j}) == 10 * i + j);
  // And a copy is the C-ordered version of the same values.
  Array c = a.copy();
  CHECK(std::memcmp(c.data(), raw<int32_t>({0, 1, 2, 10, 11, 12}).data(), 24) == 0);

  Array z = parse(npy_image(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (), }", raw<double>({2.5})));
  CHECK(z.ndim() == 0);
  CHECK(*z.data_as<double>() == 2.5);
}

TEST_CASE("bool data is read and stray non-zero bytes become true", "[npy]") {
  Array a = parse(npy_image(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }",
                            std::string("\x00\x01\x02\xff", 4)));
  REQUIRE(a.dtype() == DType::Bool);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(a.data());
  CHECK(p[0] == 0);
  CHECK(p[1] == 1);
  CHECK(p[2] == 1);
  CHECK(p[3] == 1);
}

TEST_CASE("headers NumPy accepts in other spellings are read", "[npy]") {
  // Double quotes, any key order, no trailing comma, newlines and tabs inside the braces.
  Array a = parse(npy_image(1, "{\"shape\": (2,\t2),\n \"fortran_order\": False, \"descr\": \"<f8\"}",
                            raw<double>({1, 2, 3, 4})));
  CHECK(a.shape() == Shape{2, 2});
  CHECK(at<double>(a, {1, 0}) == 3);
  // Python 2 wrote long dimensions as "3L"; version 1.0 and 2.0 files may hold them.
  Array b = parse(npy_image(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3L,), }",
                            raw<int32_t>({7, 8, 9})));
  CHECK(b.shape() == Shape{3});
  // Bytes after the data are ignored, as np.load ignores them.
  Array c = parse(npy_image(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }",
                            raw<int32_t>({42}) + "trailing"));
  CHECK(at<int32_t>(c, {0}) == 42);
  // An empty array needs no data at all.
  Array d = parse(npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 5), }", ""));
  CHECK(d.shape() == Shape{0, 5});
}

TEST_CASE("hostile inputs are refused with IOError naming the file and the problem", "[npy]") {
  const std::string hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': ";
  auto v1 = [](const std::string& dict, const std::string& data = "") { return npy_image(1, dict, data); };
  std::string long_header = npy_image(2, hdr + "(1,), }", raw<double>({1}));
  long_header[8] = '\xff', long_header[9] = '\xff', long_header[10] = '\xff', long_header[11] = '\xff';
  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"empty file", "", "too short"},
      {"magic only", "\x93NUMPY", "too short"},
      {"bad magic", "\x93NUMPX\x01\x00\x10\x00{}", "bad magic"},
      {"text file", "hello, world\n", "bad magic"},
      {"version 9", npy_image(9, hdr + "(1,), }", raw<double>({1})), "version 9.0"},
      {"version 1.1", npy_image(1, hdr + "(1,), }", raw<double>({1}), 1), "version 1.1"},
      {"cut inside the header length", std::string("\x93NUMPY\x02\x00\x10\x00", 10), "header length"},
      {"header length beyond the file", std::string("\x93NUMPY\x01\x00\xff\x7f{}", 12), "header is truncated"},
      {"v2 header length 4 GiB", long_header, "header is truncated"},
      {"non-dict header", v1("[1, 2, 3]"), "not a dictionary"},
      {"unclosed dict", v1("{'descr': '<f8'"), "expected ',' or '}'"},
      {"complex dtype", v1("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", std::string(16, 0)),
       "unsupported dtype '<c16' (kiln reads bool, int32, int64, float32, float64)"},
      {"object dtype", v1("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", std::string(8, 0)),
       "unsupported dtype '|O'"},
      {"structured dtype", v1("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,), }"),
       "structured"},
      {"unicode dtype", v1("{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }"), "unsupported dtype"},
      {"int16", v1("{'descr': '<i2', 'fortran_order': False, 'shape': (1,), }"), "unsupported dtype '<i2'"},
      {"float64 without byte order", v1("{'descr': '|f8', 'fortran_order': False, 'shape': (1,), }"),
       "unsupported dtype '|f8'"},
      {"negative dim", v1(hdr + "(-1,), }"), "negative dimension"},
      {"(2**62, 2**62)", v1(hdr + "(4611686018427387904, 4611686018427387904), }"), "too large"},
      {"empty but with overflowing other dims", v1(hdr + "(0, 4611686018427387904, 4611686018427387904), }"),
       "too large"},
      {"huge single dim overflowing", v1(hdr + "(1152921504606846976,), }"), "too large"},
      {"huge single dim past the file", v1(hdr + "(576460752303423488,), }"),
       "header says 4611686018427387904 bytes of data, file has 0"},
      {"dim beyond 64 bits", v1(hdr + "(99999999999999999999,), }"), "64 bits"},
      {"data shorter than the shape", v1(hdr + "(100,), }", std::string(400, '\0')),
       "file is truncated: header says 800 bytes of data, file has 400"},
      {"fortran_order 1", v1("{'descr': '<f8', 'fortran_order': 1, 'shape': (1,), }"), "fortran_order"},
      {"fortran_order string", v1("{'descr': '<f8', 'fortran_order': 'True', 'shape': (1,), }"), "fortran_order"},
      {"fortran_order true", v1("{'descr': '<f8', 'fortran_order': true, 'shape': (1,), }"), "fortran_order"},
      {"garbage in dict", v1(hdr + "(1,), xyz}", raw<double>({1})), "quoted string"},
      {"garbage after value", v1(hdr + "(1,) 7, }", raw<double>({1})), "expected ',' or '}'"},
      {"garbage after dict", v1(hdr + "(1,), } x", raw<double>({1})), "after the header dictionary"},
      {"missing shape", v1("{'descr': '<f8', 'fortran_order': False, }"), "missing the 'shape' key"},
      {"missing descr", v1("{'fortran_order': False, 'shape': (), }"), "missing the 'descr' key"},
      {"duplicate key", v1(hdr + "(1,), 'shape': (1,), }", raw<double>({1})), "duplicate key 'shape'"},
      {"unknown key", v1(hdr + "(1,), 'extra': 0, }", raw<double>({1})), "unexpected key 'extra'"},
      {"unterminated string", v1("{'descr': '<f8"), "unterminated string"},
      {"escape in string", v1("{'descr': '<f\\x38', 'fortran_order': False, 'shape': (), }"), "escape"},
      {"shape not a tuple", v1(hdr + "(5), }", raw<double>({1, 2, 3, 4, 5})), "(n,)"},
      {"shape a list", v1(hdr + "[5], }"), "tuple"},
      {"shape with a float", v1(hdr + "(1.5,), }"), "expected ',' or ')'"},
      {"shape with a name", v1(hdr + "(n,), }"), "integer"},
      {"empty dict", v1("{}"), "missing the 'descr' key"},
      {"NUL in header", v1(std::string("{'descr': '<f8'\0, }", 19)), "expected ',' or '}'"},
      {"long suffix in v3", npy_image(3, hdr + "(1L,), }", raw<double>({1})), "expected ',' or ')'"},
  };
  for (const Case& c : cases) {
    auto [status, message] = outcome(c.bytes);
    INFO(c.what << ": " << message);
    CHECK(status == Status::IOError);
    CHECK(message.rfind("x.npy: ", 0) == 0);
    CHECK(message.find(c.message) != std::string::npos);
  }
  // More than kiln's 32 dimensions.
  std::string dims;
  for (int i = 0; i < 33; ++i) dims += "1, ";
  auto [status, message] = outcome(v1(hdr + "(" + dims + "), }", raw<double>({1})));
  CHECK(status == Status::IOError);
  CHECK(message.find("more than 32 dimensions") != std::string::npos);
}

TEST_CASE("load_npy reports missing, non-regular and truncated files", "[npy]") {
  TempDir dir;
  auto status_of = [](const std::string& path, std::string& message) {
    try {
      load_npy(path);
    } catch (const Error& e) {
      message = e.what();
      return e.status();
    }
    return Status::Ok;
  };
  std::string message;
  CHECK(status_of(dir / "missing.npy", message) == Status::IOError);
  CHECK(message == dir / "missing.npy" + ": No such file or directory");
  CHECK(status_of(dir.path, message) == Status::IOError);
  CHECK(message.find("not a regular file") != std::string::npos);

  save_npy(dir / "t.npy", filled(DType::Float64, {100}));
  std::string bytes = read_bytes(dir / "t.npy");
  write_bytes(dir / "t.npy", bytes.substr(0, bytes.size() - 400));
  CHECK(status_of(dir / "t.npy", message) == Status::IOError);
  CHECK(message == dir / "t.npy" + ": file is truncated: header says 800 bytes of data, file has 400");
  write_bytes(dir / "t.npy", bytes.substr(0, 50));
  CHECK(status_of(dir / "t.npy", message) == Status::IOError);
  CHECK(message.find("header is truncated") != std::string::npos);
}

TEST_CASE("save_npy into a missing directory fails with IOError and leaves nothing behind", "[npy]") {
  TempDir dir;
  std::string path = dir / "no/such/dir/a.npy";
  try {
    save_npy(path, filled(DType::Int32, {4}));
    FAIL("save_npy succeeded");
  } catch (const Error& e) {
    CHECK(e.status() == Status::IOError);
    CHECK(std::string(e.what()) == path + ": No such file or directory");
  }
  CHECK(dir.entries().empty());
}

TEST_CASE("save_npy replaces an existing file and leaves no temporary, durable or not", "[npy]") {
  for (bool durable : {false, true}) {
    TempDir dir;
    write_bytes(dir / "a.npy", "old contents");
    Array a = filled(DType::Float32, {2, 3});
    save_npy(dir / "a.npy", a, durable);
    CHECK(elements(load_npy(dir / "a.npy")) == elements(a));
    CHECK(dir.entries() == std::vector<std::string>{"a.npy"});
  }
}

TEST_CASE("a save whose rename fails removes its temporary and keeps the destination", "[npy]") {
  TempDir dir;
  // A non-empty directory cannot be replaced by rename(), so the failure comes after the
  // temporary has been written and synced.
  fs::create_directory(dir / "target");
  write_bytes(dir / "target/keep", "x");
  try {
    save_npy(dir / "target", filled(DType::Int64, {3}));
    FAIL("save_npy succeeded");
  } catch (const Error& e) {
    CHECK(e.status() == Status::IOError);
    CHECK(std::string(e.what()).rfind(dir / "target: ", 0) == 0);
  }
  CHECK_FALSE(has_tmp_leftovers(dir));
  CHECK(read_bytes(dir / "target/keep") == "x");
}

TEST_CASE("saving an empty array handle is a BadArgument", "[npy]") {
  TempDir dir;
  try {
    save_npy(dir / "a.npy", Array());
    FAIL("save_npy succeeded");
  } catch (const Error& e) {
    CHECK(e.status() == Status::BadArgument);
  }
  CHECK(dir.entries().empty());
}

TEST_CASE("NumPy loads what kiln saves, and would have written the same bytes", "[npy][numpy]") {
  if (!python_has_numpy()) {
    WARN("/usr/bin/python3 with numpy is not available; skipping");
    return;
  }
  TempDir dir;
  save_npy(dir / "f8_34.npy", filled(DType::Float64, {3, 4}));
  save_npy(dir / "i4_5.npy", filled(DType::Int32, {5}));
  save_npy(dir / "i8_234.npy", filled(DType::Int64, {2, 3, 4}));
  save_npy(dir / "b1_22.npy", filled(DType::Bool, {2, 2}));
  save_npy(dir / "f4_0d.npy", filled(DType::Float32, {}));
  save_npy(dir / "i8_03.npy", filled(DType::Int64, {0, 3}));
  save_npy(dir / "f8_t.npy", filled(DType::Float64, {3, 4}).transpose());
  // Headers of every length up to 32 dimensions, so the reserved growth spaces push some
  // across a 64-byte boundary, and a long first axis that leaves less room for them.
  for (size_t k = 1; k <= 32; ++k)
    save_npy(dir / ("ones_" + std::to_string(k) + ".npy"), Array::zeros(DType::Int32, Shape(k, 1)));
  save_npy(dir / "long_first.npy", Array::zeros(DType::Int32, {123456789012, 0}));
  save_npy(dir / "long_second.npy", Array::zeros(DType::Int32, {0, 123456789012}));
  // Header text ending exactly on a 64-byte boundary: NumPy then pads a whole 64 bytes.
  Shape boundary(32, 1);
  boundary.front() = 0;
  boundary.back() = 1000000000000;
  save_npy(dir / "boundary.npy", Array::zeros(DType::Int32, boundary));
  write_bytes(dir / "check.py", R"PY(
import io, sys
import numpy as np
d = sys.argv[1]
def base(dt, n):
    i = np.arange(n, dtype=np.int64)
    if dt == "b1": return i % 3 == 0
    if dt == "i4": return (i * 7919 - 100000).astype(np.int32)
    if dt == "i8": return (i - 3) * 1000000007 * 1000
    if dt == "f4": return i.astype(np.float32) * np.float32(0.5) - np.float32(1.25)
    return i / 3.0 - 2.0
cases = [("f8_34", "f8", (3, 4)), ("i4_5", "i4", (5,)), ("i8_234", "i8", (2, 3, 4)), ("b1_22", "b1", (2, 2)),
         ("f4_0d", "f4", ()), ("i8_03", "i8", (0, 3)), ("f8_t", "f8", (3, 4))]
for name, dt, shape in cases:
    want = base(dt, int(np.prod(shape))).reshape(shape)
    if name == "f8_t": want = want.T
    got = np.load(d + "/" + name + ".npy")
    assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    assert np.array_equal(got, want), name
    buf = io.BytesIO()
    np.save(buf, want.copy(order="C"))  # ascontiguousarray would make 0-d 1-d
    assert buf.getvalue() == open(d + "/" + name + ".npy", "rb").read(), name + ": bytes differ from np.save"
extra = [("ones_%d" % k, (1,) * k) for k in range(1, 33)]
extra += [("long_first", (123456789012, 0)), ("long_second", (0, 123456789012))]
extra += [("boundary", (0,) + (1,) * 30 + (10**12,))]
for name, shape in extra:
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, dtype=np.int32))
    assert buf.getvalue() == open(d + "/" + name + ".npy", "rb").read(), name + ": bytes differ from np.save"
)PY");
  std::string cmd = "/usr/bin/python3 " + dir / "check.py" + " " + dir.path;
  CHECK(std::system(cmd.c_str()) == 0);
}

TEST_CASE("kiln loads what NumPy saves: C and Fortran order, both byte orders, bool, 0-d, empty", "[npy][numpy]") {
  if (!python_has_numpy()) {
    WARN("/usr/bin/python3 with numpy is not available; skipping");
    return;
  }
  TempDir dir;
  write_bytes(dir / "make.py", R"PY(
import sys
import numpy as np
d = sys.argv[1] + "/"
np.save(d + "c_f8.npy", np.arange(12, dtype="<f8").reshape(3, 4) / 8)
np.save(d + "f_f4.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3) * 2 - 1))
np.save(d + "f_i8.npy", np.asfortranarray(np.arange(24, dtype="<i8").reshape(2, 3, 4)))
np.save(d + "be_i4.npy", (np.arange(12, dtype=">i4") * 3 - 7).reshape(3, 4))
np.save(d + "be_f8.npy", np.arange(5, dtype=">f8") * -1.5)
np.save(d + "b1.npy", np.array([True, False, True, True]))
np.save(d + "i8_0d.npy", np.int64(-1234567890123))
np.save(d + "empty.npy", np.zeros((0, 4), dtype=np.int32))
)PY");
  std::string cmd = "/usr/bin/python3 " + dir / "make.py" + " " + dir.path;
  REQUIRE(std::system(cmd.c_str()) == 0);

  for (NpyLoad mode : {NpyLoad::Read, NpyLoad::Mmap}) {
    INFO("mapped: " << (mode == NpyLoad::Mmap));
    Array c = load_npy(dir / "c_f8.npy", mode);
    REQUIRE(c.shape() == Shape{3, 4});
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j) CHECK(at<double>(c, {i, j}) == (i * 4 + j) / 8.0);

    Array f = load_npy(dir / "f_f4.npy", mode);
    REQUIRE(f.dtype() == DType::Float32);
    REQUIRE(f.shape() == Shape{2, 3});
    CHECK(f.strides() == Shape{4, 8});
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j) CHECK(at<float>(f, {i, j}) == static_cast<float>((i * 3 + j) * 2 - 1));

    Array g = load_npy(dir / "f_i8.npy", mode);
    REQUIRE(g.shape() == Shape{2, 3, 4});
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t k = 0; k < 4; ++k) CHECK(at<int64_t>(g, {i, j, k}) == i * 12 + j * 4 + k);

    Array bi = load_npy(dir / "be_i4.npy", mode);
    REQUIRE(bi.dtype() == DType::Int32);
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j) CHECK(at<int32_t>(bi, {i, j}) == (i * 4 + j) * 3 - 7);

    Array bf = load_npy(dir / "be_f8.npy", mode);
    REQUIRE(bf.dtype() == DType::Float64);
    for (int64_t k = 0; k < 5; ++k) CHECK(at<double>(bf, {k}) == k * -1.5);

    Array b = load_npy(dir / "b1.npy", mode);
    REQUIRE(b.dtype() == DType::Bool);
    CHECK(std::memcmp(b.data(), "\x01\x00\x01\x01", 4) == 0);

    Array s = load_npy(dir / "i8_0d.npy", mode);
    CHECK(s.ndim() == 0);
    CHECK(*s.data_as<int64_t>() == -1234567890123LL);

    Array e = load_npy(dir / "empty.npy", mode);
    CHECK(e.dtype() == DType::Int32);
    CHECK(e.shape() == Shape{0, 4});
  }
}

// ---- files: pieces read and written by several threads, mappings, many files at once,
// a save killed halfway.

namespace {

// Big enough for several 8 MiB pieces, with a short last one.
constexpr int64_t kBigRows = 3 * 1024 + 7, kBigCols = 1031;

std::string big_endian_f64_image(const Array& a) {
  std::string data;
  for (int64_t i = 0; i < a.size(); ++i) {
    char b[8];
    std::memcpy(b, a.data() + 8 * i, 8);
    std::reverse(b, b + 8);
    data.append(b, 8);
  }
  return npy_image(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (" + std::to_string(a.shape()[0]) + ", " +
                          std::to_string(a.shape()[1]) + "), }",
                   data);
}

}  // namespace

TEST_CASE("big files are read and written in pieces by 1, 2 and 3 threads", "[npy][files]") {
  TempDir dir;
  Array a = filled(DType::Float64, {kBigRows, kBigCols});
  Array view = filled(DType::Float32, {kBigCols, kBigRows}).transpose();  // saved in pieces of rows, copied
  write_bytes(dir / "be.npy", big_endian_f64_image(a));
  for (int threads : {1, 2, 3}) {
    Runtime::instance().set_num_threads(threads);
    std::vector<std::pair<uint64_t, uint64_t>> reports;
    save_npy(dir / "a.npy", a, false, [&](uint64_t done, uint64_t total) { reports.emplace_back(done, total); });
    REQUIRE(reports.size() >= 3);
    CHECK(reports.back() == std::make_pair(uint64_t(a.size() * 8), uint64_t(a.size() * 8)));
    for (size_t i = 1; i < reports.size(); ++i) CHECK(reports[i].first > reports[i - 1].first);
    CHECK(same(load_npy(dir / "a.npy"), a));
    CHECK(same(load_npy(dir / "be.npy"), a));
    save_npy(dir / "v.npy", view);
    Array back = load_npy(dir / "v.npy");
    CHECK(back.shape() == view.shape());
    CHECK(same(back, view));
  }
  Runtime::instance().set_num_threads(0);
  // The bytes of a view's file are those of its C-order copy.
  save_npy(dir / "c.npy", view.copy());
  CHECK(read_bytes(dir / "c.npy") == read_bytes(dir / "v.npy"));
}

TEST_CASE("a mapped load is a view of the file, Fortran order as strides; writes never reach the file", "[npy][files]") {
  TempDir dir;
  for (bool big : {false, true}) {
    Array a = big ? filled(DType::Float64, {kBigRows, kBigCols}) : filled(DType::Int32, {5, 7});
    save_npy(dir / "c.npy", a);
    std::string before = read_bytes(dir / "c.npy");
    Array m = load_npy(dir / "c.npy", NpyLoad::Mmap);
    CHECK(m.strides() == a.strides());
    CHECK(same(m, a));
    std::memset(m.data(), 0x5a, m.itemsize());  // copy-on-write: the process's page only
    CHECK(read_bytes(dir / "c.npy") == before);
    CHECK(same(load_npy(dir / "c.npy", NpyLoad::Mmap), a));
  }
  // Fortran order: element [i][j] at i*item + j*rows*item of the mapping, no copy made.
  std::string data = raw<double>({1, 2, 3, 4, 5, 6});
  write_bytes(dir / "f.npy", npy_image(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", data));
  Array f = load_npy(dir / "f.npy", NpyLoad::Mmap);
  CHECK(f.shape() == Shape{2, 3});
  CHECK(f.strides() == Shape{8, 16});
  CHECK(at<double>(f, {1, 2}) == 6.0);
  CHECK(at<double>(f, {1, 0}) == 2.0);
  // What a mapping cannot show as it is is read instead: other byte order, stray bool
  // bytes, data not aligned to its item size.
  write_bytes(dir / "be.npy", npy_image(1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }",
                                        raw<int32_t>({7, -9}, true)));
  Array be = load_npy(dir / "be.npy", NpyLoad::Mmap);
  CHECK(at<int32_t>(be, {0}) == 7);
  CHECK(at<int32_t>(be, {1}) == -9);
  write_bytes(dir / "b.npy", npy_image(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
                                       std::string("\x00\x02\x01", 3)));
  Array b = load_npy(dir / "b.npy", NpyLoad::Mmap);
  CHECK(elements(b) == std::vector<std::string>{std::string(1, '\0'), "\x01", "\x01"});
  write_bytes(dir / "odd.npy", npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), } ",
                                         raw<double>({0.25, -8})));
  Array odd = load_npy(dir / "odd.npy", NpyLoad::Mmap);
  CHECK(reinterpret_cast<uintptr_t>(odd.data()) % 8 == 0);
  CHECK(at<double>(odd, {1}) == -8.0);
}

TEST_CASE("load_npy_many and save_npy_many: many files at once; the first failing path is named", "[npy][files]") {
  TempDir dir;
  std::vector<std::string> paths;
  std::vector<Array> arrays;
  for (int i = 0; i < 300; ++i) {
    paths.push_back(dir / ("f" + std::to_string(i) + ".npy"));
    arrays.push_back(filled(kAllDTypes[i % 5], {i % 17, 3}));
  }
  paths.push_back(dir / "big.npy");
  arrays.push_back(filled(DType::Float64, {kBigRows, kBigCols}));
  save_npy_many(paths, arrays);
  CHECK_FALSE(has_tmp_leftovers(dir));
  for (NpyLoad mode : {NpyLoad::Read, NpyLoad::Mmap}) {
    std::vector<Array> back = load_npy_many(paths, mode);
    REQUIRE(back.size() == paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
      CHECK(back[i].dtype() == arrays[i].dtype());
      CHECK(back[i].shape() == arrays[i].shape());
      CHECK(same(back[i], arrays[i]));
    }
  }
  std::vector<std::string> bad = paths;
  bad[7] = dir / "missing.npy";
  write_bytes(dir / "junk.npy", "not a numpy file");
  bad[200] = dir / "junk.npy";
  try {
    load_npy_many(bad);
    FAIL("load_npy_many succeeded");
  } catch (const Error& e) {
    CHECK(e.status() == Status::IOError);
    CHECK(std::string(e.what()) == dir / "missing.npy: No such file or directory");
  }
  CHECK(load_npy_many({}).empty());
  try {
    save_npy_many({dir / "x.npy"}, {});
    FAIL("save_npy_many succeeded");
  } catch (const Error& e) {
    CHECK(e.status() == Status::BadArgument);
  }
}

TEST_CASE("a save killed halfway (SIGKILL) leaves the old file byte-identical and no temporary", "[npy][files]") {
  TempDir dir;
  Array old_contents = filled(DType::Int32, {1000});
  save_npy(dir / "a.npy", old_contents);
  const std::string before = read_bytes(dir / "a.npy");
  Array big = filled(DType::Float64, {4 * kBigRows, kBigCols});  // ~100 MB: a save takes a while
  for (int delay_ms : {1, 5, 20}) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::close(ready[0]);
      (void)!::write(ready[1], "x", 1);
      for (;;) save_npy(dir / "a.npy", big.transpose());  // never finishes before the kill
    }
    ::close(ready[1]);
    char c;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
    ::usleep(delay_ms * 1000);
    ::kill(child, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    std::string now = read_bytes(dir / "a.npy");
    // The kill may land after a whole save: then the file is the new array, complete.
    if (now != before) CHECK(same(load_npy(dir / "a.npy"), big.transpose()));
    CHECK(dir.entries() == std::vector<std::string>{"a.npy"});
  }
}

TEST_CASE("a 3.2 GB file (sparse) is mapped without reading it; a header beyond the file is refused unallocated", "[npy][files]") {
  TempDir dir;
  const int64_t n = 400000000;  // 3.2 GB of float64
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + std::to_string(n) + ",), }";
  dict.append((64 - (11 + dict.size()) % 64) % 64, ' ');  // data at a multiple of 64
  std::string header = npy_image(1, dict, "");
  REQUIRE(header.size() % 64 == 0);
  write_bytes(dir / "big.npy", header);
  REQUIRE(::truncate((dir / "big.npy").c_str(), static_cast<off_t>(header.size() + 8 * n)) == 0);
  // One value at the end, so the mapping is seen to reach it.
  {
    std::fstream f(dir / "big.npy", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(header.size() + 8 * (n - 1)));
    double v = 42.5;
    f.write(reinterpret_cast<const char*>(&v), 8);
  }
  Array m = load_npy(dir / "big.npy", NpyLoad::Mmap);
  CHECK(m.shape() == Shape{n});
  CHECK(at<double>(m, {0}) == 0.0);
  CHECK(at<double>(m, {n - 1}) == 42.5);
  NpyHeader h = read_npy_header(dir / "big.npy");
  CHECK(h.data_bytes == uint64_t(8 * n));
  CHECK(h.data_offset == header.size());
  // The same header over a file a byte short of it.
  REQUIRE(::truncate((dir / "big.npy").c_str(), static_cast<off_t>(header.size() + 8 * n - 1)) == 0);
  for (NpyLoad mode : {NpyLoad::Read, NpyLoad::Mmap}) {
    try {
      load_npy(dir / "big.npy", mode);
      FAIL("a truncated 3.2 GB file was loaded");
    } catch (const Error& e) {
      CHECK(std::string(e.what()) == dir / "big.npy: file is truncated: header says 3200000000 bytes of data, file has 3199999999");
    }
  }
}

TEST_CASE("a file bigger than memory maps read-only, and its array refuses writes", "[npy][files]") {
  // Twice the machine's memory, sparse (create_npy sizes it, writes none of it): a
  // copy-on-write mapping of it may be refused by the kernel's overcommit check; a
  // read-only one reserves nothing.
  TempDir dir;
  const int64_t n = static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE) / 4;
  create_npy(dir / "huge.npy", DType::Float64, {n});
  write_npy_window(dir / "huge.npy", {n - 2}, filled(DType::Float64, {2}));
  Array m = load_npy(dir / "huge.npy", NpyLoad::MmapReadOnly);
  CHECK(m.shape() == Shape{n});
  CHECK(at<double>(m, {0}) == 0.0);
  CHECK(same(m.slice(0, n - 2, n), filled(DType::Float64, {2})));
  CHECK_FALSE(m.writable());
  // A file a mapping cannot show as it is (byte-swapped) is read, and read-only too.
  write_bytes(dir / "be.npy", npy_image(1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }",
                                        raw<int32_t>({7, -9}, true)));
  Array be = load_npy(dir / "be.npy", NpyLoad::MmapReadOnly);
  CHECK(at<int32_t>(be, {1}) == -9);
  CHECK_FALSE(be.writable());
}

TEST_CASE("a save that runs out of room (a file size limit, as a full disk) keeps the old file and leaves nothing", "[npy][files]") {
  TempDir dir;
  Array old_contents = filled(DType::Int64, {100});
  save_npy(dir / "a.npy", old_contents);
  const std::string before = read_bytes(dir / "a.npy");
  // In a child: RLIMIT_FSIZE makes writes past 1 MiB fail with EFBIG, as ENOSPC would.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {1 << 20, 1 << 20};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    int code = 0;
    for (const Array& big : {filled(DType::Float64, {1 << 19}), filled(DType::Float64, {512, 1024}).transpose()}) {
      try {
        save_npy(dir / "a.npy", big);
        code |= 1;  // the save should have failed
      } catch (const Error& e) {
        if (std::string(e.what()) != dir / "a.npy: File too large") code |= 2;
      }
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(read_bytes(dir / "a.npy") == before);
  CHECK(dir.entries() == std::vector<std::string>{"a.npy"});
}

TEST_CASE("windows written into a created file in any order, from several threads, make the whole array", "[npy][window]") {
  TempDir dir;
  for (DType t : {DType::Bool, DType::Int32, DType::Int64, DType::Float32, DType::Float64}) {
    INFO(dtype_name(t));
    const Shape shape = {13, 7, 29};
    const Array whole = filled(t, shape);
    const std::string path = dir / "windows.npy";
    create_npy(path, t, shape);
    // Untouched, it reads as zeros and has the bytes save_npy's header promises.
    CHECK(same(load_npy(path), Array::zeros(t, shape)));
    // Blocks of an uneven grid (4 + 9, 7, 10 + 19) and a transposed view for one of them.
    std::vector<std::pair<Shape, Shape>> blocks;
    for (int64_t r : {0, 4})
      for (int64_t c : {0, 10})
        blocks.push_back({{r, 0, c}, {r ? 9 : 4, 7, c ? 19 : 10}});
    std::vector<std::thread> writers;
    for (const auto& [start, extent] : blocks)
      writers.emplace_back([&, start = start, extent = extent] {
        Array part = whole;
        for (int d = 0; d < 3; ++d) part = part.slice(d, start[d], start[d] + extent[d]);
        write_npy_window(path, start, start[0] ? part : part.transpose().copy().transpose());
      });
    for (auto& w : writers) w.join();
    CHECK(same(load_npy(path), whole));
    CHECK(read_bytes(path) == encode_npy(whole));  // byte-identical to a whole save
  }
  // Windows spanning the trailing axes are written as one run: a 0-d file, a 1-d one.
  const std::string scalar = dir / "scalar.npy", line = dir / "line.npy";
  create_npy(scalar, DType::Float64, {});
  write_npy_window(scalar, {}, filled(DType::Float64, {}));
  CHECK(same(load_npy(scalar), filled(DType::Float64, {})));
  create_npy(line, DType::Int64, {100});
  const Array values = filled(DType::Int64, {100});
  write_npy_window(line, {60}, values.slice(0, 60, 100));
  write_npy_window(line, {0}, values.slice(0, 0, 60));
  CHECK(same(load_npy(line), values));
}

TEST_CASE("a window that does not fit the file, or of another dtype, is refused before a byte is written", "[npy][window]") {
  TempDir dir;
  const std::string path = dir / "w.npy";
  create_npy(path, DType::Float32, {4, 6});
  const std::string before = read_bytes(path);
  auto refused = [&](const std::string& file, const Shape& start, const Array& a, const std::string& says) {
    try {
      write_npy_window(file, start, a);
      FAIL("accepted a window at " << shape_str(start));
    } catch (const Error& e) {
      CHECK(e.status() == Status::IOError);
      CHECK_THAT(e.what(), Catch::Contains(file) && Catch::Contains(says));
    }
  };
  refused(path, {2, 0}, filled(DType::Float32, {3, 6}), "does not fit in the file's shape (4, 6)");
  refused(path, {0, 0, 0}, filled(DType::Float32, {1, 1, 1}), "does not fit");
  refused(path, {0, 0}, filled(DType::Float64, {1, 1}), "the file holds float32, the window is float64");
  CHECK(read_bytes(path) == before);
  // A Fortran-order file (NumPy's layout, not the one create_npy makes).
  const std::string fortran = dir / "f.npy";
  std::string header = "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 6), }";
  header.append(128 - 10 - header.size() - 1, ' ');
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + char(header.size() & 0xFF) + char(header.size() >> 8) + header;
  bytes.append(4 * 24, '\0');
  write_bytes(fortran, bytes);
  refused(fortran, {0, 0}, filled(DType::Float32, {1, 1}), "Fortran-order");
  refused(dir / "missing.npy", {0, 0}, filled(DType::Float32, {1, 1}), "No such file");
  // More bytes than a file can hold (the element count alone fits int64).
  for (auto [t, n] : {std::pair{DType::Float64, int64_t{1} << 61}, std::pair{DType::Float32, int64_t{1} << 62}}) {
    try {
      create_npy(dir / "huge.npy", t, {n});
      FAIL("created a file of " << n << " " << dtype_name(t));
    } catch (const Error& e) {
      CHECK(e.status() == Status::BadArgument);
      CHECK_THAT(e.what(), Catch::Contains("more bytes than a file can hold"));
    }
    CHECK_FALSE(std::filesystem::exists(dir / "huge.npy"));
  }
  // create_npy into a missing folder fails naming it and leaves nothing.
  try {
    create_npy(dir / "no/such.npy", DType::Int32, {3});
    FAIL("created a file in a missing folder");
  } catch (const Error& e) {
    CHECK(e.status() == Status::IOError);
  }
}
