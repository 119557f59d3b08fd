// The C ABI for bindings. kiln_dlpack.h: export and import without copies, strides in
// elements, and the deleter run exactly once by whoever owns the tensor. kiln.h's
// kiln_eval_views, kiln_input_names and kiln_explain.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kiln/kiln_dlpack.h"

namespace {

// A producer's tensor over a caller-owned vector, counting its deleter's calls.
struct Produced {
  DLManagedTensor managed{};
  std::vector<int64_t> shape, strides;
  int deleted = 0;
};

void count_delete(DLManagedTensor* self) { ++static_cast<Produced*>(self->manager_ctx)->deleted; }

void make_tensor(Produced& p, void* data, DLDataType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides) {
  p.shape = std::move(shape);
  p.strides = std::move(strides);
  DLTensor& t = p.managed.dl_tensor;
  t.data = data;
  t.device = {kDLCPU, 0};
  t.ndim = static_cast<int>(p.shape.size());
  t.dtype = dtype;
  t.shape = p.shape.data();
  t.strides = p.strides.empty() ? nullptr : p.strides.data();
  t.byte_offset = 0;
  p.managed.manager_ctx = &p;
  p.managed.deleter = count_delete;
}

}  // namespace

TEST_CASE("kiln_array_to_dlpack shares memory, counts strides in elements and holds a reference", "[dlpack]") {
  std::vector<double> values(12);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i);
  // The transpose of a C-ordered (3, 4): strides (8, 32) bytes are (1, 4) elements.
  int64_t shape[2] = {4, 3}, byte_strides[2] = {8, 32};
  kiln_array* t = nullptr;
  REQUIRE(kiln_array_wrap(values.data(), KILN_FLOAT64, 2, shape, byte_strides, nullptr, nullptr, &t) == KILN_OK);

  int64_t before = kiln_live_buffers();
  DLManagedTensor* m = nullptr;
  REQUIRE(kiln_array_to_dlpack(t, &m) == KILN_OK);
  kiln_array_release(t);  // the tensor's reference keeps the memory
  REQUIRE(kiln_live_buffers() == before);
  const DLTensor& d = m->dl_tensor;
  CHECK(d.device.device_type == kDLCPU);
  CHECK(d.dtype.code == kDLFloat);
  CHECK(d.dtype.bits == 64);
  CHECK(d.dtype.lanes == 1);
  REQUIRE(d.ndim == 2);
  CHECK(d.shape[0] == 4);
  CHECK(d.shape[1] == 3);
  CHECK(d.byte_offset == 0);
  REQUIRE(d.strides != nullptr);
  CHECK(d.data == values.data());
  CHECK(d.strides[0] == 1);
  CHECK(d.strides[1] == 4);
  // Element (i, j) of the transpose is values[j*4 + i].
  const double* p = static_cast<const double*>(d.data);
  CHECK(p[2 * d.strides[0] + 1 * d.strides[1]] == 6.0);
  m->deleter(m);
  CHECK(kiln_live_buffers() == before - 1);
}

TEST_CASE("kiln_array_to_dlpack gives each dtype its DLPack code", "[dlpack]") {
  struct Case {
    kiln_dtype dtype;
    uint8_t code, bits;
  } cases[] = {{KILN_BOOL, KILN_DLPACK_BOOL, 8}, {KILN_INT32, kDLInt, 32}, {KILN_INT64, kDLInt, 64},
               {KILN_FLOAT32, kDLFloat, 32}, {KILN_FLOAT64, kDLFloat, 64}};
  for (const Case& c : cases) {
    int64_t shape[1] = {5};
    kiln_array* a = nullptr;
    REQUIRE(kiln_zeros(c.dtype, 1, shape, &a) == KILN_OK);
    DLManagedTensor* m = nullptr;
    REQUIRE(kiln_array_to_dlpack(a, &m) == KILN_OK);
    CHECK(m->dl_tensor.dtype.code == c.code);
    CHECK(m->dl_tensor.dtype.bits == c.bits);
    CHECK(m->dl_tensor.strides[0] == 1);
    CHECK(m->dl_tensor.data == kiln_array_data(a));
    m->deleter(m);
    kiln_array_release(a);
  }
}

