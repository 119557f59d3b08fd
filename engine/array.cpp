#include "array.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <utility>
#include <vector>
#include <mutex>
#include <new>

namespace kiln {

void internal_error(const char* file, int line, const char* what) {
  throw Error(Status::Internal,
              std::string("internal error: ") + what + " (" + file + ":" + std::to_string(line) + ")");
}

std::string shape_str(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

bool window_fits(const Shape& whole, const Shape& start, const Shape& extent) {
  if (start.size() != whole.size() || extent.size() != whole.size()) return false;
  for (size_t d = 0; d < whole.size(); ++d)
    if (start[d] < 0 || extent[d] < 0 || start[d] > whole[d] || extent[d] > whole[d] - start[d]) return false;
  return true;
}

void Shape::too_many(size_t n) {
  throw Error(Status::BadArgument, "arrays may have at most 32 dimensions, got " + std::to_string(n));
}

int64_t shape_size(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error(Status::BadArgument, "negative dimension in shape " + shape_str(shape));
    if (d != 0 && n > INT64_MAX / d)
      throw Error(Status::BadArgument, "shape " + shape_str(shape) + " has too many elements");
    n *= d;
  }
  return n;
}

Shape c_strides(const Shape& shape, size_t itemsize) {
  Shape s(shape.size());
  int64_t step = static_cast<int64_t>(itemsize);
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = step;
    step *= shape[i] > 0 ? shape[i] : 1;
  }
  return s;
}

namespace {

// Freed buffers from 32 KiB up go to a small cache and are reused by the next array of
// the same size class. NumPy-style code allocates a result per operation; without the
// cache glibc hands memory back to the kernel as the temporaries are freed (it trims the
// heap's top, and unmaps chunks of 128 KiB and more), and every page of the next one is
// faulted in again: five steps on 10^4 float64 took 0.85 ms that way, against 8 us in
// NumPy, on a machine whose page faults cost ~8 us. Buffers under 1 MiB come from malloc;
// larger ones from mmap, on transparent huge pages where the kernel allows.
class BufferCache {
 public:
  static constexpr size_t kMinBytes = size_t{32} << 10;  // smaller ones use malloc, uncached
  static constexpr size_t kMapBytes = size_t{1} << 20;   // from here mmap in huge-page classes
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kMaxEntries = 128;             // bounds the search in get()
  // Freed memory kept for reuse: a 16th of the machine's memory, between 256 MiB and
  // 4 GiB, so that a result of 10^8 float64 is reused too; KILN_BUFFER_CACHE_MB sets it
  // (0 turns the cache off).
  static size_t max_cached() {
    static const size_t limit = [] {
      if (const char* mb = std::getenv("KILN_BUFFER_CACHE_MB")) return static_cast<size_t>(std::strtoull(mb, nullptr, 10)) << 20;
      long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
      size_t physical = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
      return std::clamp(physical / 16, size_t{256} << 20, size_t{4} << 30);
    }();
    return limit;
  }

  static BufferCache& instance() {
    static BufferCache* cache = new BufferCache();  // never destroyed: arrays may outlive main
    return *cache;
  }
  // Classes in eighths of a power of two below 1 MiB (at most 1/8 more than asked, and
  // nearby sizes share a class), whole huge pages above.
  static size_t size_class(size_t bytes) {
    size_t step = bytes >= kMapBytes ? kHugePage : std::bit_floor(bytes) / 8;
    return (bytes + step - 1) / step * step;
  }

  void* get(size_t capacity) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The most recently freed buffer of this size: its pages are the likeliest to be warm.
      for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
        if (it->first != capacity) continue;
        void* p = it->second;
        free_.erase(std::next(it).base());
        cached_ -= capacity;
        return p;
      }
    }
    if (capacity < kMapBytes) return std::aligned_alloc(64, capacity);
    void* p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    madvise(p, capacity, MADV_HUGEPAGE);  // a hint; fine if refused
    return p;
  }

  // Keeps the buffer, evicting the longest-unused ones beyond the limits: buffers of sizes
  // a program no longer uses must not keep out the ones it does.
  void put(void* p, size_t capacity) {
    std::vector<std::pair<size_t, void*>> evicted;
    if (capacity > max_cached()) {
      evicted.push_back({capacity, p});
    } else {
      std::lock_guard<std::mutex> lock(mutex_);
      free_.push_back({capacity, p});
      cached_ += capacity;
      while (cached_ > max_cached() || free_.size() > kMaxEntries) {
        evicted.push_back(free_.front());
        cached_ -= free_.front().first;
        free_.pop_front();
      }
    }
    for (auto [size, q] : evicted) release(q, size);
  }

 private:
  static void release(void* p, size_t capacity) {
    if (capacity < kMapBytes) std::free(p);
    else munmap(p, capacity);
  }

  std::mutex mutex_;
  std::deque<std::pair<size_t, void*>> free_;  // (capacity, buffer), oldest first
  size_t cached_ = 0;
};

}  // namespace

