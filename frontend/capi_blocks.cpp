// The C ABI for hosts that compute arrays block by block (kiln_split_reductions,
// kiln_generate_window, the .npy window functions) and the per-thread budget they run under.
#include "capi_internal.hpp"
#include "generate.hpp"
#include "npy.hpp"
#include "parser.hpp"
#include "runtime.hpp"
#include "stages.hpp"

using kiln::capi::code_of;
using kiln::capi::dtype_from;
using kiln::capi::guarded;
using kiln::capi::new_handle;
using kiln::capi::require;
using kiln::capi::shape_from;

extern "C" {

kiln_status kiln_set_thread_num_threads(int n) {
  return guarded([&] { kiln::Runtime::set_thread_num_threads(n); });
}

kiln_status kiln_split_reductions(const char* expr, const char** text) {
  return guarded([&] {
    require(expr && text, "kiln_split_reductions: expr or text is NULL");
    static thread_local std::string split;
    split = kiln::stages_text(kiln::split_at_reductions(expr));
    *text = split.c_str();
  });
}

kiln_status kiln_generate_window(const char* expr, int ndim, const int64_t* start, const int64_t* shape,
                                 kiln_array** out) {
  return guarded([&] {
    require(expr && out, "kiln_generate_window: expr or out is NULL");
    kiln::Shape first = shape_from(ndim, start, "kiln_generate_window");
    kiln::Shape extent = shape_from(ndim, shape, "kiln_generate_window");
    kiln::Graph g;
    const kiln::Node& n = g.node(kiln::parse_expression(expr, g));
    require(n.kind == kiln::NodeKind::Generate,
            std::string("kiln_generate_window: '") + expr + "' is not a call of a creation or random function");
    *out = new_handle(kiln::generate_window(n.gen, first, extent));
  });
}

kiln_status kiln_npy_info(const char* path, kiln_dtype* dtype, int* ndim, const int64_t** shape,
                          int64_t* data_offset, int* flags) {
  return guarded([&] {
    require(path && dtype && ndim && shape && data_offset && flags, "kiln_npy_info: an argument is NULL");
    kiln::NpyHeader h = kiln::read_npy_header(path);
    static thread_local kiln::Shape extents;
    extents = h.shape;
    *dtype = static_cast<kiln_dtype>(h.dtype);
    *ndim = static_cast<int>(h.shape.size());
    *shape = extents.data();
    *data_offset = static_cast<int64_t>(h.data_offset);
    const bool mappable = !h.swapped && h.data_offset % kiln::itemsize(h.dtype) == 0;
    *flags = (h.fortran ? KILN_NPY_FORTRAN : 0) | (mappable ? KILN_NPY_MAPPABLE : 0);
  });
}

kiln_status kiln_npy_create(const char* path, kiln_dtype dtype, int ndim, const int64_t* shape) {
  const int code = code_of(dtype);
  return guarded([&] {
    require(path != nullptr, "kiln_npy_create: path is NULL");
    kiln::create_npy(path, dtype_from(code, "kiln_npy_create"), shape_from(ndim, shape, "kiln_npy_create"));
  });
}

kiln_status kiln_npy_write_window(const char* path, int ndim, const int64_t* start, const kiln_array* array) {
  return guarded([&] {
    require(path && array, "kiln_npy_write_window: path or array is NULL");
    kiln::write_npy_window(path, shape_from(ndim, start, "kiln_npy_write_window"), array->array);
  });
}

}  // extern "C"
