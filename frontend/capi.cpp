// The C ABI: a thin translation onto the C++ API. Every entry point catches everything;
// errors become a kiln_status plus a thread-local message.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>

#include "kiln/kiln.h"
#include "kiln/kiln.hpp"
#include "linalg.hpp"
#include "npy.hpp"
#include "npz.hpp"
#include "runtime.hpp"
#include "shm.hpp"
#include "string_eval.hpp"
#include "capi_internal.hpp"

namespace kiln::capi {
thread_local std::string last_error;
thread_local long last_error_offset = -1;

kiln_status fail(Status status, const std::string& message, long offset) {
  try {
    last_error = message;
  } catch (...) {
  }
  last_error_offset = offset;
  return static_cast<kiln_status>(status);
}
}  // namespace kiln::capi

using namespace kiln::capi;

namespace {
static_assert(KILN_OK == static_cast<int>(kiln::Status::Ok) &&
              KILN_ERROR_PARSE == static_cast<int>(kiln::Status::ParseError) &&
              KILN_ERROR_UNKNOWN_NAME == static_cast<int>(kiln::Status::UnknownName) &&
              KILN_ERROR_SHAPE == static_cast<int>(kiln::Status::ShapeMismatch) &&
              KILN_ERROR_TYPE == static_cast<int>(kiln::Status::TypeError) &&
              KILN_ERROR_BAD_ARGUMENT == static_cast<int>(kiln::Status::BadArgument) &&
              KILN_ERROR_IO == static_cast<int>(kiln::Status::IOError) &&
              KILN_ERROR_OUT_OF_MEMORY == static_cast<int>(kiln::Status::OutOfMemory) &&
              KILN_ERROR_INTERNAL == static_cast<int>(kiln::Status::Internal) &&
              KILN_ERROR_LINALG == static_cast<int>(kiln::Status::LinAlgError));
static_assert(KILN_OP_COUNT == kiln::kNumOps);
static_assert(KILN_FLOAT64 == static_cast<int>(kiln::DType::Float64) && KILN_BOOL == static_cast<int>(kiln::DType::Bool));

}  // namespace

namespace {
// Every names[i] and arrays[i] given (the lists themselves checked by the caller).
void require_bindings(const char* what, size_t n, const char* const* names, kiln_array* const* arrays) {
  for (size_t i = 0; i < n; ++i) {
    require(names[i], [&] { return std::string(what) + ": names[" + std::to_string(i) + "] is NULL"; });
    require(arrays[i], [&] {
      return std::string(what) + ": arrays[" + std::to_string(i) + "] (name '" + names[i] + "') is NULL";
    });
  }
}

// The handles' arrays by pointer, for the calls that may allocate anyway.
std::vector<const kiln::Array*> bind(const char* what, size_t n, const char* const* names, kiln_array* const* arrays) {
  require_bindings(what, n, names, arrays);
  std::vector<const kiln::Array*> bound(n);
  for (size_t i = 0; i < n; ++i) bound[i] = &arrays[i]->array;
  return bound;
}

// Evaluates a generator node into a new handle; *out is set only on success.
kiln_status make(kiln_array** out, const char* what, const std::function<kiln::Expr()>& node) {
  return guarded([&] {
    require(out != nullptr, std::string(what) + ": out is NULL");
    kiln::Array a = kiln::eval(node());
    *out = new_handle(std::move(a));
  });
}
}  // namespace

