// The zip subset .npz files use, read and written. An archive is: per member a local
// header (signature, versions, flags, method, DOS time, CRC-32, sizes, name, extra fields)
// followed by the member's bytes; then the central directory (one entry per member,
// repeating the header fields plus the local header's offset); then, for big archives, the
// ZIP64 end record and its locator; then the end-of-central-directory record (EOCD), which
// may be followed by a comment of up to 64 KiB. Sizes and offsets that do not fit the
// 32-bit fields are 0xFFFFFFFF there and live in a ZIP64 extra field (id 0x0001).
//
// Reading goes end record -> central directory -> local headers (names match, no member
// overlaps another or the directory) -> per member: CRC-32 and parse_npy in place for a
// stored member; for a deflated one, inflate its .npy header first, check it against the
// member's declared size (which must not exceed what deflate can expand the compressed
// bytes to, kMaxDeflateRatio), allocate the array and inflate the data straight into it,
// then check that the stream ends at the declared size and that the CRC-32 matches. So
// everything the archive says is checked against the bytes present before it is used,
// and nothing is allocated that those bytes cannot back (the entry table is bounded by the
// directory's size, the array by the declared size). The .npy steps are npy_format.hpp's,
// the ones load_npy runs. Writing mirrors CPython's zipfile as np.savez drives it.
#include "npz.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>
#include <unordered_set>

#include "atomic_file.hpp"
#include "npy.hpp"
#include "npy_format.hpp"

namespace kiln {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50,
                   kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr size_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22, kEnd64Size = 56, kLocator64Size = 20;
constexpr size_t kMaxComment = 0xFFFF;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kFlagEncrypted = 0x0001, kFlagPatchData = 0x0020, kFlagStrongEncryption = 0x0040,
                   kFlagUtf8 = 0x0800, kFlagMaskedHeaders = 0x2000;
constexpr uint16_t kStored = 0, kDeflated = 8, kAesEncrypted = 99;
// Deflate's best case is a 258-byte match coded in 2 bits: at most 1032 output bytes per
// input byte. A declared size beyond that (plus slack for the first block) is a lie.
constexpr uint64_t kMaxDeflateRatio = 1032, kDeflateSlack = 1032;
// A fuzzer cannot forge CRCs, so its builds (the libFuzzer convention's macro) skip the
// comparison and reach what lies behind it; every other build checks.
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
constexpr bool kCheckCrc = false;
#else
constexpr bool kCheckCrc = true;
#endif
// zlib counts in uInt; feed and drain it in pieces no bigger than this.
constexpr uint64_t kZlibChunk = uint64_t{1} << 30;

using npy::fail;  // IOError "<name>: <what>", as for .npy files
[[noreturn]] void bad_argument(const std::string& name, const std::string& what) {
  throw Error(Status::BadArgument, name + ": " + what);
}

uint16_t get16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t get32(const unsigned char* p) { return get16(p) | static_cast<uint32_t>(get16(p + 2)) << 16; }
uint64_t get64(const unsigned char* p) { return get32(p) | static_cast<uint64_t>(get32(p + 4)) << 32; }

// Names come from the archive, so messages show them escaped and bounded.
std::string shown(std::string_view s) {
  constexpr size_t kMax = 100;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (s.size() > kMax) out += "...";
  return out;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Strict UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF), as Python decodes
// a name whose entry sets the UTF-8 flag.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) { ++i; continue; }
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c == 0xE0) n = 2, lo = 0xA0;
    else if (c == 0xED) n = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) n = 2;
    else if (c == 0xF0) n = 3, lo = 0x90;
    else if (c == 0xF4) n = 3, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) n = 3;
    else return false;
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return false;
    }
    i += n + 1;
  }
  return true;
}

