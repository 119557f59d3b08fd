// Tests for .npz archives: round trips over every dtype and layout, stored and deflated;
// archives built byte by byte (ZIP64 records, code page 437 names, data descriptors) and
// a list of hostile ones that must each be refused with IOError naming the file; every
// truncation and every flipped byte of small archives; atomic saves; and (when
// /usr/bin/python3 has NumPy) archives exchanged with np.savez / np.savez_compressed,
// including kiln writing the very bytes NumPy writes.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "npy.hpp"
#include "io_helpers.hpp"
#include "npz.hpp"

using namespace kiln;
using namespace kiln::test_io;
namespace fs = std::filesystem;

namespace {

// Runs a Python script with the folder as its argument; true when it exits 0.
bool run_python(const TempDir& dir, const std::string& script) {
  write_bytes(dir / "script.py", script);
  std::string cmd = "/usr/bin/python3 " + dir / "script.py" + " " + dir.path;
  return std::system(cmd.c_str()) == 0;
}

const char* kPythonBase = R"PY(
import sys
import numpy as np
d = sys.argv[1] + "/"
def base(dt, shape):
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    if dt == "b1": v = i % 3 == 0
    elif dt == "i4": v = (i * 7919 - 100000).astype(np.int32)
    elif dt == "i8": v = (i - 3) * 1000000007 * 1000
    elif dt == "f4": v = i.astype(np.float32) * np.float32(0.5) - np.float32(1.25)
    else: v = i / 3.0 - 2.0
    return v.reshape(shape)
)PY";

const char* kCodes[] = {"b1", "i4", "i8", "f4", "f8"};

// ---- building archives byte by byte, so each field can be made to lie

uint32_t crc32_of(const std::string& s) {
  static uint32_t table[256];
  static bool ready = false;
  if (!ready) {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = true;
  }
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string le(uint64_t v, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += static_cast<char>(v >> (8 * i) & 0xFF);
  return out;
}

uint64_t get_le(const std::string& s, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(static_cast<unsigned char>(s.at(pos + i))) << (8 * i);
  return v;
}

void put_le(std::string& s, size_t pos, uint64_t v, int bytes) {
  REQUIRE(pos + bytes <= s.size());
  for (int i = 0; i < bytes; ++i) s[pos + i] = static_cast<char>(v >> (8 * i) & 0xFF);
}

// A raw deflate stream of stored blocks: valid deflate without compression, so a test can
// make any stream (and any lie about it) without zlib.
std::string stored_deflate(const std::string& plain) {
  std::string out;
  size_t pos = 0;
  do {
    size_t n = std::min<size_t>(plain.size() - pos, 65535);
    bool last = pos + n == plain.size();
    out += static_cast<char>(last ? 1 : 0);
    out += le(n, 2) + le(~n & 0xFFFF, 2) + plain.substr(pos, n);
    pos += n;
  } while (pos < plain.size());
  return out;
}

struct ZipEntry {
  std::string name;
  std::string plain;                     // what the member holds once inflated
  uint16_t method = 0;                   // 0 stored, 8 deflate (as stored blocks unless `packed_bytes`)
  std::optional<std::string> packed_bytes;  // the exact bytes to store instead
  std::optional<uint32_t> crc;
  std::optional<uint64_t> size, packed;  // declared uncompressed and compressed sizes
  uint16_t flags = 0;
  uint16_t disk = 0;
  std::optional<std::string> local_name;
  bool zip64 = false;     // central entry: sizes and offset 0xFFFFFFFF, values in a ZIP64 extra
  std::string cd_extra;   // raw bytes appended to the central entry's extra field
};

ZipEntry entry(const std::string& name, const std::string& plain, uint16_t method = 0) {
  ZipEntry e;
  e.name = name;
  e.plain = plain;
  e.method = method;
  return e;
}

struct ZipOptions {
  bool zip64_end = false;  // ZIP64 end record and locator; EOCD fields all ones
  std::string comment;
};

std::string make_zip(const std::vector<ZipEntry>& entries, const ZipOptions& opt = {}) {
  std::string body, cd;
  for (const ZipEntry& e : entries) {
    std::string data = e.packed_bytes ? *e.packed_bytes : e.method == 8 ? stored_deflate(e.plain) : e.plain;
    uint32_t crc = e.crc.value_or(crc32_of(e.plain));
    uint64_t size = e.size.value_or(e.plain.size()), packed = e.packed.value_or(data.size());
    uint64_t offset = body.size();
    std::string lname = e.local_name.value_or(e.name);
    body += le(0x04034b50, 4) + le(20, 2) + le(e.flags, 2) + le(e.method, 2) + le(0, 2) + le(0x21, 2) + le(crc, 4) +
            le(packed, 4) + le(size, 4) + le(lname.size(), 2) + le(0, 2) + lname + data;
    std::string extra = e.zip64 ? le(1, 2) + le(24, 2) + le(size, 8) + le(packed, 8) + le(offset, 8) : "";
    extra += e.cd_extra;
    uint64_t all = 0xFFFFFFFF;
    cd += le(0x02014b50, 4) + le(0x0300 | (e.zip64 ? 45 : 20), 2) + le(e.zip64 ? 45 : 20, 2) + le(e.flags, 2) +
          le(e.method, 2) + le(0, 2) + le(0x21, 2) + le(crc, 4) + le(e.zip64 ? all : packed, 4) +
          le(e.zip64 ? all : size, 4) + le(e.name.size(), 2) + le(extra.size(), 2) + le(0, 2) + le(e.disk, 2) +
          le(0, 2) + le(0, 4) + le(e.zip64 ? all : offset, 4) + e.name + extra;
  }
  uint64_t cd_offset = body.size(), count = entries.size();
  std::string out = body + cd;
  if (opt.zip64_end) {
    uint64_t z64 = out.size();
    out += le(0x06064b50, 4) + le(44, 8) + le(45, 2) + le(45, 2) + le(0, 4) + le(0, 4) + le(count, 8) +
           le(count, 8) + le(cd.size(), 8) + le(cd_offset, 8);
    out += le(0x07064b50, 4) + le(0, 4) + le(z64, 8) + le(1, 4);
    out += le(0x06054b50, 4) + le(0, 2) + le(0, 2) + le(0xFFFF, 2) + le(0xFFFF, 2) + le(0xFFFFFFFF, 4) +
           le(0xFFFFFFFF, 4) + le(opt.comment.size(), 2) + opt.comment;
  } else {
    out += le(0x06054b50, 4) + le(0, 2) + le(0, 2) + le(count, 2) + le(count, 2) + le(cd.size(), 4) +
           le(cd_offset, 4) + le(opt.comment.size(), 2) + opt.comment;
  }
  return out;
}

// Positions of records in an archive without a comment and without ZIP64 end records.
size_t eocd_at(const std::string& z) { return z.size() - 22; }
size_t cd_at(const std::string& z) { return static_cast<size_t>(get_le(z, eocd_at(z) + 16, 4)); }
size_t cd_entry_at(const std::string& z, int i) {
  size_t pos = cd_at(z);
  for (int k = 0; k < i; ++k)
    pos += 46 + get_le(z, pos + 28, 2) + get_le(z, pos + 30, 2) + get_le(z, pos + 32, 2);
  return pos;
}

std::string npy_of(const Array& a) { return encode_npy(a); }

// The status and message parse_npz ends with; Ok if it accepted the bytes.
std::pair<Status, std::string> outcome(const std::string& bytes) {
  try {
    parse_npz(bytes.data(), bytes.size(), "x.npz");
    return {Status::Ok, ""};
  } catch (const Error& e) {
    return {e.status(), e.what()};
  }
}

std::vector<NpzMember> parse(const std::string& bytes) { return parse_npz(bytes.data(), bytes.size(), "x.npz"); }

template <class F> std::pair<Status, std::string> status_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return {e.status(), e.what()};
  }
  return {Status::Ok, ""};
}

}  // namespace