std::atomic<uint64_t> g_array_bytes_allocated{0};
static std::atomic<int64_t> g_live_buffers{0};
static std::atomic<int64_t> g_live_buffer_bytes{0};

Buffer::Buffer(void* data, size_t nbytes, std::function<void()> release)
    : data_(data), nbytes_(nbytes), release_(std::move(release)) {
  if (!data_) return;  // a placeholder holds no memory
  g_live_buffers.fetch_add(1, std::memory_order_relaxed);
  g_live_buffer_bytes.fetch_add(static_cast<int64_t>(nbytes_), std::memory_order_relaxed);
}

Buffer::~Buffer() {
  if (release_) release_();
  if (!data_) return;
  g_live_buffers.fetch_sub(1, std::memory_order_relaxed);
  g_live_buffer_bytes.fetch_sub(static_cast<int64_t>(nbytes_), std::memory_order_relaxed);
}

LiveBuffers live_buffers() {
  return {g_live_buffers.load(std::memory_order_relaxed), g_live_buffer_bytes.load(std::memory_order_relaxed)};
}

uint64_t array_bytes_allocated() { return g_array_bytes_allocated.load(std::memory_order_relaxed); }

static void check_ndim(size_t ndim) {
  if (ndim > static_cast<size_t>(kMaxDims))
    throw Error(Status::BadArgument, "arrays may have at most 32 dimensions, got " + std::to_string(ndim));
}

Array Array::empty(DType dtype, const Shape& shape) { return empty_past_line(dtype, shape, 0); }

Array Array::empty_past_line(DType dtype, const Shape& shape, size_t past) {
  check_ndim(shape.size());
  KILN_ASSERT(past < 64 && past % kiln::itemsize(dtype) == 0);
  int64_t n = shape_size(shape);
  if (n > static_cast<int64_t>(SIZE_MAX / 16))
    throw Error(Status::OutOfMemory, "array of shape " + shape_str(shape) + " is too large");
  const size_t nbytes = static_cast<size_t>(n) * kiln::itemsize(dtype), held = nbytes + past;
  void* p;
  std::function<void()> release;
#if defined(__SANITIZE_ADDRESS__)
  constexpr bool use_cache = false;  // AddressSanitizer must see every buffer's bounds
#else
  constexpr bool use_cache = true;
#endif
  if (use_cache && held >= BufferCache::kMinBytes) {
    size_t capacity = BufferCache::size_class(held);
    p = BufferCache::instance().get(capacity);
    release = [p, capacity] { BufferCache::instance().put(p, capacity); };
  } else {
    const size_t rounded = held ? (held + 63) / 64 * 64 : 64;
    p = std::aligned_alloc(64, rounded);
#if defined(__SANITIZE_ADDRESS__)
    // Only the elements may be touched: not the bytes before them (past) or the padding after.
    if (p) {
      ASAN_POISON_MEMORY_REGION(p, past);
      ASAN_POISON_MEMORY_REGION(static_cast<char*>(p) + held, rounded - held);
    }
    release = [p, rounded] {
      ASAN_UNPOISON_MEMORY_REGION(p, rounded);
      std::free(p);
    };
#else
    release = [p] { std::free(p); };
#endif
  }
  if (!p)
    throw Error(Status::OutOfMemory, "cannot allocate " + std::to_string(nbytes) + " bytes for " +
                                         dtype_name(dtype) + " array of shape " + shape_str(shape));
  g_array_bytes_allocated.fetch_add(nbytes, std::memory_order_relaxed);
  Array a;
  a.buffer_ = std::make_shared<Buffer>(static_cast<char*>(p) + past, nbytes, std::move(release));
  a.dtype_ = dtype;
  a.shape_ = shape;
  a.strides_ = c_strides(shape, kiln::itemsize(dtype));
  return a;
}

Array Array::zeros(DType dtype, const Shape& shape) {
  Array a = empty(dtype, shape);
  std::memset(a.data(), 0, a.buffer_->nbytes());
  return a;
}

void Array::require_writable(const char* what) const {
  if (!writable())
    throw Error(Status::BadArgument,
                std::string(what) + ": the array is read-only (a segment attached read-only, or memory marked so)");
}

