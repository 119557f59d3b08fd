// kiln_dlpack.h: kiln arrays to DLPack tensors and back, with no copy either way.
#include "kiln/kiln_dlpack.h"

#include <string>

#include "capi_internal.hpp"

using namespace kiln::capi;

namespace {

// The exported tensor and what keeps its memory alive, in one allocation: the
// deleter frees both.
struct Exported {
  DLManagedTensor managed;
  kiln_array* handle;  // a reference of the tensor's own
  int64_t shape[kiln::kMaxDims];
  int64_t strides[kiln::kMaxDims];
};

void delete_exported(DLManagedTensor* self) {
  auto* e = static_cast<Exported*>(self->manager_ctx);
  kiln_array_release(e->handle);
  delete e;
}

DLDataType dl_dtype(kiln::DType d) {
  switch (d) {
    case kiln::DType::Bool: return {KILN_DLPACK_BOOL, 8, 1};
    case kiln::DType::Int32: return {kDLInt, 32, 1};
    case kiln::DType::Int64: return {kDLInt, 64, 1};
    case kiln::DType::Float32: return {kDLFloat, 32, 1};
    case kiln::DType::Float64: return {kDLFloat, 64, 1};
  }
  throw kiln::Error(kiln::Status::Internal, "kiln_array_to_dlpack: unknown dtype");
}

kiln::DType kiln_dtype_of(DLDataType t) {
  std::string what = "code " + std::to_string(t.code) + ", " + std::to_string(t.bits) + " bits";
  if (t.lanes != 1)
    throw kiln::Error(kiln::Status::TypeError, "kiln_array_from_dlpack: " + std::to_string(t.lanes) +
                                                   "-lane elements (" + what + ") are not supported");
  if (t.code == KILN_DLPACK_BOOL && t.bits == 8) return kiln::DType::Bool;
  if (t.code == kDLInt && t.bits == 32) return kiln::DType::Int32;
  if (t.code == kDLInt && t.bits == 64) return kiln::DType::Int64;
  if (t.code == kDLFloat && t.bits == 32) return kiln::DType::Float32;
  if (t.code == kDLFloat && t.bits == 64) return kiln::DType::Float64;
  throw kiln::Error(kiln::Status::TypeError, "kiln_array_from_dlpack: elements of " + what +
                                                 " are none of kiln's dtypes (bool, int32, int64, float32, float64)");
}

}  // namespace

extern "C" {

kiln_status kiln_array_to_dlpack(const kiln_array* array, DLManagedTensor** tensor) {
  return guarded([&] {
    require(array, "kiln_array_to_dlpack: array is NULL");
    require(tensor, "kiln_array_to_dlpack: tensor is NULL");
    const kiln::Array& a = array->array;
    require(a.valid(), "kiln_array_to_dlpack: the array has no memory");
    // DLPack 0.6 cannot say "read-only", and consumers write into what they import.
    require(a.writable(), "kiln_array_to_dlpack: the array is read-only (a segment opened KILN_SHM_READONLY); "
                          "DLPack tensors are writable");
    auto* e = new Exported{};
    const int64_t item = static_cast<int64_t>(a.itemsize());
    for (int i = 0; i < a.ndim(); ++i) {
      e->shape[i] = a.shape()[i];
      e->strides[i] = a.strides()[i] / item;  // kiln's strides are whole items (wrap checks)
    }
    DLTensor& t = e->managed.dl_tensor;
    t.data = a.data();
    t.device = {kDLCPU, 0};
    t.ndim = a.ndim();
    t.dtype = dl_dtype(a.dtype());
    t.shape = e->shape;
    t.strides = e->strides;
    t.byte_offset = 0;
    e->managed.manager_ctx = e;
    e->managed.deleter = delete_exported;
    e->handle = const_cast<kiln_array*>(array);
    kiln_array_retain(e->handle);
    *tensor = &e->managed;
  });
}

kiln_status kiln_array_from_dlpack(DLManagedTensor* tensor, kiln_array** out) {
  return guarded([&] {
    require(tensor, "kiln_array_from_dlpack: tensor is NULL");
    require(out, "kiln_array_from_dlpack: out is NULL");
    const DLTensor& t = tensor->dl_tensor;
    if (t.device.device_type != kDLCPU)
      throw kiln::Error(kiln::Status::BadArgument, "kiln_array_from_dlpack: the tensor is on device type " +
                                                       std::to_string(t.device.device_type) +
                                                       ", not the CPU (1): kiln reads only host memory");
    kiln::DType dtype = kiln_dtype_of(t.dtype);
    kiln::Shape shape = shape_from(t.ndim, t.shape, "kiln_array_from_dlpack");
    kiln::Shape byte_strides;
    const int64_t item = static_cast<int64_t>(kiln::itemsize(dtype));
    if (t.strides) {
      for (int i = 0; i < t.ndim; ++i) {
        int64_t s = t.strides[i];
        require(s >= INT64_MIN / item && s <= INT64_MAX / item,
                "kiln_array_from_dlpack: stride " + std::to_string(s) + " overflows as bytes");
        byte_strides.push_back(s * item);
      }
    }
    char* data = static_cast<char*>(t.data) + t.byte_offset;
    // The handle first, then the wrap: once the wrap holds the deleter nothing may fail.
    auto* h = new kiln_array;
    try {
      h->array = kiln::Array::wrap(data, dtype, shape, byte_strides, [tensor] {
        if (tensor->deleter) tensor->deleter(tensor);
      });
    } catch (...) {
      delete h;
      throw;
    }
    *out = h;
  });
}

}  // extern "C"