TEST_CASE("save_npz then load_npz returns every member, stored and compressed", "[npz]") {
  TempDir dir;
  const Shape shapes[] = {{}, {0}, {5}, {3, 4}, {2, 3, 4}, {4, 0, 2}, {1000}};
  std::vector<NpzMember> members;
  for (DType t : kAllDTypes)
    for (const Shape& shape : shapes)
      members.push_back({std::string(dtype_name(t)) + "_" + std::to_string(members.size()), filled(t, shape)});
  for (bool compress : {false, true}) {
    INFO("compress " << compress);
    save_npz(dir / "a.npz", members, compress);
    std::vector<NpzMember> back = load_npz(dir / "a.npz");
    REQUIRE(back.size() == members.size());
    for (size_t i = 0; i < members.size(); ++i) {
      INFO(members[i].name);
      CHECK(back[i].name == members[i].name);
      CHECK(back[i].array.dtype() == members[i].array.dtype());
      CHECK(back[i].array.shape() == members[i].array.shape());
      CHECK(back[i].array.is_c_contiguous());
      CHECK(elements(back[i].array) == elements(members[i].array));
    }
    CHECK(dir.entries() == std::vector<std::string>{"a.npz"});
  }
}

TEST_CASE("save_npz writes non-contiguous views in C order", "[npz]") {
  TempDir dir;
  for (DType t : kAllDTypes) {
    INFO(dtype_name(t));
    Array v = filled(t, {10});
    std::vector<NpzMember> views;
    const char* names[] = {"t", "perm", "rev", "cols", "bcast"};
    for (const Array& view : views_of(t)) views.push_back({names[views.size()], view});
    for (bool compress : {false, true}) {
      save_npz(dir / "v.npz", views, compress);
      std::vector<NpzMember> back = load_npz(dir / "v.npz");
      REQUIRE(back.size() == views.size());
      for (size_t i = 0; i < views.size(); ++i) {
        CHECK(back[i].array.shape() == views[i].array.shape());
        CHECK(elements(back[i].array) == elements(views[i].array));
      }
      // The reversed slice really is reversed: elements 9, 7, 5, 3, 1.
      std::vector<std::string> r = elements(back[2].array), src = elements(v);
      REQUIRE(r.size() == 5);
      CHECK(r[0] == src[9]);
      CHECK(r[4] == src[1]);
    }
  }
}

