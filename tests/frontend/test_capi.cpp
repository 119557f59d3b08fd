// The C ABI (kiln.h) at its boundary: every misuse a C caller can commit comes back as
// the documented kiln_status with a message naming what was wrong, never a crash; `out`
// and out-parameters are untouched on failure; release callbacks run exactly once; the
// error slot is per thread; and many threads may evaluate at once.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kiln/kiln.h"
#include "plan_cache.hpp"

namespace {

using Catch::Matchers::Contains;

template <class T> constexpr kiln_dtype code_of();
template <> constexpr kiln_dtype code_of<bool>() { return KILN_BOOL; }
template <> constexpr kiln_dtype code_of<int32_t>() { return KILN_INT32; }
template <> constexpr kiln_dtype code_of<int64_t>() { return KILN_INT64; }
template <> constexpr kiln_dtype code_of<float>() { return KILN_FLOAT32; }
template <> constexpr kiln_dtype code_of<double>() { return KILN_FLOAT64; }

// Owns one reference to a kiln_array.
struct Handle {
  kiln_array* h = nullptr;
  Handle() = default;
  explicit Handle(kiln_array* a) : h(a) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : h(o.h) { o.h = nullptr; }
  ~Handle() { kiln_array_release(h); }
  kiln_array* get() const { return h; }
};

// A zero-copy wrap of a vector (which must outlive the handle), shaped as given.
template <class T>
Handle wrap(std::vector<T>& v, std::vector<int64_t> shape = {}) {
  if (shape.empty()) shape = {static_cast<int64_t>(v.size())};
  kiln_array* a = nullptr;
  kiln_status s = kiln_array_wrap(v.data(), code_of<T>(), static_cast<int>(shape.size()), shape.data(), nullptr,
                                  nullptr, nullptr, &a);
  REQUIRE(s == KILN_OK);
  return Handle(a);
}

// std::vector<bool> has no data(): bools live in a byte vector.
Handle wrap_bools(std::vector<uint8_t>& v) {
  kiln_array* a = nullptr;
  int64_t n = static_cast<int64_t>(v.size());
  REQUIRE(kiln_array_wrap(v.data(), KILN_BOOL, 1, &n, nullptr, nullptr, nullptr, &a) == KILN_OK);
  return Handle(a);
}

struct Inputs {
  std::vector<const char*> names;
  std::vector<kiln_array*> arrays;
  Inputs(std::initializer_list<std::pair<const char*, kiln_array*>> list) {
    for (auto& [n, a] : list) {
      names.push_back(n);
      arrays.push_back(a);
    }
  }
};

kiln_status eval(const char* expr, const Inputs& in, kiln_array* out, kiln_array** result) {
  return kiln_eval(expr, in.names.size(), in.names.data(), in.arrays.data(), out, result);
}

std::string last_error() { return kiln_last_error(); }

template <class T>
std::vector<T> values_of(const kiln_array* a) {
  REQUIRE(a != nullptr);
  REQUIRE(kiln_array_dtype(a) == code_of<T>());
  const T* p = static_cast<const T*>(kiln_array_data(a));
  return std::vector<T>(p, p + kiln_array_size(a));
}

// Release callback that counts its calls.
void count_release(void* user) { static_cast<std::atomic<int>*>(user)->fetch_add(1); }

}  // namespace

TEST_CASE("kiln_eval refuses NULL and duplicate arguments with BAD_ARGUMENT", "[capi]") {
  std::vector<double> av{1, 2, 3}, bv{4, 5, 6};
  Handle a = wrap(av), b = wrap(bv);
  const char* names[] = {"a", "b"};
  kiln_array* arrays[] = {a.get(), b.get()};
  kiln_array* result = reinterpret_cast<kiln_array*>(0x1);  // must stay untouched on failure

  SECTION("NULL expression") {
    CHECK(kiln_eval(nullptr, 2, names, arrays, nullptr, &result) == KILN_ERROR_BAD_ARGUMENT);
    CHECK_THAT(last_error(), Contains("expr is NULL"));
  }
  SECTION("NULL names") {
    CHECK(kiln_eval("a + b", 2, nullptr, arrays, nullptr, &result) == KILN_ERROR_BAD_ARGUMENT);
    CHECK_THAT(last_error(), Contains("names or arrays is NULL"));
  }
  SECTION("NULL arrays") {
    CHECK(kiln_eval("a + b", 2, names, nullptr, nullptr, &result) == KILN_ERROR_BAD_ARGUMENT);
    CHECK_THAT(last_error(), Contains("names or arrays is NULL"));
  }
  SECTION("both out and result NULL") {
    CHECK(kiln_eval("a + b", 2, names, arrays, nullptr, nullptr) == KILN_ERROR_BAD_ARGUMENT);
    CHECK_THAT(last_error(), Contains("both out and result are NULL"));
  }
  SECTION("a NULL name in the list") {
    const char* holey[] = {"a", nullptr};
    CHECK(kiln_eval("a + b", 2, holey, arrays, nullptr, &result) == KILN_ERROR_BAD_ARGUMENT);
    CHECK_THAT(last_error(), Contains("names[1] is NULL"));
  }
  SECTION("a NULL array in the list") {
    kiln_array* holey[] = {a.get(), nullptr};
    CHECK(kiln_eval("a + b", 2, names, holey, nullptr, &result) == KILN_ERROR_BAD_ARGUMENT);
    CHECK_THAT(last_error(), Contains("arrays[1]") && Contains("'b'") && Contains("NULL"));
  }
  SECTION("the same name twice") {
    const char* twice[] = {"a", "a"};
    CHECK(kiln_eval("a + a", 2, twice, arrays, nullptr, &result) == KILN_ERROR_BAD_ARGUMENT);
    CHECK_THAT(last_error(), Contains("'a'") && Contains("twice"));
  }
  CHECK(result == reinterpret_cast<kiln_array*>(0x1));
  CHECK(kiln_last_error_offset() == -1);
}

TEST_CASE("kiln_eval accepts n = 0 with NULL lists and result NULL when out is given", "[capi]") {
  kiln_array* result = nullptr;
  REQUIRE(kiln_eval("1 + 2 * 3", 0, nullptr, nullptr, nullptr, &result) == KILN_OK);
  Handle r(result);
  CHECK(kiln_array_ndim(r.get()) == 0);
  CHECK(values_of<int64_t>(r.get()) == std::vector<int64_t>{7});

  std::vector<double> av{1, 2, 3}, ov(3, 0.0);
  Handle a = wrap(av), o = wrap(ov);
  CHECK(eval("a * 2", {{"a", a.get()}}, o.get(), nullptr) == KILN_OK);
  CHECK(ov == std::vector<double>{2, 4, 6});
  kiln_array* set_to_null = reinterpret_cast<kiln_array*>(0x1);
  CHECK(eval("a * 3", {{"a", a.get()}}, o.get(), &set_to_null) == KILN_OK);
  CHECK(set_to_null == nullptr);
  CHECK(ov == std::vector<double>{3, 6, 9});
}