extern "C" {

const char* kiln_version(void) { return KILN_VERSION_STRING; }
int kiln_version_number(void) { return KILN_VERSION_NUMBER; }
const char* kiln_last_error(void) { return last_error.c_str(); }
long kiln_last_error_offset(void) { return last_error_offset; }

const char* kiln_status_string(kiln_status status) {
  static const char* const names[] = {"ok", "parse error", "unknown name", "shape mismatch", "type error",
                                      "bad argument", "I/O error", "out of memory", "internal error",
                                      "linear algebra error"};
  return status >= 0 && status <= KILN_ERROR_LINALG ? names[status] : "unknown status";
}

kiln_status kiln_array_new(kiln_dtype dtype, int ndim, const int64_t* shape, kiln_array** out) {
  const int code = code_of(dtype);
  return guarded([&] {
    require(out, "kiln_array_new: out is NULL");
    require(kiln::valid_dtype(code), "kiln_array_new: invalid dtype " + std::to_string(code));
    kiln::Array a = kiln::Array::empty(static_cast<kiln::DType>(code), shape_from(ndim, shape, "kiln_array_new"));
    *out = new_handle(std::move(a));
  });
}

kiln_status kiln_array_wrap(void* data, kiln_dtype dtype, int ndim, const int64_t* shape, const int64_t* byte_strides,
                            void (*release)(void* user), void* user, kiln_array** out) {
  const int code = code_of(dtype);
  return guarded([&] {
    require(out, "kiln_array_wrap: out is NULL");
    require(kiln::valid_dtype(code), "kiln_array_wrap: invalid dtype " + std::to_string(code));
    kiln::Shape s = shape_from(ndim, shape, "kiln_array_wrap");
    kiln::Shape strides = byte_strides ? kiln::Shape(byte_strides, byte_strides + ndim) : kiln::Shape();
    std::function<void()> on_release;
    if (release) on_release = [release, user] { release(user); };
    // Allocate the handle first: once wrap() succeeds, nothing else may fail, or the
    // release callback would run while the caller believes it still owns the memory.
    auto* h = new kiln_array;
    try {
      h->array = kiln::Array::wrap(data, static_cast<kiln::DType>(code), s, strides, std::move(on_release));
    } catch (...) {
      delete h;
      throw;
    }
    *out = h;
  });
}

void kiln_array_retain(kiln_array* a) {
  if (a) a->refs.fetch_add(1, std::memory_order_relaxed);
}

void kiln_array_release(kiln_array* a) {
  if (a && a->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete a;
}

kiln_dtype kiln_array_dtype(const kiln_array* a) { return a ? static_cast<kiln_dtype>(a->array.dtype()) : KILN_BOOL; }
int kiln_array_ndim(const kiln_array* a) { return a ? a->array.ndim() : 0; }
const int64_t* kiln_array_shape(const kiln_array* a) { return a ? a->array.shape().data() : nullptr; }
const int64_t* kiln_array_strides(const kiln_array* a) { return a ? a->array.strides().data() : nullptr; }
int64_t kiln_array_size(const kiln_array* a) { return a ? a->array.size() : 0; }
void* kiln_array_data(const kiln_array* a) { return a ? a->array.data() : nullptr; }

kiln_status kiln_eval(const char* expr, size_t n, const char* const* names, kiln_array* const* arrays, kiln_array* out,
                      kiln_array** result) {
  return guarded([&] {
    require(expr, "kiln_eval: expr is NULL");
    require(n == 0 || (names && arrays), "kiln_eval: names or arrays is NULL");
    require(out || result, "kiln_eval: both out and result are NULL: there is nowhere to put the result");
    require_bindings("kiln_eval", n, names, arrays);
    // The handles' arrays by pointer: no copies.
    kiln::FewOrMany<const kiln::Array*> bound(n);
    for (size_t i = 0; i < n; ++i) bound[i] = &arrays[i]->array;
    if (out) {
      kiln::eval_string(expr, n, names, bound.data(), &out->array);
      if (result) *result = nullptr;
    } else {
      kiln::Array r = kiln::eval_string(expr, n, names, bound.data(), nullptr);
      *result = new_handle(std::move(r));
    }
  });
}

kiln_status kiln_shm_create_flags(const char* name, kiln_dtype dtype, int ndim, const int64_t* shape, int flags,
                                  kiln_array** out) {
  const int code = code_of(dtype);
  return guarded([&] {
    require(name, "kiln_shm_create: name is NULL");
    require(out, "kiln_shm_create: out is NULL");
    require((flags & ~KILN_SHM_REPLACE) == 0, "kiln_shm_create: unknown flags " + std::to_string(flags));
    kiln::DType d = dtype_from(code, "kiln_shm_create");
    kiln::Shape s = shape_from(ndim, shape, "kiln_shm_create");
    *out = new_handle(kiln::shm::create(name, d, s, flags & KILN_SHM_REPLACE));
  });
}

kiln_status kiln_shm_create(const char* name, kiln_dtype dtype, int ndim, const int64_t* shape, kiln_array** out) {
  return kiln_shm_create_flags(name, dtype, ndim, shape, 0, out);
}

kiln_status kiln_shm_open(const char* name, int flags, kiln_array** out) {
  return guarded([&] {
    require(name, "kiln_shm_open: name is NULL");
    require(out, "kiln_shm_open: out is NULL");
    require((flags & ~KILN_SHM_READONLY) == 0, "kiln_shm_open: unknown flags " + std::to_string(flags));
    *out = new_handle(kiln::shm::open(name, flags & KILN_SHM_READONLY));
  });
}

kiln_status kiln_shm_unlink(const char* name) {
  return guarded([&] {
    require(name, "kiln_shm_unlink: name is NULL");
    kiln::shm::unlink(name);
  });
}

kiln_status kiln_matmul(const kiln_array* a, const kiln_array* b, kiln_array* out, kiln_array** result) {
  return guarded([&] {
    require(a && b, "kiln_matmul: a or b is NULL");
    require(out || result, "kiln_matmul: both out and result are NULL: there is nowhere to put the result");
    kiln::Expr product = kiln::matmul(a->array, b->array);
    if (out) {
      kiln::Shape shape = kiln::matmul_shape(a->array.shape(), b->array.shape());
      if (shape != out->array.shape())
        throw kiln::Error(kiln::Status::ShapeMismatch, "kiln_matmul: out has shape " + kiln::shape_str(out->array.shape()) +
                                                           ", the product " + kiln::shape_str(shape));
      kiln::eval(product, out->array);
      if (result) *result = nullptr;
    } else {
      *result = new_handle(kiln::eval(product));
    }
  });
}

kiln_status kiln_solve(const kiln_array* a, const kiln_array* b, kiln_array** result) {
  return guarded([&] {
    require(a && b, "kiln_solve: a or b is NULL");
    require(result, "kiln_solve: result is NULL");
    *result = new_handle(kiln::eval(kiln::linalg::solve(a->array, b->array)));
  });
}

namespace {
// One int64 of a caller's buffer, which a binding may have packed only byte-aligned.
int64_t load(const int64_t* p) {
  int64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// NumPy's array interface as a C struct (PyArrayInterface, protocol version 3: what an
// array's __array_struct__ capsule holds), with the flags kiln reads.
struct NumpyArrayStruct {
  int two;  // always 2: the protocol's check value
  int nd;
  char typekind;  // 'b' bool, 'i' signed integer, 'f' float, ...
  int itemsize;
  int flags;
  const intptr_t* shape;
  const intptr_t* strides;  // null: C-contiguous
  void* data;
  void* descr;
};
constexpr int kNumpyAligned = 0x100, kNumpyNotSwapped = 0x200, kNumpyWriteable = 0x400;

// The kiln dtype of a struct's typekind and itemsize, or -1.
int dtype_of_struct(const NumpyArrayStruct& s) {
  switch (s.typekind) {
    case 'b': return s.itemsize == 1 ? KILN_BOOL : -1;
    case 'i': return s.itemsize == 4 ? KILN_INT32 : s.itemsize == 8 ? KILN_INT64 : -1;
    case 'f': return s.itemsize == 4 ? KILN_FLOAT32 : s.itemsize == 8 ? KILN_FLOAT64 : -1;
    default: return -1;
  }
}

// The records of kiln_eval_views (`fn`) as arrays over the caller's memory (no release:
// borrowed).
std::vector<kiln::Array> views_from(const char* fn, size_t n, const int64_t* views, size_t views_len) {
  require(n == 0 || views, [&] { return std::string(fn) + ": views is NULL"; });
  require(n <= views_len / 3, [&] {
    return std::string(fn) + ": " + std::to_string(n) + " views cannot fit in views_len " + std::to_string(views_len) +
           " (each takes at least 3 values)";
  });
  // Messages are built only on failure: this runs on every call of a binding.
  auto check = [fn](bool ok, size_t i, const auto& message) {
    if (!ok) throw kiln::Error(kiln::Status::BadArgument, std::string(fn) + ": view " + std::to_string(i) + message());
  };
  auto check_ndim = [&](int64_t ndim, size_t i) {
    check(ndim >= 0 && ndim <= kiln::kMaxDims, i,
          [&] { return ": ndim must be between 0 and 32, got " + std::to_string(ndim); });
  };
  std::vector<kiln::Array> arrays;
  arrays.reserve(n);
  size_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    check(at + 3 <= views_len, i, [] { return std::string(" runs past views_len"); });
    const int64_t code = load(views + at + 1), ndim = load(views + at + 2);
    if (code == KILN_VIEW_ARRAY_STRUCT) {
      const auto* st = reinterpret_cast<const NumpyArrayStruct*>(static_cast<intptr_t>(load(views + at)));
      check(ndim == 0, i, [&] { return ": a struct record's third value must be 0, got " + std::to_string(ndim); });
      check(st && st->two == 2, i,
            [] { return std::string(": not a NumPy array interface struct (its first int is not 2)"); });
      const int dtype = dtype_of_struct(*st);
      check(dtype >= 0, i, [&] {
        return ": NumPy typekind '" + std::string(1, st->typekind) + "' of " + std::to_string(st->itemsize) +
               " bytes is not one of kiln's dtypes";
      });
      check(st->flags & kNumpyNotSwapped, i,
            [] { return std::string(": its bytes are swapped (not the machine's order)"); });
      check(st->flags & kNumpyAligned, i, [] { return std::string(": its data is not aligned to its item size"); });
      check_ndim(st->nd, i);
      kiln::Shape shape(st->shape, st->shape + st->nd), strides;
      if (st->strides) strides.assign(st->strides, st->strides + st->nd);
      arrays.push_back(
          kiln::Array::wrap(st->data, static_cast<kiln::DType>(dtype), std::move(shape), std::move(strides), nullptr));
      if (!(st->flags & kNumpyWriteable)) arrays.back().buffer()->set_read_only();  // refused as an out
      at += 3;
      continue;
    }
    check_ndim(ndim, i);
    check(at + 3 + 2 * static_cast<size_t>(ndim) <= views_len, i, [] { return std::string(" runs past views_len"); });
    check(kiln::valid_dtype(static_cast<int>(code)) && code == static_cast<int>(code), i,
          [&] { return ": unknown dtype " + std::to_string(code); });
    kiln::Shape shape(static_cast<size_t>(ndim)), strides(static_cast<size_t>(ndim));
    for (int64_t d = 0; d < ndim; ++d) {
      shape[d] = load(views + at + 3 + d);
      strides[d] = load(views + at + 3 + ndim + d);
    }
    arrays.push_back(kiln::Array::wrap(reinterpret_cast<void*>(static_cast<intptr_t>(load(views + at))),
                                       static_cast<kiln::DType>(code), std::move(shape), std::move(strides), nullptr));
    at += 3 + 2 * static_cast<size_t>(ndim);
  }
  require(at == views_len, [&] {
    return std::string(fn) + ": views_len is " + std::to_string(views_len) + " but the " + std::to_string(n) +
           " views take " + std::to_string(at);
  });
  return arrays;
}

void require_names(const char* fn, size_t n, const char* const* names) {
  require(n == 0 || names, [&] { return std::string(fn) + ": names is NULL"; });
  for (size_t i = 0; i < n; ++i)
    require(names[i], [&] { return std::string(fn) + ": names[" + std::to_string(i) + "] is NULL"; });
}
}  // namespace

kiln_status kiln_eval_views(const char* expr, size_t n, const char* const* names, const int64_t* views,
                            size_t views_len, kiln_array* out, kiln_array** result, int64_t* info) {
  return guarded([&] {
    require(expr, "kiln_eval_views: expr is NULL");
    require(out || result, "kiln_eval_views: both out and result are NULL: there is nowhere to put the result");
    require_names("kiln_eval_views", n, names);
    std::vector<kiln::Array> arrays = views_from("kiln_eval_views", n, views, views_len);
    kiln::FewOrMany<const kiln::Array*> bound(n);
    for (size_t i = 0; i < n; ++i) bound[i] = &arrays[i];
    if (out) {
      kiln::eval_string(expr, n, names, bound.data(), &out->array);
      if (result) *result = nullptr;
      return;
    }
    kiln::Array r = kiln::eval_string(expr, n, names, bound.data(), nullptr);
    // The inputs are borrowed: a result that is one of them must not outlive the call.
    for (const kiln::Array& a : arrays)
      if (r.buffer() == a.buffer()) r = r.copy();
    if (info) {
      info[0] = reinterpret_cast<intptr_t>(r.data());
      info[1] = static_cast<int64_t>(r.dtype());
      info[2] = r.ndim();
      for (int d = 0; d < r.ndim(); ++d) {
        info[3 + d] = r.shape()[d];
        info[3 + r.ndim() + d] = r.strides()[d];
      }
    }
    *result = new_handle(std::move(r));
  });
}

kiln_status kiln_eval_views_into(const char* expr, size_t n, const char* const* names, const int64_t* views,
                                 size_t views_len) {
  return guarded([&] {
    require(expr, "kiln_eval_views_into: expr is NULL");
    require(n < SIZE_MAX, "kiln_eval_views_into: n is too large");
    require_names("kiln_eval_views_into", n, names);
    std::vector<kiln::Array> arrays = views_from("kiln_eval_views_into", n + 1, views, views_len);
    kiln::FewOrMany<const kiln::Array*> bound(n);
    for (size_t i = 0; i < n; ++i) bound[i] = &arrays[i];
    kiln::eval_string(expr, n, names, bound.data(), &arrays[n]);
  });
}

kiln_status kiln_input_names(const char* expr, const char** names) {
  return guarded([&] {
    require(expr, "kiln_input_names: expr is NULL");
    require(names, "kiln_input_names: names is NULL");
    static thread_local std::string joined;
    std::string text;
    for (const std::string& name : kiln::input_names(expr)) text += (text.empty() ? "" : " ") + name;
    joined = std::move(text);
    *names = joined.c_str();
  });
}

kiln_status kiln_explain(const char* expr, size_t n, const char* const* names, kiln_array* const* arrays,
                         const char** text) {
  return guarded([&] {
    require(expr, "kiln_explain: expr is NULL");
    require(text, "kiln_explain: text is NULL");
    require(n == 0 || (names && arrays), "kiln_explain: names or arrays is NULL");
    std::vector<const kiln::Array*> bound = bind("kiln_explain", n, names, arrays);
    static thread_local std::string explained;
    explained = kiln::string_plan(expr, n, names, bound.data(), nullptr, nullptr)->explain();
    *text = explained.c_str();
  });
}

int64_t kiln_live_buffers(void) { return kiln::live_buffers().count; }
int64_t kiln_live_bytes(void) { return kiln::live_buffers().bytes; }

kiln_status kiln_eval_many(const char* program, size_t n, const char* const* names, kiln_array* const* arrays,
                           size_t nresults, const char* const* result_names, kiln_array** results) {
  return guarded([&] {
    require(program, "kiln_eval_many: program is NULL");
    require(n == 0 || (names && arrays), "kiln_eval_many: names or arrays is NULL");
    require(nresults > 0 && results, "kiln_eval_many: results is NULL or nresults is 0");
    std::vector<const kiln::Array*> bound = bind("kiln_eval_many", n, names, arrays);
    std::vector<kiln::Array> values =
        kiln::eval_program(program, n, names, bound.data(), kiln::ResultNames{result_names, nresults});
    std::vector<kiln_array*> handles;
    try {
      for (kiln::Array& v : values) handles.push_back(new_handle(std::move(v)));
    } catch (...) {
      for (kiln_array* h : handles) kiln_array_release(h);
      throw;
    }
    std::copy(handles.begin(), handles.end(), results);
  });
}

kiln_status kiln_zeros(kiln_dtype dtype, int ndim, const int64_t* shape, kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_zeros", [&] { return kiln::zeros(shape_from(ndim, shape, "kiln_zeros"), dtype_from(code, "kiln_zeros")); });
}

kiln_status kiln_ones(kiln_dtype dtype, int ndim, const int64_t* shape, kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_ones", [&] { return kiln::ones(shape_from(ndim, shape, "kiln_ones"), dtype_from(code, "kiln_ones")); });
}

kiln_status kiln_full(kiln_dtype dtype, int ndim, const int64_t* shape, double value, kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_full", [&] {
    return kiln::full(shape_from(ndim, shape, "kiln_full"), value, dtype_from(code, "kiln_full"));
  });
}