TEST_CASE("an archive without members and names with folders and non-ASCII letters round trip", "[npz]") {
  TempDir dir;
  save_npz(dir / "e.npz", {}, false);
  CHECK(read_bytes(dir / "e.npz") == std::string("PK\x05\x06", 4) + std::string(18, '\0'));
  CHECK(load_npz(dir / "e.npz").empty());
  std::vector<NpzMember> m = {{"dir/sub/x", filled(DType::Int32, {3})}, {"gr\xc3\xb6\xc3\x9f" "e", filled(DType::Float64, {2})}};
  for (bool compress : {false, true}) {
    save_npz(dir / "n.npz", m, compress);
    std::string bytes = read_bytes(dir / "n.npz");
    // The second name is not ASCII, so its entries carry the UTF-8 flag (bit 11), as zipfile does.
    CHECK(get_le(bytes, cd_entry_at(bytes, 0) + 8, 2) == 0);
    CHECK(get_le(bytes, cd_entry_at(bytes, 1) + 8, 2) == 0x800);
    std::vector<NpzMember> back = load_npz(dir / "n.npz");
    REQUIRE(back.size() == 2);
    CHECK(back[0].name == m[0].name);
    CHECK(back[1].name == m[1].name);
    CHECK(same(back[1].array, m[1].array));
  }
}

TEST_CASE("archives built by hand: ZIP64 records, a comment, cp437 names, deflate in many blocks", "[npz]") {
  Array a = filled(DType::Int64, {3, 5});
  Array b = filled(DType::Float32, {40000});  // 160 kB: three stored deflate blocks
  ZipEntry ea = entry("a.npy", npy_of(a)), eb = entry("b.npy", npy_of(b), 8);
  SECTION("ZIP64 extra fields and end records") {
    ea.zip64 = eb.zip64 = true;
    std::vector<NpzMember> back = parse(make_zip({ea, eb}, {true, "a comment"}));
    REQUIRE(back.size() == 2);
    CHECK(back[0].name == "a");
    CHECK(same(back[0].array, a));
    CHECK(back[1].name == "b");
    CHECK(same(back[1].array, b));
  }
  SECTION("a comment after the end record, with a decoy signature in it") {
    std::string comment = "PK\x05\x06 and more text";
    std::vector<NpzMember> back = parse(make_zip({ea, eb}, {false, comment}));
    REQUIRE(back.size() == 2);
    CHECK(same(back[1].array, b));
  }
  SECTION("a name without the UTF-8 flag is code page 437, as Python decodes it") {
    ea.name = "caf\x82\xe1.npy";  // é and ß in cp437
    std::vector<NpzMember> back = parse(make_zip({ea}));
    REQUIRE(back.size() == 1);
    CHECK(back[0].name == "caf\xc3\xa9\xc3\x9f");
  }
  SECTION("bytes after a member's .npy data are ignored, as np.load ignores them") {
    ea.plain += "trailing";
    eb.plain += std::string(100000, 'x');
    std::vector<NpzMember> back = parse(make_zip({ea, eb}));
    CHECK(same(back[0].array, a));
    CHECK(same(back[1].array, b));
  }
}