// A name without the UTF-8 flag is code page 437, which Python (and so numpy.load's keys)
// decodes to these code points; the low half is ASCII.
std::string cp437_to_utf8(std::string_view s) {
  static constexpr uint16_t kHigh[128] = {
      0x00C7, 0x00FC, 0x00E9, 0x00E2, 0x00E4, 0x00E0, 0x00E5, 0x00E7, 0x00EA, 0x00EB, 0x00E8, 0x00EF, 0x00EE,
      0x00EC, 0x00C4, 0x00C5, 0x00C9, 0x00E6, 0x00C6, 0x00F4, 0x00F6, 0x00F2, 0x00FB, 0x00F9, 0x00FF, 0x00D6,
      0x00DC, 0x00A2, 0x00A3, 0x00A5, 0x20A7, 0x0192, 0x00E1, 0x00ED, 0x00F3, 0x00FA, 0x00F1, 0x00D1, 0x00AA,
      0x00BA, 0x00BF, 0x2310, 0x00AC, 0x00BD, 0x00BC, 0x00A1, 0x00AB, 0x00BB, 0x2591, 0x2592, 0x2593, 0x2502,
      0x2524, 0x2561, 0x2562, 0x2556, 0x2555, 0x2563, 0x2551, 0x2557, 0x255D, 0x255C, 0x255B, 0x2510, 0x2514,
      0x2534, 0x252C, 0x251C, 0x2500, 0x253C, 0x255E, 0x255F, 0x255A, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550,
      0x256C, 0x2567, 0x2568, 0x2564, 0x2565, 0x2559, 0x2558, 0x2552, 0x2553, 0x256B, 0x256A, 0x2518, 0x250C,
      0x2588, 0x2584, 0x258C, 0x2590, 0x2580, 0x03B1, 0x00DF, 0x0393, 0x03C0, 0x03A3, 0x03C3, 0x00B5, 0x03C4,
      0x03A6, 0x0398, 0x03A9, 0x03B4, 0x221E, 0x03C6, 0x03B5, 0x2229, 0x2261, 0x00B1, 0x2265, 0x2264, 0x2320,
      0x2321, 0x00F7, 0x2248, 0x00B0, 0x2219, 0x00B7, 0x221A, 0x207F, 0x00B2, 0x25A0, 0x00A0};
  std::string out;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out += ch;
      continue;
    }
    uint16_t cp = kHigh[c - 0x80];
    if (cp < 0x800) {
      out += static_cast<char>(0xC0 | cp >> 6);
    } else {
      out += static_cast<char>(0xE0 | cp >> 12);
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    }
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

bool ends_with_npy(std::string_view s) { return s.size() >= 4 && s.substr(s.size() - 4) == ".npy"; }

