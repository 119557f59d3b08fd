// .npy files: read (pread, several threads in pieces for big files), mapped, written
// atomically (pwrite in pieces), and many at once on a bounded pool of I/O threads.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>

#include <tbb/parallel_for.h>

#include "atomic_file.hpp"
#include "npy_format.hpp"
#include "runtime.hpp"

namespace kiln {
namespace {

// Pieces of this many bytes are read or written by one thread at a time: large enough
// that a system call's cost vanishes, small enough that two threads share a 100 MB file.
constexpr uint64_t kPiece = uint64_t{8} << 20;
// Files below this are read whole with one pread and parsed from memory (4 system calls
// for a small file).
constexpr uint64_t kSmallFile = uint64_t{1} << 20;
// Mapped files up to this size are read ahead as a whole (see map_data).
constexpr uint64_t kReadAheadAtMost = uint64_t{1} << 30;

struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// pread until n bytes or end of file; returns the count read.
size_t read_full(int fd, char* buf, size_t n, uint64_t offset, const std::string& name) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, buf + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) npy::fail(name, std::strerror(errno));
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

// pwrite all n bytes at offset (retrying short writes and EINTR); errno-style code on
// failure, 0 on success.
int write_full(int fd, const char* buf, size_t n, uint64_t offset) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, buf, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w == 0 ? EIO : errno;
    buf += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return 0;
}

// Reports progress from whichever thread finished a piece, one report at a time.
class Progress {
 public:
  Progress(const IoProgress& report, uint64_t total) : report_(report), total_(total) {}
  void add(uint64_t n) {
    if (!report_) return;
    std::lock_guard<std::mutex> lock(mutex_);
    done_ += n;
    report_(done_, total_);
  }

 private:
  const IoProgress& report_;
  uint64_t total_, done_ = 0;
  std::mutex mutex_;
};

// Runs piece(i) for i in [0, n) on the compute arena when there is more than one.
template <class F>
void for_pieces(uint64_t n, const F& piece) {
  if (n <= 1) {
    for (uint64_t i = 0; i < n; ++i) piece(i);
    return;
  }
  Runtime::instance().arena()->execute([&] {
    tbb::parallel_for(uint64_t{0}, n, [&](uint64_t i) { piece(i); });
  });
}

struct OpenFile {
  Fd f;
  uint64_t size = 0;
};

OpenFile open_file(const std::string& path, int mode = O_RDONLY) {
  OpenFile o{Fd{::open(path.c_str(), mode | O_CLOEXEC)}};
  if (o.f.fd < 0) npy::fail(path, std::strerror(errno));
  struct stat st;
  if (::fstat(o.f.fd, &st) != 0) npy::fail(path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) npy::fail(path, "not a regular file");
  o.size = static_cast<uint64_t>(st.st_size);
  return o;
}

NpyHeader header_of(const OpenFile& o, const std::string& path) {
  unsigned char pre[npy::kPreambleMax] = {};
  size_t got = read_full(o.f.fd, reinterpret_cast<char*>(pre), npy::kPreambleMax, 0, path);
  size_t dict_len = 0;
  size_t dict_offset = npy::parse_preamble(pre, got, o.size, path, dict_len);
  // dict_len is bounded by the file size, so this allocation is backed by real bytes.
  std::string text(dict_len, '\0');
  if (read_full(o.f.fd, text.data(), dict_len, dict_offset, path) != dict_len)
    npy::fail(path, "file is truncated inside the header");
  return npy::parse_header(pre[6], text, dict_offset, o.size, path);
}

// The file may have shrunk since fstat: a short read is a truncated file.
void check_read(size_t got, size_t want, const std::string& path) {
  if (got != want)
    npy::fail(path, "file is truncated: header says " + std::to_string(want) + " bytes of data, file has " +
                        std::to_string(got));
}

Array read_data(const OpenFile& o, const NpyHeader& h, const std::string& path, const IoProgress& progress) {
  Array a = npy::allocate(h);
  const uint64_t pieces = (h.data_bytes + kPiece - 1) / kPiece;
  Progress done(progress, h.data_bytes);
  for_pieces(pieces, [&](uint64_t i) {
    uint64_t at = i * kPiece, n = std::min(kPiece, h.data_bytes - at);
    check_read(read_full(o.f.fd, a.data() + at, n, h.data_offset + at, path), n, path);
    npy::fix_up(a.data() + at, n, h);
    done.add(n);
  });
  return npy::view(a, h);
}

