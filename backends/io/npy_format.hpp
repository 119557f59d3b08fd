// The .npy format's pieces, shared by the in-memory reader (npy.cpp) and the file
// readers and writers (npy_file.cpp): reading goes preamble -> dict -> size check ->
// allocate -> copy -> fix up, the same steps for a file, a mapping or bytes in memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "npy.hpp"

namespace kiln::npy {

constexpr size_t kPreambleMax = 12;  // magic + version + uint32 header length

[[noreturn]] void fail(const std::string& name, const std::string& what);

// Magic, version and header length from the first `avail` bytes of a file of `file_size`.
// Returns the offset of the dict text and sets its length, checked to lie inside the file.
size_t parse_preamble(const unsigned char* p, size_t avail, uint64_t file_size, const std::string& name,
                      size_t& dict_len);

// The dict, and the data's offset and size checked against the file's size.
NpyHeader parse_header(int major, std::string_view dict_text, size_t dict_offset, uint64_t file_size,
                       const std::string& name);

// The shape of the file's bytes read in their order: the header's, reversed for a
// Fortran-ordered file (which view() then turns into a transpose).
Shape storage_shape(const NpyHeader& h);
// The array to copy data into: C order over storage_shape.
Array allocate(const NpyHeader& h);
// Byte order and bool canonicalisation (a stray byte 2 is not a valid C++ bool) of `n`
// bytes of data, any piece of it that starts at an item boundary.
void fix_up(char* p, size_t n, const NpyHeader& h);
Array view(const Array& a, const NpyHeader& h);

// The header bytes NumPy 1.24 writes for a C-order little-endian array.
std::string header_bytes(DType dtype, const Shape& shape);

}  // namespace kiln::npy
