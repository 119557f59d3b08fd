// .npz: NumPy's container for several arrays, a zip archive whose members are .npy images
// named "<key>.npy" (np.savez stores them as they are, np.savez_compressed deflates them).
// Reading treats the archive as hostile: every offset and size is checked against the
// bytes present before it is used, members may not overlap (so no entry can be inflated
// twice), a deflated member may inflate only to the size it declares and that size must be
// one deflate can reach from its compressed bytes (so nothing is allocated that the
// archive's bytes cannot justify), and every member's CRC-32 is verified. Writing produces
// the bytes NumPy 1.24 on CPython 3.11 writes for the same arrays, atomically.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "array.hpp"

namespace kiln {

// One array of an archive. `name` is the key numpy.load exposes: the member's file name
// without its ".npy" suffix (UTF-8; it may contain '/', as NumPy allows).
struct NpzMember {
  std::string name;
  Array array;
};

// Reads every member of a .npz file, in the archive's (central directory) order. Members
// are read as load_npy reads a .npy file: bool, int32, int64, float32, float64, either byte
// order, Fortran-ordered members as views with Fortran strides. Stored and deflated members
// and ZIP64 archives are read; anything kiln cannot read in full is refused rather than
// skipped, since numpy.load exposes every member: a member whose name does not end in
// ".npy", an encrypted member, another compression method, an archive spanning several
// disks, duplicate names. Throws kiln::Error(Status::IOError, "<path>: <problem>") (with
// "member '<name>'" after the path when one member is at fault) for anything unreadable,
// unsupported or malformed, and then returns nothing. The file is memory-mapped while it
// is read; the arrays own their memory and keep no reference to the file.
std::vector<NpzMember> load_npz(const std::string& path);

// The same as load_npz over `size` bytes in memory (copied from, never kept).
// `name_for_errors` takes the place of the path in every error message.
std::vector<NpzMember> parse_npz(const void* bytes, size_t size, const std::string& name_for_errors);

// Writes `members` in order as a .npz archive at exactly `path` (no ".npz" is appended,
// unlike np.savez), each member "<name>.npy" holding encode_npy(array), i.e. the array in C
// order as np.save writes it. compress=false stores the members like np.savez,
// compress=true deflates them like np.savez_compressed; for the same arrays, names and
// zlib the file is byte-identical to NumPy's (DOS time 1980-01-01 00:00, ZIP64 extra fields
// where CPython's zipfile puts them). A C-contiguous array is written from its own memory;
// only a strided view is copied, one member at a time.
// Arguments are checked before anything is written: an empty or duplicate name, a name
// with a NUL byte or invalid UTF-8, or an invalid Array handle is Status::BadArgument.
// The write is atomic (AtomicFile): on failure `path` is untouched, no temporary is left,
// and kiln::Error(Status::IOError, "<path>: <reason>") is thrown. `durable` fsyncs the file
// before the rename and its folder after (NumPy does neither).
void save_npz(const std::string& path, const std::vector<NpzMember>& members, bool compress,
              bool durable = false);

}  // namespace kiln
