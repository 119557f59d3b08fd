// Evaluation of expression strings with inputs bound by name: shared by the C ABI, the
// C++ string API and the CLI. Plans are cached by text, names, dtypes and `out` dtype,
// so a repeated call skips parsing and planning.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "array.hpp"
#include "plan.hpp"

namespace kiln {

// Which statements of a program are the results: names null means every statement, in
// order (count must be their number); else the values last assigned to those names.
struct ResultNames {
  const char* const* names = nullptr;
  size_t count = 0;
};

// n values on the stack when there are a few (as string evaluations have inputs), else on
// the heap: a cached call's heap allocations were a third of its instructions.
template <class T> class FewOrMany {
 public:
  static constexpr size_t kFew = 16;
  explicit FewOrMany(size_t n) : many_(n > kFew ? n : 0), data_(n > kFew ? many_.data() : few_) {}
  FewOrMany(const FewOrMany&) = delete;
  FewOrMany& operator=(const FewOrMany&) = delete;
  T* data() { return data_; }
  T& operator[](size_t i) { return data_[i]; }

 private:
  T few_[kFew];
  std::vector<T> many_;
  T* data_;
};

// With `results` null the plan's one root is the last statement.
std::shared_ptr<const Plan> string_plan(std::string_view expr, size_t n, const char* const* names,
                                        const Array* const* arrays, const DType* out_dtype, const ResultNames* results);
// Throws UnknownName for a name the expression uses but `names` lacks, BadArgument for a
// name given twice; names it does not use are ignored. With `out` the result is written
// there and `out` is returned.
Array eval_string(std::string_view expr, size_t n, const char* const* names, const Array* const* arrays,
                  const Array* out);
std::vector<Array> eval_program(std::string_view program, size_t n, const char* const* names,
                                const Array* const* arrays, const ResultNames& results);

// The names a program reads as inputs (not those it assigns), in order of first use.
// Throws what parsing throws.
std::vector<std::string> input_names(std::string_view program);

}  // namespace kiln