TEST_CASE("parse errors name the position and the token, and set the offset", "[capi]") {
  std::vector<double> av{1, 2}, bv{3, 4};
  Handle a = wrap(av), b = wrap(bv);
  Inputs in{{"a", a.get()}, {"b", b.get()}};
  kiln_array* result = nullptr;
  struct Case {
    const char* expr;
    long offset;
    const char* fragment;
  };
  const Case cases[] = {
      {"a +", 3, "unexpected end of expression"},
      {"a + * b", 4, "unexpected '*'"},
      {"(a + b", 6, "expected ')'"},
      {"a $ b", 2, "unexpected character '$'"},
      {"a + 1x", 4, "malformed number '1x'"},
      {"a < b < a", 6, "chained comparisons"},
      {"add(a, b))", 9, "unexpected ')'"},
      {"", 0, "unexpected end of expression"},
      {"where(a > b, a b)", 15, "unexpected 'b'"},
  };
  for (const Case& c : cases) {
    INFO("expression: '" << c.expr << "'");
    CHECK(eval(c.expr, in, nullptr, &result) == KILN_ERROR_PARSE);
    CHECK_THAT(last_error(), Contains("parse error at position " + std::to_string(c.offset)) && Contains(c.fragment));
    CHECK(kiln_last_error_offset() == c.offset);
    CHECK(result == nullptr);
  }
}

TEST_CASE("unknown names and functions are UNKNOWN_NAME with their position", "[capi]") {
  std::vector<double> av{1, 2};
  Handle a = wrap(av);
  Inputs in{{"a", a.get()}};
  kiln_array* result = nullptr;

  CHECK(eval("a + nope", in, nullptr, &result) == KILN_ERROR_UNKNOWN_NAME);
  CHECK_THAT(last_error(), Contains("unknown name 'nope'") && Contains("position 4"));
  CHECK(kiln_last_error_offset() == 4);

  CHECK(eval("a * frobnicate(a)", in, nullptr, &result) == KILN_ERROR_UNKNOWN_NAME);
  CHECK_THAT(last_error(), Contains("unknown function 'frobnicate'") && Contains("position 4"));
  CHECK(kiln_last_error_offset() == 4);

  // A name is case sensitive, and an op name is not a variable.
  CHECK(eval("A", in, nullptr, &result) == KILN_ERROR_UNKNOWN_NAME);
  CHECK_THAT(last_error(), Contains("'A'"));
  CHECK(kiln_last_error_offset() == 0);
  CHECK(result == nullptr);
}

