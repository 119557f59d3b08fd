// Reading and writing NumPy's .npy format: one array per file, a short text header
// describing dtype, shape and memory order, then the raw element bytes. This is the plain,
// sequential implementation every other I/O path (parallel chunks, mmap, shared memory)
// builds on and is checked against. Every input is treated as hostile: sizes are checked
// against the bytes actually present before anything is allocated or read.
#pragma once
#include <cstddef>
#include <string>

#include "array.hpp"

namespace kiln {

// Reads a .npy file of format version 1.0, 2.0 or 3.0 holding bool ('|b1'), int32, int64,
// float32 or float64 in either byte order. Big-endian data is swapped on load; a file with
// fortran_order True comes back as a view with Fortran strides over a fresh buffer. Bytes
// after the data are ignored, as NumPy does. Throws kiln::Error(Status::IOError) naming
// the file and the problem for anything unreadable, unsupported or malformed.
Array load_npy(const std::string& path);

// The same as load_npy over `size` bytes in memory (which are copied, never kept).
// `name_for_errors` prefixes every error message.
Array parse_npy(const void* bytes, size_t size, const std::string& name_for_errors);

// Writes `a` in C order as a .npy file byte-identical to what NumPy >= 1.24 writes for
// the same array: version 1.0 (2.0 when the header would not fit), little-endian descr,
// fortran_order False, data aligned to 64 bytes. The write is atomic: the bytes go to a
// temporary file in the same directory, which is renamed over `path`; on failure the
// temporary is removed, `path` is untouched and kiln::Error(Status::IOError,
// "<path>: <reason>") is thrown. An invalid (empty-handle) array is Status::BadArgument.
// A killed process never leaves a half-written `path`; surviving power loss as well needs
// `durable`, which fsyncs the file before the rename and its folder after (NumPy does
// neither; on the build machine it made an 800 MB save 3.3x slower).
void save_npy(const std::string& path, const Array& a, bool durable = false);

}  // namespace kiln