// CRC-32 of n bytes, continuing from `crc` (the CRC-32 of the bytes before them).
uint32_t crc32_of(const unsigned char* p, uint64_t n, uint32_t crc = 0) {
  while (n > 0) {
    uInt chunk = static_cast<uInt>(std::min(n, kZlibChunk));
    crc = static_cast<uint32_t>(::crc32(crc, p, chunk));
    p += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

// ---------------------------------------------------------------------------------------
// Reading

// Where the central directory is, from the end record (and the ZIP64 one when present).
struct Directory {
  uint64_t offset = 0, size = 0, entries = 0;
  uint64_t limit = 0;  // the directory must end here: where the end records begin
};

Directory find_directory(const unsigned char* p, size_t size, const std::string& name) {
  if (size < kEndSize)
    fail(name, "not a .npz file (" + std::to_string(size) + " bytes is too short for a zip archive)");
  // The EOCD is the last record; only a comment (at most 64 KiB) may follow it. Search
  // back from the end, within that bound, for the nearest signature whose comment fits.
  size_t lowest = size - kEndSize - std::min(size - kEndSize, kMaxComment);
  size_t at = SIZE_MAX;
  for (size_t pos = size - kEndSize + 1; pos-- > lowest;) {
    if (get32(p + pos) == kEndSig && get16(p + pos + 20) <= size - kEndSize - pos) {
      at = pos;
      break;
    }
  }
  if (at == SIZE_MAX) fail(name, "not a .npz file (no zip end-of-central-directory record)");
  const unsigned char* e = p + at;
  Directory d;
  uint64_t disk = get16(e + 4), cd_disk = get16(e + 6), here = get16(e + 8);
  d.entries = get16(e + 10);
  d.size = get32(e + 12);
  d.offset = get32(e + 16);
  d.limit = at;
  // ZIP64: a locator right before the EOCD points at the ZIP64 end record, whose 64-bit
  // fields replace the EOCD's (which then hold 0xFFFF / 0xFFFFFFFF or the clipped values).
  if (at >= kLocator64Size && get32(e - kLocator64Size) == kLocator64Sig) {
    const unsigned char* loc = e - kLocator64Size;
    uint32_t z64_disk = get32(loc + 4), disks = get32(loc + 16);
    uint64_t z64 = get64(loc + 8);
    if (z64_disk != 0 || disks > 1)
      fail(name, "zip archives spanning several disks are not supported (ZIP64 locator names disk " +
                     std::to_string(z64_disk) + " of " + std::to_string(disks) + ")");
    uint64_t loc_at = at - kLocator64Size;
    if (z64 > loc_at || loc_at - z64 < kEnd64Size)
      fail(name, "zip archive is truncated or corrupt: ZIP64 end record at offset " + std::to_string(z64) +
                     " does not fit before its locator at " + std::to_string(loc_at));
    const unsigned char* r = p + z64;
    if (get32(r) != kEnd64Sig)
      fail(name, "zip archive is corrupt: no ZIP64 end record at offset " + std::to_string(z64));
    uint64_t record = get64(r + 4);  // size of the rest of the record
    if (record < kEnd64Size - 12 || record > loc_at - z64 - 12)
      fail(name, "zip archive is corrupt: ZIP64 end record says it is " + std::to_string(record) +
                     " bytes long");
    disk = get32(r + 16);
    cd_disk = get32(r + 20);
    here = get64(r + 24);
    d.entries = get64(r + 32);
    d.size = get64(r + 40);
    d.offset = get64(r + 48);
    d.limit = z64;
  }
  if (disk != 0 || cd_disk != 0 || here != d.entries)
    fail(name, "zip archives spanning several disks are not supported (the end record is on disk " +
                   std::to_string(disk) + ", the central directory starts on disk " + std::to_string(cd_disk) +
                   ", and " + std::to_string(here) + " of " + std::to_string(d.entries) + " entries are on this disk)");
  if (d.offset > d.limit || d.size > d.limit - d.offset)
    fail(name, "zip archive is truncated or corrupt: the central directory (" + std::to_string(d.size) +
                   " bytes at offset " + std::to_string(d.offset) + ") does not fit before the end record at " +
                   std::to_string(d.limit));
  if (d.entries > d.size / kCentralSize)
    fail(name, "zip archive is corrupt: a central directory of " + std::to_string(d.size) + " bytes cannot hold " +
                   std::to_string(d.entries) + " entries");
  return d;
}

// One member as the central directory and its local header describe it.
struct Entry {
  std::string raw_name;  // as stored
  std::string name;      // decoded to UTF-8, ".npy" included
  std::string label;     // "<archive>: member '<name>'", for messages
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0;
  uint64_t packed = 0, size = 0;  // compressed and uncompressed sizes
  uint64_t header = 0;            // offset of the local header
  uint64_t data = 0;              // offset of the member's bytes
};

// The ZIP64 extra field holds, in this order, exactly those of uncompressed size,
// compressed size, local header offset and start disk whose 32/16-bit fields are all ones.
void read_zip64_extra(const unsigned char* x, size_t n, Entry& e, uint32_t& disk, const std::string& label) {
  while (n >= 4) {
    uint16_t id = get16(x), len = get16(x + 2);
    if (len > n - 4) fail(label, "extra field 0x" + hex32(id).substr(6) + " runs past the central directory entry");
    if (id == kZip64ExtraId) {
      const unsigned char* f = x + 4;
      size_t left = len;
      auto take = [&](uint64_t& v, size_t bytes) {
        if (left < bytes) fail(label, "ZIP64 extra field is too short for the sizes it must hold");
        v = bytes == 8 ? get64(f) : get32(f);
        f += bytes;
        left -= bytes;
      };
      if (e.size == 0xFFFFFFFF) take(e.size, 8);
      if (e.packed == 0xFFFFFFFF) take(e.packed, 8);
      if (e.header == 0xFFFFFFFF) take(e.header, 8);
      if (disk == 0xFFFF) {
        uint64_t d = 0;
        take(d, 4);
        disk = static_cast<uint32_t>(d);
      }
    }
    x += 4 + len;
    n -= 4 + len;
  }
}

[[noreturn]] void corrupt_entry(const std::string& name, uint64_t i, const char* what) {
  fail(name, "zip archive is corrupt: central directory entry " + std::to_string(i) + " " + what);
}

std::vector<Entry> read_directory(const unsigned char* p, const Directory& d, const std::string& name) {
  std::vector<Entry> entries;
  entries.reserve(static_cast<size_t>(d.entries));  // bounded by the directory's bytes
  std::unordered_set<std::string> seen;
  uint64_t pos = d.offset, end = d.offset + d.size;
  for (uint64_t i = 0; i < d.entries; ++i) {
    if (end - pos < kCentralSize) corrupt_entry(name, i, "runs past the directory");
    const unsigned char* c = p + pos;
    if (get32(c) != kCentralSig) corrupt_entry(name, i, "has a bad signature");
    size_t name_len = get16(c + 28), extra_len = get16(c + 30), comment_len = get16(c + 32);
    if (end - pos - kCentralSize < name_len + extra_len + comment_len) corrupt_entry(name, i, "runs past the directory");
    Entry e;
    e.flags = get16(c + 8);
    e.method = get16(c + 10);
    e.crc = get32(c + 16);
    e.packed = get32(c + 20);
    e.size = get32(c + 24);
    uint32_t disk = get16(c + 34);
    e.header = get32(c + 42);
    e.raw_name.assign(reinterpret_cast<const char*>(c + kCentralSize), name_len);

    if (e.raw_name.find('\0') != std::string::npos)
      fail(name, "member '" + shown(e.raw_name) + "' has a NUL byte in its name");
    if (e.flags & kFlagUtf8) {
      if (!valid_utf8(e.raw_name))
        fail(name, "member '" + shown(e.raw_name) + "' is flagged UTF-8 but its name is not valid UTF-8");
      e.name = e.raw_name;
    } else {
      e.name = cp437_to_utf8(e.raw_name);
    }
    e.label = name + ": member '" + shown(e.name) + "'";
    read_zip64_extra(c + kCentralSize + name_len, extra_len, e, disk, e.label);

    if (!ends_with_npy(e.name))
      fail(e.label, "is not a .npy file (kiln reads .npz archives whose members all end in .npy)");
    if (!seen.insert(e.name).second) fail(name, "duplicate member '" + shown(e.name) + "'");
    if ((e.flags & (kFlagEncrypted | kFlagStrongEncryption | kFlagMaskedHeaders)) || e.method == kAesEncrypted)
      fail(e.label, "is encrypted (kiln cannot read encrypted archives)");
    if (e.flags & kFlagPatchData) fail(e.label, "holds compressed patch data (flag bit 5), which kiln cannot read");
    if (e.method != kStored && e.method != kDeflated)
      fail(e.label, "uses compression method " + std::to_string(e.method) + " (kiln reads stored and deflate)");
    if (disk != 0) fail(e.label, "starts on disk " + std::to_string(disk) + " (multi-disk archives are not supported)");
    if (e.method == kStored && e.packed != e.size)
      fail(e.label, "is stored but its sizes differ (" + std::to_string(e.packed) + " bytes stored, " +
                        std::to_string(e.size) + " uncompressed)");
    entries.push_back(std::move(e));
    pos += kCentralSize + name_len + extra_len + comment_len;
  }
  return entries;
}

// Finds each member's bytes behind its local header, all before the central directory,
// and refuses members that overlap (the "overlapping files" zip bomb, or plain corruption).
void locate_data(const unsigned char* p, std::vector<Entry>& entries, const Directory& d) {
  for (Entry& e : entries) {
    if (e.header > d.offset || d.offset - e.header < kLocalSize)
      fail(e.label, "local header offset " + std::to_string(e.header) + " is past the start of the central directory");
    const unsigned char* h = p + e.header;
    if (get32(h) != kLocalSig) fail(e.label, "has a bad local header signature (archive corrupt or truncated)");
    uint64_t name_len = get16(h + 26), extra_len = get16(h + 28);
    uint64_t room = d.offset - e.header - kLocalSize;
    if (name_len + extra_len > room) fail(e.label, "local header runs into the central directory");
    std::string_view local_name(reinterpret_cast<const char*>(h + kLocalSize), name_len);
    if (local_name != e.raw_name)
      fail(e.label, "local header names it '" + shown(local_name) + "' (archive corrupt)");
    room -= name_len + extra_len;
    if (e.packed > room)
      fail(e.label, "is truncated: " + std::to_string(e.packed) + " bytes declared, " + std::to_string(room) +
                        " before the central directory");
    e.data = e.header + kLocalSize + name_len + extra_len;
  }
  std::vector<const Entry*> order;
  order.reserve(entries.size());
  for (const Entry& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) { return a->header < b->header; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->header < order[i - 1]->data + order[i - 1]->packed)
      fail(order[i]->label, "overlaps member '" + shown(order[i - 1]->name) + "' (archive corrupt)");
}

// A member's raw deflate stream, inflated on demand into the caller's memory, with the
// CRC-32 of everything produced. It never produces more than the member declares: the
// bytes past that are inflated into a one-byte spill only to see whether there are any.
class Inflater {
 public:
  Inflater(const unsigned char* in, uint64_t in_size, uint64_t declared, const std::string& label)
      : in_left_(in_size), declared_(declared), label_(label) {
    if (inflateInit2(&zs_, -MAX_WBITS) != Z_OK) fail(label_, "zlib cannot start inflating");
    zs_.next_in = const_cast<Bytef*>(in);
  }
  ~Inflater() { inflateEnd(&zs_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Exactly n more bytes (the caller keeps them within the declared size).
  void read(unsigned char* dst, uint64_t n) {
    while (n > 0) {
      if (ended_)
        fail(label_, "deflate stream ends after " + std::to_string(produced_) + " bytes, short of its declared " +
                         std::to_string(declared_));
      uInt room = static_cast<uInt>(std::min(n, kZlibChunk));
      zs_.next_out = dst;
      zs_.avail_out = room;
      step();
      uInt got = room - zs_.avail_out;
      crc_ = ::crc32(crc_, dst, got);
      dst += got;
      n -= got;
      produced_ += got;
    }
  }

  // Inflates whatever the member declares beyond what was read, then checks that the
  // stream ends there and that the CRC-32 matches.
  void finish(uint32_t expected_crc) {
    if (produced_ < declared_) {
      std::vector<unsigned char> scratch(static_cast<size_t>(std::min<uint64_t>(declared_ - produced_, 1 << 16)));
      while (produced_ < declared_) read(scratch.data(), std::min<uint64_t>(declared_ - produced_, scratch.size()));
    }
    unsigned char spill;
    while (!ended_) {
      zs_.next_out = &spill;
      zs_.avail_out = 1;
      step();
      if (zs_.avail_out == 0)
        fail(label_, "inflates to more than its declared " + std::to_string(declared_) + " bytes");
    }
    uint32_t crc = static_cast<uint32_t>(crc_);
    if (kCheckCrc && crc != expected_crc)
      fail(label_, "CRC-32 mismatch (archive says " + hex32(expected_crc) + ", data has " + hex32(crc) + ")");
  }

 private:
  void step() {
    if (zs_.avail_in == 0 && in_left_ > 0) {
      zs_.avail_in = static_cast<uInt>(std::min(in_left_, kZlibChunk));
      in_left_ -= zs_.avail_in;
    }
    int rc = ::inflate(&zs_, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      ended_ = true;
    } else if (rc == Z_BUF_ERROR && zs_.avail_in == 0 && in_left_ == 0) {
      fail(label_, "deflate data is truncated (the stream needs more than its compressed bytes)");
    } else if (rc != Z_OK) {
      fail(label_, std::string("deflate data is corrupt (zlib: ") +
                       (zs_.msg ? std::string(zs_.msg) : "error " + std::to_string(rc)) + ")");
    }
  }

  z_stream zs_{};
  uint64_t in_left_, declared_, produced_ = 0;
  uLong crc_ = ::crc32(0L, Z_NULL, 0);
  bool ended_ = false;
  const std::string& label_;
};

// A deflated .npy image, read the way load_npy reads a file: preamble, then the header,
// checked against the declared size before the array is allocated, then the data inflated
// straight into the array.
Array inflate_npy(const unsigned char* data, const Entry& e) {
  if (e.size > kDeflateSlack && (e.size - kDeflateSlack) / kMaxDeflateRatio > e.packed)
    fail(e.label, "declares " + std::to_string(e.size) + " bytes uncompressed, more than deflate can produce from " +
                      std::to_string(e.packed) + " compressed bytes");
  Inflater z(data, e.packed, e.size, e.label);
  unsigned char pre[npy::kPreambleMax] = {};
  size_t avail = static_cast<size_t>(std::min<uint64_t>(e.size, 8));
  z.read(pre, avail);
  if (avail == 8) {  // then the header length: 2 bytes in version 1.0, 4 after
    size_t more = static_cast<size_t>(std::min<uint64_t>(e.size - 8, pre[6] == 1 ? 2 : 4));
    z.read(pre + 8, more);
    avail += more;
  }
  size_t dict_len = 0;
  size_t dict_offset = npy::parse_preamble(pre, avail, e.size, e.label, dict_len);
  std::string text(dict_len, '\0');  // dict_len fits in the declared size
  z.read(reinterpret_cast<unsigned char*>(text.data()), dict_len);
  NpyHeader h = npy::parse_header(pre[6], text, dict_offset, e.size, e.label);
  Array a = npy::allocate(h);
  z.read(reinterpret_cast<unsigned char*>(a.data()), h.data_bytes);
  z.finish(e.crc);
  npy::fix_up(a.data(), h.data_bytes, h);
  return npy::view(a, h);
}

Array extract(const unsigned char* p, const Entry& e) {
  const unsigned char* data = p + e.data;
  if (e.method == kDeflated) return inflate_npy(data, e);
  uint32_t crc = crc32_of(data, e.packed);
  if (kCheckCrc && crc != e.crc) fail(e.label, "CRC-32 mismatch (archive says " + hex32(e.crc) + ", data has " + hex32(crc) + ")");
  return parse_npy(data, static_cast<size_t>(e.packed), e.label);
}

// ---------------------------------------------------------------------------------------
// Writing, as CPython 3.11's zipfile does for np.savez: zipf.open(name, 'w',
// force_zip64=True) on a seekable file, so every local header carries a ZIP64 extra field
// with both sizes, while the central directory and end records use ZIP64 only past
// zipfile's limit of 2**31 - 1 (which also covers every value the 32-bit fields cannot).

constexpr uint64_t kZip64Limit = (uint64_t{1} << 31) - 1;
constexpr uint64_t kCountLimit = 0xFFFF;
constexpr uint16_t kVersion = 20, kVersion64 = 45;
constexpr uint16_t kDosTime = 0, kDosDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01 00:00:00
constexpr uint32_t kExternalAttr = 0600u << 16;                       // ?rw-------
constexpr uint8_t kCreateSystemUnix = 3;
constexpr size_t kLocalExtraSize = 20;  // id, length, uncompressed and compressed size

void put16(std::string& s, uint64_t v) {
  s += static_cast<char>(v & 0xFF);
  s += static_cast<char>(v >> 8 & 0xFF);
}
void put32(std::string& s, uint64_t v) {
  put16(s, v & 0xFFFF);
  put16(s, v >> 16 & 0xFFFF);
}
void put64(std::string& s, uint64_t v) {
  put32(s, v & 0xFFFFFFFF);
  put32(s, v >> 32);
}

struct Written {
  std::string name;  // "<key>.npy"
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0;
  uint64_t packed = 0, size = 0, header = 0;
  bool big() const { return size > kZip64Limit || packed > kZip64Limit; }
};

// The fields a local header and a central directory entry share, from "version needed"
// to the name's length.
void put_entry_fields(std::string& out, const Written& w, uint16_t version) {
  put16(out, version);
  put16(out, w.flags);
  put16(out, w.method);
  put16(out, kDosTime);
  put16(out, kDosDate);
  put32(out, w.crc);
  put32(out, w.big() ? 0xFFFFFFFF : w.packed);
  put32(out, w.big() ? 0xFFFFFFFF : w.size);
  put16(out, w.name.size());
}

std::string local_header(const Written& w) {
  std::string h;
  put32(h, kLocalSig);
  put_entry_fields(h, w, w.big() ? kVersion64 : kVersion);
  put16(h, kLocalExtraSize);
  h += w.name;
  put16(h, kZip64ExtraId);
  put16(h, kLocalExtraSize - 4);
  put64(h, w.size);
  put64(h, w.packed);
  return h;
}

void central_entry(std::string& cd, const Written& w) {
  std::vector<uint64_t> extra;
  if (w.big()) extra.insert(extra.end(), {w.size, w.packed});
  if (w.header > kZip64Limit) extra.push_back(w.header);
  uint16_t version = extra.empty() ? kVersion : kVersion64;
  put32(cd, kCentralSig);
  cd += static_cast<char>(version);
  cd += static_cast<char>(kCreateSystemUnix);
  put_entry_fields(cd, w, version);
  put16(cd, extra.empty() ? 0 : 4 + 8 * extra.size());
  put16(cd, 0);  // comment
  put16(cd, 0);  // start disk
  put16(cd, 0);  // internal attributes
  put32(cd, kExternalAttr);
  put32(cd, w.header > kZip64Limit ? 0xFFFFFFFF : w.header);
  cd += w.name;
  if (!extra.empty()) {
    put16(cd, kZip64ExtraId);
    put16(cd, 8 * extra.size());
    for (uint64_t v : extra) put64(cd, v);
  }
}

void end_records(std::string& out, uint64_t count, uint64_t cd_offset, uint64_t cd_size) {
  if (count > kCountLimit || cd_offset > kZip64Limit || cd_size > kZip64Limit) {
    uint64_t z64 = cd_offset + cd_size;
    put32(out, kEnd64Sig);
    put64(out, kEnd64Size - 12);
    put16(out, kVersion64);
    put16(out, kVersion64);
    put32(out, 0);
    put32(out, 0);
    put64(out, count);
    put64(out, count);
    put64(out, cd_size);
    put64(out, cd_offset);
    put32(out, kLocator64Sig);
    put32(out, 0);
    put64(out, z64);
    put32(out, 1);
  }
  put32(out, kEndSig);
  put16(out, 0);
  put16(out, 0);
  put16(out, std::min(count, kCountLimit));
  put16(out, std::min(count, kCountLimit));
  put32(out, std::min<uint64_t>(cd_size, 0xFFFFFFFF));
  put32(out, std::min<uint64_t>(cd_offset, 0xFFFFFFFF));
  put16(out, 0);  // comment
}

// A run of bytes one member is written from: its .npy header, then its data.
struct Piece {
  const unsigned char* p;
  uint64_t n;
};

// Deflates the pieces as one raw stream straight into the file, a buffer at a time;
// returns the compressed size.
uint64_t deflate_to(AtomicFile& f, const std::vector<Piece>& pieces) {
  z_stream zs{};
  // zipfile's compressor: zlib.compressobj(Z_DEFAULT_COMPRESSION, DEFLATED, -15).
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    fail(f.path(), "zlib cannot start deflating");
  struct End {
    z_stream* zs;
    ~End() { deflateEnd(zs); }
  } end{&zs};
  std::vector<unsigned char> buf(1 << 20);
  uint64_t packed = 0;
  auto step = [&](int flush) {
    zs.next_out = buf.data();
    zs.avail_out = static_cast<uInt>(buf.size());
    int rc = ::deflate(&zs, flush);
    if (rc == Z_STREAM_ERROR) fail(f.path(), "zlib deflate failed");
    size_t have = buf.size() - zs.avail_out;
    f.write(buf.data(), have);
    packed += have;
    return rc;
  };
  // All input without flushing, then Z_FINISH with none left: the calls zipfile makes
  // (compress() per write, then flush()), so the stream is the same byte for byte.
  for (const Piece& piece : pieces) {
    zs.next_in = const_cast<Bytef*>(piece.p);
    uint64_t left = piece.n;
    while (left > 0 || zs.avail_in > 0) {
      if (zs.avail_in == 0) {
        zs.avail_in = static_cast<uInt>(std::min(left, kZlibChunk));
        left -= zs.avail_in;
      }
      step(Z_NO_FLUSH);
    }
  }
  while (step(Z_FINISH) != Z_STREAM_END) {
  }
  return packed;
}

void write_all(AtomicFile& f, const Piece& piece) {
  for (uint64_t done = 0; done < piece.n;) {
    size_t n = static_cast<size_t>(std::min(piece.n - done, kZlibChunk));
    f.write(piece.p + done, n);
    done += n;
  }
}

void check_members(const std::string& path, const std::vector<NpzMember>& members) {
  std::unordered_set<std::string_view> seen;
  for (size_t i = 0; i < members.size(); ++i) {
    const std::string& key = members[i].name;
    std::string what = "member " + std::to_string(i) + " ('" + shown(key) + "')";
    if (key.empty()) bad_argument(path, "member " + std::to_string(i) + " has an empty name");
    if (key.find('\0') != std::string::npos) bad_argument(path, what + ": a name may not contain a NUL byte");
    if (!valid_utf8(key)) bad_argument(path, what + ": a name must be valid UTF-8");
    if (key.size() > 0xFFFF - 4) bad_argument(path, what + ": a name may be at most 65531 bytes");
    if (!members[i].array.valid()) bad_argument(path, what + ": cannot save an empty array handle");
    if (!seen.insert(key).second) bad_argument(path, "duplicate member name '" + shown(key) + "'");
  }
}

}  // namespace

std::vector<NpzMember> parse_npz(const void* bytes, size_t size, const std::string& name_for_errors) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  Directory d = find_directory(p, size, name_for_errors);
  std::vector<Entry> entries = read_directory(p, d, name_for_errors);
  locate_data(p, entries, d);
  std::vector<NpzMember> out;
  out.reserve(entries.size());
  for (const Entry& e : entries) out.push_back({e.name.substr(0, e.name.size() - 4), extract(p, e)});
  return out;
}

std::vector<NpzMember> load_npz(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::strerror(errno));
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) fail(path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) return parse_npz("", 0, path);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) fail(path, std::strerror(errno));
  struct Unmap {
    void* p;
    size_t n;
    ~Unmap() { ::munmap(p, n); }
  } unmap{map, size};
  return parse_npz(map, size, path);
}

