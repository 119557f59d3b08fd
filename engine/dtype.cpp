#include "dtype.hpp"

namespace kiln {

const char* dtype_name(DType t) {
  static const char* const names[] = {"bool", "int32", "int64", "float32", "float64"};
  return names[static_cast<int>(t)];
}

bool dtype_from_name(std::string_view name, DType& out) {
  for (int i = 0; i < kNumDTypes; ++i)
    if (name == dtype_name(static_cast<DType>(i))) {
      out = static_cast<DType>(i);
      return true;
    }
  return false;
}

DType promote(DType a, DType b) {
  if (a == b) return a;
  if (a > b) std::swap(a, b);  // enum order: bool < int32 < int64 < float32 < float64
  // Only int32/int64 with float32 leaves the enum order: float32 cannot hold them exactly.
  if (is_int(a) && b == DType::Float32) return DType::Float64;
  return b;
}

bool can_cast_same_kind(DType from, DType to) {
  return static_cast<int>(kind_of(from)) <= static_cast<int>(kind_of(to));
}

}  // namespace kiln
