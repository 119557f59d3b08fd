// kiln::SharedArray (kiln.hpp) over backends/shm.
#include "kiln/kiln.hpp"
#include "shm.hpp"

namespace kiln {

SharedArray::SharedArray(Array a, std::string name, bool unlink_on_destroy)
    : Array(std::move(a)), name_(std::move(name)), unlink_on_destroy_(unlink_on_destroy) {}

SharedArray SharedArray::create(const std::string& name, DType dtype, const Shape& shape, bool unlink_on_destroy,
                                bool replace) {
  return SharedArray(shm::create(name, dtype, shape, replace), name, unlink_on_destroy);
}

SharedArray SharedArray::open(const std::string& name, bool read_only) {
  return SharedArray(shm::open(name, read_only), name, false);
}

void SharedArray::unlink(const std::string& name) { shm::unlink(name); }

void SharedArray::unlink() {
  unlink_on_destroy_ = false;
  shm::unlink(name_);
}

SharedArray::SharedArray(SharedArray&& other) noexcept
    : Array(std::move(static_cast<Array&>(other))), name_(std::move(other.name_)),
      unlink_on_destroy_(other.unlink_on_destroy_) {
  other.unlink_on_destroy_ = false;
}

SharedArray& SharedArray::operator=(SharedArray&& other) noexcept {
  if (this != &other) {
    if (unlink_on_destroy_) ::kiln::shm::unlink_quietly(name_);
    static_cast<Array&>(*this) = std::move(static_cast<Array&>(other));
    name_ = std::move(other.name_);
    unlink_on_destroy_ = other.unlink_on_destroy_;
    other.unlink_on_destroy_ = false;
  }
  return *this;
}

SharedArray::~SharedArray() {
  if (unlink_on_destroy_) shm::unlink_quietly(name_);
}

}  // namespace kiln
