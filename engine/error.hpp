// kiln::Error: every failure a user can cause, with a status code (the same numbers as
// kiln_status in kiln.h) and a message naming the operands, shapes or file involved.
// KILN_ASSERT is for invariants only: no input may ever reach one.
#pragma once
#include <stdexcept>
#include <string>

namespace kiln {

enum class Status : int {
  Ok = 0,
  ParseError = 1,
  UnknownName = 2,
  ShapeMismatch = 3,
  TypeError = 4,
  BadArgument = 5,
  IOError = 6,
  OutOfMemory = 7,
  Internal = 8,
  LinAlgError = 9,  // a singular or not positive definite matrix, a LAPACK routine that did not converge
};

class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message, long offset = -1)
      : std::runtime_error(message), status_(status), offset_(offset) {}
  Status status() const { return status_; }
  // Byte offset into the expression string for parse and name errors, else -1.
  long offset() const { return offset_; }

 private:
  Status status_;
  long offset_;
};

[[noreturn]] void internal_error(const char* file, int line, const char* what);

}  // namespace kiln

#define KILN_ASSERT(cond) \
  do {                    \
    if (!(cond)) ::kiln::internal_error(__FILE__, __LINE__, #cond); \
  } while (0)