kiln_status kiln_full_int(kiln_dtype dtype, int ndim, const int64_t* shape, int64_t value, kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_full_int", [&] {
    return kiln::full(shape_from(ndim, shape, "kiln_full_int"), value, dtype_from(code, "kiln_full_int"));
  });
}

kiln_status kiln_full_like(const kiln_array* like, kiln_dtype dtype, double value, kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_full_like", [&] {
    require(like != nullptr, "kiln_full_like: like is NULL");
    return kiln::full(like->array.shape(), value, dtype_from(code, "kiln_full_like"));
  });
}

kiln_status kiln_arange(double start, double stop, double step, kiln_dtype dtype, kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_arange", [&] { return kiln::arange(start, stop, step, dtype_from(code, "kiln_arange")); });
}

kiln_status kiln_linspace(double start, double stop, int64_t num, int endpoint, kiln_dtype dtype, kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_linspace", [&] {
    return kiln::linspace(start, stop, num, endpoint != 0, dtype_from(code, "kiln_linspace"));
  });
}

kiln_status kiln_eye(int64_t rows, int64_t cols, int64_t k, kiln_dtype dtype, kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_eye", [&] { return kiln::eye(rows, cols, k, dtype_from(code, "kiln_eye")); });
}

kiln_status kiln_random_uniform(uint64_t seed, kiln_dtype dtype, int ndim, const int64_t* shape, double lo, double hi,
                                kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_random_uniform", [&] {
    return kiln::random::uniform(seed, shape_from(ndim, shape, "kiln_random_uniform"), lo, hi,
                                 dtype_from(code, "kiln_random_uniform"));
  });
}