TEST_CASE("kiln_array_from_dlpack wraps without a copy and runs the deleter once, at the last release", "[dlpack]") {
  std::vector<float> values = {0, 1, 2, 3, 4, 5};
  Produced p;
  // A reversed view with a byte offset: elements 5, 3, 1 (stride -2 elements).
  make_tensor(p, values.data(), {kDLFloat, 32, 1}, {3}, {-2});
  p.managed.dl_tensor.byte_offset = 5 * sizeof(float);
  kiln_array* a = nullptr;
  REQUIRE(kiln_array_from_dlpack(&p.managed, &a) == KILN_OK);
  CHECK(kiln_array_data(a) == values.data() + 5);
  CHECK(kiln_array_strides(a)[0] == -8);
  const char* names[] = {"a"};
  kiln_array* r = nullptr;
  REQUIRE(kiln_eval("a * 10", 1, names, &a, nullptr, &r) == KILN_OK);
  const float* rv = static_cast<const float*>(kiln_array_data(r));
  CHECK(rv[0] == 50.0f);
  CHECK(rv[1] == 30.0f);
  CHECK(rv[2] == 10.0f);
  kiln_array_retain(a);
  kiln_array_release(a);
  CHECK(p.deleted == 0);  // one reference left
  kiln_array_release(a);
  CHECK(p.deleted == 1);
  CHECK(rv[2] == 10.0f);  // the result is memory of its own
  kiln_array_release(r);
}

TEST_CASE("kiln_array_from_dlpack reads NULL strides as C-contiguous and takes bool and int dtypes", "[dlpack]") {
  std::vector<int64_t> values = {1, 2, 3, 4, 5, 6};
  Produced p;
  make_tensor(p, values.data(), {kDLInt, 64, 1}, {2, 3}, {});
  kiln_array* a = nullptr;
  REQUIRE(kiln_array_from_dlpack(&p.managed, &a) == KILN_OK);
  CHECK(kiln_array_strides(a)[0] == 24);
  CHECK(kiln_array_strides(a)[1] == 8);
  const char* names[] = {"a"};
  kiln_array* s = nullptr;
  REQUIRE(kiln_eval("sum(a * (a > 4))", 1, names, &a, nullptr, &s) == KILN_OK);
  CHECK(*static_cast<const int64_t*>(kiln_array_data(s)) == 11);
  kiln_array_release(s);
  kiln_array_release(a);
  CHECK(p.deleted == 1);

  std::vector<unsigned char> flags = {1, 0, 1};
  Produced q;
  make_tensor(q, flags.data(), {KILN_DLPACK_BOOL, 8, 1}, {3}, {1});
  REQUIRE(kiln_array_from_dlpack(&q.managed, &a) == KILN_OK);
  CHECK(kiln_array_dtype(a) == KILN_BOOL);
  kiln_array_release(a);
  CHECK(q.deleted == 1);
}