TEST_CASE("hostile archives are refused with IOError naming the file and the problem", "[npz]") {
  Array a = filled(DType::Float64, {4});
  Array big = filled(DType::Int32, {300});
  const std::string npy = npy_of(a), npy_big = npy_of(big);
  auto stored = [&](const std::string& name = "a.npy") { return entry(name, npy); };
  auto deflated = [&](const std::string& name = "d.npy") {
    return entry(name, npy_big, 8);
  };
  const std::string good = make_zip({stored(), deflated()});
  REQUIRE(parse(good).size() == 2);
  auto with = [&](size_t pos, uint64_t v, int bytes, std::string z) {
    put_le(z, pos, v, bytes);
    return z;
  };
  const size_t eocd = eocd_at(good), cd0 = cd_entry_at(good, 0), cd1 = cd_entry_at(good, 1);
  const size_t local1 = static_cast<size_t>(get_le(good, cd1 + 42, 4));

  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  };
  std::vector<Case> cases = {
      {"empty", "", "0 bytes is too short for a zip archive"},
      {"short text", "hello", "too short for a zip archive"},
      {"a .npy file", npy, "no zip end-of-central-directory record"},
      {"the last byte cut off", good.substr(0, good.size() - 1), "no zip end-of-central-directory record"},
      {"a comment longer than the file", with(eocd + 20, 5, 2, good), "no zip end-of-central-directory record"},
      {"bytes missing in the middle", good.substr(0, 40) + good.substr(50), "does not fit before the end record"},
      {"directory offset past the end", with(eocd + 16, 0x7FFFFFFF, 4, good), "does not fit before the end record"},
      {"directory size past the end", with(eocd + 12, 100000, 4, good), "does not fit before the end record"},
      {"more entries than the directory holds", with(eocd + 10, 50, 2, with(eocd + 8, 50, 2, good)), "cannot hold 50 entries"},
      {"directory entry with a bad signature", with(cd1, 0x12345678, 4, good), "central directory entry 1 has a bad signature"},
      {"name running past the directory", with(cd1 + 28, 5000, 2, good), "entry 1 runs past the directory"},
      {"disk number 1", with(eocd + 4, 1, 2, good), "spanning several disks"},
      {"directory on disk 2", with(eocd + 6, 2, 2, good), "spanning several disks"},
      {"entries on this disk differ from the total", with(eocd + 8, 1, 2, good), "spanning several disks"},
      {"member starting on disk 1", with(cd0 + 34, 1, 2, good), "member 'a.npy': starts on disk 1"},
      {"local header offset past the directory", with(cd1 + 42, 0x7FFFFFF0, 4, good), "member 'd.npy': local header offset"},
      {"local header with a bad signature", with(local1, 0x04034b51, 4, good), "member 'd.npy': has a bad local header signature"},
      {"local header with a long extra field", with(local1 + 28, 0xFFFF, 2, good), "member 'd.npy': local header runs into the central directory"},
      {"compressed size past the directory", with(cd1 + 20, 100000, 4, good), "member 'd.npy': is truncated"},
      {"overlapping members", with(cd0 + 24, npy.size() + 50, 4, with(cd0 + 20, npy.size() + 50, 4, good)), "member 'd.npy': overlaps member 'a.npy'"},
      {"two entries for one local header", with(cd1 + 42, 0, 4, good), "local header names it 'a.npy'"},
      {"stored CRC wrong", with(cd0 + 16, 0xDEADBEEF, 4, good), "member 'a.npy': CRC-32 mismatch (archive says 0xdeadbeef"},
      {"deflated CRC wrong", with(cd1 + 16, 0xDEADBEEF, 4, good), "member 'd.npy': CRC-32 mismatch (archive says 0xdeadbeef"},
      {"stored data flipped", with(100, static_cast<unsigned char>(good[100]) ^ 0x10, 1, good), "member 'a.npy': CRC-32 mismatch"},
      {"encrypted", with(cd0 + 8, 1, 2, good), "member 'a.npy': is encrypted"},
      {"strong encryption", with(cd0 + 8, 0x40, 2, good), "member 'a.npy': is encrypted"},
      {"AES", with(cd0 + 10, 99, 2, good), "member 'a.npy': is encrypted"},
      {"patch data", with(cd0 + 8, 0x20, 2, good), "member 'a.npy': holds compressed patch data (flag bit 5)"},
      {"bzip2", with(cd0 + 10, 12, 2, good), "member 'a.npy': uses compression method 12 (kiln reads stored and deflate)"},
      {"stored with differing sizes", with(cd0 + 24, npy.size() + 1, 4, good), "member 'a.npy': is stored but its sizes differ"},
  };
  auto add = [&](const char* what, std::vector<ZipEntry> entries, const char* message, ZipOptions opt = {}) {
    cases.push_back({what, make_zip(entries, opt), message});
  };
  add("duplicate names", {stored(), stored()}, "x.npz: duplicate member 'a.npy'");
  add("a member that is not .npy", {stored(), stored("readme.txt")}, "member 'readme.txt': is not a .npy file");
  add("a .NPY member", {stored("A.NPY")}, "member 'A.NPY': is not a .npy file");
  add("a NUL in a name", {stored(std::string("a\0b.npy", 7))}, "member 'a\\x00b.npy' has a NUL byte in its name");
  {
    ZipEntry e = stored("\xff\xfe.npy");
    e.flags = 0x800;
    add("invalid UTF-8 under the UTF-8 flag", {e}, "is flagged UTF-8 but its name is not valid UTF-8");
  }
  add("a member that is text", {entry("t.npy", "hello, world")}, "x.npz: member 't.npy': not a .npy file (bad magic");
  add("a member whose .npy data is short", {entry("s.npy", npy.substr(0, npy.size() - 8))},
      "x.npz: member 's.npy': file is truncated: header says 32 bytes of data, file has 24");
  {
    ZipEntry e = deflated();
    e.size = 0xF0000000;
    add("a zip bomb's declared size", {e}, "member 'd.npy': declares 4026531840 bytes uncompressed, more than deflate can produce from 1333 compressed bytes");
  }
  {
    ZipEntry e = deflated();
    e.size = 900;  // the .npy header says 128 + 1200 bytes
    add("declared size below the .npy header's", {e}, "member 'd.npy': file is truncated: header says 1200 bytes of data, file has 772");
  }
  {
    ZipEntry e = deflated();
    e.plain = npy_big + std::string(5000, 'z');
    e.size = npy_big.size() + 10;
    e.crc = crc32_of(e.plain.substr(0, npy_big.size() + 10));
    add("a stream longer than declared", {e}, "member 'd.npy': inflates to more than its declared 1338 bytes");
  }
  {
    ZipEntry e = deflated();
    e.size = npy_big.size() + 10;
    add("a stream shorter than declared", {e}, "member 'd.npy': deflate stream ends after 1328 bytes, short of its declared 1338");
  }
  {
    ZipEntry e = deflated();
    e.packed_bytes = "\x07\x00\x00\x00\x00\x00\x00\x00";  // BTYPE 11 is reserved
    add("corrupt deflate data", {e}, "member 'd.npy': deflate data is corrupt (zlib: invalid block type)");
  }
  {
    ZipEntry e = deflated();
    e.packed_bytes = stored_deflate(npy_big).substr(0, 600);
    add("truncated deflate data", {e}, "member 'd.npy': deflate data is truncated");
  }
  {
    ZipEntry e = deflated();
    e.plain = npy_big.substr(0, 5);
    add("a deflated member of 5 bytes", {e}, "member 'd.npy': file is too short to be a .npy file (5 bytes)");
  }
  {
    ZipEntry e = deflated();
    e.size = 0;
    e.packed_bytes = "";
    add("an empty deflate stream", {e}, "member 'd.npy': file is too short to be a .npy file (0 bytes)");
  }
  {
    ZipEntry e = stored();
    e.cd_extra = le(1, 2) + le(8, 2) + le(npy.size(), 8);  // room for one of the two sizes
    std::string z = make_zip({e});
    put_le(z, cd_entry_at(z, 0) + 20, 0xFFFFFFFF, 4);
    put_le(z, cd_entry_at(z, 0) + 24, 0xFFFFFFFF, 4);
    cases.push_back({"ZIP64 extra field too short", z, "member 'a.npy': ZIP64 extra field is too short"});
  }
  {
    ZipEntry e = stored();
    e.cd_extra = le(0x5455, 2) + le(40, 2) + "abc";
    add("extra field running past the entry", {e}, "member 'a.npy': extra field 0x5455 runs past the central directory entry");
  }
  {
    std::string z = make_zip({stored()}, {true, ""});
    size_t loc = z.size() - 22 - 20;
    cases.push_back({"ZIP64 locator naming 2 disks", with(loc + 16, 2, 4, z), "spanning several disks"});
    cases.push_back({"ZIP64 locator pointing past itself", with(loc + 8, loc, 8, z), "ZIP64 end record at offset"});
    cases.push_back({"ZIP64 end record with a bad signature", with(loc - 56, 0x06064b51, 4, z), "no ZIP64 end record at offset"});
    cases.push_back({"ZIP64 end record with a huge length", with(loc - 56 + 4, ~0ull, 8, z), "ZIP64 end record says it is"});
    cases.push_back({"ZIP64 directory of 2**60 entries", with(loc - 56 + 32, 1ull << 60, 8, with(loc - 56 + 24, 1ull << 60, 8, z)),
                     "cannot hold 1152921504606846976 entries"});
    cases.push_back({"ZIP64 directory offset 2**63", with(loc - 56 + 48, 1ull << 63, 8, z), "does not fit before the end record"});
  }

  for (const Case& c : cases) {
    auto [status, message] = outcome(c.bytes);
    INFO(c.what << ": " << message);
    CHECK(status == Status::IOError);
    CHECK(message.rfind("x.npz: ", 0) == 0);
    CHECK(message.find(c.message) != std::string::npos);
  }
}