kiln_status kiln_random_normal(uint64_t seed, kiln_dtype dtype, int ndim, const int64_t* shape, double mean,
                               double std, kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_random_normal", [&] {
    return kiln::random::normal(seed, shape_from(ndim, shape, "kiln_random_normal"), mean, std,
                                dtype_from(code, "kiln_random_normal"));
  });
}

kiln_status kiln_random_integers(uint64_t seed, kiln_dtype dtype, int ndim, const int64_t* shape, int64_t lo,
                                 int64_t hi, kiln_array** out) {
  const int code = code_of(dtype);
  return make(out, "kiln_random_integers", [&] {
    return kiln::random::integers(seed, shape_from(ndim, shape, "kiln_random_integers"), lo, hi,
                                  dtype_from(code, "kiln_random_integers"));
  });
}

kiln_status kiln_random_bernoulli(uint64_t seed, int ndim, const int64_t* shape, double p, kiln_array** out) {
  return make(out, "kiln_random_bernoulli",
              [&] { return kiln::random::bernoulli(seed, shape_from(ndim, shape, "kiln_random_bernoulli"), p); });
}

kiln_status kiln_random_permutation(uint64_t seed, int64_t n, kiln_array** out) {
  return guarded([&] {
    require(out != nullptr, "kiln_random_permutation: out is NULL");
    kiln::Array a = kiln::random::permutation(seed, n);
    *out = new_handle(std::move(a));
  });
}

