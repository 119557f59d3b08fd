// Zero-copy interop with xtensor: any container or adaptor with contiguous or strided
// storage (xt::xarray, xt::xtensor, xt::adapt(...)) becomes a kiln::Array over the same
// memory, usable as an input or as the output of eval(). kiln does not own that memory:
// keep the container alive (and unresized) while kiln uses the Array.
#pragma once
#include <type_traits>

#include "kiln.hpp"

namespace kiln {

template <class E>
Array adopt(E& container) {
  using T = std::remove_cv_t<typename std::remove_reference_t<E>::value_type>;
  Shape shape(container.shape().begin(), container.shape().end());
  Shape strides;
  for (auto s : container.strides()) strides.push_back(static_cast<int64_t>(s) * static_cast<int64_t>(sizeof(T)));
  auto* data = const_cast<T*>(container.data()) + container.data_offset();
  return Array::wrap(data, dtype_of<T>(), shape, strides, {});
}

template <class E>
  requires(!std::is_same_v<std::remove_cv_t<E>, Array> && requires(E& e) { e.data(); e.strides(); })
void eval(const Expr& e, E& out) {
  eval(e, adopt(out));
}

}  // namespace kiln