TEST_CASE("every truncation and every flipped byte of small archives is refused or read, never a crash", "[npz]") {
  std::vector<NpzMember> m = {{"a", filled(DType::Int32, {7})}, {"b", filled(DType::Float64, {2, 3})}};
  for (bool compress : {false, true}) {
    TempDir dir;
    save_npz(dir / "a.npz", m, compress);
    const std::string z = read_bytes(dir / "a.npz");
    for (size_t n = 0; n < z.size(); ++n) {
      auto [status, message] = outcome(z.substr(0, n));
      INFO("cut at " << n << ": " << message);
      CHECK(status == Status::IOError);
      CHECK(message.rfind("x.npz: ", 0) == 0);
    }
    size_t accepted = 0;
    for (size_t i = 0; i < z.size(); ++i) {
      std::string bad = z;
      bad[i] = static_cast<char>(bad[i] ^ 0x5A);
      auto [status, message] = outcome(bad);
      INFO("flipped byte " << i << ": " << message);
      CHECK((status == Status::Ok || status == Status::IOError));
      if (status == Status::Ok) ++accepted;
      if (status == Status::IOError) CHECK(message.rfind("x.npz: ", 0) == 0);
    }
    // Only fields nobody checks may change unnoticed: versions, DOS time and date,
    // attributes, local header sizes and the local ZIP64 extra (the directory's win).
    CHECK(accepted < z.size() / 3);
  }
}

TEST_CASE("load_npz reports missing and non-regular files by path", "[npz]") {
  TempDir dir;
  auto [s1, m1] = status_of([&] { load_npz(dir / "missing.npz"); });
  CHECK(s1 == Status::IOError);
  CHECK(m1 == dir / "missing.npz" + ": No such file or directory");
  auto [s2, m2] = status_of([&] { load_npz(dir.path); });
  CHECK(s2 == Status::IOError);
  CHECK(m2 == dir.path + ": not a regular file");
  write_bytes(dir / "empty.npz", "");
  auto [s3, m3] = status_of([&] { load_npz(dir / "empty.npz"); });
  CHECK(s3 == Status::IOError);
  CHECK(m3 == dir / "empty.npz" + ": not a .npz file (0 bytes is too short for a zip archive)");
  save_npz(dir / "c.npz", {{"x", filled(DType::Int64, {50})}}, true);
  std::string z = read_bytes(dir / "c.npz");
  put_le(z, cd_entry_at(z, 0) + 16, 1, 4);
  write_bytes(dir / "c.npz", z);
  auto [s4, m4] = status_of([&] { load_npz(dir / "c.npz"); });
  CHECK(s4 == Status::IOError);
  CHECK(m4.rfind(dir / "c.npz: member 'x.npy': CRC-32 mismatch (archive says 0x00000001, data has 0x", 0) == 0);
}

