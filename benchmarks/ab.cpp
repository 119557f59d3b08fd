// kiln-ab: two builds of libkiln timed in one process, round by round, so that the
// shared build machines' noise (other tenants' memory traffic, frequency changes) falls
// on both alike. Separate processes measured minutes apart disagreed by 2x on these
// machines; this tool's A/A comparisons stay within a few percent.
//
//   kiln-ab LIB_A LIB_B [--dtype f32|f64] [--n N] [--iters K] [--rounds R] [--threads T]
//           [--stride S | --cols C [--a-order c|f] [--out-order c|f]] [--out-len K]
//           [--env-a NAME=VALUE[,...]] [--env-b NAME=VALUE[,...]] [--pages huge|4k] [--offset B]
//           [--out-offset B] EXPR...
//
// Each library is dlopen'ed on its own (RTLD_LOCAL: its own plan cache, thread pool
// settings and kernel tables) and reached through the C ABI only. The operands are a, b
// and c, n elements each of one caller buffer (a read every S-th element of a buffer S*n
// long), and the result goes into one caller buffer. With --cols they are matrices of
// n / C rows and C columns, `row` is c's first row, and --a-order f / --out-order f make a
// / the result the transpose of a C-ordered C x (n / C) buffer (a column-major view).
// --out-len K makes the result a vector of K (a reduction's: sum(a, axis=1) wants n / C).
// --env-a / --env-b set environment variables while one side runs and put them back as
// they were while the other does: one build copied twice compares its own run-time knobs.
// Each round times K calls of each library, A first in even rounds and B first in odd
// ones (whichever runs second measured up to 5% slower). Printed per expression: the
// medians and B/A's median and quartiles.
// The buffers ask for transparent huge pages, as kiln's own large arrays and NumPy's do
// (--pages 4k: they do not; a*b + c over 10^7 float64s ran 1.2x slower so). --offset B
// starts every buffer B bytes past a cache line (a multiple of the item size): glibc's
// malloc hands out large blocks 16 bytes past a page, and NumPy's arrays lie so.
// --out-offset B places the result alone (default: --offset), as a result kiln allocates
// (on a line) over NumPy's operands (16 past one) lies.
// The two builds must agree on the op tables (ops.def and friends): GCC makes their inline
// constexpr arrays process-wide unique symbols, which RTLD_LOCAL does not separate. They
// also share one libtbb.
#include <dlfcn.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace {

using EvalViews = int (*)(const char*, size_t, const char* const*, const int64_t*, size_t, void*, void**, int64_t*);
using Wrap = int (*)(void*, int, int, const int64_t*, const int64_t*, void (*)(void*), void*, void**);
using SetThreads = int (*)(int);
using LastError = const char* (*)();

struct Lib {
  EvalViews eval_views;
  Wrap wrap;
  SetThreads set_threads;
  LastError last_error;
  void* out = nullptr;  // the shared result buffer, wrapped by this library
};

// Doubles from `offset` bytes past a 2 MiB boundary, zeroed; with huge pages asked for
// unless small_pages.
class Buffer {
 public:
  Buffer(size_t size, bool small_pages, size_t offset) : size_(size) {
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t bytes = (offset + std::max<size_t>(size, 1) * sizeof(double) + kHuge - 1) / kHuge * kHuge;
    base_ = static_cast<char*>(std::aligned_alloc(kHuge, bytes));
    if (!base_) {
      std::fprintf(stderr, "kiln-ab: cannot allocate %zu bytes\n", bytes);
      std::exit(2);
    }
    if (!small_pages) madvise(base_, bytes, MADV_HUGEPAGE);  // a hint; fine if refused
    std::memset(base_, 0, bytes);
    data_ = reinterpret_cast<double*>(base_ + offset);  // float32 reads it as floats
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(base_); }
  double* data() const { return data_; }
  size_t size() const { return size_; }
  double& operator[](size_t i) const { return data_[i]; }