// A view of the mapped file, or an invalid Array when the mapping cannot serve as it is.
Array map_data(const OpenFile& o, const NpyHeader& h, const std::string& path, bool read_only) {
  size_t item = itemsize(h.dtype);
  if (h.swapped || h.data_offset % item != 0 || h.data_bytes == 0) return {};
  // MAP_PRIVATE: writes through the array (an `out`, say) change this process's copy of
  // a page, never the file, and cannot fault on a read-only mapping. Read-only: no write
  // can happen, so the mapping reserves nothing against memory.
  void* m = ::mmap(nullptr, static_cast<size_t>(o.size), read_only ? PROT_READ : PROT_READ | PROT_WRITE, MAP_PRIVATE,
                   o.f.fd, 0);
  if (m == MAP_FAILED) npy::fail(path, std::string("cannot map the file: ") + std::strerror(errno));
  size_t length = static_cast<size_t>(o.size);
  std::shared_ptr<void> mapping(m, [length](void* p) { ::munmap(p, length); });
  char* data = static_cast<char*>(m) + h.data_offset;
  if (h.dtype == DType::Bool) {
    // What kiln loads holds 0s and 1s, as every bool it returns (the kernels would read
    // other bytes as true, but a mapped array is also handed back as it is): others are
    // read and fixed instead.
    const unsigned char* b = reinterpret_cast<const unsigned char*>(data);
    if (std::any_of(b, b + h.data_bytes, [](unsigned char c) { return c > 1; })) return {};
  }
  // Read ahead only what is sure to be read soon: kiln.dask maps a file of any size in
  // every worker and reads only that worker's blocks of it, and reading a file far bigger
  // than memory ahead would evict what is in use for pages read late or never.
  if (length <= kReadAheadAtMost) ::madvise(m, length, MADV_WILLNEED);
  Array a = Array::wrap(data, h.dtype, npy::storage_shape(h), {}, [mapping] {});
  if (read_only) a.buffer()->set_read_only();
  return npy::view(a, h);
}

}  // namespace

NpyHeader read_npy_header(const std::string& path) {
  OpenFile o = open_file(path);
  return header_of(o, path);
}

Array load_npy(const std::string& path, NpyLoad mode, const IoProgress& progress) {
  OpenFile o = open_file(path);
  if (mode == NpyLoad::Read && o.size <= kSmallFile) {
    // One read of the whole file; parse_npy checks the same things on the bytes in memory.
    std::string bytes(static_cast<size_t>(o.size), '\0');
    bytes.resize(read_full(o.f.fd, bytes.data(), bytes.size(), 0, path));
    return parse_npy(bytes.data(), bytes.size(), path);
  }
  NpyHeader h = header_of(o, path);
  if (mode != NpyLoad::Read) {
    const bool read_only = mode == NpyLoad::MmapReadOnly;
    Array a = map_data(o, h, path, read_only);
    if (a.valid()) return a;
    Array read = read_data(o, h, path, progress);
    if (read_only) read.buffer()->set_read_only();
    return read;
  }
  return read_data(o, h, path, progress);
}

void save_npy(const std::string& path, const Array& a, bool durable, const IoProgress& progress) {
  if (!a.valid()) throw Error(Status::BadArgument, path + ": cannot save an empty array handle");
  const std::string header = npy::header_bytes(a.dtype(), a.shape());
  const uint64_t nbytes = static_cast<uint64_t>(a.size()) * a.itemsize();
  AtomicFile file(path, durable);
  if (a.is_c_contiguous() && header.size() + nbytes <= kSmallFile) {
    // Small files: one write of header and data (system calls are most of their cost).
    std::string image = header;
    image.append(a.data(), nbytes);
    file.write(image.data(), image.size());
    file.commit();
    return;
  }
  file.reserve(header.size() + nbytes);
  file.pwrite(header.data(), header.size(), 0);
  Progress done(progress, nbytes);
  if (a.is_c_contiguous()) {
    // One writer: ext4 serialises buffered writes to one file on its inode lock, so two
    // threads measured 2-3x slower than one (200 MB, 2-core build machine).
    const uint64_t pieces = (nbytes + kPiece - 1) / kPiece;
    for (uint64_t i = 0; i < pieces; ++i) {
      uint64_t at = i * kPiece, n = std::min(kPiece, nbytes - at);
      file.pwrite(a.data() + at, n, header.size() + at);
      done.add(n);
    }
  } else if (nbytes > 0) {
    // A view: whole rows of its first axis per piece, each copied into C order (the
    // logical contents) and written where those rows belong in the file.
    const int64_t rows = a.shape()[0];
    const uint64_t row_bytes = nbytes / static_cast<uint64_t>(rows);
    const int64_t rows_per_piece = static_cast<int64_t>(std::max<uint64_t>(1, kPiece / row_bytes));
    const uint64_t pieces = static_cast<uint64_t>((rows + rows_per_piece - 1) / rows_per_piece);
    for_pieces(pieces, [&](uint64_t i) {
      int64_t r0 = static_cast<int64_t>(i) * rows_per_piece, r1 = std::min(rows, r0 + rows_per_piece);
      Array part = a.slice(0, r0, r1).copy();
      uint64_t n = static_cast<uint64_t>(r1 - r0) * row_bytes;
      file.pwrite(part.data(), n, header.size() + static_cast<uint64_t>(r0) * row_bytes);
      done.add(n);
    });
  }
  file.commit();
}