TEST_CASE("bad arguments are BadArgument and leave the old file byte-identical", "[npz]") {
  TempDir dir;
  save_npz(dir / "a.npz", {{"old", filled(DType::Int32, {3})}}, false);
  const std::string before = read_bytes(dir / "a.npz");
  Array x = filled(DType::Float32, {2});
  struct Case {
    std::vector<NpzMember> members;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{{"x", x}, {"", x}}, "member 1 has an empty name"},
      {{{"x", x}, {"y", x}, {"x", x}}, "duplicate member name 'x'"},
      {{{"x", Array()}}, "member 0 ('x'): cannot save an empty array handle"},
      {{{std::string("a\0b", 3), x}}, "a name may not contain a NUL byte"},
      {{{"\xc3(", x}}, "a name must be valid UTF-8"},
      {{{std::string(70000, 'n'), x}}, "a name may be at most 65531 bytes"},
  };
  for (const Case& c : cases) {
    for (bool compress : {false, true}) {
      auto [status, message] = status_of([&] { save_npz(dir / "a.npz", c.members, compress); });
      INFO(message);
      CHECK(status == Status::BadArgument);
      CHECK(message.rfind(dir / "a.npz: ", 0) == 0);
      CHECK(message.find(c.message) != std::string::npos);
      CHECK(read_bytes(dir / "a.npz") == before);
      CHECK(dir.entries() == std::vector<std::string>{"a.npz"});
    }
  }
}

TEST_CASE("save_npz replaces an existing file atomically and leaves no temporary, durable or not", "[npz]") {
  for (bool durable : {false, true}) {
    TempDir dir;
    write_bytes(dir / "a.npz", "old contents");
    std::vector<NpzMember> m = {{"v", filled(DType::Float64, {2, 3})}};
    save_npz(dir / "a.npz", m, true, durable);
    CHECK(same(load_npz(dir / "a.npz").at(0).array, m[0].array));
    CHECK(dir.entries() == std::vector<std::string>{"a.npz"});
  }
}

TEST_CASE("a save_npz whose rename fails removes its temporary and keeps the destination", "[npz]") {
  TempDir dir;
  // A non-empty directory cannot be replaced by rename(), so the failure comes after the
  // whole archive has been written to the temporary (this works as root too).
  fs::create_directory(dir / "target.npz");
  write_bytes(dir / "target.npz/keep", "x");
  for (bool compress : {false, true}) {
    auto [status, message] = status_of([&] { save_npz(dir / "target.npz", {{"a", filled(DType::Int64, {3})}}, compress); });
    CHECK(status == Status::IOError);
    CHECK(message.rfind(dir / "target.npz: ", 0) == 0);
    CHECK(dir.entries() == std::vector<std::string>{"target.npz"});
    CHECK(read_bytes(dir / "target.npz/keep") == "x");
  }
}

TEST_CASE("a save into a read-only folder fails and leaves the old file byte-identical", "[npz]") {
  TempDir dir;
  fs::create_directory(dir / "ro");
  save_npz(dir / "ro/a.npz", {{"old", filled(DType::Int32, {3})}}, false);
  const std::string before = read_bytes(dir / "ro/a.npz");
  fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  auto [status, message] = status_of([&] { save_npz(dir / "ro/a.npz", {{"new", filled(DType::Int32, {4})}}, true); });
  fs::permissions(dir / "ro", fs::perms::owner_all);
  if (status == Status::Ok) {
    WARN("running with CAP_DAC_OVERRIDE (root): a read-only folder is writable; skipping");
    return;
  }
  CHECK(status == Status::IOError);
  CHECK(message == dir / "ro/a.npz" + ": Permission denied");
  CHECK(read_bytes(dir / "ro/a.npz") == before);
  CHECK_FALSE(has_tmp_leftovers(dir));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir / "ro")) left.push_back(e.path().filename().string());
  CHECK(left == std::vector<std::string>{"a.npz"});
}

