// Arrays shared between processes through POSIX shared memory, zero-copy. A segment is a
// file in /dev/shm whose bytes are a valid .npy image: a NumPy 1.24-style header padded to
// one page, then the data. Any process (kiln, or NumPy with np.load(path, mmap_mode='r+'))
// maps the same bytes; nothing is copied, attaching costs a few system calls whatever the
// size.
//   - Created with mode 0600 under a temporary name and linked to its name only once the
//     header is written: no process ever sees a half-made segment, and create never
//     replaces an existing one unless asked.
//   - The header page is mapped read-only in every kiln mapping: a worker killed mid-write
//     can leave data half-written, never the header.
//   - Opening validates the segment like a hostile .npy file (and its size against the
//     header); a segment that is not a .npy image kiln can map as it is, is refused.
// Coordinating who writes what and when is the programs' own business (see README).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "array.hpp"

namespace kiln::shm {

// 1-200 characters of letters, digits, '.', '_' and '-', not starting with '.'. Throws
// BadArgument saying what is wrong.
void check_name(const std::string& name);

// The file a segment's name stands for: /dev/shm/NAME.
std::string path_of(const std::string& name);

// A new segment of a C-contiguous array (contents zero). With `replace`, an existing
// segment of that name is replaced atomically (processes that mapped it keep the old
// bytes); otherwise an existing name is an error (BadArgument).
Array create(const std::string& name, DType dtype, const Shape& shape, bool replace = false);

// Attaches to an existing segment, read-write or read-only (the mapping is PROT_READ and
// kiln refuses to write into it). IOError names what is wrong with a foreign segment.
Array open(const std::string& name, bool read_only = false);

// Removes the name; mappings stay valid until released. IOError if there is none.
void unlink(const std::string& name);
// Removes an entry as list() names it: a segment, or a temporary a crashed create left
// (whose name starts with '.', which segment names may not). Errors as unlink.
void remove_listed(const std::string& name);
// unlink, for destructors: never throws, ignores a name already gone.
void unlink_quietly(const std::string& name) noexcept;

// The segments in /dev/shm, kiln's and others', with what their bytes are.
struct SegmentInfo {
  std::string name;
  uint64_t bytes = 0;
  std::string what;  // "float64 (1000, 3)", or why it is not a .npy image kiln can map
  bool npy = false;
  bool incomplete = false;  // a temporary of create's, left by a crash (or being made now)
};
std::vector<SegmentInfo> list();

}  // namespace kiln::shm