TEST_CASE("kiln_array_from_dlpack refuses what kiln cannot read and leaves the tensor the caller's", "[dlpack]") {
  std::vector<double> values(4);
  struct Bad {
    const char* what;
    DLDataType dtype;
    DLDeviceType device;
    std::vector<int64_t> shape;
    kiln_status status;
    const char* message;
  } bad[] = {
      {"a GPU tensor", {kDLFloat, 64, 1}, kDLCUDA, {4}, KILN_ERROR_BAD_ARGUMENT, "not the CPU"},
      {"uint8", {kDLUInt, 8, 1}, kDLCPU, {4}, KILN_ERROR_TYPE, "none of kiln's dtypes"},
      {"float16", {kDLFloat, 16, 1}, kDLCPU, {4}, KILN_ERROR_TYPE, "none of kiln's dtypes"},
      {"complex128", {kDLComplex, 128, 1}, kDLCPU, {2}, KILN_ERROR_TYPE, "none of kiln's dtypes"},
      {"two lanes", {kDLFloat, 32, 2}, kDLCPU, {2}, KILN_ERROR_TYPE, "2-lane"},
      {"a negative extent", {kDLFloat, 64, 1}, kDLCPU, {-1}, KILN_ERROR_BAD_ARGUMENT, "negative"},
  };
  for (const Bad& b : bad) {
    INFO(b.what);
    Produced p;
    make_tensor(p, values.data(), b.dtype, b.shape, {});
    p.managed.dl_tensor.device.device_type = b.device;
    kiln_array* a = reinterpret_cast<kiln_array*>(&p);  // must stay untouched
    kiln_array* before = a;
    CHECK(kiln_array_from_dlpack(&p.managed, &a) == b.status);
    CHECK(std::string(kiln_last_error()).find(b.message) != std::string::npos);
    CHECK(a == before);
    CHECK(p.deleted == 0);
  }
  kiln_array* a = nullptr;
  CHECK(kiln_array_from_dlpack(nullptr, &a) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(kiln_array_to_dlpack(nullptr, nullptr) == KILN_ERROR_BAD_ARGUMENT);
}

TEST_CASE("a kiln array survives a DLPack round trip through itself", "[dlpack]") {
  int64_t shape[2] = {2, 3};
  kiln_array* a = nullptr;
  REQUIRE(kiln_random_uniform(7, KILN_FLOAT64, 2, shape, 0.0, 1.0, &a) == KILN_OK);
  DLManagedTensor* m = nullptr;
  REQUIRE(kiln_array_to_dlpack(a, &m) == KILN_OK);
  kiln_array* b = nullptr;
  REQUIRE(kiln_array_from_dlpack(m, &b) == KILN_OK);
  CHECK(kiln_array_data(b) == kiln_array_data(a));
  CHECK(std::memcmp(kiln_array_shape(b), shape, sizeof shape) == 0);
  int64_t live = kiln_live_buffers();
  kiln_array_release(a);
  CHECK(kiln_live_buffers() == live);  // b's tensor still holds a
  kiln_array_release(b);
  CHECK(kiln_live_buffers() == live - 2);  // b's wrap and a's memory
}

// ---- the binding helpers of kiln.h: kiln_eval_views, kiln_input_names, kiln_explain ----

TEST_CASE("kiln_eval_views evaluates over described memory and describes its result", "[capi][views]") {
  std::vector<double> a = {1, 2, 3, 4, 5, 6};  // (2, 3)
  std::vector<float> b = {10, 20, 30};         // read reversed: stride -4 from its last element
  const int64_t views[] = {reinterpret_cast<intptr_t>(a.data()), KILN_FLOAT64, 2, 2, 3, 24, 8,
                           reinterpret_cast<intptr_t>(b.data() + 2), KILN_FLOAT32, 1, 3, -4};
  const char* names[] = {"a", "b"};
  kiln_array* r = nullptr;
  int64_t info[67] = {};
  int64_t live = kiln_live_buffers();
  REQUIRE(kiln_eval_views("a * b", 2, names, views, std::size(views), nullptr, &r, info) == KILN_OK);
  CHECK(kiln_live_buffers() == live + 1);  // the borrowed inputs are gone, the result stays
  const double* rv = static_cast<const double*>(kiln_array_data(r));
  const double expected[] = {30, 40, 30, 120, 100, 60};
  for (int i = 0; i < 6; ++i) CHECK(rv[i] == expected[i]);
  CHECK(info[0] == reinterpret_cast<intptr_t>(kiln_array_data(r)));
  CHECK(info[1] == KILN_FLOAT64);
  CHECK(info[2] == 2);
  CHECK(info[3] == 2);
  CHECK(info[4] == 3);
  CHECK(info[5] == 24);
  CHECK(info[6] == 8);
  kiln_array_release(r);
  CHECK(kiln_live_buffers() == live);

  // A result that is an input is copied: the input was only borrowed.
  REQUIRE(kiln_eval_views("a", 1, names, views, 7, nullptr, &r, nullptr) == KILN_OK);
  CHECK(kiln_array_data(r) != a.data());
  CHECK(static_cast<const double*>(kiln_array_data(r))[5] == 6.0);
  kiln_array_release(r);

  // Into out: info untouched.
  std::vector<double> out(6, -1);
  int64_t shape[2] = {2, 3};
  kiln_array* o = nullptr;
  REQUIRE(kiln_array_wrap(out.data(), KILN_FLOAT64, 2, shape, nullptr, nullptr, nullptr, &o) == KILN_OK);
  info[0] = 99;
  REQUIRE(kiln_eval_views("a + b", 2, names, views, std::size(views), o, nullptr, info) == KILN_OK);
  CHECK(out[0] == 31.0);
  CHECK(info[0] == 99);
  kiln_array_release(o);
}

// NumPy's array interface C struct (PyArrayInterface) as NumPy lays it out, written here
// from the protocol's description so that the test does not share capi.cpp's definition.
struct ArrayStruct {
  int two = 2;
  int nd;
  char typekind;
  int itemsize;
  int flags = 0x100 | 0x200 | 0x400 | 0x1;  // aligned, not swapped, writeable, C-contiguous
  intptr_t* shape;
  intptr_t* strides;
  void* data;
  void* descr = nullptr;
};

TEST_CASE("kiln_eval_views reads arrays given by NumPy's array interface struct, and refuses what kiln cannot read",
          "[capi][views]") {
  std::vector<double> a = {1, 2, 3, 4, 5, 6};  // (2, 3)
  std::vector<int32_t> b = {10, 20, 30};       // read reversed: stride -4 from its last element
  intptr_t a_shape[] = {2, 3}, b_shape[] = {3}, b_strides[] = {-4};
  ArrayStruct sa{.nd = 2, .typekind = 'f', .itemsize = 8, .shape = a_shape, .strides = nullptr, .data = a.data()};
  ArrayStruct sb{.nd = 1, .typekind = 'i', .itemsize = 4, .shape = b_shape, .strides = b_strides, .data = b.data() + 2};
  auto record = [](const ArrayStruct& s) { return reinterpret_cast<intptr_t>(&s); };
  const int64_t views[] = {record(sa), KILN_VIEW_ARRAY_STRUCT, 0, record(sb), KILN_VIEW_ARRAY_STRUCT, 0};
  const char* names[] = {"a", "b"};
  kiln_array* r = nullptr;
  int64_t info[67] = {};
  REQUIRE(kiln_eval_views("a * b", 2, names, views, std::size(views), nullptr, &r, info) == KILN_OK);
  const double* rv = static_cast<const double*>(kiln_array_data(r));
  const double expected[] = {30, 40, 30, 120, 100, 60};
  for (int i = 0; i < 6; ++i) CHECK(rv[i] == expected[i]);
  CHECK(info[1] == KILN_FLOAT64);
  CHECK(info[2] == 2);
  kiln_array_release(r);

  // Into memory given the same way, mixed with a plain record: float32 (2, 3).
  std::vector<float> out(6, -1);
  ArrayStruct so{.nd = 2, .typekind = 'f', .itemsize = 4, .shape = a_shape, .strides = nullptr, .data = out.data()};
  const int64_t into[] = {reinterpret_cast<intptr_t>(a.data()), KILN_FLOAT64, 2, 2, 3, 24, 8,
                          record(so), KILN_VIEW_ARRAY_STRUCT, 0};
  REQUIRE(kiln_eval_views_into("a - 1", 1, names, into, std::size(into)) == KILN_OK);
  for (int i = 0; i < 6; ++i) CHECK(out[i] == static_cast<float>(a[i] - 1));
  // Memory NumPy marks read-only is not written.
  so.flags &= ~0x400;
  const std::vector<float> before = out;
  CHECK(kiln_eval_views_into("a + 1", 1, names, into, std::size(into)) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Catch::Matchers::Contains("read-only"));
  CHECK(out == before);

  // Refused, naming the view: not a struct, a dtype kiln lacks (uint8, float16), bytes
  // swapped, misaligned, too many dimensions.
  auto refused = [&](ArrayStruct s, const std::string& says) {
    const int64_t one[] = {record(sa), KILN_VIEW_ARRAY_STRUCT, 0, record(s), KILN_VIEW_ARRAY_STRUCT, 0};
    kiln_array* none = nullptr;
    CHECK(kiln_eval_views("a + b", 2, names, one, std::size(one), nullptr, &none, nullptr) == KILN_ERROR_BAD_ARGUMENT);
    CHECK(none == nullptr);
    CHECK_THAT(kiln_last_error(), Catch::Matchers::Contains("view 1") && Catch::Matchers::Contains(says));
  };
  const int64_t third[] = {record(sa), KILN_VIEW_ARRAY_STRUCT, 0, record(sb), KILN_VIEW_ARRAY_STRUCT, 1};
  CHECK(kiln_eval_views("a + b", 2, names, third, std::size(third), nullptr, &r, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Catch::Matchers::Contains("view 1: a struct record's third value must be 0, got 1"));
  ArrayStruct bad = sb;
  bad.two = 3;
  refused(bad, "not a NumPy array interface struct");
  bad = sb, bad.typekind = 'u', bad.itemsize = 1;
  refused(bad, "typekind 'u' of 1 bytes");
  bad = sb, bad.typekind = 'f', bad.itemsize = 2;
  refused(bad, "typekind 'f' of 2 bytes");
  bad = sb, bad.flags &= ~0x200;
  refused(bad, "swapped");
  bad = sb, bad.flags &= ~0x100;
  refused(bad, "not aligned");
  bad = sb, bad.nd = 33;
  refused(bad, "ndim must be between 0 and 32, got 33");
}

TEST_CASE("kiln_eval_views_into writes into described memory, broadcast and cast, or leaves it alone",
          "[capi][views]") {
  std::vector<double> a = {1, 2, 3, 4, 5, 6};  // (2, 3)
  std::vector<float> b = {10, 20, 30};         // read reversed: stride -4 from its last element
  std::vector<float> out(6, -1);               // written transposed: (2, 3) with strides (4, 8)
  const int64_t views[] = {reinterpret_cast<intptr_t>(a.data()), KILN_FLOAT64, 2, 2, 3, 24, 8,
                           reinterpret_cast<intptr_t>(b.data() + 2), KILN_FLOAT32, 1, 3, -4,
                           reinterpret_cast<intptr_t>(out.data()), KILN_FLOAT32, 2, 2, 3, 4, 8};
  const char* names[] = {"a", "b"};
  const int64_t live = kiln_live_buffers();
  REQUIRE(kiln_eval_views_into("a * b", 2, names, views, std::size(views)) == KILN_OK);
  CHECK(kiln_live_buffers() == live);  // nothing made, nothing kept
  const float expected[] = {30, 120, 40, 100, 30, 60};  // a * b[::-1], stored column by column
  for (int i = 0; i < 6; ++i) CHECK(out[i] == expected[i]);

  // Errors leave the output as it was: a parse error, a shape that does not broadcast into
  // it, a dtype it cannot take (same_kind), a record short of the output's.
  const std::vector<float> before = out;
  CHECK(kiln_eval_views_into("a *", 2, names, views, std::size(views)) == KILN_ERROR_PARSE);
  const int64_t wrong_shape[] = {reinterpret_cast<intptr_t>(a.data()), KILN_FLOAT64, 1, 6, 8,
                                 reinterpret_cast<intptr_t>(out.data()), KILN_FLOAT32, 2, 2, 3, 12, 4};
  CHECK(kiln_eval_views_into("a + 1", 1, names, wrong_shape, std::size(wrong_shape)) == KILN_ERROR_SHAPE);
  std::vector<int32_t> ints(6);
  const int64_t to_int[] = {reinterpret_cast<intptr_t>(a.data()), KILN_FLOAT64, 2, 2, 3, 24, 8,
                            reinterpret_cast<intptr_t>(ints.data()), KILN_INT32, 2, 2, 3, 12, 4};
  CHECK(kiln_eval_views_into("a", 1, names, to_int, std::size(to_int)) == KILN_ERROR_TYPE);
  CHECK(kiln_eval_views_into("a * b", 2, names, views, std::size(views) - 7) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(std::string(kiln_last_error()).find("kiln_eval_views_into: view 2") != std::string::npos);
  CHECK(kiln_eval_views_into("a * b", 2, nullptr, views, std::size(views)) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(kiln_eval_views_into(nullptr, 2, names, views, std::size(views)) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(out == before);
}

TEST_CASE("kiln_eval_views refuses malformed records without reading past them", "[capi][views]") {
  double x = 1;
  const char* names[] = {"a"};
  kiln_array* r = nullptr;
  const int64_t bad_dtype[] = {reinterpret_cast<intptr_t>(&x), 9, 0};
  CHECK(kiln_eval_views("a", 1, names, bad_dtype, 3, nullptr, &r, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(std::string(kiln_last_error()).find("unknown dtype 9") != std::string::npos);
  const int64_t short_record[] = {reinterpret_cast<intptr_t>(&x), KILN_FLOAT64, 2, 1};
  CHECK(kiln_eval_views("a", 1, names, short_record, 4, nullptr, &r, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(std::string(kiln_last_error()).find("runs past views_len") != std::string::npos);
  const int64_t one[] = {reinterpret_cast<intptr_t>(&x), KILN_FLOAT64, 0, 0};
  CHECK(kiln_eval_views("a", 1, names, one, 4, nullptr, &r, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(std::string(kiln_last_error()).find("views_len is 4") != std::string::npos);
  const int64_t odd_stride[] = {reinterpret_cast<intptr_t>(&x), KILN_FLOAT64, 1, 2, 3};
  CHECK(kiln_eval_views("a", 1, names, odd_stride, 5, nullptr, &r, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(r == nullptr);
  // On an extent of 1 a stride never steps: any is taken, as NumPy does.
  const int64_t odd_stride_of_one[] = {reinterpret_cast<intptr_t>(&x), KILN_FLOAT64, 1, 1, 3};
  REQUIRE(kiln_eval_views("a * 2", 1, names, odd_stride_of_one, 5, nullptr, &r, nullptr) == KILN_OK);
  CHECK(*static_cast<const double*>(kiln_array_data(r)) == 2);
  kiln_array_release(r);
  r = nullptr;
  CHECK(kiln_eval_views("a +", 1, names, one, 3, nullptr, &r, nullptr) == KILN_ERROR_PARSE);
  CHECK(kiln_eval_views("a", 1, names, one, 3, nullptr, nullptr, nullptr) == KILN_ERROR_BAD_ARGUMENT);
}

TEST_CASE("kiln_input_names lists what a program reads, not what it assigns", "[capi][views]") {
  const char* names = nullptr;
  REQUIRE(kiln_input_names("t = a*b; s = sum(t); where(t > s, c, a) + zeros(3) + pi_", &names) == KILN_OK);
  CHECK(std::string(names) == "a b c pi_");
  REQUIRE(kiln_input_names("1 + 2", &names) == KILN_OK);
  CHECK(std::string(names).empty());
  CHECK(kiln_input_names("a +", &names) == KILN_ERROR_PARSE);
  CHECK(kiln_last_error_offset() == 3);
  CHECK(kiln_input_names(nullptr, &names) == KILN_ERROR_BAD_ARGUMENT);
}

TEST_CASE("kiln_explain describes the plan for the given inputs", "[capi][views]") {
  int64_t shape[1] = {100};
  kiln_array* a = nullptr;
  REQUIRE(kiln_zeros(KILN_FLOAT32, 1, shape, &a) == KILN_OK);
  const char* names[] = {"a"};
  const char* text = nullptr;
  REQUIRE(kiln_explain("sqrt(a) * 2", 1, names, &a, &text) == KILN_OK);
  CHECK(std::string(text).find("sqrt<float32>") != std::string::npos);
  CHECK(kiln_explain("sqrt(b)", 1, names, &a, &text) == KILN_ERROR_UNKNOWN_NAME);
  kiln_array_release(a);
}

TEST_CASE("binding helpers refuse what would be unsafe: read-only exports, huge strides, bad records",
          "[capi][views][dlpack]") {
  std::string name = "kiln-test-ro-" + std::to_string(getpid());
  int64_t shape[1] = {4};
  kiln_array* seg = nullptr;
  REQUIRE(kiln_shm_create(name.c_str(), KILN_FLOAT64, 1, shape, &seg) == KILN_OK);
  kiln_array* ro = nullptr;
  REQUIRE(kiln_shm_open(name.c_str(), KILN_SHM_READONLY, &ro) == KILN_OK);
  DLManagedTensor* m = reinterpret_cast<DLManagedTensor*>(&name);
  CHECK(kiln_array_to_dlpack(ro, &m) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(std::string(kiln_last_error()).find("read-only") != std::string::npos);
  CHECK(m == reinterpret_cast<DLManagedTensor*>(&name));
  REQUIRE(kiln_array_to_dlpack(seg, &m) == KILN_OK);  // the writable mapping exports
  m->deleter(m);
  kiln_array_release(ro);
  kiln_array_release(seg);
  kiln_shm_unlink(name.c_str());

  std::vector<double> values(4);
  Produced p;
  make_tensor(p, values.data(), {kDLFloat, 64, 1}, {4}, {int64_t{1} << 61});
  kiln_array* a = nullptr;
  CHECK(kiln_array_from_dlpack(&p.managed, &a) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(std::string(kiln_last_error()).find("overflows") != std::string::npos);
  CHECK(p.deleted == 0);

  const char* names[] = {"a"};
  kiln_array* r = nullptr;
  const int64_t deep[] = {reinterpret_cast<intptr_t>(values.data()), KILN_FLOAT64, 33};
  CHECK(kiln_eval_views("a", 1, names, deep, 3, nullptr, &r, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  const int64_t negative[] = {reinterpret_cast<intptr_t>(values.data()), KILN_FLOAT64, -1};
  CHECK(kiln_eval_views("a", 1, names, negative, 3, nullptr, &r, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  const int64_t null_data[] = {0, KILN_FLOAT64, 1, 4, 8};
  CHECK(kiln_eval_views("a", 1, names, null_data, 5, nullptr, &r, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(std::string(kiln_last_error()).find("NULL") != std::string::npos);
  CHECK(kiln_eval_views("a", SIZE_MAX / 2, names, null_data, 5, nullptr, &r, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(r == nullptr);
}