TEST_CASE("more than 65535 members get ZIP64 end records", "[npz]") {
  TempDir dir;
  std::vector<NpzMember> m;
  for (int i = 0; i < 70000; ++i) m.push_back({"m" + std::to_string(i), Array::scalar<int32_t>(i)});
  save_npz(dir / "many.npz", m, false);
  std::string z = read_bytes(dir / "many.npz");
  // EOCD counts clipped to 0xFFFF, preceded by the ZIP64 locator and end record.
  CHECK(get_le(z, z.size() - 22 + 10, 2) == 0xFFFF);
  CHECK(get_le(z, z.size() - 42, 4) == 0x07064b50);
  CHECK(get_le(z, get_le(z, z.size() - 42 + 8, 8), 4) == 0x06064b50);
  std::vector<NpzMember> back = load_npz(dir / "many.npz");
  REQUIRE(back.size() == m.size());
  CHECK(back[69999].name == "m69999");
  CHECK(*back[69999].array.data_as<int32_t>() == 69999);
  if (!python_has_numpy()) return;
  CHECK(run_python(dir, std::string(kPythonBase) + R"PY(
with np.load(d + "many.npz") as f:
    assert len(f.files) == 70000, len(f.files)
    assert f.files[0] == "m0" and f.files[-1] == "m69999"
    assert f["m12345"] == 12345 and f["m12345"].dtype == np.int32 and f["m12345"].shape == ()
)PY"));
}

TEST_CASE("kiln writes the bytes np.savez and np.savez_compressed write", "[npz][numpy]") {
  if (!python_has_numpy()) {
    WARN("/usr/bin/python3 with numpy is not available; skipping");
    return;
  }
  TempDir dir;
  std::vector<NpzMember> m;
  const Shape shapes[] = {{}, {0}, {7}, {3, 4}, {2, 0, 3}};
  for (int t = 0; t < 5; ++t)
    for (const Shape& s : shapes) m.push_back({std::string(kCodes[t]) + "_" + std::to_string(s.size()) + "_" + std::to_string(m.size()), filled(kAllDTypes[t], s)});
  m.push_back({"t", filled(DType::Float64, {3, 4}).transpose()});
  m.push_back({"big", filled(DType::Float64, {2500000})});  // 20 MB: NumPy writes it in two pieces
  m.push_back({"zeros", Array::zeros(DType::Int64, {1 << 20})});
  m.push_back({"d\xc3\xa9j\xc3\xa0/vu", filled(DType::Int32, {2})});
  save_npz(dir / "k.npz", m, false);
  save_npz(dir / "kc.npz", m, true);
  CHECK(run_python(dir, std::string(kPythonBase) + R"PY(
import io
codes = ["b1", "i4", "i8", "f4", "f8"]
shapes = [(), (0,), (7,), (3, 4), (2, 0, 3)]
arrays = {}
for c in codes:
    for s in shapes:
        arrays["%s_%d_%d" % (c, len(s), len(arrays))] = base(c, s)
arrays["t"] = base("f8", (3, 4)).T.copy(order="C")  # NumPy would write a .T in Fortran order
arrays["big"] = base("f8", (2500000,))
arrays["zeros"] = np.zeros(1 << 20, dtype=np.int64)
arrays["d\u00e9j\u00e0/vu"] = base("i4", (2,))
for name, save in [("k.npz", np.savez), ("kc.npz", np.savez_compressed)]:
    buf = io.BytesIO()
    save(buf, **arrays)
    want, got = buf.getvalue(), open(d + name, "rb").read()
    if want != got:
        at = next((i for i in range(min(len(want), len(got))) if want[i] != got[i]), None)
        sys.exit("%s: bytes differ from NumPy's (%d vs %d bytes, first difference at %s)" % (name, len(got), len(want), at))
    with np.load(d + name) as f:
        assert f.files == list(arrays), f.files
        for k, v in arrays.items():
            assert f[k].dtype == v.dtype and f[k].shape == v.shape and np.array_equal(f[k], v), k
)PY"));
}

TEST_CASE("kiln loads what NumPy saves: both byte orders, Fortran order, bool, 0-d, empty, data descriptors", "[npz][numpy]") {
  if (!python_has_numpy()) {
    WARN("/usr/bin/python3 with numpy is not available; skipping");
    return;
  }
  TempDir dir;
  REQUIRE(run_python(dir, std::string(kPythonBase) + R"PY(
import io
class Unseekable:  # zipfile then writes data descriptors after each member
    def __init__(self, f): self.f = f
    def write(self, b): return self.f.write(b)
    def flush(self): self.f.flush()
    def read(self, n=-1): raise io.UnsupportedOperation("read")  # np.savez wants a file object
arrays = dict(
    c_f8=base("f8", (3, 4)),
    f_f4=np.asfortranarray(base("f4", (2, 3))),
    f_i8=np.asfortranarray(base("i8", (2, 3, 4))),
    be_i4=base("i4", (3, 4)).astype(">i4"),
    be_f8=base("f8", (5,)).astype(">f8"),
    be_f_f8=np.asfortranarray(base("f8", (4, 3)).astype(">f8")),
    b1=base("b1", (10,)),
    i8_0d=np.int64(-1234567890123),
    empty=np.zeros((0, 4), dtype=np.int32),
    big=base("f4", (1000, 700)),
)
arrays["\u00fcber"] = base("i8", (3,))
np.savez(d + "s.npz", base("i4", (2,)), **arrays)
np.savez_compressed(d + "c.npz", base("i4", (2,)), **arrays)
with open(d + "u.npz", "wb") as f:
    np.savez_compressed(Unseekable(f), base("i4", (2,)), **arrays)
)PY"));
  for (const char* file : {"s.npz", "c.npz", "u.npz"}) {
    INFO(file);
    std::vector<NpzMember> got = load_npz(dir / file);
    REQUIRE(got.size() == 12);
    auto member = [&](const std::string& name) {
      for (const NpzMember& m : got)
        if (m.name == name) return m.array;
      FAIL("no member " << name);
      return Array();
    };
    std::vector<std::string> names;
    for (const NpzMember& m : got) names.push_back(m.name);
    // Keyword arguments first, in order, then the positional ones, as NumPy writes them.
    CHECK(names == std::vector<std::string>{"c_f8", "f_f4", "f_i8", "be_i4", "be_f8", "be_f_f8", "b1", "i8_0d", "empty",
                                            "big", "\xc3\xbc" "ber", "arr_0"});
    CHECK(same(member("arr_0"), filled(DType::Int32, {2})));
    CHECK(same(member("c_f8"), filled(DType::Float64, {3, 4})));
    Array f4 = member("f_f4");
    CHECK(f4.strides() == Shape{4, 8});  // a Fortran-ordered view, as load_npy gives
    CHECK(same(f4, filled(DType::Float32, {2, 3})));
    CHECK(same(member("f_i8"), filled(DType::Int64, {2, 3, 4})));
    CHECK(same(member("be_i4"), filled(DType::Int32, {3, 4})));
    CHECK(same(member("be_f8"), filled(DType::Float64, {5})));
    CHECK(same(member("be_f_f8"), filled(DType::Float64, {4, 3})));
    CHECK(same(member("b1"), filled(DType::Bool, {10})));
    Array s = member("i8_0d");
    CHECK(s.ndim() == 0);
    CHECK(*s.data_as<int64_t>() == -1234567890123LL);
    CHECK(same(member("empty"), Array::zeros(DType::Int32, {0, 4})));
    CHECK(same(member("big"), filled(DType::Float32, {1000, 700})));
    CHECK(same(member("\xc3\xbc" "ber"), filled(DType::Int64, {3})));
  }
}

TEST_CASE("NumPy reads the ZIP64 records and cp437 names kiln reads", "[npz][numpy]") {
  if (!python_has_numpy()) {
    WARN("/usr/bin/python3 with numpy is not available; skipping");
    return;
  }
  // The hand-built archives of the test above are what zipfile understands too.
  TempDir dir;
  ZipEntry ea = entry("a.npy", npy_of(filled(DType::Int64, {3, 5})));
  ZipEntry eb = entry("b\x82.npy", npy_of(filled(DType::Float32, {40000})), 8);
  ea.zip64 = eb.zip64 = true;
  std::string z = make_zip({ea, eb}, {true, "a comment"});
  write_bytes(dir / "z64.npz", z);
  std::vector<NpzMember> k = parse(z);
  REQUIRE(k.size() == 2);
  CHECK(k[1].name == "b\xc3\xa9");
  CHECK(run_python(dir, std::string(kPythonBase) + R"PY(
with np.load(d + "z64.npz") as f:
    assert f.files == ["a", "b\u00e9"], f.files
    assert np.array_equal(f["a"], base("i8", (3, 5)))
    assert np.array_equal(f["b\u00e9"], base("f4", (40000,)))
)PY"));
}

TEST_CASE("members and offsets past 2 GiB get ZIP64 fields; kiln and NumPy read them", "[.npz_big]") {
  // Hidden (run with "[npz_big]"): about 12 GB of memory, 4.5 GB of /tmp and 40 s.
  TempDir dir;
  const int64_t n = (int64_t{1} << 28) + 1000;  // float64: 2 GiB + 8000 bytes
  Array huge = Array::zeros(DType::Float64, {n});
  huge.data_as<double>()[0] = -1.0;
  huge.data_as<double>()[n - 1] = 42.0;
  std::vector<NpzMember> m = {{"small", filled(DType::Int32, {3})}, {"huge", huge}, {"after", filled(DType::Int64, {4})}};
  for (bool compress : {false, true}) {
    INFO("compress " << compress);
    std::string path = dir / (compress ? "c.npz" : "s.npz");
    save_npz(path, m, compress);
    std::vector<NpzMember> back = load_npz(path);
    REQUIRE(back.size() == 3);
    CHECK(same(back[0].array, m[0].array));
    REQUIRE(back[1].array.shape() == Shape{n});
    CHECK(back[1].array.data_as<double>()[0] == -1.0);
    CHECK(back[1].array.data_as<double>()[n - 1] == 42.0);
    CHECK(std::memcmp(back[1].array.data(), huge.data(), static_cast<size_t>(n) * 8) == 0);
    CHECK(same(back[2].array, m[2].array));
  }
  std::ifstream f(dir / "s.npz", std::ios::binary | std::ios::ate);
  CHECK(static_cast<uint64_t>(f.tellg()) > (uint64_t{1} << 31));
  if (!python_has_numpy()) return;
  CHECK(run_python(dir, std::string(kPythonBase) + R"PY(
import hashlib, io
n = (1 << 28) + 1000
huge = np.zeros(n)
huge[0], huge[-1] = -1.0, 42.0
arrays = dict(small=base("i4", (3,)), huge=huge, after=base("i8", (4,)))
for name, save in [("s.npz", np.savez), ("c.npz", np.savez_compressed)]:
    buf = io.BytesIO()
    save(buf, **arrays)
    want = hashlib.sha256(buf.getbuffer()).hexdigest()
    del buf
    with open(d + name, "rb") as f:
        got = hashlib.file_digest(f, "sha256").hexdigest()
    assert want == got, name + ": bytes differ from NumPy's"
    with np.load(d + name) as z:
        assert z.files == ["small", "huge", "after"]
        h = z["huge"]
        assert h.shape == (n,) and h[0] == -1.0 and h[-1] == 42.0 and not h[1:-1].any()
        del h
        assert np.array_equal(z["after"], base("i8", (4,)))
)PY"));
}