Array Array::wrap(void* data, DType dtype, Shape shape, Shape byte_strides, std::function<void()> release) {
  // Validate before taking ownership so a failed wrap never calls release: the caller
  // still owns the memory when we throw.
  check_ndim(shape.size());
  int64_t n = shape_size(shape);
  if (!byte_strides.empty() && byte_strides.size() != shape.size())
    throw Error(Status::BadArgument, "wrap: " + std::to_string(byte_strides.size()) +
                                         " strides given for " + std::to_string(shape.size()) + " dimensions");
  if (!data && n > 0) throw Error(Status::BadArgument, "wrap: data pointer is NULL");
  Array a;
  a.dtype_ = dtype;
  a.strides_ = byte_strides.empty() ? c_strides(shape, kiln::itemsize(dtype)) : std::move(byte_strides);
  a.shape_ = std::move(shape);
  // A dimension of length 1 never steps (nor any of an empty array): its stride is taken
  // as the C-order one, as NumPy ignores it (also for its `aligned` flag), so such views wrap.
  const Shape c_order = c_strides(a.shape_, kiln::itemsize(dtype));
  for (size_t d = 0; d < a.strides_.size(); ++d) {
    if (a.shape_[d] == 1 || n == 0) a.strides_[d] = c_order[d];
    else if (a.strides_[d] % static_cast<int64_t>(kiln::itemsize(dtype)) != 0)
      throw Error(Status::BadArgument, std::string("wrap: byte strides must be multiples of the ") +
                                           dtype_name(dtype) + " item size");
  }
  a.buffer_ = std::make_shared<Buffer>(data, static_cast<size_t>(n) * kiln::itemsize(dtype), std::move(release));
  return a;
}

Array Array::placeholder(DType dtype, const Shape& shape) {
  check_ndim(shape.size());
  Array a;
  a.dtype_ = dtype;
  a.shape_ = shape;
  a.strides_ = c_strides(shape, kiln::itemsize(dtype));
  a.buffer_ = std::make_shared<Buffer>(nullptr, 0, nullptr);
  return a;
}

int64_t Array::size() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

bool Array::is_c_contiguous() const {
  int64_t step = static_cast<int64_t>(itemsize());
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 0) return true;
    if (shape_[i] != 1 && strides_[i] != step) return false;
    step *= shape_[i];
  }
  return true;
}

void Array::byte_extent(const char*& lo, const char*& hi) const {
  lo = hi = data();
  if (size() == 0) return;
  int64_t low = 0, high = 0;
  for (size_t i = 0; i < shape_.size(); ++i) {
    int64_t span = (shape_[i] - 1) * strides_[i];
    if (span < 0) low += span; else high += span;
  }
  lo = data() + low;
  hi = data() + high + itemsize();
}

static int normalize_axis(int axis, int ndim, const char* what) {
  if (axis < -ndim || axis >= ndim)
    throw Error(Status::BadArgument, std::string(what) + ": axis " + std::to_string(axis) +
                                         " is out of bounds for an array of dimension " + std::to_string(ndim));
  return axis < 0 ? axis + ndim : axis;
}

Array Array::slice(int axis, int64_t start, int64_t stop, int64_t step) const {
  axis = normalize_axis(axis, ndim(), "slice");
  if (step == 0) throw Error(Status::BadArgument, "slice: step cannot be zero");
  int64_t n = shape_[axis];
  // Python's slice.indices(): clamp, negative counts from the end.
  auto clamp = [&](int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); };
  if (start < 0) start += n;
  if (stop < 0) stop += n;
  int64_t len;
  if (step > 0) {
    start = clamp(start, 0, n);
    stop = clamp(stop, 0, n);
    len = stop > start ? (stop - start + step - 1) / step : 0;
  } else {
    start = clamp(start, -1, n - 1);
    stop = clamp(stop, -1, n - 1);
    len = start > stop ? (start - stop - step - 1) / (-step) : 0;
  }
  Array v = *this;
  if (len > 0) v.offset_ += start * strides_[axis];
  v.shape_[axis] = len;
  v.strides_[axis] = strides_[axis] * step;
  return v;
}

Array Array::index(int axis, int64_t i) const {
  axis = normalize_axis(axis, ndim(), "index");
  if (i < 0) i += shape_[axis];
  if (i < 0 || i >= shape_[axis])
    throw Error(Status::BadArgument, "index " + std::to_string(i) + " is out of bounds for axis " +
                                         std::to_string(axis) + " with size " + std::to_string(shape_[axis]));
  Array v = *this;
  v.offset_ += i * strides_[axis];
  v.shape_.erase(v.shape_.begin() + axis);
  v.strides_.erase(v.strides_.begin() + axis);
  return v;
}