void create_npy(const std::string& path, DType dtype, const Shape& shape) {
  const std::string header = npy::header_bytes(dtype, shape);  // checks nothing: do it here
  if (shape.size() > static_cast<size_t>(kMaxDims))
    throw Error(Status::BadArgument, path + ": a shape of " + std::to_string(shape.size()) + " dimensions");
  for (int64_t d : shape)
    if (d < 0) throw Error(Status::BadArgument, path + ": negative dimension in shape " + shape_str(shape));
  const int64_t n = shape_size(shape);  // throws when the count overflows; the bytes may still
  if (n > (std::numeric_limits<int64_t>::max() - static_cast<int64_t>(header.size())) / int64_t(itemsize(dtype)))
    throw Error(Status::BadArgument, path + ": shape " + shape_str(shape) + " of " + dtype_name(dtype) +
                                         " is more bytes than a file can hold");
  const uint64_t nbytes = static_cast<uint64_t>(n) * itemsize(dtype);
  Fd f{::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)};
  if (f.fd < 0) npy::fail(path, std::strerror(errno));
  auto failed = [&](int err) {
    ::unlink(path.c_str());  // no half-made file stays behind
    npy::fail(path, std::strerror(err));
  };
  if (int err = write_full(f.fd, header.data(), header.size(), 0)) failed(err);
  if (::ftruncate(f.fd, static_cast<off_t>(header.size() + nbytes)) != 0) failed(errno);
}

void write_npy_window(const std::string& path, const Shape& start, const Array& a) {
  if (!a.valid()) throw Error(Status::BadArgument, path + ": cannot write an empty array handle");
  OpenFile o = open_file(path, O_RDWR);  // the header read, then the window written
  const NpyHeader h = header_of(o, path);
  if (h.fortran || h.swapped)
    npy::fail(path, std::string("cannot write a window into a ") + (h.fortran ? "Fortran-order" : "byte-swapped") +
                        " file");
  if (h.dtype != a.dtype())
    npy::fail(path, std::string("the file holds ") + dtype_name(h.dtype) + ", the window is " + dtype_name(a.dtype()));
  const Shape& whole = h.shape;
  const size_t nd = whole.size();
  if (!window_fits(whole, start, a.shape()))
    npy::fail(path, "a window at " + shape_str(start) + " of shape " + shape_str(a.shape()) +
                        " does not fit in the file's shape " + shape_str(whole));
  if (a.size() == 0) return;
  // The window's trailing axes that span the file's are one run with the next axis in.
  size_t first_run_axis = nd;  // the runs are axes [first_run_axis, nd)
  while (first_run_axis > 0 && (first_run_axis == nd || a.shape()[first_run_axis] == whole[first_run_axis]))
    --first_run_axis;
  const uint64_t item = itemsize(h.dtype);
  int64_t run = 1;
  for (size_t d = first_run_axis; d < nd; ++d) run *= a.shape()[d];
  Shape stride(nd, 1);  // of the file's array, in elements
  for (size_t d = nd; d-- > 1;) stride[d - 1] = stride[d] * whole[d];
  const Array c = a.is_c_contiguous() ? a : a.copy();
  const int64_t rows = c.size() / run;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t index = 0, rest = r;
    for (size_t d = nd; d-- > 0;) {
      if (d >= first_run_axis) {
        index += start[d] * stride[d];  // the run's first element
      } else {
        index += (start[d] + rest % a.shape()[d]) * stride[d];
        rest /= a.shape()[d];
      }
    }
    const char* p = c.data() + static_cast<uint64_t>(r * run) * item;
    const uint64_t at = h.data_offset + static_cast<uint64_t>(index) * item;
    if (int err = write_full(o.f.fd, p, static_cast<size_t>(run) * item, at)) npy::fail(path, std::strerror(err));
  }
}

void for_each_io(size_t n, const std::function<void(size_t)>& task) {
  // Blocking reads and writes overlap best with more threads than cores (the storage has
  // queues of its own), but each thread costs a stack: 2 per core, at least 4, at most 32.
  const size_t threads = std::min<size_t>(n, std::clamp<size_t>(2 * hardware_threads(), 4, 32));
  std::vector<std::exception_ptr> errors(n);
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      try {
        task(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    try {
      for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
    } catch (...) {  // could not start a thread: the ones running (and this one) finish the work
    }
    worker();
    for (std::thread& t : pool) t.join();
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<Array> load_npy_many(const std::vector<std::string>& paths, NpyLoad mode) {
  std::vector<Array> out(paths.size());
  for_each_io(paths.size(), [&](size_t i) { out[i] = load_npy(paths[i], mode); });
  return out;
}

void save_npy_many(const std::vector<std::string>& paths, const std::vector<Array>& arrays, bool durable) {
  if (paths.size() != arrays.size())
    throw Error(Status::BadArgument, "save_npy_many: " + std::to_string(paths.size()) + " paths for " +
                                         std::to_string(arrays.size()) + " arrays");
  for_each_io(paths.size(), [&](size_t i) { save_npy(paths[i], arrays[i], durable); });
}

}  // namespace kiln