kiln_status kiln_random_shuffle(uint64_t seed, kiln_array* array) {
  return guarded([&] {
    require(array != nullptr, "kiln_random_shuffle: array is NULL");
    kiln::random::shuffle(array->array, seed);
  });
}

kiln_status kiln_set_num_threads(int n) {
  return guarded([&] { kiln::Runtime::instance().set_num_threads(n); });
}
int kiln_get_num_threads(void) { return kiln::Runtime::instance().num_threads(); }

const char* kiln_simd_isa(void) {
  try {
    return kiln::Runtime::instance().kernels().isa;
  } catch (const kiln::Error& e) {
    fail(e.status(), e.what());
    return "";
  }
}

kiln_status kiln_set_simd_isa(const char* isa) {
  return guarded([&] {
    require(isa, "kiln_set_simd_isa: isa is NULL");
    kiln::Runtime::instance().set_isa(isa);
  });
}

const char* kiln_op_name(kiln_op op) {
  return op >= 0 && op < KILN_OP_COUNT ? kiln::kOpInfo[op].name : nullptr;
}
int kiln_op_arity(kiln_op op) { return op >= 0 && op < KILN_OP_COUNT ? kiln::kOpInfo[op].arity : 0; }

}  // extern "C"

namespace {

std::vector<std::string> paths_from(size_t n, const char* const* paths, const char* what) {
  require(n == 0 || paths, std::string(what) + ": paths is NULL");
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    require(paths[i], std::string(what) + ": paths[" + std::to_string(i) + "] is NULL");
    out.emplace_back(paths[i]);
  }
  return out;
}

