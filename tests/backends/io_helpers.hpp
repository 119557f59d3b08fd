// What the .npy and .npz tests share: a scratch folder, whole-file reads and writes,
// arrays of distinct values, element-wise comparison of any layout, and NumPy's presence.
#pragma once
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "array.hpp"

namespace kiln::test_io {

// A fresh directory under /tmp, removed with everything in it (made writable first, for
// tests that take the write permission away).
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/kiln_io_XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  std::vector<std::string> entries() const {  // sorted
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline bool python_has_numpy() { return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

inline bool has_tmp_leftovers(const TempDir& dir) {
  for (const std::string& name : dir.entries())
    if (name.find(".tmp.") != std::string::npos) return true;
  return false;
}

// Every element's bytes in C order, for comparing small arrays of any layout.
inline std::vector<std::string> elements(const Array& a) {
  std::vector<std::string> out;
  int64_t n = a.size();
  std::vector<int64_t> idx(a.shape().size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    const char* p = a.data();
    for (size_t d = 0; d < idx.size(); ++d) p += idx[d] * a.strides()[d];
    out.emplace_back(p, a.itemsize());
    for (size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < a.shape()[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

// Same dtype, shape and elements in C order, for arrays of any layout and size.
inline bool same(const Array& a, const Array& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Array ca = a.copy(), cb = b.copy();
  return std::memcmp(ca.data(), cb.data(), static_cast<size_t>(ca.size()) * ca.itemsize()) == 0;
}

// Distinct, sign-mixed values so a swapped or misplaced element shows (test_npz.cpp's
// Python scripts compute the same formula).
inline Array filled(DType t, const Shape& shape) {
  Array a = Array::empty(t, shape);
  for (int64_t i = 0; i < a.size(); ++i) {
    char* p = a.data() + i * static_cast<int64_t>(a.itemsize());
    switch (t) {
      case DType::Bool: *reinterpret_cast<bool*>(p) = i % 3 == 0; break;
      case DType::Int32: { int32_t v = static_cast<int32_t>(i * 7919 - 100000); std::memcpy(p, &v, 4); break; }
      case DType::Int64: { int64_t v = (i - 3) * 1000000007LL * 1000; std::memcpy(p, &v, 8); break; }
      case DType::Float32: { float v = static_cast<float>(i) * 0.5f - 1.25f; std::memcpy(p, &v, 4); break; }
      case DType::Float64: { double v = static_cast<double>(i) / 3.0 - 2.0; std::memcpy(p, &v, 8); break; }
    }
  }
  return a;
}

// Views whose C-order contents differ from their memory order, for saves that must write
// logical contents: a transpose, a permutation of three axes, a reversed every-other slice
// (elements 9, 7, 5, 3, 1 of filled(t, {10}); index 2), reversed columns, a broadcast.
inline std::vector<Array> views_of(DType t) {
  Array m = filled(t, {3, 4}), cube = filled(t, {2, 3, 4}), v = filled(t, {10});
  return {m.transpose(), cube.transpose({2, 0, 1}), v.slice(0, 9, -11, -2), m.slice(1, 3, 0, -1),
          v.slice(0, 0, 1).broadcast_to({3, 1})};
}

inline const DType kAllDTypes[] = {DType::Bool, DType::Int32, DType::Int64, DType::Float32, DType::Float64};

}  // namespace kiln::test_io
