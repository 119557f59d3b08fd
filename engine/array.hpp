// Array: a refcounted buffer plus dtype, shape, byte strides (negative allowed) and a byte
// offset. Views (slice, transpose, reshape, broadcast_to) share the buffer; copying an Array
// copies the handle, never the bytes. A buffer is either kiln's own allocation (64-byte
// aligned, or placed past a line as a result's operands are: empty_past_line) or user memory
// wrapped with a release callback; nothing else can tell which.
#pragma once
#include <algorithm>
#include <compare>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dtype.hpp"
#include "error.hpp"

namespace kiln {

inline constexpr int kMaxDims = 32;  // NumPy's limit

// Dimensions (or byte strides) of an array: a vector of at most kMaxDims values kept in
// place. Shapes are copied with every Array handle, and as std::vectors those copies
// were most of the 65 heap allocations of a cached evaluation (string API, 16 elements),
// half its time. More than kMaxDims values is a BadArgument error, as NumPy's.
class Shape {
 public:
  using value_type = int64_t;
  using iterator = int64_t*;
  using const_iterator = const int64_t*;
  using reverse_iterator = std::reverse_iterator<int64_t*>;
  using const_reverse_iterator = std::reverse_iterator<const int64_t*>;

  Shape() = default;
  explicit Shape(size_t n, int64_t value = 0) { assign(n, value); }
  Shape(std::initializer_list<int64_t> values) { assign(values.begin(), values.end()); }
  template <std::forward_iterator It> Shape(It first, It last) { assign(first, last); }
  Shape(const std::vector<int64_t>& values) { assign(values.begin(), values.end()); }  // NOLINT: implicit
  Shape(const Shape& other) noexcept : n_(other.n_) { std::copy(other.begin(), other.end(), d_); }
  Shape& operator=(const Shape& other) noexcept {
    if (this == &other) return *this;
    n_ = other.n_;
    std::copy(other.begin(), other.end(), d_);
    return *this;
  }
  operator std::vector<int64_t>() const { return {begin(), end()}; }  // NOLINT: implicit

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t* data() { return d_; }
  const int64_t* data() const { return d_; }
  int64_t& operator[](size_t i) { return d_[i]; }
  int64_t operator[](size_t i) const { return d_[i]; }
  int64_t* begin() { return d_; }
  int64_t* end() { return d_ + n_; }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + n_; }
  reverse_iterator rbegin() { return reverse_iterator(end()); }
  reverse_iterator rend() { return reverse_iterator(begin()); }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }
  int64_t& front() { return d_[0]; }
  int64_t front() const { return d_[0]; }
  int64_t& back() { return d_[n_ - 1]; }
  int64_t back() const { return d_[n_ - 1]; }

  void clear() { n_ = 0; }
  void reserve(size_t n) { check(n); }
  void push_back(int64_t v) {
    check(n_ + 1);
    d_[n_++] = v;
  }
  void pop_back() { --n_; }
  void resize(size_t n, int64_t value = 0) {
    check(n);
    if (n > n_) std::fill(d_ + n_, d_ + n, value);
    n_ = static_cast<uint32_t>(n);
  }
  void assign(size_t n, int64_t value) {
    check(n);
    std::fill(d_, d_ + n, value);
    n_ = static_cast<uint32_t>(n);
  }
  // Ranges are measured first: one too long is refused with its length, and nothing changes.
  template <std::forward_iterator It> void assign(It first, It last) {
    const size_t n = static_cast<size_t>(std::distance(first, last));
    check(n);
    std::transform(first, last, d_, [](auto v) { return static_cast<int64_t>(v); });
    n_ = static_cast<uint32_t>(n);
  }
  int64_t* insert(const int64_t* pos, int64_t v) {
    const size_t at = static_cast<size_t>(pos - d_);
    check(n_ + 1);
    std::copy_backward(d_ + at, d_ + n_, d_ + n_ + 1);
    d_[at] = v;
    ++n_;
    return d_ + at;
  }
  template <std::forward_iterator It> int64_t* insert(const int64_t* pos, It first, It last) {
    const size_t at = static_cast<size_t>(pos - d_), count = static_cast<size_t>(std::distance(first, last));
    check(n_ + count);
    std::copy_backward(d_ + at, d_ + n_, d_ + n_ + count);
    std::transform(first, last, d_ + at, [](auto v) { return static_cast<int64_t>(v); });
    n_ += static_cast<uint32_t>(count);
    return d_ + at;
  }
  int64_t* insert(const int64_t* pos, std::initializer_list<int64_t> values) {
    return insert(pos, values.begin(), values.end());
  }
  int64_t* erase(const int64_t* pos) { return erase(pos, pos + 1); }
  int64_t* erase(const int64_t* first, const int64_t* last) {
    const size_t at = static_cast<size_t>(first - d_), count = static_cast<size_t>(last - first);
    std::copy(d_ + at + count, d_ + n_, d_ + at);
    n_ -= static_cast<uint32_t>(count);
    return d_ + at;
  }

  friend bool operator==(const Shape& a, const Shape& b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }
  friend auto operator<=>(const Shape& a, const Shape& b) {
    return std::lexicographical_compare_three_way(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  static void check(size_t n) {
    if (n > static_cast<size_t>(kMaxDims)) too_many(n);
  }
  [[noreturn]] static void too_many(size_t n);
  uint32_t n_ = 0;
  int64_t d_[kMaxDims];  // [0, n_) hold values; the rest is never read
};

std::string shape_str(const Shape& shape);  // "(3, 4)", "()", "(5,)"
// Whether [start, start + extent) is a window of an array of shape `whole`: as many axes,
// and inside it along each.
bool window_fits(const Shape& whole, const Shape& start, const Shape& extent);
int64_t shape_size(const Shape& shape);     // throws BadArgument on negative or overflowing
Shape c_strides(const Shape& shape, size_t itemsize);

// Owns (or borrows) raw bytes; the release callback runs exactly once, when the last
// Array referring to the buffer goes away.
class Buffer {
 public:
  Buffer(void* data, size_t nbytes, std::function<void()> release);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  char* data() const { return static_cast<char*>(data_); }
  size_t nbytes() const { return nbytes_; }
  // Memory mapped without write permission (a read-only shared segment): kiln refuses to
  // write into it rather than fault.
  bool read_only() const { return read_only_; }
  void set_read_only() { read_only_ = true; }

 private:
  void* data_;
  size_t nbytes_;
  std::function<void()> release_;
  bool read_only_ = false;
};

class Array {
 public:
  Array() = default;  // an empty handle: valid() is false

  // New C-contiguous array, 64-byte aligned, contents uninitialised.
  static Array empty(DType dtype, const Shape& shape);
  // The same, starting `past` bytes after a cache line (a multiple of the item size, under
  // 64): a result placed as its operands lie, so that its lines and theirs start together.
  static Array empty_past_line(DType dtype, const Shape& shape, size_t past);
  static Array zeros(DType dtype, const Shape& shape);
  // Zero-copy view of user memory. byte_strides empty means C-contiguous. `release` (may
  // be empty) is called when kiln drops its last reference.
  static Array wrap(void* data, DType dtype, Shape shape, Shape byte_strides, std::function<void()> release);
  // Shape, dtype and C strides but no memory (data() is null): what stands for a
  // generator while a plan runs, so broadcasting and views work on it as on any array.
  static Array placeholder(DType dtype, const Shape& shape);
  // 0-d array holding one value.
  template <class T> static Array scalar(T value) {
    Array a = empty(dtype_of<T>(), {});
    *a.data_as<T>() = value;
    return a;
  }

  bool valid() const { return buffer_ != nullptr; }
  bool writable() const { return buffer_ && !buffer_->read_only(); }
  // Throws BadArgument naming `what` when the array's memory is read-only.
  void require_writable(const char* what) const;
  DType dtype() const { return dtype_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in bytes
  int64_t size() const;
  size_t itemsize() const { return kiln::itemsize(dtype_); }
  char* data() const { return buffer_ ? buffer_->data() + offset_ : nullptr; }
  template <class T> T* data_as() const { return reinterpret_cast<T*>(data()); }
  const std::shared_ptr<Buffer>& buffer() const { return buffer_; }
  int64_t offset() const { return offset_; }

  bool is_c_contiguous() const;
  // Lowest and one-past-highest byte address any element occupies (equal when empty).
  void byte_extent(const char*& lo, const char*& hi) const;

  // Views. Axes may be negative (counted from the end). Python slice semantics: start
  // and stop are clamped, step may be negative but not zero.
  Array slice(int axis, int64_t start, int64_t stop, int64_t step = 1) const;
  Array index(int axis, int64_t i) const;  // drops the axis
  Array transpose() const;                 // reverses the axes
  Array transpose(const std::vector<int>& axes) const;
  // A view when the strides allow it (as NumPy), otherwise a C-ordered copy. One entry
  // may be -1.
  Array reshape(const Shape& new_shape) const;
  Array broadcast_to(const Shape& new_shape) const;  // read-only in spirit: stride 0
  Array copy() const;                                // C-contiguous copy

 private:
  std::shared_ptr<Buffer> buffer_;
  DType dtype_ = DType::Float64;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
};

// NumPy broadcasting of two shapes; throws ShapeMismatch naming `what` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* what);
bool try_broadcast(const Shape& a, const Shape& b, Shape& out);

// Bytes of array memory allocated by Array::empty since the process started (for
// `kiln bench`, which shows that evaluation makes no full-size temporaries).
uint64_t array_bytes_allocated();

// Buffers with memory alive now (kiln's own, wrapped, mapped) and their bytes: what a
// caller's leak test counts (a result freed, a DLPack deleter run).
struct LiveBuffers {
  int64_t count;
  int64_t bytes;
};
LiveBuffers live_buffers();

}  // namespace kiln