TEST_CASE("a function called with the wrong number of arguments is refused", "[capi]") {
  std::vector<double> av{1, 2};
  Handle a = wrap(av);
  Inputs in{{"a", a.get()}};
  kiln_array* result = nullptr;
  CHECK(eval("add(a)", in, nullptr, &result) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(last_error(), Contains("add takes 2 arguments, got 1"));
  CHECK(eval("1 + sqrt(a, a)", in, nullptr, &result) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(last_error(), Contains("sqrt takes 1 argument, got 2") && Contains("position 4"));
  CHECK(eval("where(a, a)", in, nullptr, &result) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(last_error(), Contains("where takes 3 arguments, got 2"));
  CHECK(eval("float32()", in, nullptr, &result) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(last_error(), Contains("float32 takes 1 argument, got 0"));
  CHECK(result == nullptr);
}

TEST_CASE("shapes that do not broadcast are SHAPE errors naming both shapes", "[capi]") {
  std::vector<double> av(12, 1.0), bv(5, 2.0);
  Handle a = wrap(av, {3, 4}), b = wrap(bv, {5});
  kiln_array* result = nullptr;
  CHECK(eval("a + b", {{"a", a.get()}, {"b", b.get()}}, nullptr, &result) == KILN_ERROR_SHAPE);
  CHECK_THAT(last_error(), Contains("add") && Contains("(3, 4)") && Contains("(5,)") && Contains("broadcast"));
  CHECK(eval("sqrt(a) * 2 - maximum(b, a)", {{"a", a.get()}, {"b", b.get()}}, nullptr, &result) == KILN_ERROR_SHAPE);
  CHECK_THAT(last_error(), Contains("maximum") && Contains("(3, 4)") && Contains("(5,)"));
  CHECK(result == nullptr);
}

TEST_CASE("an out of the wrong shape is a SHAPE error naming both shapes", "[capi]") {
  std::vector<double> av(12, 1.0), ov(4, -7.0), big(24, 0.0);
  Handle a = wrap(av, {3, 4}), o = wrap(ov, {4});
  CHECK(eval("a + 1", {{"a", a.get()}}, o.get(), nullptr) == KILN_ERROR_SHAPE);
  CHECK_THAT(last_error(), Contains("(3, 4)") && Contains("(4,)"));
  CHECK(ov == std::vector<double>(4, -7.0));

  // A result that broadcasts to out's shape is fine (NumPy's out= does the same).
  Handle ob = wrap(big, {2, 3, 4});
  CHECK(eval("a + 1", {{"a", a.get()}}, ob.get(), nullptr) == KILN_OK);
  CHECK(big == std::vector<double>(24, 2.0));
}

TEST_CASE("out dtypes follow same_kind casting; type errors name the dtypes", "[capi]") {
  std::vector<double> av{1.5, 2.5};
  std::vector<int32_t> iv{1, 2}, io(2, 99);
  std::vector<int64_t> lv{3, 4};
  std::vector<float> fv{1, 2};
  std::vector<uint8_t> mv{1, 0};
  Handle a = wrap(av), i = wrap(iv), o = wrap(io), l = wrap(lv), f = wrap(fv), m = wrap_bools(mv);
  Inputs in{{"a", a.get()}, {"i", i.get()}, {"l", l.get()}, {"f", f.get()}, {"m", m.get()}};
  kiln_array* result = nullptr;

  CHECK(eval("a * 2", in, o.get(), nullptr) == KILN_ERROR_TYPE);
  CHECK_THAT(last_error(), Contains("float64") && Contains("int32") && Contains("same_kind"));
  CHECK(eval("i / 2", in, o.get(), nullptr) == KILN_ERROR_TYPE);  // true division is float
  CHECK_THAT(last_error(), Contains("float64") && Contains("int32"));
  CHECK(io == std::vector<int32_t>{99, 99});

  // int64 into int32 is same_kind (NumPy allows it): a downcast, not an error.
  CHECK(eval("l * 2", in, o.get(), nullptr) == KILN_OK);
  CHECK(io == std::vector<int32_t>{6, 8});
  CHECK(eval("m", in, o.get(), nullptr) == KILN_OK);  // bool -> int is safe
  CHECK(io == std::vector<int32_t>{1, 0});

  CHECK(eval("i & f", in, nullptr, &result) == KILN_ERROR_TYPE);
  CHECK_THAT(last_error(), Contains("bitwise_and") && Contains("int32, float32"));
  CHECK(eval("~a", in, nullptr, &result) == KILN_ERROR_TYPE);
  CHECK_THAT(last_error(), Contains("invert") && Contains("float64"));
  CHECK(eval("sqrt(m)", in, nullptr, &result) == KILN_ERROR_TYPE);
  CHECK_THAT(last_error(), Contains("sqrt") && Contains("bool"));
  CHECK(eval("m - m", in, nullptr, &result) == KILN_ERROR_TYPE);
  CHECK_THAT(last_error(), Contains("subtract") && Contains("bool, bool"));
  CHECK(result == nullptr);
}

TEST_CASE("array creation refuses bad dtypes, ndim, dims and NULL shapes", "[capi]") {
  int64_t shape[33];
  for (auto& d : shape) d = 1;
  double storage[4] = {};
  kiln_array* const untouched = reinterpret_cast<kiln_array*>(0x1);

  struct Case {
    const char* what;
    int dtype;
    int ndim;
    const int64_t* shape;
    const char* fragment;
  };
  int64_t negative[] = {2, -3};
  const Case cases[] = {
      {"bad dtype code", 7, 1, shape, "invalid dtype 7"},
      {"dtype code past the last", 5, 1, shape, "invalid dtype 5"},
      {"ndim 33", KILN_FLOAT64, 33, shape, "got 33"},
      {"negative ndim", KILN_FLOAT64, -1, shape, "got -1"},
      {"negative dimension", KILN_FLOAT64, 2, negative, "negative dimension in shape (2, -3)"},
      {"NULL shape with ndim > 0", KILN_FLOAT64, 2, nullptr, "shape is NULL"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    kiln_array* out = untouched;
    CHECK(kiln_array_new(static_cast<kiln_dtype>(c.dtype), c.ndim, c.shape, &out) == KILN_ERROR_BAD_ARGUMENT);
    CHECK_THAT(last_error(), Contains(c.fragment));
    CHECK(out == untouched);

    std::atomic<int> released{0};
    out = untouched;
    CHECK(kiln_array_wrap(storage, static_cast<kiln_dtype>(c.dtype), c.ndim, c.shape, nullptr, count_release,
                          &released, &out) == KILN_ERROR_BAD_ARGUMENT);
    CHECK_THAT(last_error(), Contains(c.fragment));
    CHECK(out == untouched);
    CHECK(released == 0);
  }

  CHECK(kiln_array_new(KILN_FLOAT64, 1, shape, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(last_error(), Contains("out is NULL"));
  CHECK(kiln_array_wrap(storage, KILN_FLOAT64, 1, shape, nullptr, nullptr, nullptr, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(last_error(), Contains("out is NULL"));

  // 32 dimensions is NumPy's limit and allowed; NULL shape is fine for ndim 0.
  kiln_array* ok = nullptr;
  REQUIRE(kiln_array_new(KILN_INT32, 32, shape, &ok) == KILN_OK);
  CHECK(kiln_array_ndim(ok) == 32);
  CHECK(kiln_array_size(ok) == 1);
  kiln_array_release(ok);
  REQUIRE(kiln_array_new(KILN_FLOAT32, 0, nullptr, &ok) == KILN_OK);
  CHECK(kiln_array_ndim(ok) == 0);
  CHECK(kiln_array_size(ok) == 1);
  kiln_array_release(ok);
}

TEST_CASE("kiln_array_wrap refuses strides that are not whole items and does not release", "[capi]") {
  double storage[8] = {};
  int64_t shape[] = {4};
  int64_t bad_strides[] = {12};
  std::atomic<int> released{0};
  kiln_array* out = reinterpret_cast<kiln_array*>(0x1);
  CHECK(kiln_array_wrap(storage, KILN_FLOAT64, 1, shape, bad_strides, count_release, &released, &out) ==
        KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(last_error(), Contains("strides") && Contains("float64"));
  CHECK(released == 0);
  CHECK(out == reinterpret_cast<kiln_array*>(0x1));

  int64_t shape2[] = {2, 2};
  int64_t bad2[] = {16, 3};
  CHECK(kiln_array_wrap(storage, KILN_FLOAT64, 2, shape2, bad2, count_release, &released, &out) ==
        KILN_ERROR_BAD_ARGUMENT);
  CHECK(released == 0);

  CHECK(kiln_array_wrap(nullptr, KILN_FLOAT64, 1, shape, nullptr, count_release, &released, &out) ==
        KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(last_error(), Contains("NULL"));
  CHECK(released == 0);

  // Negative and zero strides that are whole items are fine.
  int64_t reversed[] = {-8};
  kiln_array* r = nullptr;
  REQUIRE(kiln_array_wrap(storage + 3, KILN_FLOAT64, 1, shape, reversed, count_release, &released, &r) == KILN_OK);
  CHECK(kiln_array_strides(r)[0] == -8);
  kiln_array_release(r);
  CHECK(released == 1);
}

TEST_CASE("the release callback runs exactly once, when the last reference goes", "[capi]") {
  std::vector<double> data(100000);
  for (size_t k = 0; k < data.size(); ++k) data[k] = static_cast<double>(k);
  int64_t n = static_cast<int64_t>(data.size());
  std::atomic<int> released{0};
  kiln_array* a = nullptr;
  REQUIRE(kiln_array_wrap(data.data(), KILN_FLOAT64, 1, &n, nullptr, count_release, &released, &a) == KILN_OK);
  CHECK(kiln_array_data(a) == data.data());
  CHECK(kiln_array_size(a) == n);

  for (int k = 0; k < 5; ++k) kiln_array_retain(a);
  for (int k = 0; k < 5; ++k) kiln_array_release(a);
  CHECK(released == 0);

  // An evaluation (planned and cached, run in parallel) must not keep the input alive.
  const char* name = "x";
  kiln_array* result = nullptr;
  REQUIRE(kiln_eval("x * 2 + 1", 1, &name, &a, nullptr, &result) == KILN_OK);
  kiln_array_release(result);
  REQUIRE(kiln_eval("x * 2 + 1", 1, &name, &a, a, nullptr) == KILN_OK);  // in place
  CHECK(data[3] == 7.0);
  CHECK(released == 0);

  kiln_array_retain(a);
  kiln_array_release(a);
  CHECK(released == 0);
  kiln_array_release(a);
  CHECK(released == 1);

  // A result handle from eval owns kiln memory; releasing it twice over a retain is fine.
  std::vector<double> small{1, 2};
  int64_t two = 2;
  std::atomic<int> released_small{0};
  REQUIRE(kiln_array_wrap(small.data(), KILN_FLOAT64, 1, &two, nullptr, count_release, &released_small, &a) == KILN_OK);
  REQUIRE(kiln_eval("x + x", 1, &name, &a, nullptr, &result) == KILN_OK);
  kiln_array_release(a);
  CHECK(released_small == 1);
  kiln_array_retain(result);
  kiln_array_release(result);
  CHECK(values_of<double>(result) == std::vector<double>{2, 4});
  kiln_array_release(result);
  CHECK(released_small == 1);
}

TEST_CASE("NULL handles are harmless", "[capi]") {
  kiln_array_release(nullptr);
  kiln_array_retain(nullptr);
  CHECK(kiln_array_ndim(nullptr) == 0);
  CHECK(kiln_array_size(nullptr) == 0);
  CHECK(kiln_array_data(nullptr) == nullptr);
  CHECK(kiln_array_shape(nullptr) == nullptr);
  CHECK(kiln_array_strides(nullptr) == nullptr);
}

TEST_CASE("kiln_status_string names every code and refuses unknown ones", "[capi]") {
  CHECK(std::string(kiln_status_string(KILN_OK)) == "ok");
  CHECK(std::string(kiln_status_string(KILN_ERROR_PARSE)) == "parse error");
  CHECK(std::string(kiln_status_string(KILN_ERROR_UNKNOWN_NAME)) == "unknown name");
  CHECK(std::string(kiln_status_string(KILN_ERROR_SHAPE)) == "shape mismatch");
  CHECK(std::string(kiln_status_string(KILN_ERROR_TYPE)) == "type error");
  CHECK(std::string(kiln_status_string(KILN_ERROR_BAD_ARGUMENT)) == "bad argument");
  CHECK(std::string(kiln_status_string(KILN_ERROR_IO)) == "I/O error");
  CHECK(std::string(kiln_status_string(KILN_ERROR_OUT_OF_MEMORY)) == "out of memory");
  CHECK(std::string(kiln_status_string(KILN_ERROR_INTERNAL)) == "internal error");
  CHECK(std::string(kiln_status_string(KILN_ERROR_LINALG)) == "linear algebra error");
  for (kiln_status s : {10, 11, -1, 1000, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()}) {
    INFO("status " << s);
    CHECK(std::string(kiln_status_string(s)) == "unknown status");
  }
}

TEST_CASE("kiln_op_name and kiln_op_arity cover the op table and refuse other values", "[capi]") {
  REQUIRE(KILN_OP_COUNT > 50);
  std::set<std::string> names;
  for (int k = 0; k < KILN_OP_COUNT; ++k) {
    auto op = static_cast<kiln_op>(k);
    const char* name = kiln_op_name(op);
    REQUIRE(name != nullptr);
    INFO("op " << k << " " << name);
    CHECK(std::strlen(name) > 0);
    CHECK(names.insert(name).second);
    int arity = kiln_op_arity(op);
    CHECK(arity >= 1);
    CHECK(arity <= 3);
  }
  CHECK(std::string(kiln_op_name(KILN_OP_ADD)) == "add");
  CHECK(kiln_op_arity(KILN_OP_ADD) == 2);
  CHECK(std::string(kiln_op_name(KILN_OP_NEGATIVE)) == "negative");
  CHECK(kiln_op_arity(KILN_OP_NEGATIVE) == 1);
  CHECK(std::string(kiln_op_name(KILN_OP_WHERE)) == "where");
  CHECK(kiln_op_arity(KILN_OP_WHERE) == 3);
  CHECK(std::string(kiln_op_name(KILN_OP_CLIP)) == "clip");
  CHECK(kiln_op_arity(KILN_OP_CLIP) == 3);
  CHECK(std::string(kiln_op_name(KILN_OP_ARCTAN2)) == "arctan2");
  CHECK(std::string(kiln_op_name(KILN_OP_SIGMOID)) == "sigmoid");
  CHECK(kiln_op_arity(KILN_OP_SIGMOID) == 1);
  for (int bad : {static_cast<int>(KILN_OP_COUNT), static_cast<int>(KILN_OP_COUNT) + 1, -1, 100000}) {
    INFO("op " << bad);
    CHECK(kiln_op_name(static_cast<kiln_op>(bad)) == nullptr);
    CHECK(kiln_op_arity(static_cast<kiln_op>(bad)) == 0);
  }
}

TEST_CASE("every op name is callable in an expression with its arity", "[capi]") {
  std::vector<double> fv{0.25, 0.5, 0.75};
  std::vector<int64_t> iv{1, 2, 3};
  std::vector<uint8_t> bv{1, 0, 1};
  Handle f = wrap(fv), i = wrap(iv), c = wrap_bools(bv);
  Inputs in{{"f", f.get()}, {"i", i.get()}, {"c", c.get()}};
  for (int k = 0; k < KILN_OP_COUNT; ++k) {
    auto op = static_cast<kiln_op>(k);
    std::string name = kiln_op_name(op);
    int arity = kiln_op_arity(op);
    // Bitwise ops and shifts take ints; everything else takes floats; where's condition is bool.
    bool bitwise = name == "invert" || name.rfind("bitwise_", 0) == 0 || name.find("_shift") != std::string::npos;
    std::string arg = bitwise ? "i" : "f";
    std::string expr = name + "(";
    for (int j = 0; j < arity; ++j) expr += (j ? ", " : "") + (name == "where" && j == 0 ? std::string("c") : arg);
    expr += ")";
    INFO(expr);
    kiln_array* result = nullptr;
    CHECK(eval(expr.c_str(), in, nullptr, &result) == KILN_OK);
    INFO(last_error());
    CHECK(result != nullptr);
    if (result) CHECK(kiln_array_size(result) == 3);
    kiln_array_release(result);
  }
}

TEST_CASE("kiln_set_num_threads refuses negatives; kiln_set_simd_isa names the choices", "[capi]") {
  int before = kiln_get_num_threads();
  CHECK(kiln_set_num_threads(-1) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(last_error(), Contains("-1"));
  CHECK(kiln_get_num_threads() == before);
  CHECK(kiln_get_num_threads() >= 1);

  std::string isa = kiln_simd_isa();
  CHECK((isa == "sse2" || isa == "avx2" || isa == "avx512"));
  CHECK(kiln_set_simd_isa("nonsense") == KILN_ERROR_BAD_ARGUMENT);
  std::string available = last_error();
  CHECK_THAT(available, Contains("'nonsense'") && Contains("available") && Contains("sse2") && Contains(isa));
  CHECK(std::string(kiln_simd_isa()) == isa);
  CHECK(kiln_set_simd_isa(nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(last_error(), Contains("NULL"));

  // Every ISA kiln claims is selectable and gives the same answer.
  std::vector<double> av{1, 2, 3, 4, 5, 6, 7, 8, 9}, ov(9);
  Handle a = wrap(av), o = wrap(ov);
  for (const char* set : {"sse2", "avx2", "avx512"}) {
    if (!Catch::contains(available, set)) continue;
    INFO(set);
    REQUIRE(kiln_set_simd_isa(set) == KILN_OK);
    CHECK(std::string(kiln_simd_isa()) == set);
    REQUIRE(eval("a * a - 1 / a", {{"a", a.get()}}, o.get(), nullptr) == KILN_OK);
    for (size_t k = 0; k < av.size(); ++k) CHECK(ov[k] == av[k] * av[k] - 1 / av[k]);
  }
  REQUIRE(kiln_set_simd_isa(isa.c_str()) == KILN_OK);
}

TEST_CASE("on an error `out` keeps every byte it had", "[capi]") {
  std::vector<double> av(12, 1.0), bv(5, 2.0);
  std::vector<int32_t> iv(12, 3);
  Handle a = wrap(av, {3, 4}), b = wrap(bv), i = wrap(iv, {3, 4});
  Inputs in{{"a", a.get()}, {"b", b.get()}, {"i", i.get()}};
  const char* failing[] = {"a + b", "a +", "a + zz", "i & a", "nothing(a)", "add(a)", "sqrt(i > 0)", "i * b"};
  for (kiln_dtype dt : {KILN_INT32, KILN_FLOAT64}) {
    kiln_array* out = nullptr;
    int64_t shape[] = {3, 4};
    REQUIRE(kiln_array_new(dt, 2, shape, &out) == KILN_OK);
    Handle o(out);
    size_t nbytes = static_cast<size_t>(kiln_array_size(out)) * (dt == KILN_INT32 ? 4 : 8);
    std::vector<unsigned char> sentinel(nbytes);
    for (size_t k = 0; k < nbytes; ++k) sentinel[k] = static_cast<unsigned char>(0xA5 ^ k);
    std::memcpy(kiln_array_data(out), sentinel.data(), nbytes);
    for (const char* expr : failing) {
      INFO(expr << " into " << (dt == KILN_INT32 ? "int32" : "float64"));
      kiln_array* result = reinterpret_cast<kiln_array*>(0x1);
      CHECK(eval(expr, in, out, &result) != KILN_OK);
      CHECK(result == reinterpret_cast<kiln_array*>(0x1));
      CHECK(std::memcmp(kiln_array_data(out), sentinel.data(), nbytes) == 0);
    }
    // Wrong out shape, and a float result into int32.
    int64_t other[] = {4, 3};
    kiln_array* wrong = nullptr;
    REQUIRE(kiln_array_new(dt, 2, other, &wrong) == KILN_OK);
    Handle w(wrong);
    std::memcpy(kiln_array_data(wrong), sentinel.data(), nbytes);
    CHECK(eval("i * 2", in, wrong, nullptr) == KILN_ERROR_SHAPE);
    CHECK(std::memcmp(kiln_array_data(wrong), sentinel.data(), nbytes) == 0);
    if (dt == KILN_INT32) CHECK(eval("a * 2", in, out, nullptr) == KILN_ERROR_TYPE);
    CHECK(std::memcmp(kiln_array_data(wrong), sentinel.data(), nbytes) == 0);
  }
}

TEST_CASE("the plan cache: the same text gives the same result, other dtypes their own", "[capi]") {
  const char* expr = "a * 3 + b // 2 - 1";
  kiln::PlanCache& cache = kiln::PlanCache::global();

  std::vector<double> ad{1.5, -2, 4, 0.25}, bd{7, -7, 8, 1};
  Handle a = wrap(ad), b = wrap(bd);
  kiln_array* r1 = nullptr;
  kiln_array* r2 = nullptr;
  REQUIRE(eval(expr, {{"a", a.get()}, {"b", b.get()}}, nullptr, &r1) == KILN_OK);
  uint64_t hits = cache.hits(), misses = cache.misses();
  REQUIRE(eval(expr, {{"a", a.get()}, {"b", b.get()}}, nullptr, &r2) == KILN_OK);
  CHECK(cache.hits() == hits + 1);
  CHECK(cache.misses() == misses);
  Handle h1(r1), h2(r2);
  std::vector<double> want;
  for (size_t k = 0; k < ad.size(); ++k) want.push_back(ad[k] * 3 + std::floor(bd[k] / 2) - 1);
  CHECK(values_of<double>(r1) == want);
  CHECK(values_of<double>(r2) == want);

  // Same text, int32 inputs: a new plan, computing in int32 with floor division.
  std::vector<int32_t> ai{1, -2, 4, 0}, bi{7, -7, 8, 1};
  Handle ia = wrap(ai), ib = wrap(bi);
  kiln_array* r3 = nullptr;
  REQUIRE(eval(expr, {{"a", ia.get()}, {"b", ib.get()}}, nullptr, &r3) == KILN_OK);
  Handle h3(r3);
  CHECK(cache.misses() == misses + 1);
  CHECK(values_of<int32_t>(r3) == std::vector<int32_t>{5, -11, 15, -1});

  // Mixed: int32 with float32 promotes to float64 (NumPy), int32 with int64 to int64.
  std::vector<float> af{1.5f, -2, 4, 0.25f};
  std::vector<int64_t> bl{7, -7, 8, 1};
  Handle fa = wrap(af), lb = wrap(bl);
  kiln_array* r4 = nullptr;
  REQUIRE(eval(expr, {{"a", fa.get()}, {"b", ia.get()}}, nullptr, &r4) == KILN_OK);
  Handle h4(r4);
  CHECK(kiln_array_dtype(r4) == KILN_FLOAT64);
  kiln_array* r5 = nullptr;
  REQUIRE(eval(expr, {{"a", ia.get()}, {"b", lb.get()}}, nullptr, &r5) == KILN_OK);
  Handle h5(r5);
  CHECK(values_of<int64_t>(r5) == std::vector<int64_t>{5, -11, 15, -1});
  kiln_array* r6 = nullptr;
  REQUIRE(eval(expr, {{"a", fa.get()}, {"b", fa.get()}}, nullptr, &r6) == KILN_OK);
  Handle h6(r6);
  CHECK(kiln_array_dtype(r6) == KILN_FLOAT32);

  // And the first plan still gives the first answer.
  kiln_array* r7 = nullptr;
  REQUIRE(eval(expr, {{"a", a.get()}, {"b", b.get()}}, nullptr, &r7) == KILN_OK);
  Handle h7(r7);
  CHECK(values_of<double>(r7) == want);
}

TEST_CASE("the error message and offset are per thread", "[capi]") {
  kiln_array* result = nullptr;
  REQUIRE(kiln_eval("1 +", 0, nullptr, nullptr, nullptr, &result) == KILN_ERROR_PARSE);
  std::string mine = last_error();
  REQUIRE_THAT(mine, Contains("position 3"));

  std::string seen_fresh = "unset", seen_after;
  long offset_fresh = 0, offset_after = 0;
  std::thread other([&] {
    seen_fresh = kiln_last_error();
    offset_fresh = kiln_last_error_offset();
    kiln_array* r = nullptr;
    kiln_eval("frob(1)", 0, nullptr, nullptr, nullptr, &r);
    seen_after = kiln_last_error();
    offset_after = kiln_last_error_offset();
  });
  other.join();
  CHECK(seen_fresh.empty());
  CHECK(offset_fresh == -1);
  CHECK_THAT(seen_after, Contains("unknown function 'frob'"));
  CHECK(offset_after == 0);
  // This thread's message did not change.
  CHECK(last_error() == mine);
  CHECK(kiln_last_error_offset() == 3);

  // A successful call does not clear it either (valid until the next failing call).
  REQUIRE(kiln_eval("1 + 1", 0, nullptr, nullptr, nullptr, &result) == KILN_OK);
  kiln_array_release(result);
  CHECK(last_error() == mine);
}

namespace {

// One worker of the concurrency test: its own arrays, its own expression, a scalar loop
// as reference. Catch2's assertions are not thread safe, so failures are counted.
struct Worker {
  int id;
  std::atomic<int>* failures;
  std::string first_failure;

  template <class T, class R, class F>
  void check_loop(const char* expr, size_t n, F scalar, int iterations, double scale) {
    std::vector<T> a(n), b(n);
    int64_t len = static_cast<int64_t>(n);
    for (int it = 0; it < iterations; ++it) {
      for (size_t k = 0; k < n; ++k) {
        a[k] = static_cast<T>((static_cast<double>((k * 7 + it * 13 + id) % 101) - 50) * scale);
        b[k] = static_cast<T>((static_cast<double>((k * 11 + it * 5 + 3 * id) % 37) - 18) * scale);
        if (b[k] == 0) b[k] = static_cast<T>(1);
      }
      kiln_array* arrays[2] = {nullptr, nullptr};
      kiln_array_wrap(a.data(), code_of<T>(), 1, &len, nullptr, nullptr, nullptr, &arrays[0]);
      kiln_array_wrap(b.data(), code_of<T>(), 1, &len, nullptr, nullptr, nullptr, &arrays[1]);
      const char* names[] = {"a", "b"};
      kiln_array* r = nullptr;
      kiln_status s = kiln_eval(expr, 2, names, arrays, nullptr, &r);
      bool ok = s == KILN_OK && r && kiln_array_dtype(r) == code_of<R>() && kiln_array_size(r) == len;
      if (ok) {
        const R* got = static_cast<const R*>(kiln_array_data(r));
        for (size_t k = 0; k < n && ok; ++k) {
          R want = scalar(a[k], b[k]);
          if (!(got[k] == want)) {
            ok = false;
            if (first_failure.empty())
              first_failure = std::string(expr) + " at " + std::to_string(k) + ": got " + std::to_string(got[k]) +
                              ", want " + std::to_string(want);
          }
        }
      } else if (first_failure.empty()) {
        first_failure = std::string(expr) + ": status " + std::to_string(s) + " " + kiln_last_error();
      }
      if (!ok) failures->fetch_add(1);
      kiln_array_release(r);
      kiln_array_release(arrays[0]);
      kiln_array_release(arrays[1]);
    }
  }

  void run(int iterations) {
    // Sizes straddle the serial threshold so some evaluations run on the TBB arena too.
    size_t n = id % 2 ? 1000 + 37 * static_cast<size_t>(id) : 40000 + 1000 * static_cast<size_t>(id);
    switch (id) {
      case 0: check_loop<double, double>("a + b", n, [](double x, double y) { return x + y; }, iterations, 0.5); break;
      case 1:
        check_loop<double, double>("a * b - 3", n, [](double x, double y) { return x * y - 3; }, iterations, 0.25);
        break;
      case 2:
        check_loop<float, float>("where(a > b, a, b) * 2", n,
                                 [](float x, float y) { return (x > y ? x : y) * 2.0f; }, iterations, 0.5);
        break;
      case 3:
        check_loop<int64_t, int64_t>("a // b + a % b", n,
                                     [](int64_t x, int64_t y) {
                                       int64_t q = x / y, r = x % y;
                                       if (r != 0 && ((r < 0) != (y < 0))) { --q; r += y; }
                                       return q + r;
                                     },
                                     iterations, 1.0);
        break;
      case 4:
        check_loop<int32_t, int32_t>("a * 3 - b", n, [](int32_t x, int32_t y) { return x * 3 - y; }, iterations, 1.0);
        break;
      case 5:
        check_loop<double, double>("(a - b) / 4", n, [](double x, double y) { return (x - y) / 4; }, iterations, 1.0);
        break;
      case 6:
        check_loop<float, bool>("(a < b) | (a == 0)", n, [](float x, float y) { return x < y || x == 0; }, iterations,
                                1.0);
        break;
      default:
        check_loop<double, double>("minimum(a, b) + maximum(a, 2.5)", n,
                                   [](double x, double y) { return std::min(x, y) + std::max(x, 2.5); }, iterations,
                                   0.5);
        break;
    }
  }
};

}  // namespace

TEST_CASE("eight threads evaluating their own expressions agree with scalar loops", "[capi][threads]") {
  std::atomic<int> failures{0};
  std::vector<Worker> workers;
  for (int t = 0; t < 8; ++t) workers.push_back(Worker{t, &failures, {}});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) threads.emplace_back([&workers, t] { workers[t].run(200); });
  for (auto& th : threads) th.join();
  for (const Worker& w : workers) {
    INFO("thread " << w.id);
    CHECK(w.first_failure == "");
  }
  CHECK(failures == 0);
}

TEST_CASE("out may alias an input through the C ABI", "[capi]") {
  std::vector<double> av{1, 2, 3, 4, 5}, bv{10, 20, 30, 40, 50};
  Handle a = wrap(av), b = wrap(bv);
  REQUIRE(eval("a * 2 + b", {{"a", a.get()}, {"b", b.get()}}, a.get(), nullptr) == KILN_OK);
  CHECK(av == std::vector<double>{12, 24, 36, 48, 60});

  // Partial overlap: out = v[1:], input v[:-1] (NumPy copies the input first).
  std::vector<double> v{1, 2, 3, 4, 5, 6};
  int64_t five = 5;
  kiln_array* head = nullptr;
  kiln_array* tail = nullptr;
  REQUIRE(kiln_array_wrap(v.data(), KILN_FLOAT64, 1, &five, nullptr, nullptr, nullptr, &head) == KILN_OK);
  REQUIRE(kiln_array_wrap(v.data() + 1, KILN_FLOAT64, 1, &five, nullptr, nullptr, nullptr, &tail) == KILN_OK);
  Handle hh(head), ht(tail);
  REQUIRE(eval("x * 10", {{"x", head}}, tail, nullptr) == KILN_OK);
  CHECK(v == std::vector<double>{1, 10, 20, 30, 40, 50});
}

TEST_CASE("kiln_eval_many: a program's results in one plan", "[capi][program]") {
  std::vector<double> ad{1, 2, 3, 4, 5, 6}, bd{0.5, -1, 2, 0, 1, 3};
  Handle a = wrap(ad, {2, 3}), b = wrap(bd, {2, 3});
  const char* names[] = {"a", "b"};
  kiln_array* arrays[] = {a.get(), b.get()};
  const char* program = "t = a*b; s = sum(t, axis=1, keepdims=True); r = t - s; argmax(t)";
  kiln_array* results[3] = {nullptr, nullptr, nullptr};
  const char* wanted[] = {"r", "s", "t"};
  REQUIRE(kiln_eval_many(program, 2, names, arrays, 3, wanted, results) == KILN_OK);
  Handle r(results[0]), s(results[1]), t(results[2]);
  CHECK(values_of<double>(s.get()) == std::vector<double>{0.5 - 2 + 6, 0 + 5 + 18});
  CHECK(kiln_array_ndim(s.get()) == 2);
  CHECK(values_of<double>(r.get()) == std::vector<double>{0.5 - 4.5, -2 - 4.5, 6 - 4.5, 0 - 23, 5 - 23, 18 - 23});
  CHECK(values_of<double>(t.get()) == std::vector<double>{0.5, -2, 6, 0, 5, 18});
  // NULL result names: every statement, in order.
  kiln_array* all[4] = {nullptr, nullptr, nullptr, nullptr};
  REQUIRE(kiln_eval_many(program, 2, names, arrays, 4, nullptr, all) == KILN_OK);
  Handle h0(all[0]), h1(all[1]), h2(all[2]), h3(all[3]);
  CHECK(values_of<int64_t>(all[3]) == std::vector<int64_t>{5});
  // Errors set no result.
  kiln_array* none[2] = {nullptr, nullptr};
  CHECK(kiln_eval_many(program, 2, names, arrays, 2, nullptr, none) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(std::string(kiln_last_error()).find("4 statements but 2 results") != std::string::npos);
  const char* unknown[] = {"t", "nope"};
  CHECK(kiln_eval_many(program, 2, names, arrays, 2, unknown, none) == KILN_ERROR_UNKNOWN_NAME);
  CHECK(std::string(kiln_last_error()).find("'nope' is not assigned") != std::string::npos);
  CHECK(kiln_eval_many("sum(a, axis=2)", 2, names, arrays, 1, nullptr, none) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(std::string(kiln_last_error()).find("axis 2 is out of bounds") != std::string::npos);
  CHECK(kiln_eval_many("a +", 2, names, arrays, 1, nullptr, none) == KILN_ERROR_PARSE);
  CHECK(kiln_eval_many(program, 2, names, arrays, 0, nullptr, none) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(none[0] == nullptr);
  CHECK(none[1] == nullptr);
  // kiln_eval on a program gives its last statement.
  kiln_array* last = nullptr;
  REQUIRE(kiln_eval("t = a * 2; min(t)", 2, names, arrays, nullptr, &last) == KILN_OK);
  Handle hl(last);
  CHECK(values_of<double>(last) == std::vector<double>{2});
}

TEST_CASE(".npy and .npz through the C ABI: loads, mapped loads, many at once, archives, and misuse", "[capi][npy]") {
  char tmpl[] = "/tmp/kiln_capi_npy_XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  std::vector<double> xs = {1.5, -2.25, 3.0, 0.0, -0.5, 8.0};
  Handle x = wrap(xs, {2, 3});
  std::vector<int32_t> is = {7, -9, 11};
  Handle i = wrap(is);
  const std::string px = dir + "/x.npy", pi = dir + "/i.npy";
  REQUIRE(kiln_save_npy(px.c_str(), x.get()) == KILN_OK);
  REQUIRE(kiln_save_npy_flags(pi.c_str(), i.get(), KILN_NPY_DURABLE) == KILN_OK);
  for (int flags : {0, KILN_NPY_MMAP}) {
    kiln_array* raw = nullptr;
    REQUIRE(kiln_load_npy(px.c_str(), flags, &raw) == KILN_OK);
    Handle back(raw);
    CHECK(kiln_array_dtype(raw) == KILN_FLOAT64);
    REQUIRE(kiln_array_ndim(raw) == 2);
    CHECK(kiln_array_shape(raw)[1] == 3);
    CHECK(std::memcmp(kiln_array_data(raw), xs.data(), sizeof(double) * xs.size()) == 0);
  }
  const char* paths[] = {px.c_str(), pi.c_str()};
  kiln_array* outs[2] = {nullptr, nullptr};
  REQUIRE(kiln_load_npy_many(2, paths, outs) == KILN_OK);
  Handle o0(outs[0]), o1(outs[1]);
  CHECK(kiln_array_dtype(outs[1]) == KILN_INT32);
  CHECK(static_cast<int32_t*>(kiln_array_data(outs[1]))[1] == -9);
  const std::string missing = dir + "/missing.npy";
  const char* bad_paths[] = {px.c_str(), missing.c_str()};
  kiln_array* untouched[2] = {nullptr, nullptr};
  CHECK(kiln_load_npy_many(2, bad_paths, untouched) == KILN_ERROR_IO);
  CHECK_THAT(kiln_last_error(), Contains("missing.npy: No such file or directory"));
  CHECK(untouched[0] == nullptr);
  CHECK(untouched[1] == nullptr);
  const std::string c0 = dir + "/c0.npy", c1 = dir + "/c1.npy";
  const char* copies[] = {c0.c_str(), c1.c_str()};
  kiln_array* arrays[] = {x.get(), i.get()};
  REQUIRE(kiln_save_npy_many(2, copies, arrays) == KILN_OK);
  kiln_array* c1_back = nullptr;
  REQUIRE(kiln_load_npy(c1.c_str(), 0, &c1_back) == KILN_OK);
  Handle c1h(c1_back);
  CHECK(kiln_array_size(c1_back) == 3);

  // Archives: names and arrays come back in order, released with kiln_npz_free.
  const std::string pz = dir + "/both.npz";
  const char* names[] = {"x", "i"};
  for (int flags : {0, KILN_NPZ_COMPRESS}) {
    REQUIRE(kiln_save_npz(pz.c_str(), 2, names, arrays, flags) == KILN_OK);
    size_t n = 0;
    char** got_names = nullptr;
    kiln_array** got = nullptr;
    REQUIRE(kiln_load_npz(pz.c_str(), &n, &got_names, &got) == KILN_OK);
    REQUIRE(n == 2);
    CHECK(std::string(got_names[0]) == "x");
    CHECK(std::string(got_names[1]) == "i");
    CHECK(std::memcmp(kiln_array_data(got[0]), xs.data(), sizeof(double) * xs.size()) == 0);
    kiln_npz_free(n, got_names, got);
  }

  // Misuse: NULLs, unknown flags, a file that is not .npy; out-parameters untouched.
  kiln_array* none = nullptr;
  CHECK(kiln_load_npy(nullptr, 0, &none) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(kiln_load_npy(px.c_str(), 16, &none) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Contains("unknown flags 16"));
  CHECK(kiln_load_npy(px.c_str(), KILN_NPY_READONLY, &none) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Contains("KILN_NPY_READONLY needs KILN_NPY_MMAP"));
  kiln_array* mapped = nullptr;
  REQUIRE(kiln_load_npy(px.c_str(), KILN_NPY_MMAP | KILN_NPY_READONLY, &mapped) == KILN_OK);
  const char* name_x[] = {"x"};
  CHECK(kiln_eval("x + 1", 1, name_x, &mapped, mapped, nullptr) != KILN_OK);  // a read-only out
  CHECK_THAT(kiln_last_error(), Contains("read-only"));
  kiln_array_release(mapped);
  CHECK(kiln_save_npy(px.c_str(), nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(kiln_save_npy_flags(px.c_str(), x.get(), KILN_NPY_MMAP) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(kiln_load_npy(pz.c_str(), 0, &none) == KILN_ERROR_IO);
  CHECK_THAT(kiln_last_error(), Contains("both.npz: not a .npy file"));
  CHECK(none == nullptr);
  size_t n = 99;
  char** nn = nullptr;
  kiln_array** na = nullptr;
  CHECK(kiln_load_npz(px.c_str(), &n, &nn, &na) == KILN_ERROR_IO);
  CHECK(n == 99);
  CHECK(nn == nullptr);
  const char* dup[] = {"x", "x"};
  CHECK(kiln_save_npz(pz.c_str(), 2, dup, arrays, 0) == KILN_ERROR_BAD_ARGUMENT);
  std::filesystem::remove_all(dir);
}

TEST_CASE("creation and random numbers through the C ABI, and their misuse", "[capi][random]") {
  const int64_t shape[2] = {300, 7};
  // Each call makes a 300 x 7 array of its dtype; `then` sees it before it is released.
  auto check_made = [&](const std::function<kiln_status(kiln_array**)>& call, kiln_dtype d,
                        const std::function<void(kiln_array*)>& then = {}) {
    kiln_array* a = nullptr;
    REQUIRE(call(&a) == KILN_OK);
    Handle h(a);
    CHECK(kiln_array_dtype(a) == d);
    CHECK(kiln_array_ndim(a) == 2);
    CHECK(kiln_array_shape(a)[0] == 300);
    CHECK(kiln_array_shape(a)[1] == 7);
    if (then) then(a);
  };
  check_made([&](kiln_array** o) { return kiln_random_uniform(1, KILN_FLOAT64, 2, shape, -1.0, 1.0, o); }, KILN_FLOAT64);
  check_made([&](kiln_array** o) { return kiln_random_uniform(1, KILN_FLOAT32, 2, shape, 0.0, 1.0, o); }, KILN_FLOAT32);
  check_made([&](kiln_array** o) { return kiln_random_normal(1, KILN_FLOAT64, 2, shape, 3.0, 0.0, o); }, KILN_FLOAT64,
             [](kiln_array* a) { CHECK(static_cast<const double*>(kiln_array_data(a))[17] == 3.0); });  // std 0: the mean
  check_made([&](kiln_array** o) { return kiln_random_integers(1, KILN_INT32, 2, shape, -3, 4, o); }, KILN_INT32,
             [](kiln_array* a) {
               const auto* v = static_cast<const int32_t*>(kiln_array_data(a));
               CHECK(*std::min_element(v, v + 2100) == -3);
               CHECK(*std::max_element(v, v + 2100) == 3);
             });
  check_made([&](kiln_array** o) { return kiln_random_bernoulli(1, 2, shape, 0.5, o); }, KILN_BOOL);
  check_made([&](kiln_array** o) { return kiln_zeros(KILN_INT64, 2, shape, o); }, KILN_INT64);
  check_made([&](kiln_array** o) { return kiln_ones(KILN_BOOL, 2, shape, o); }, KILN_BOOL);
  check_made([&](kiln_array** o) { return kiln_full(KILN_FLOAT32, 2, shape, 0.5, o); }, KILN_FLOAT32,
             [](kiln_array* a) { CHECK(static_cast<const float*>(kiln_array_data(a))[2099] == 0.5f); });
  check_made([&](kiln_array** o) { return kiln_eye(300, 7, -2, KILN_INT32, o); }, KILN_INT32,
             [](kiln_array* a) { CHECK(static_cast<const int32_t*>(kiln_array_data(a))[2 * 7] == 1); });

  // The same seed, the same numbers, whatever the thread count; another seed, others.
  auto uniform = [&](uint64_t seed) {
    kiln_array* u = nullptr;
    REQUIRE(kiln_random_uniform(seed, KILN_FLOAT64, 2, shape, 0.0, 1.0, &u) == KILN_OK);
    const auto* p = static_cast<const double*>(kiln_array_data(u));
    std::vector<double> v(p, p + 2100);
    kiln_array_release(u);
    return v;
  };
  REQUIRE(kiln_set_num_threads(1) == KILN_OK);
  std::vector<double> one = uniform(9);
  REQUIRE(kiln_set_num_threads(2) == KILN_OK);
  CHECK(uniform(9) == one);
  REQUIRE(kiln_set_num_threads(0) == KILN_OK);
  CHECK(uniform(10) != one);

  kiln_array* perm = nullptr;
  REQUIRE(kiln_random_permutation(3, 1000, &perm) == KILN_OK);
  Handle hp(perm);
  std::vector<int64_t> p(static_cast<const int64_t*>(kiln_array_data(perm)), static_cast<const int64_t*>(kiln_array_data(perm)) + 1000);
  std::sort(p.begin(), p.end());
  for (int64_t i = 0; i < 1000; ++i) REQUIRE(p[i] == i);
  REQUIRE(kiln_random_shuffle(3, perm) == KILN_OK);

  // Misuse: the documented status, a message naming the problem, *out untouched.
  kiln_array* const sentinel = reinterpret_cast<kiln_array*>(0x1234);
  struct Bad {
    std::function<kiln_status(kiln_array**)> call;
    kiln_status status;
    const char* words;
  };
  const int64_t negative[1] = {-2};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<Bad> bad = {
      {[&](kiln_array** o) { return kiln_random_uniform(1, KILN_FLOAT64, 2, shape, 1.0, 1.0, o); }, KILN_ERROR_BAD_ARGUMENT, "high must be greater than low"},
      {[&](kiln_array** o) { return kiln_random_uniform(1, KILN_FLOAT64, 2, shape, 2.0, 1.0, o); }, KILN_ERROR_BAD_ARGUMENT, "high must be greater than low"},
      {[&](kiln_array** o) { return kiln_random_uniform(1, KILN_FLOAT64, 2, shape, nan, 1.0, o); }, KILN_ERROR_BAD_ARGUMENT, "finite"},
      {[&](kiln_array** o) { return kiln_random_uniform(1, KILN_FLOAT32, 2, shape, 1.0, 1.0 + 1e-12, o); }, KILN_ERROR_BAD_ARGUMENT, "float32"},
      {[&](kiln_array** o) { return kiln_random_uniform(1, KILN_INT32, 2, shape, 0.0, 1.0, o); }, KILN_ERROR_TYPE, "cannot make int32"},
      {[&](kiln_array** o) { return kiln_random_uniform(1, KILN_FLOAT64, 1, negative, 0.0, 1.0, o); }, KILN_ERROR_BAD_ARGUMENT, "negative dimensions"},
      {[&](kiln_array** o) { return kiln_random_uniform(1, KILN_FLOAT64, 1, nullptr, 0.0, 1.0, o); }, KILN_ERROR_BAD_ARGUMENT, "shape is NULL"},
      {[&](kiln_array** o) { return kiln_random_uniform(1, KILN_FLOAT64, 33, shape, 0.0, 1.0, o); }, KILN_ERROR_BAD_ARGUMENT, "ndim"},
      {[&](kiln_array** o) { return kiln_random_normal(1, KILN_FLOAT64, 2, shape, 0.0, -1.0, o); }, KILN_ERROR_BAD_ARGUMENT, "standard deviation"},
      {[&](kiln_array** o) { return kiln_random_normal(1, KILN_BOOL, 2, shape, 0.0, 1.0, o); }, KILN_ERROR_TYPE, "cannot make bool"},
      {[&](kiln_array** o) { return kiln_random_integers(1, KILN_INT64, 2, shape, 5, 5, o); }, KILN_ERROR_BAD_ARGUMENT, "high must be greater than low"},
      {[&](kiln_array** o) { return kiln_random_integers(1, KILN_INT32, 2, shape, 0, int64_t{1} << 40, o); }, KILN_ERROR_BAD_ARGUMENT, "out of bounds for int32"},
      {[&](kiln_array** o) { return kiln_random_integers(1, KILN_FLOAT64, 2, shape, 0, 4, o); }, KILN_ERROR_TYPE, "cannot make float64"},
      {[&](kiln_array** o) { return kiln_random_bernoulli(1, 2, shape, 1.5, o); }, KILN_ERROR_BAD_ARGUMENT, "p must be in [0, 1]"},
      {[&](kiln_array** o) { return kiln_random_permutation(1, -1, o); }, KILN_ERROR_BAD_ARGUMENT, "non-negative"},
      {[&](kiln_array** o) { return kiln_full(static_cast<kiln_dtype>(7), 2, shape, 1.0, o); }, KILN_ERROR_BAD_ARGUMENT, "unknown dtype"},
      {[&](kiln_array** o) { return kiln_arange(0, 1, 0, KILN_FLOAT64, o); }, KILN_ERROR_BAD_ARGUMENT, "step must not be zero"},
      {[&](kiln_array** o) { return kiln_full_like(nullptr, KILN_FLOAT64, 1.0, o); }, KILN_ERROR_BAD_ARGUMENT, "like is NULL"},
  };
  for (const Bad& b : bad) {
    kiln_array* out = sentinel;
    CHECK(b.call(&out) == b.status);
    CHECK_THAT(kiln_last_error(), Contains(b.words));
    CHECK(out == sentinel);
  }
  CHECK(kiln_random_uniform(1, KILN_FLOAT64, 2, shape, 0.0, 1.0, nullptr) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(kiln_random_shuffle(1, nullptr) == KILN_ERROR_BAD_ARGUMENT);
}

// The string evaluations list up to 16 inputs on the stack and more on the heap: both
// sides of that line, through kiln_eval and kiln_eval_views, against a scalar loop.
TEST_CASE("kiln_eval and kiln_eval_views take any number of inputs, a few or many", "[capi]") {
  for (int count : {1, 2, 16, 17, 40}) {
    CAPTURE(count);
    const int64_t n = 5;
    std::vector<std::vector<double>> data(count);
    std::vector<std::string> name_text(count);
    std::vector<const char*> names(count);
    std::vector<Handle> handles;
    std::vector<kiln_array*> arrays;
    std::vector<int64_t> views;
    std::string expr;
    std::vector<double> expected(n, 0);
    for (int i = 0; i < count; ++i) {
      name_text[i] = "x" + std::to_string(i);
      names[i] = name_text[i].c_str();
      for (int64_t j = 0; j < n; ++j) data[i].push_back(i + 0.5 * static_cast<double>(j));
      handles.push_back(wrap(data[i]));
      arrays.push_back(handles.back().get());
      views.insert(views.end(), {reinterpret_cast<intptr_t>(data[i].data()), KILN_FLOAT64, 1, n, 8});
      expr += (i ? " + " : "") + std::to_string(i + 1) + "*" + name_text[i];
      for (int64_t j = 0; j < n; ++j) expected[j] += (i + 1) * data[i][j];
    }
    kiln_array* r = nullptr;
    REQUIRE(kiln_eval(expr.c_str(), count, names.data(), arrays.data(), nullptr, &r) == KILN_OK);
    Handle result(r);
    CHECK(values_of<double>(r) == expected);
    REQUIRE(kiln_eval_views(expr.c_str(), count, names.data(), views.data(), views.size(), nullptr, &r, nullptr) ==
            KILN_OK);
    Handle viewed(r);
    CHECK(values_of<double>(r) == expected);
    if (count > 16) {  // a repeated name past the stack's 16 is still found
      names[count - 1] = names[3];
      CHECK(kiln_eval(expr.c_str(), count, names.data(), arrays.data(), nullptr, &r) == KILN_ERROR_BAD_ARGUMENT);
      CHECK_THAT(last_error(), Contains("'x3' is given twice"));
    }
  }
}