Array Array::transpose() const {
  std::vector<int> axes(shape_.size());
  for (size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<int>(axes.size() - 1 - i);
  return transpose(axes);
}

Array Array::transpose(const std::vector<int>& axes) const {
  if (axes.size() != shape_.size())
    throw Error(Status::BadArgument, "transpose: axes don't match array of dimension " + std::to_string(ndim()));
  bool seen[kMaxDims] = {};  // axes.size() is ndim(), at most kMaxDims
  Array v = *this;
  for (size_t i = 0; i < axes.size(); ++i) {
    int a = normalize_axis(axes[i], ndim(), "transpose");
    if (seen[a]) throw Error(Status::BadArgument, "transpose: repeated axis " + std::to_string(axes[i]));
    seen[a] = true;
    v.shape_[i] = shape_[a];
    v.strides_[i] = strides_[a];
  }
  return v;
}

Array Array::reshape(const Shape& requested) const {
  check_ndim(requested.size());
  Shape shape = requested;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw Error(Status::BadArgument, "reshape: can only specify one unknown dimension");
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      throw Error(Status::BadArgument, "reshape: negative dimension in " + shape_str(requested));
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || size() % known != 0)
      throw Error(Status::BadArgument, "cannot reshape array of size " + std::to_string(size()) +
                                           " into shape " + shape_str(requested));
    shape[infer] = size() / known;
  }
  if (shape_size(shape) != size())
    throw Error(Status::BadArgument, "cannot reshape array of size " + std::to_string(size()) +
                                         " into shape " + shape_str(requested));
  // View when possible: walk old and new dims in groups of equal products; every group of
  // old dims must be contiguous among themselves (NumPy's _attempt_nocopy_reshape).
  Shape old_shape, old_strides;
  for (size_t i = 0; i < shape_.size(); ++i)
    if (shape_[i] != 1) { old_shape.push_back(shape_[i]); old_strides.push_back(strides_[i]); }
  Shape new_strides(shape.size(), static_cast<int64_t>(itemsize()));
  bool viewable = size() != 0;
  size_t oi = 0, ni = 0;
  while (viewable && oi < old_shape.size() && ni < shape.size()) {
    size_t oj = oi + 1, nj = ni + 1;
    int64_t op = old_shape[oi], np = shape[ni];
    while (op != np) {
      if (np < op) np *= shape[nj++]; else op *= old_shape[oj++];
    }
    for (size_t k = oi; k + 1 < oj; ++k)
      if (old_strides[k] != old_strides[k + 1] * old_shape[k + 1]) viewable = false;
    new_strides[nj - 1] = old_strides[oj - 1];
    for (size_t k = nj - 1; k > ni; --k) new_strides[k - 1] = new_strides[k] * shape[k];
    oi = oj;
    ni = nj;
  }
  if (viewable || size() == 0) {
    for (size_t k = ni; k < shape.size(); ++k) new_strides[k] = static_cast<int64_t>(itemsize());
    Array v = *this;
    v.shape_ = shape;
    v.strides_ = size() == 0 ? c_strides(shape, itemsize()) : new_strides;
    return v;
  }
  Array c = copy();
  c.shape_ = shape;
  c.strides_ = c_strides(shape, itemsize());
  return c;
}

bool try_broadcast(const Shape& a, const Shape& b, Shape& out) {
  size_t n = std::max(a.size(), b.size());
  out.assign(n, 1);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    out[i] = da == 1 ? db : da;
  }
  return true;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* what) {
  Shape out;
  if (!try_broadcast(a, b, out))
    throw Error(Status::ShapeMismatch,
                std::string(what) + ": shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
  return out;
}

Array Array::broadcast_to(const Shape& target) const {
  if (target == shape_) return *this;  // every evaluation asks this of each input
  Shape joined;
  if (!try_broadcast(shape_, target, joined) || joined != target || target.size() < shape_.size())
    throw Error(Status::ShapeMismatch,
                "broadcast_to: shape " + shape_str(shape_) + " cannot be broadcast to " + shape_str(target));
  Array v = *this;
  size_t lead = target.size() - shape_.size();
  v.shape_ = target;
  v.strides_.assign(target.size(), 0);
  for (size_t i = 0; i < shape_.size(); ++i)
    v.strides_[lead + i] = shape_[i] == 1 && target[lead + i] != 1 ? 0 : strides_[i];
  return v;
}

Array Array::copy() const {
  Array c = empty(dtype_, shape_);
  int64_t n = size();
  if (n == 0) return c;
  size_t item = itemsize();
  if (is_c_contiguous()) {
    std::memcpy(c.data(), data(), static_cast<size_t>(n) * item);
    return c;
  }
  // Odometer walk over the source; small arrays only need this rarely (the executor
  // gathers strided inputs itself).
  std::vector<int64_t> idx(shape_.size(), 0);
  char* dst = c.data();
  const char* src = data();
  for (int64_t k = 0; k < n; ++k) {
    std::memcpy(dst, src, item);
    dst += item;
    for (size_t d = shape_.size(); d-- > 0;) {
      src += strides_[d];
      if (++idx[d] < shape_[d]) break;
      src -= strides_[d] * shape_[d];
      idx[d] = 0;
    }
  }
  return c;
}

}  // namespace kiln
