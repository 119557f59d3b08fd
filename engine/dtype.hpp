// Element types kiln computes with, and NumPy 1.24's promotion rules among them.
// Numbering matches kiln_dtype in kiln.h; never renumber.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kiln {

enum class DType : uint8_t { Bool = 0, Int32 = 1, Int64 = 2, Float32 = 3, Float64 = 4 };
inline constexpr int kNumDTypes = 5;

// The three kinds NumPy's value-based casting compares: bool < int < float.
enum class Kind : uint8_t { Bool = 0, Int = 1, Float = 2 };

constexpr size_t itemsize(DType t) {
  constexpr size_t sizes[] = {1, 4, 8, 4, 8};
  return sizes[static_cast<int>(t)];
}
constexpr Kind kind_of(DType t) {
  return t == DType::Bool ? Kind::Bool
         : (t == DType::Int32 || t == DType::Int64) ? Kind::Int
                                                   : Kind::Float;
}
constexpr bool is_float(DType t) { return kind_of(t) == Kind::Float; }
constexpr bool is_int(DType t) { return kind_of(t) == Kind::Int; }
constexpr bool valid_dtype(int code) { return code >= 0 && code < kNumDTypes; }

const char* dtype_name(DType t);
// Parses "bool", "int32", "int64", "float32", "float64" (and NumPy's "f8"-style codes
// are left to the .npy reader). Returns false for anything else.
bool dtype_from_name(std::string_view name, DType& out);

// NumPy's promote_types restricted to kiln's dtypes (int32 with float32 gives float64).
DType promote(DType a, DType b);
// NumPy's can_cast(from, to, casting="same_kind"): what an `out=` array may receive.
bool can_cast_same_kind(DType from, DType to);

// C++ type of each dtype. A bool is one byte: kiln writes 0 or 1 and reads any nonzero byte as
// true, as NumPy does (kernels read bools as bytes: see item() in kernel_impl.hpp).
template <DType D> struct CType;
template <> struct CType<DType::Bool> { using type = bool; };
template <> struct CType<DType::Int32> { using type = int32_t; };
template <> struct CType<DType::Int64> { using type = int64_t; };
template <> struct CType<DType::Float32> { using type = float; };
template <> struct CType<DType::Float64> { using type = double; };

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }

}  // namespace kiln
