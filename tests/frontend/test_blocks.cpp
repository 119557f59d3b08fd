// What kiln gives a host that computes arrays block by block (kiln.dask): expressions cut
// at their reductions, and evaluating the stages reproduces the whole expression; the C
// ABI of generator windows and .npy windows; a calling thread's own thread budget, which
// keeps the threads of concurrent tasks within the cores.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "error.hpp"
#include "kiln/kiln.h"
#include "kiln/kiln.hpp"
#include "../task_count.hpp"
#include "runtime.hpp"
#include "stages.hpp"

using kiln::Array;
using kiln::DType;
using kiln::Shape;

using kiln::test::task_count;

namespace {

std::string split(const std::string& expr) { return kiln::stages_text(kiln::split_at_reductions(expr)); }

Array ramp(const Shape& shape, double scale, double shift) {
  Array a = Array::empty(DType::Float64, shape);
  auto* p = reinterpret_cast<double*>(a.data());
  for (int64_t i = 0; i < a.size(); ++i) p[i] = std::sin(static_cast<double>(i) * scale) + shift;
  return a;
}

// Evaluates the stages one after another on whole arrays, binding each reduction's value
// to its name, as a host does with the combined partials.
Array by_stages(const std::string& expr, std::vector<std::string> names, std::vector<Array> arrays) {
  kiln::Stages st = kiln::split_at_reductions(expr);
  auto eval = [&](const std::string& text) {
    kiln::Bindings inputs;
    for (size_t i = 0; i < names.size(); ++i) inputs.emplace_back(names[i], arrays[i]);
    return kiln::eval(text, inputs);
  };
  for (const kiln::ReductionStage& r : st.reductions) {
    std::string axes;
    for (int axis : r.spec.axis_list()) axes += std::to_string(axis) + ", ";
    std::string call = std::string(kiln::reduction_info(r.spec.reduction).name) + "(" + r.operand +
                       (r.spec.all_axes ? "" : ", axis=(" + axes + ")") + (r.spec.keepdims ? ", keepdims=True" : "") +
                       ", ddof=" + std::to_string(r.spec.ddof) + ")";
    if (r.spec.reduction != kiln::Reduction::var && r.spec.reduction != kiln::Reduction::std)
      call = call.substr(0, call.rfind(", ddof=")) + ")";
    arrays.push_back(eval(call));
    names.push_back(r.name);
  }
  return eval(st.result);
}

bool close(const Array& a, const Array& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Array ca = a.copy(), cb = b.copy();
  const auto *p = reinterpret_cast<const double*>(ca.data()), *q = reinterpret_cast<const double*>(cb.data());
  for (int64_t i = 0; i < ca.size(); ++i)
    if (std::abs(p[i] - q[i]) > 1e-12 * (1 + std::abs(q[i]))) return false;
  return true;
}

}  // namespace

TEST_CASE("an expression is cut at its reductions, operands first, each written once", "[blocks]") {
  CHECK(split("2*a + 3*b*c - 1.5") == "result\t2 * a + 3 * b * c - 1.5\n");
  CHECK(split("(a - mean(a)) / std(a)") ==
        "reduce\t_kiln_r0\tmean\tNone\t0\t0\ta\n"
        "reduce\t_kiln_r1\tstd\tNone\t0\t0\ta\n"
        "result\t(a - _kiln_r0) / _kiln_r1\n");
  CHECK(split("sum(a*b)") == "reduce\t_kiln_r0\tsum\tNone\t0\t0\ta * b\nresult\t_kiln_r0\n");
  // Nested: the inner reduction is a stage the outer one's operand reads; axes as written.
  CHECK(split("var(a - mean(a, axis=-1, keepdims=True), axis=(0, 1), ddof=1) + x") ==
        "reduce\t_kiln_r0\tmean\t-1\t1\t0\ta\n"
        "reduce\t_kiln_r1\tvar\t0,1\t0\t1\ta - _kiln_r0\n"
        "result\t_kiln_r1 + x\n");
  // The same reduction written twice is one stage; a program's assignments are inlined.
  CHECK(split("max(a) - a / max(a)") == "reduce\t_kiln_r0\tmax\tNone\t0\t0\ta\nresult\t_kiln_r0 - a / _kiln_r0\n");
  CHECK(split("t = a*b; s = sum(t); t - s") == "reduce\t_kiln_r0\tsum\tNone\t0\t0\ta * b\nresult\ta * b - _kiln_r0\n");
  CHECK(split("sum(a, axis=())") == "reduce\t_kiln_r0\tsum\t\t0\t0\ta\nresult\t_kiln_r0\n");
  // Stage names step around inputs that would collide with them.
  CHECK(split("_kiln_r0 + sum(b)") == "reduce\t__kiln_r0\tsum\tNone\t0\t0\tb\nresult\t_kiln_r0 + __kiln_r0\n");
  // Literals, casts and where survive the round trip exactly.
  CHECK(split("where(x > 0.1, float32(x), -0.0) * sum(int32(x))") ==
        "reduce\t_kiln_r0\tsum\tNone\t0\t0\tint32(x)\nresult\twhere(x > 0.1, float32(x), -0.0) * _kiln_r0\n");
}

