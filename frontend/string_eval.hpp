// Evaluation of expression strings with inputs bound by name: shared by the C ABI, the
// C++ string API and the CLI. Plans are cached by text, names, dtypes and `out` dtype,
// so a repeated call skips parsing and planning.
#pragma once
#include <memory>
#include <string_view>

#include "array.hpp"
#include "plan.hpp"

namespace kiln {

std::shared_ptr<const Plan> string_plan(std::string_view expr, size_t n, const char* const* names,
                                        const Array* const* arrays, const DType* out_dtype);
// Throws UnknownName for a name the expression uses but `names` lacks, BadArgument for a
// name given twice; names it does not use are ignored. With `out` the result is written
// there and `out` is returned.
Array eval_string(std::string_view expr, size_t n, const char* const* names, const Array* const* arrays,
                  const Array* out);

}  // namespace kiln
