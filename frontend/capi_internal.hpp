// What the C ABI's translation units share: the handle behind kiln_array and the
// exception-to-status guard every entry point runs in.
#pragma once
#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>

#include "array.hpp"
#include "error.hpp"
#include "kiln/kiln.h"

struct kiln_array {
  std::atomic<int64_t> refs{1};
  kiln::Array array;
};

namespace kiln::capi {

// Sets this thread's kiln_last_error() and returns the status as a kiln_status.
kiln_status fail(Status status, const std::string& message, long offset = -1);

// Runs f, turning every exception into a status.
template <class F>
kiln_status guarded(F&& f) {
  try {
    f();
    return KILN_OK;
  } catch (const Error& e) {
    return fail(e.status(), e.what(), e.offset());
  } catch (const std::bad_alloc&) {
    return fail(Status::OutOfMemory, "out of memory");
  } catch (const std::exception& e) {
    return fail(Status::Internal, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(Status::Internal, "internal error: unknown exception");
  }
}

inline void require(bool ok, const std::string& message) {
  if (!ok) throw Error(Status::BadArgument, message);
}
// Messages become strings only when a check fails (a literal, or a function that makes
// the message): the checks of a cached kiln_eval built four strings a call, each a heap
// allocation.
inline void require(bool ok, const char* message) {
  if (!ok) throw Error(Status::BadArgument, message);
}
template <std::invocable Message> void require(bool ok, const Message& message) {
  if (!ok) throw Error(Status::BadArgument, message());
}

inline Shape shape_from(int ndim, const int64_t* shape, const char* what) {
  require(ndim >= 0 && ndim <= kMaxDims,
          [&] { return std::string(what) + ": ndim must be between 0 and 32, got " + std::to_string(ndim); });
  require(ndim == 0 || shape, [&] { return std::string(what) + ": shape is NULL"; });
  return Shape(shape, shape + ndim);
}

// A kiln_dtype as the int a C caller passed: any int may arrive, and loading an enum
// outside its values is undefined in C++, so its bytes are copied rather than read as one.
inline int code_of(const kiln_dtype& d) {
  int code;
  std::memcpy(&code, &d, sizeof code);
  return code;
}

inline DType dtype_from(int code, const char* what) {
  require(valid_dtype(code), std::string(what) + ": unknown dtype " + std::to_string(code));
  return static_cast<DType>(code);
}

inline kiln_array* new_handle(Array a) {
  auto* h = new kiln_array;
  h->array = std::move(a);
  return h;
}

}  // namespace kiln::capi
