// Reading and writing NumPy's .npy format: one array per file, a short text header
// describing dtype, shape and memory order, then the raw element bytes. Every input is
// treated as hostile: sizes are checked against the bytes actually present before
// anything is allocated or read. Big files are read and written by several threads in
// pieces (pread/pwrite), many files at once by a bounded pool, and a save is atomic.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "array.hpp"

namespace kiln {

// What a .npy header says, checked against the file's size.
struct NpyHeader {
  int version = 1;        // format major version: 1, 2 or 3
  DType dtype = DType::Float64;
  Shape shape;
  bool fortran = false;   // fortran_order True
  bool swapped = false;   // the file's byte order is not the host's
  std::string descr;      // as written, e.g. "<f8"
  uint64_t data_offset = 0, data_bytes = 0, file_size = 0;
};

// Reads and checks only the header (for `kiln info`). Errors as load_npy.
NpyHeader read_npy_header(const std::string& path);

enum class NpyLoad {
  Read,  // into kiln memory (several threads for big files)
  Mmap,  // a view whose buffer is a private read-only-in-effect mapping of the file
  // A read-only view of a read-only mapping: writing it is refused, and it costs no commit
  // charge, so a file far bigger than memory maps (a writable private mapping of one is
  // refused by the kernel's overcommit check: "Cannot allocate memory").
  MmapReadOnly,
};

// Called now and then during a long load or save with bytes done and bytes in all.
using IoProgress = std::function<void(uint64_t done, uint64_t total)>;

// Reads a .npy file of format version 1.0, 2.0 or 3.0 holding bool ('|b1'), int32, int64,
// float32 or float64 in either byte order. Big-endian data is swapped on load; a file with
// fortran_order True comes back as a view with Fortran strides (no copy, also with Mmap).
// Bytes after the data are ignored, as NumPy does. Throws kiln::Error(Status::IOError)
// naming the file and the problem for anything unreadable, unsupported or malformed.
// Mmap maps the file MAP_PRIVATE: writing into the array changes the process's copy of a
// page, never the file. A file Mmap cannot present as it is (byte-swapped, a bool byte
// other than 0 or 1, data not aligned to its item size) is read instead, as with Read.
Array load_npy(const std::string& path, NpyLoad mode = NpyLoad::Read, const IoProgress& progress = {});

// A .npy file filled in place, window by window, by writers that may be other processes
// (Dask tasks writing a big array's blocks): create_npy makes the file, of the header
// save_npy writes and data that reads as zeros until written (the file is sized, not
// filled: sparse where the file system allows); write_npy_window writes one window. Not
// atomic by themselves: a host writes a temporary path and renames it when every window
// is in. Errors are Status::IOError naming the file (BadArgument for a bad shape).
void create_npy(const std::string& path, DType dtype, const Shape& shape);
// Writes `a` (any strides) at [start, start + a.shape) of the file's array. The file must
// be C order, in this machine's byte order and of a's dtype, and the window must fit: all
// checked before a byte is written. Each contiguous run of the window in the file (rows,
// or whole blocks of rows when the window spans the trailing axes) is one pwrite.
void write_npy_window(const std::string& path, const Shape& start, const Array& a);

// Loads many files concurrently. On any failure nothing is returned (every array already
// loaded is released) and the error is that of the first failing path in `paths` order.
std::vector<Array> load_npy_many(const std::vector<std::string>& paths, NpyLoad mode = NpyLoad::Read);

// The same as load_npy over `size` bytes in memory (which are copied, never kept).
// `name_for_errors` prefixes every error message.
Array parse_npy(const void* bytes, size_t size, const std::string& name_for_errors);

// The exact bytes save_npy writes for `a`, in memory (for containers such as .npz).
std::string encode_npy(const Array& a);

// Writes `a` in C order as a .npy file byte-identical to what NumPy >= 1.24 writes for
// the same array: version 1.0 (2.0 when the header would not fit), little-endian descr,
// fortran_order False, data aligned to 64 bytes. Strided and reversed views are written
// as their logical contents. The write is atomic (AtomicFile: temporary + rename): on
// failure `path` is untouched, no temporary is left, and kiln::Error(Status::IOError,
// "<path>: <reason>") is thrown. An invalid (empty-handle) array is Status::BadArgument.
// `durable` fsyncs the file before the rename and its folder after (NumPy does neither).
void save_npy(const std::string& path, const Array& a, bool durable = false, const IoProgress& progress = {});

// Saves many arrays concurrently, each file atomically. On failure the error is that of the
// first failing path in `paths` order; files whose saves succeeded stay written.
void save_npy_many(const std::vector<std::string>& paths, const std::vector<Array>& arrays, bool durable = false);

// Runs task(i) for i in [0, n) on a bounded pool of I/O threads (blocking calls never
// occupy the compute arena's workers) and rethrows the lowest-numbered task's error.
void for_each_io(size_t n, const std::function<void(size_t)>& task);

}  // namespace kiln