void save_npz(const std::string& path, const std::vector<NpzMember>& members, bool compress, bool durable) {
  static_assert(std::endian::native == std::endian::little,
                "kiln writes little-endian .npy members from a little-endian host only");
  check_members(path, members);
  AtomicFile f(path, durable);
  std::vector<Written> written;
  written.reserve(members.size());
  uint64_t pos = 0;
  for (const NpzMember& m : members) {
    Written w;
    w.name = m.name + ".npy";
    bool ascii = std::all_of(w.name.begin(), w.name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    w.flags = ascii ? 0 : kFlagUtf8;  // zipfile flags exactly the names ASCII cannot encode
    w.method = compress ? kDeflated : kStored;
    w.header = pos;
    {
      // The member is encode_npy(array) written from its two parts: the header and the
      // array's own bytes when it is C-contiguous, so only a strided view is copied.
      std::string npy_header = npy::header_bytes(m.array.dtype(), m.array.shape());
      Array c = m.array.is_c_contiguous() ? m.array : m.array.copy();
      const std::vector<Piece> pieces = {
          {reinterpret_cast<const unsigned char*>(npy_header.data()), npy_header.size()},
          {reinterpret_cast<const unsigned char*>(c.data()), static_cast<uint64_t>(c.size()) * c.itemsize()}};
      for (const Piece& piece : pieces) w.crc = crc32_of(piece.p, piece.n, w.crc);
      w.size = pieces[0].n + pieces[1].n;
      if (compress) {
        // Sizes are known only afterwards: write a header of the final length now and
        // rewrite it in place (as zipfile seeks back), so nothing is buffered.
        std::string placeholder = local_header(w);
        f.write(placeholder.data(), placeholder.size());
        w.packed = deflate_to(f, pieces);
        std::string h = local_header(w);
        f.pwrite(h.data(), h.size(), w.header);
        pos += h.size() + w.packed;
      } else {
        w.packed = w.size;
        std::string h = local_header(w);
        f.write(h.data(), h.size());
        for (const Piece& piece : pieces) write_all(f, piece);
        pos += h.size() + w.packed;
      }
    }
    written.push_back(std::move(w));
  }
  std::string tail;
  for (const Written& w : written) central_entry(tail, w);
  uint64_t cd_size = tail.size();
  end_records(tail, written.size(), pos, cd_size);
  f.write(tail.data(), tail.size());
  f.commit();
}

}  // namespace kiln
