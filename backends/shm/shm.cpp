#include "shm.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "npy_format.hpp"

namespace kiln::shm {

namespace {

constexpr const char* kDir = "/dev/shm/";
constexpr const char* kTempPrefix = ".kiln-new-";  // names never start with '.'

std::string errno_text() { return std::strerror(errno); }

[[noreturn]] void io_fail(const std::string& name, const std::string& what) {
  throw Error(Status::IOError, "shared segment '" + name + "': " + what);
}

size_t page_size() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// NumPy's header for the array, its padding grown (with the spaces NumPy pads with) so
// the data starts on a page of its own.
std::string page_header(DType dtype, const Shape& shape) {
  std::string h = npy::header_bytes(dtype, shape);
  size_t len_bytes = h[6] == 1 ? 2 : 4, prefix = 8 + len_bytes;
  size_t want = (h.size() + page_size() - 1) / page_size() * page_size();
  size_t dict_len = want - prefix;
  if (len_bytes == 2 && dict_len > 0xFFFF) return h;  // cannot happen with 4 KiB pages
  h.pop_back();  // the final '\n'
  h.append(want - h.size() - 1, ' ');
  h += '\n';
  for (size_t i = 0; i < len_bytes; ++i) h[8 + i] = static_cast<char>((dict_len >> (8 * i)) & 0xFF);
  return h;
}

// A mapping of `bytes` released (munmap) with the last array over it; the header's pages
// read-only.
Array map_array(int fd, size_t bytes, bool read_only, size_t data_offset, DType dtype, const Shape& shape,
                const Shape& strides, const std::string& name) {
  void* base = ::mmap(nullptr, bytes, read_only ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) io_fail(name, "cannot map " + std::to_string(bytes) + " bytes: " + errno_text());
  // Mapping a segment's pages is what a first pass over it costs (400 MB in 4 KiB pages:
  // 30-45 ms per process, the same with MADV_POPULATE_READ); where the kernel allows huge
  // pages for shared memory (transparent_hugepage/shmem_enabled "advise"), ask for them.
  ::madvise(base, bytes, MADV_HUGEPAGE);
  if (!read_only && data_offset % page_size() == 0 && data_offset > 0) ::mprotect(base, data_offset, PROT_READ);
  try {
    Array a = Array::wrap(static_cast<char*>(base) + data_offset, dtype, shape, strides,
                          [base, bytes] { ::munmap(base, bytes); });
    if (read_only) a.buffer()->set_read_only();
    return a;
  } catch (...) {
    ::munmap(base, bytes);
    throw;
  }
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

void check_name(const std::string& name) {
  auto bad = [&](const std::string& why) {
    throw Error(Status::BadArgument, "invalid shared segment name '" + name.substr(0, 60) +
                                         (name.size() > 60 ? "..." : "") + "': " + why);
  };
  if (name.empty()) bad("it is empty");
  if (name.size() > 200) bad("it is " + std::to_string(name.size()) + " characters long (at most 200)");
  if (name[0] == '.') bad("it starts with '.'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) bad(c == '/' ? "'/' is not allowed" : "only letters, digits, '.', '_' and '-' are allowed");
  }
}

std::string path_of(const std::string& name) {
  check_name(name);
  return kDir + name;
}

Array create(const std::string& name, DType dtype, const Shape& shape, bool replace) {
  const std::string path = path_of(name);
  const size_t data_bytes = static_cast<size_t>(shape_size(shape)) * itemsize(dtype);
  const std::string header = page_header(dtype, shape);
  const size_t bytes = header.size() + data_bytes;
  static std::atomic<unsigned> counter{0};
  const std::string temp = std::string(kDir) + kTempPrefix + name.substr(0, 150) + "-" + std::to_string(::getpid()) +
                           "-" + std::to_string(counter++);
  Fd f;
  f.fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (f.fd < 0) io_fail(name, "cannot create " + temp + ": " + errno_text());
  auto give_up = [&](const std::string& what) {
    ::unlink(temp.c_str());
    io_fail(name, what);
  };
  if (::fchmod(f.fd, 0600) != 0) give_up("cannot set mode 0600: " + errno_text());  // whatever the umask
  if (::ftruncate(f.fd, static_cast<off_t>(bytes)) != 0) give_up("cannot size it to " + std::to_string(bytes) + " bytes: " + errno_text());
  if (::pwrite(f.fd, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size()))
    give_up("cannot write its header: " + errno_text());
  Array a;
  try {
    a = map_array(f.fd, bytes, false, header.size(), dtype, shape, {}, name);
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  // The name appears only now, complete; link() refuses an existing one, rename() replaces it.
  if (replace ? ::rename(temp.c_str(), path.c_str()) != 0 : ::link(temp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    if (err == EEXIST)
      throw Error(Status::BadArgument, "shared segment '" + name +
                                           "' already exists (unlink it first, or create with KILN_SHM_REPLACE)");
    errno = err;
    io_fail(name, "cannot name it " + path + ": " + errno_text());
  }
  if (!replace) ::unlink(temp.c_str());
  return a;
}

Array open(const std::string& name, bool read_only) {
  const std::string path = path_of(name);
  Fd f;
  f.fd = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW);
  if (f.fd < 0) {
    if (errno == ENOENT) io_fail(name, "there is no such segment (" + path + ")");
    io_fail(name, "cannot open " + path + ": " + errno_text());
  }
  struct stat st;
  if (::fstat(f.fd, &st) != 0) io_fail(name, "cannot stat: " + errno_text());
  if (!S_ISREG(st.st_mode)) io_fail(name, "not a shared memory segment");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // The header, read as hostile input, before anything is mapped.
  unsigned char pre[npy::kPreambleMax] = {};
  ssize_t got = ::pread(f.fd, pre, sizeof pre, 0);
  if (got < 0) io_fail(name, "cannot read: " + errno_text());
  const std::string label = "shared segment '" + name + "'";
  size_t dict_len = 0;
  size_t dict_offset = npy::parse_preamble(pre, static_cast<size_t>(got), size, label, dict_len);
  std::string dict(dict_len, '\0');
  if (dict_len && ::pread(f.fd, dict.data(), dict_len, static_cast<off_t>(dict_offset)) != static_cast<ssize_t>(dict_len))
    io_fail(name, "cannot read its header: " + errno_text());
  NpyHeader h = npy::parse_header(pre[6], dict, dict_offset, size, label);
  if (h.swapped) io_fail(name, "its data is in the other byte order (" + h.descr + "): it cannot be shared as it is");
  if (h.data_offset % itemsize(h.dtype) != 0)
    io_fail(name, "its data is not aligned to the " + std::string(dtype_name(h.dtype)) + " item size");
  Shape storage = npy::storage_shape(h);
  Array a = map_array(f.fd, static_cast<size_t>(h.data_offset + h.data_bytes), read_only, h.data_offset, h.dtype,
                      storage, {}, name);
  return npy::view(a, h);
}

void unlink(const std::string& name) {
  const std::string path = path_of(name);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) io_fail(name, "there is no such segment (" + path + ")");
    io_fail(name, "cannot remove " + path + ": " + errno_text());
  }
}

void remove_listed(const std::string& name) {
  if (name.rfind(kTempPrefix, 0) != 0 || name.find('/') != std::string::npos) return unlink(name);
  const std::string path = kDir + name;
  if (::unlink(path.c_str()) != 0) io_fail(name, "cannot remove " + path + ": " + errno_text());
}

void unlink_quietly(const std::string& name) noexcept {
  try {
    ::unlink(path_of(name).c_str());
  } catch (...) {
  }
}

std::vector<SegmentInfo> list() {
  std::vector<SegmentInfo> out;
  DIR* d = ::opendir(kDir);
  if (!d) throw Error(Status::IOError, std::string("cannot list ") + kDir + ": " + errno_text());
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    SegmentInfo s;
    s.name = name;
    struct stat st;
    if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    s.bytes = static_cast<uint64_t>(st.st_size);
    s.incomplete = name.rfind(kTempPrefix, 0) == 0;
    if (s.incomplete) {
      s.what = "incomplete: left by a create that crashed (or is running now)";
    } else {
      try {
        NpyHeader h = read_npy_header(kDir + name);
        s.npy = true;
        s.what = std::string(dtype_name(h.dtype)) + " " + shape_str(h.shape);
      } catch (const Error& err) {
        s.what = std::string("not a .npy image: ") + err.what();
      }
    }
    out.push_back(std::move(s));
  }
  ::closedir(d);
  return out;
}

}  // namespace kiln::shm