 private:
  char* base_;
  double* data_;
  size_t size_;
};

template <class F> F symbol(void* handle, const char* name, const char* path) {
  void* p = dlsym(handle, name);
  if (!p) {
    std::fprintf(stderr, "kiln-ab: %s has no %s\n", path, name);
    std::exit(2);
  }
  return reinterpret_cast<F>(p);
}

Lib open_lib(const char* path) {
  // A file, never a search of the library path (which a name without '/' would be).
  const std::string file = std::strchr(path, '/') ? path : std::string("./") + path;
  void* h = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "kiln-ab: %s\n", dlerror());
    std::exit(2);
  }
  return {symbol<EvalViews>(h, "kiln_eval_views", path), symbol<Wrap>(h, "kiln_array_wrap", path),
          symbol<SetThreads>(h, "kiln_set_num_threads", path), symbol<LastError>(h, "kiln_last_error", path)};
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

// A whole number of at least `least`, or exit with a usage error naming the flag.
long number(const char* flag, const char* text, long least) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < least) {
    std::fprintf(stderr, "kiln-ab: %s wants a whole number >= %ld, not '%s'\n", flag, least, text);
    std::exit(2);
  }
  return v;
}

// NAME=VALUE[,NAME=VALUE...] as pairs.
std::vector<std::pair<std::string, std::string>> assignments(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (size_t at = 0; at < text.size();) {
    const size_t end = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, end - at);
    const size_t eq = item.find('=');
    if (eq == 0 || eq == std::string::npos) {
      std::fprintf(stderr, "kiln-ab: '%s' is not NAME=VALUE\n", item.c_str());
      std::exit(2);
    }
    pairs.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    at = end + 1;
  }
  return pairs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: kiln-ab LIB_A LIB_B [--dtype f32|f64] [--n N] [--iters K] [--rounds R] [--threads T] "
                 "[--stride S | --cols C [--a-order c|f] [--out-order c|f]] [--out-len K] [--env-a NAME=VALUE[,...]] "
                 "[--env-b NAME=VALUE[,...]] [--pages huge|4k] [--offset B] [--out-offset B] EXPR...\n");
    return 2;
  }
  const char* paths[2] = {argv[1], argv[2]};
  // dlopen returns the already loaded copy for a path it has seen: two different files.
  Lib libs[2] = {open_lib(paths[0]), open_lib(paths[1])};
  if (libs[0].eval_views == libs[1].eval_views) {
    std::fprintf(stderr, "kiln-ab: both paths load the same library; copy one to another file\n");
    return 2;
  }
  bool f32 = false;
  long n = 1000000, stride = 1, iters = 10, rounds = 11;
  int threads = 1;
  long cols = 0;                // --cols C: operands are (n / C, C)
  long out_len = 0;             // --out-len K: the result is a vector of K
  bool a_transposed = false;    // --a-order f: a is the transpose of a C-ordered (C, n / C)
  bool out_transposed = false;  // --out-order f: the same for the result
  bool small_pages = false;     // --pages 4k: no transparent huge pages asked for
  long offset = 0;              // --offset B: every buffer starts B bytes past a 2 MiB boundary
  long out_offset = -1;         // --out-offset B: the result's, when it differs
  std::vector<std::pair<std::string, std::string>> env[2];  // --env-a, --env-b: set while A (B) runs
  std::vector<const char*> exprs;
  for (int i = 3; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag.rfind("--", 0) != 0) {
      exprs.push_back(argv[i]);
      continue;
    }
    if (i + 1 == argc) {
      std::fprintf(stderr, "kiln-ab: %s wants a value\n", argv[i]);
      return 2;
    }
    const char* value = argv[++i];
    if (flag == "--dtype" && (std::strcmp(value, "f32") == 0 || std::strcmp(value, "f64") == 0)) f32 = value[1] == '3';
    else if (flag == "--n") n = number(argv[i - 1], value, 1);
    else if (flag == "--stride") stride = number(argv[i - 1], value, 1);
    else if (flag == "--iters") iters = number(argv[i - 1], value, 1);
    else if (flag == "--rounds") rounds = number(argv[i - 1], value, 3);
    else if (flag == "--threads") threads = static_cast<int>(number(argv[i - 1], value, 0));
    else if (flag == "--cols") cols = number(argv[i - 1], value, 1);
    else if (flag == "--out-len") out_len = number(argv[i - 1], value, 1);
    else if ((flag == "--a-order" || flag == "--out-order") && (std::strcmp(value, "c") == 0 || std::strcmp(value, "f") == 0))
      (flag == "--a-order" ? a_transposed : out_transposed) = value[0] == 'f';
    else if (flag == "--offset") offset = number(argv[i - 1], value, 0);
    else if (flag == "--out-offset") out_offset = number(argv[i - 1], value, 0);
    else if (flag == "--pages" && (std::strcmp(value, "huge") == 0 || std::strcmp(value, "4k") == 0))
      small_pages = value[0] == '4';
    else if ((flag == "--env-a" || flag == "--env-b") && std::strchr(value, '=')) env[flag[6] == 'b'] = assignments(value);
    else {
      std::fprintf(stderr,
                   "kiln-ab: unknown option %s %s (--dtype f32|f64, --n, --stride, --iters, --rounds, --threads, "
                   "--cols, --a-order c|f, --out-order c|f, --out-len, --env-a, --env-b, --pages huge|4k, --offset, "
                   "--out-offset)\n",
                   argv[i - 1], value);
      return 2;
    }
  }
  if (out_offset < 0) out_offset = offset;
  if (offset % (f32 ? 4 : 8) != 0 || offset > 4096 || out_offset % (f32 ? 4 : 8) != 0 || out_offset > 4096) {
    std::fprintf(stderr, "kiln-ab: --offset and --out-offset must be multiples of the item size, at most 4096\n");
    return 2;
  }
  if (stride > (long{1} << 40) / n) {
    std::fprintf(stderr, "kiln-ab: --n %ld with --stride %ld is too large\n", n, stride);
    return 2;
  }
  const int64_t item = f32 ? 4 : 8, dtype = f32 ? 3 : 4;  // KILN_FLOAT32, KILN_FLOAT64
  std::map<std::string, std::string> original;  // the --env variables set before kiln-ab ran
  for (const auto& side : env)
    for (const auto& [name, value] : side)
      if (const char* v = std::getenv(name.c_str())) original.emplace(name, v);

  Buffer a(static_cast<size_t>(stride * n), small_pages, offset), b(static_cast<size_t>(n), small_pages, offset),
      c(b.size(), small_pages, offset);
  // The result starts where the operands do unless --out-offset says otherwise.
  Buffer out_store(b.size(), small_pages, static_cast<size_t>(out_offset));
  double* out = out_store.data();
  auto fill = [&](const Buffer& v, double scale, double shift) {
    for (size_t i = 0; i < v.size(); ++i) {
      const double x = std::sin(static_cast<double>(i) * scale) + shift;
      if (f32) reinterpret_cast<float*>(v.data())[i] = static_cast<float>(x);
      else v[i] = x;
    }
  };
  fill(a, 0.37, 0), fill(b, 0.11, 1.5), fill(c, 0.05, -0.5);  // float32 uses each buffer's first half
  const char* names[4] = {"a", "b", "c", "row"};
  if (cols > 0 && (n % cols != 0 || stride != 1)) {
    std::fprintf(stderr, "kiln-ab: --cols must divide --n, and takes no --stride\n");
    return 2;
  }
  if (out_len > n || (out_len > 0 && out_transposed)) {
    std::fprintf(stderr, "kiln-ab: --out-len must be at most --n, and takes no --out-order f\n");
    return 2;
  }
  if ((a_transposed || out_transposed) && cols == 0) {
    std::fprintf(stderr, "kiln-ab: --a-order f and --out-order f want --cols\n");
    return 2;
  }
  const int64_t rows = cols > 0 ? n / cols : 0;
  std::vector<int64_t> views;  // records of address, dtype, ndim, extents, byte strides
  auto view = [&](const void* data, int64_t row_stride, int64_t col_stride) {
    views.insert(views.end(), {reinterpret_cast<int64_t>(data), dtype});
    if (cols > 0) views.insert(views.end(), {2, rows, cols, row_stride, col_stride});
    else views.insert(views.end(), {1, n, col_stride});
  };
  view(a.data(), a_transposed ? item : cols * item, a_transposed ? rows * item : stride * item);
  view(b.data(), cols * item, item);
  view(c.data(), cols * item, item);
  if (cols > 0) views.insert(views.end(), {reinterpret_cast<int64_t>(c.data()), dtype, 1, cols, item});  // row: c's first
  const int64_t out_shape[2] = {out_len > 0 ? out_len : cols > 0 ? rows : n, cols}, out_strides[2] = {item, rows * item};
  const int out_ndim = cols > 0 && out_len == 0 ? 2 : 1;
  for (Lib& lib : libs) {
    if (lib.set_threads(threads) != 0 || lib.wrap(out, static_cast<int>(dtype), out_ndim, out_shape,
                                                  out_transposed ? out_strides : nullptr, nullptr, nullptr, &lib.out) != 0) {
      std::fprintf(stderr, "kiln-ab: %s\n", lib.last_error());
      return 2;
    }
  }
  std::printf("%s n=%lld stride %lld", f32 ? "float32" : "float64", static_cast<long long>(n),
              static_cast<long long>(stride));
  if (cols > 0)
    std::printf(" as %lld x %ld%s%s", static_cast<long long>(rows), cols, a_transposed ? ", a transposed" : "",
                out_transposed ? ", result transposed" : "");
  std::printf(", %d thread(s), %ld calls x %ld rounds; A=%s B=%s\n", threads, iters, rounds, paths[0], paths[1]);
  for (const char* expr : exprs) {
    auto time = [&](Lib& lib) {
      // The other side's variables as they were, then this side's set. A knob read once
      // per process is read once per library too: each copy's first call comes after this.
      const int side = &lib == &libs[1];
      for (const auto& [name, value] : env[1 - side]) {
        const auto was = original.find(name);
        if (was != original.end()) setenv(name.c_str(), was->second.c_str(), 1);
        else unsetenv(name.c_str());
      }
      for (const auto& [name, value] : env[side]) setenv(name.c_str(), value.c_str(), 1);
      const auto t0 = std::chrono::steady_clock::now();
      for (long k = 0; k < iters; ++k) {
        if (lib.eval_views(expr, cols > 0 ? 4 : 3, names, views.data(), views.size(), lib.out, nullptr, nullptr) != 0) {
          std::fprintf(stderr, "kiln-ab: %s: %s\n", expr, lib.last_error());
          std::exit(1);
        }
      }
      return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters;
    };
    // Plans cached, memory touched and the workers awake: 20 ms of untimed calls each
    // (after one call each, the first expression of a process timed up to 2x slow).
    for (Lib& lib : libs)
      for (double spent_us = 0; spent_us < 20000;) spent_us += time(lib) * static_cast<double>(iters);
    std::vector<double> ta, tb, ratio;
    for (long r = 0; r < rounds; ++r) {
      double x, y;
      if (r % 2 == 0) x = time(libs[0]), y = time(libs[1]);
      else y = time(libs[1]), x = time(libs[0]);
      ta.push_back(x), tb.push_back(y), ratio.push_back(y / x);
    }
    std::printf("%-32s A %10.2f us  B %10.2f us  B/A %.3f (quartiles %.3f..%.3f)\n", expr, quantile(ta, 0.5),
                quantile(tb, 0.5), quantile(ratio, 0.5), quantile(ratio, 0.25), quantile(ratio, 0.75));
  }
}