TEST_CASE("evaluating the stages in turn gives the whole expression's value", "[blocks]") {
  const Array a = ramp({40, 30}, 0.37, 0.5), b = ramp({30}, 1.1, -0.25), c = ramp({40, 1}, 0.05, 2.0);
  for (const std::string expr : {"(a - mean(a)) / std(a)", "sum(a*b, axis=0) + max(c)",
                                 "var(a - mean(a, axis=-1, keepdims=True), axis=(0, 1), ddof=1) * c",
                                 "t = a*b + c; t / sum(t, axis=1, keepdims=True) - min(t)",
                                 "where(a > mean(a), a, prod(b * 0.01 + 1))"}) {
    INFO(expr);
    const Array whole = kiln::eval(expr, {{"a", a}, {"b", b}, {"c", c}});
    CHECK(close(by_stages(expr, {"a", "b", "c"}, {a, b, c}), whole));
  }
}

TEST_CASE("what no block computes alone is refused, naming it", "[blocks]") {
  auto refused = [](const std::string& expr, const std::string& says) {
    try {
      kiln::split_at_reductions(expr);
      FAIL("split " << expr);
    } catch (const kiln::Error& e) {
      CHECK(e.status() == kiln::Status::BadArgument);
      CHECK_THAT(e.what(), Catch::Contains(says));
    }
  };
  refused("relu(a @ b + 1)", "'matmul' at position 7 cannot be computed block by block");
  refused("a * arange(3)", "'arange' at position 4");
  refused("where(uniform(seed=1) < 0.5, a, 0)", "'uniform'");
  refused("sum(inv(a))", "'inv'");
  // Parse errors are parse errors.
  const char* text = nullptr;
  CHECK(kiln_split_reductions("sum(a", &text) == KILN_ERROR_PARSE);
  CHECK(kiln_split_reductions(nullptr, &text) == KILN_ERROR_BAD_ARGUMENT);
  REQUIRE(kiln_split_reductions("a + max(a)", &text) == KILN_OK);
  CHECK(std::string(text) == "reduce\t_kiln_r0\tmax\tNone\t0\t0\ta\nresult\ta + _kiln_r0\n");
}

