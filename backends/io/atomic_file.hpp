// A file that appears at its path whole or not at all. Bytes go to a temporary file in
// the destination's folder (same file system, so rename is atomic); commit() renames it
// over the destination, and a writer destroyed without commit() removes it. Where the
// file system allows, the temporary is unnamed (O_TMPFILE) until commit() links it, so a
// process killed while writing leaves nothing behind; elsewhere it is named
// "<path>.tmp.<pid>.<random>" and a kill leaves that. Never a half-written `path`. With `durable`, commit() also fsyncs the file before the rename and the folder
// after, so the new contents survive power loss too (NumPy does neither).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln {

class AtomicFile {
 public:
  // Creates the temporary; throws kiln::Error(Status::IOError, "<path>: <reason>").
  AtomicFile(const std::string& path, bool durable);
  ~AtomicFile();  // without commit(): removes the temporary
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Sets the temporary's size up front (so parallel writers can pwrite into place and a
  // full disk is found before the data is produced where the file system allows).
  void reserve(uint64_t size);
  void write(const void* data, size_t n);                  // appends at the current end
  // Thread-safe, any offset. A failed write throws; the writer is then only to be
  // destroyed (which removes the temporary).
  void pwrite(const void* data, size_t n, uint64_t offset);
  void commit();

  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(int err) const;
  std::string unused_name() const;
  std::string path_, tmp_;
  int fd_ = -1;
  bool durable_;
  uint64_t end_ = 0;
};

}  // namespace kiln
