#include "atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "error.hpp"

namespace kiln {

std::string AtomicFile::unused_name() const {
  // pid keeps concurrent processes apart, the clock and counter keep threads and stale
  // leftovers apart; O_EXCL (or link's EEXIST) makes a collision a retry, not a clobber.
  static std::atomic<uint64_t> counter{0};
  uint64_t r = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
               (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull);
  char suffix[48];
  std::snprintf(suffix, sizeof suffix, ".tmp.%ld.%016llx", static_cast<long>(::getpid()),
                static_cast<unsigned long long>(r));
  return path_ + suffix;
}

AtomicFile::AtomicFile(const std::string& path, bool durable) : path_(path), durable_(durable) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  fd_ = ::open(dir.empty() ? "." : dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (fd_ >= 0) return;  // unnamed until commit(): tmp_ stays empty
  for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
    tmp_ = unused_name();
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    int err = errno;
    tmp_.clear();
    throw Error(Status::IOError, path_ + ": " + std::strerror(err));
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

// Only throws: several threads may be writing, so the descriptor and the temporary are
// left to the destructor (which runs once they are done).
void AtomicFile::fail(int err) const { throw Error(Status::IOError, path_ + ": " + std::strerror(err)); }

void AtomicFile::reserve(uint64_t size) {
  // fallocate finds a full disk now; where the file system cannot (it would not emulate
  // it by writing zeros, as posix_fallocate does), ftruncate.
  if (size == 0) return;
  int err = ::fallocate(fd_, 0, 0, static_cast<off_t>(size)) == 0 ? 0 : errno;
  if (err == EOPNOTSUPP || err == ENOSYS) err = ::ftruncate(fd_, static_cast<off_t>(size)) == 0 ? 0 : errno;
  if (err) fail(err);
}

void AtomicFile::pwrite(const void* data, size_t n, uint64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(w == 0 ? EIO : errno);
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

void AtomicFile::write(const void* data, size_t n) {
  pwrite(data, n, end_);
  end_ += n;
}

void AtomicFile::commit() {
  if (durable_ && ::fsync(fd_) != 0) fail(errno);
  if (tmp_.empty()) {
    // Give the unnamed file a name next to `path` (link() cannot replace a file), then
    // rename that over `path` like a named temporary.
    std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    int err = EEXIST;
    for (int attempt = 0; attempt < 16 && err == EEXIST; ++attempt) {
      tmp_ = unused_name();
      err = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp_.c_str(), AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
      if (err == ENOENT)  // no /proc: the same link by descriptor, where privileges allow
        err = ::linkat(fd_, "", AT_FDCWD, tmp_.c_str(), AT_EMPTY_PATH) == 0 ? 0 : errno;
    }
    if (err) {
      tmp_.clear();  // nothing was linked
      fail(err);
    }
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail(errno);  // the destructor removes the temporary
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail(errno);
  tmp_.clear();
  if (!durable_) return;
  // Make the rename itself durable; the data is already safe, so this is best effort.
  std::string dir = std::filesystem::path(path_).parent_path().string();
  int d = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    ::fsync(d);
    ::close(d);
  }
}

}  // namespace kiln