TEST_CASE("kiln_generate_window: blocks of a random array equal the whole array's parts", "[blocks][capi]") {
  kiln_array* whole = nullptr;
  const int64_t shape[2] = {50, 33};
  REQUIRE(kiln_random_normal(99, KILN_FLOAT32, 2, shape, 1.0, 3.0, &whole) == KILN_OK);
  const auto* w = static_cast<const float*>(kiln_array_data(whole));
  const char* call = "normal(1.0, 3.0, size=(50, 33), seed=99, dtype=float32)";
  for (int64_t r0 : {0, 17, 49})
    for (int64_t c0 : {0, 5, 32}) {
      const int64_t start[2] = {r0, c0}, extent[2] = {50 - r0, 33 - c0};
      kiln_array* block = nullptr;
      REQUIRE(kiln_generate_window(call, 2, start, extent, &block) == KILN_OK);
      const auto* b = static_cast<const float*>(kiln_array_data(block));
      bool same = true;
      for (int64_t i = 0; i < extent[0]; ++i)
        for (int64_t j = 0; j < extent[1]; ++j) same = same && b[i * extent[1] + j] == w[(r0 + i) * 33 + c0 + j];
      CHECK(same);
      kiln_array_release(block);
    }
  kiln_array_release(whole);
  kiln_array* out = nullptr;
  const int64_t start[2] = {0, 0}, too_big[2] = {51, 1};
  CHECK(kiln_generate_window(call, 2, start, too_big, &out) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Catch::Contains("does not fit in shape (50, 33)"));
  CHECK(kiln_generate_window("a + 1", 2, start, too_big, &out) == KILN_ERROR_BAD_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Catch::Contains("is not a call of a creation or random function"));
  CHECK(kiln_generate_window("uniform(seed=1)", 0, nullptr, nullptr, &out) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(out == nullptr);
}

TEST_CASE("kiln_npy_info, kiln_npy_create and kiln_npy_write_window over the C ABI", "[blocks][capi]") {
  char tmpl[] = "/tmp/kiln_blocks_XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl, path = dir + "/x.npy";
  const int64_t shape[2] = {6, 4};
  REQUIRE(kiln_npy_create(path.c_str(), KILN_INT32, 2, shape) == KILN_OK);
  kiln_dtype dtype = KILN_BOOL;
  int ndim = -1, flags = -1;
  int64_t data_offset = -1;
  const int64_t* got = nullptr;
  REQUIRE(kiln_npy_info(path.c_str(), &dtype, &ndim, &got, &data_offset, &flags) == KILN_OK);
  CHECK(data_offset == 128);  // the header save_npy writes, padded to 64
  CHECK(dtype == KILN_INT32);
  CHECK(ndim == 2);
  CHECK((got[0] == 6 && got[1] == 4));
  CHECK(flags == KILN_NPY_MAPPABLE);
  int32_t rows[2][4] = {{1, 2, 3, 4}, {5, 6, 7, 8}};
  kiln_array* block = nullptr;
  const int64_t block_shape[2] = {2, 4}, start[2] = {3, 0};
  REQUIRE(kiln_array_wrap(rows, KILN_INT32, 2, block_shape, nullptr, nullptr, nullptr, &block) == KILN_OK);
  REQUIRE(kiln_npy_write_window(path.c_str(), 2, start, block) == KILN_OK);
  const int64_t outside[2] = {5, 0};
  CHECK(kiln_npy_write_window(path.c_str(), 2, outside, block) == KILN_ERROR_IO);
  kiln_array_release(block);
  kiln_array* loaded = nullptr;
  REQUIRE(kiln_load_npy(path.c_str(), 0, &loaded) == KILN_OK);
  const auto* v = static_cast<const int32_t*>(kiln_array_data(loaded));
  for (int i = 0; i < 24; ++i) CHECK(v[i] == (i >= 12 && i < 20 ? i - 11 : 0));
  kiln_array_release(loaded);
  CHECK(kiln_npy_create(path.c_str(), static_cast<kiln_dtype>(9), 2, shape) == KILN_ERROR_BAD_ARGUMENT);
  CHECK(kiln_npy_info((dir + "/missing.npy").c_str(), &dtype, &ndim, &got, &data_offset, &flags) == KILN_ERROR_IO);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a thread's own budget: its calls use that many threads, other threads the process's", "[blocks]") {
  kiln::set_num_threads(2);
  const Array a = ramp({1 << 20}, 0.001, 0.0);
  const Array want = kiln::eval("sqrt(a*a + 1) * 3", {{"a", a}});
  std::thread([&] {
    CHECK(kiln::Runtime::thread_num_threads() == 0);
    REQUIRE(kiln_set_thread_num_threads(1) == KILN_OK);
    CHECK(kiln_get_num_threads() == 1);
    CHECK(kiln::Runtime::instance().arena()->max_concurrency() == 1);
    CHECK(close(kiln::eval("sqrt(a*a + 1) * 3", {{"a", a}}), want));
    REQUIRE(kiln_set_thread_num_threads(3) == KILN_OK);
    const int three = std::min(3, kiln::hardware_threads());  // at most the cores
    CHECK(kiln_get_num_threads() == three);
    CHECK(kiln::Runtime::instance().arena()->max_concurrency() == three);
    CHECK(close(kiln::eval("sqrt(a*a + 1) * 3", {{"a", a}}), want));
    CHECK(kiln_set_thread_num_threads(-1) == KILN_ERROR_BAD_ARGUMENT);
    REQUIRE(kiln_set_thread_num_threads(0) == KILN_OK);
    CHECK(kiln_get_num_threads() == 2);
  }).join();
  CHECK(kiln_get_num_threads() == 2);  // this thread never had one
  kiln::set_num_threads(0);
}

TEST_CASE("tasks on threads of budget 1 start no kiln worker threads, however many run", "[thread-budget]") {
  // A process budget of 8 would start 7 workers for these tasks (TBB may exceed the 2 cores
  // of a build machine then): budgets of 1 must start none.
  kiln::set_num_threads(8);
  kiln_set_thread_num_threads(1);
  const Array a = ramp({1 << 21}, 0.001, 0.0);
  const Array want = kiln::eval("exp(a) * 2 + sum(a)", {{"a", a}});
  kiln_set_thread_num_threads(0);
  const int tasks = 6, before = task_count();
  std::atomic<int> bad{0};
  kiln::test::ThreadWatch watch;
  std::vector<std::thread> ts;
  for (int t = 0; t < tasks; ++t)
    ts.emplace_back([&] {
      kiln_set_thread_num_threads(1);
      for (int rep = 0; rep < 5; ++rep) bad += !close(kiln::eval("exp(a) * 2 + sum(a)", {{"a", a}}), want);
    });
  for (auto& t : ts) t.join();
  const int most = watch.stop();
  CHECK(bad == 0);
  INFO("threads before " << before << ", most during " << most);
  CHECK(most <= before + tasks + 1);  // the tasks and the watcher: no workers
  kiln::set_num_threads(0);
}