std::vector<kiln::Array> arrays_from(size_t n, kiln_array* const* arrays, const char* what) {
  require(n == 0 || arrays, std::string(what) + ": arrays is NULL");
  std::vector<kiln::Array> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    require(arrays[i], std::string(what) + ": arrays[" + std::to_string(i) + "] is NULL");
    out.push_back(arrays[i]->array);
  }
  return out;
}

void require_flags(int flags, int allowed, const char* what) {
  require((flags & ~allowed) == 0, std::string(what) + ": unknown flags " + std::to_string(flags & ~allowed));
}

}  // namespace

extern "C" {

kiln_status kiln_load_npy(const char* path, int flags, kiln_array** out) {
  return guarded([&] {
    require(path && out, "kiln_load_npy: path or out is NULL");
    require_flags(flags, KILN_NPY_MMAP | KILN_NPY_READONLY, "kiln_load_npy");
    require(!(flags & KILN_NPY_READONLY) || flags & KILN_NPY_MMAP, "kiln_load_npy: KILN_NPY_READONLY needs KILN_NPY_MMAP");
    auto mode = !(flags & KILN_NPY_MMAP)    ? kiln::NpyLoad::Read
                : flags & KILN_NPY_READONLY ? kiln::NpyLoad::MmapReadOnly
                                            : kiln::NpyLoad::Mmap;
    *out = new_handle(kiln::load_npy(path, mode));
  });
}

kiln_status kiln_load_npy_many(size_t n, const char* const* paths, kiln_array** outs) {
  return guarded([&] {
    require(n == 0 || outs, "kiln_load_npy_many: outs is NULL");
    std::vector<kiln::Array> loaded = kiln::load_npy_many(paths_from(n, paths, "kiln_load_npy_many"));
    std::vector<kiln_array*> handles;
    handles.reserve(n);
    try {
      for (kiln::Array& a : loaded) handles.push_back(new_handle(std::move(a)));
    } catch (...) {
      for (kiln_array* h : handles) delete h;
      throw;
    }
    for (size_t i = 0; i < n; ++i) outs[i] = handles[i];
  });
}

kiln_status kiln_save_npy_flags(const char* path, const kiln_array* a, int flags) {
  return guarded([&] {
    require(path && a, "kiln_save_npy: path or array is NULL");
    require_flags(flags, KILN_NPY_DURABLE, "kiln_save_npy");
    kiln::save_npy(path, a->array, flags & KILN_NPY_DURABLE);
  });
}

kiln_status kiln_save_npy(const char* path, const kiln_array* a) { return kiln_save_npy_flags(path, a, 0); }

kiln_status kiln_save_npy_many(size_t n, const char* const* paths, kiln_array* const* arrays) {
  return guarded([&] {
    kiln::save_npy_many(paths_from(n, paths, "kiln_save_npy_many"), arrays_from(n, arrays, "kiln_save_npy_many"));
  });
}

kiln_status kiln_save_npz(const char* path, size_t n, const char* const* names, kiln_array* const* arrays,
                          int flags) {
  return guarded([&] {
    require(path, "kiln_save_npz: path is NULL");
    require_flags(flags, KILN_NPZ_COMPRESS | KILN_NPY_DURABLE, "kiln_save_npz");
    std::vector<std::string> keys = paths_from(n, names, "kiln_save_npz");
    std::vector<kiln::Array> values = arrays_from(n, arrays, "kiln_save_npz");
    std::vector<kiln::NpzMember> members;
    for (size_t i = 0; i < n; ++i) members.push_back({keys[i], values[i]});
    kiln::save_npz(path, members, flags & KILN_NPZ_COMPRESS, flags & KILN_NPY_DURABLE);
  });
}

kiln_status kiln_load_npz(const char* path, size_t* n, char*** names, kiln_array*** arrays) {
  return guarded([&] {
    require(path && n && names && arrays, "kiln_load_npz: path, n, names or arrays is NULL");
    std::vector<kiln::NpzMember> members = kiln::load_npz(path);
    const size_t count = members.size();
    // malloc'd lists (a C caller may hold them anywhere); filled fully before anything is set.
    auto** name_list = static_cast<char**>(std::calloc(count + 1, sizeof(char*)));
    auto** array_list = static_cast<kiln_array**>(std::calloc(count + 1, sizeof(kiln_array*)));
    bool ok = name_list && array_list;
    for (size_t i = 0; i < count && ok; ++i) {
      name_list[i] = strdup(members[i].name.c_str());
      ok = name_list[i] != nullptr;
      if (ok) {
        try {
          array_list[i] = new_handle(std::move(members[i].array));
        } catch (...) {
          ok = false;
        }
      }
    }
    if (!ok) {
      if (name_list && array_list) kiln_npz_free(count, name_list, array_list);
      else std::free(name_list), std::free(array_list);
      throw std::bad_alloc();
    }
    *n = count;
    *names = name_list;
    *arrays = array_list;
  });
}

void kiln_npz_free(size_t n, char** names, kiln_array** arrays) {
  for (size_t i = 0; i < n; ++i) {
    if (names) std::free(names[i]);
    if (arrays && arrays[i]) kiln_array_release(arrays[i]);
  }
  std::free(names);
  std::free(arrays);
}

}  // extern "C"
