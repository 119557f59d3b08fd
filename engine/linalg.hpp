// Linear-algebra nodes (engine/linalg.def): checked constructors of their specs, their
// identity and text, result dtypes (NumPy 1.24) and matmul's shape rule.
#pragma once
#include <string>

#include "array.hpp"
#include "graph.hpp"

namespace kiln {

// How many arrays the node's function returns with these arguments.
int linalg_results(const LinalgSpec& s);

// Checked specs (BadArgument naming the function and the value).
LinalgSpec qr_spec(std::string_view mode);
LinalgSpec eigh_spec(Linalg fn, std::string_view uplo);
LinalgSpec svd_spec(bool full_matrices, bool compute_uv);
LinalgSpec lstsq_spec(double rcond);
// ord: "" (None), "fro", "nuc", or the number `p` when ord_is_number.
LinalgSpec norm_spec(std::string_view ord_name, bool ord_is_number, double p, const std::vector<int>& axes,
                     bool keepdims);

// The structural key (everything that decides the result, part included).
std::string linalg_key(const LinalgSpec& s);
// The keyword arguments as the expression language writes them (", mode='r'" ...), and
// the subscript of a part of a several-result function ("[1]", or "" for one result).
std::string linalg_keywords(const LinalgSpec& s);
std::string linalg_subscript(const LinalgSpec& s);

// NumPy 1.24's dtypes. matmul: the promoted operand dtype (bool @ bool is bool, ints
// stay ints and are computed exactly). The rest: float32 when every operand is float32,
// else float64 (ints and bool too); lstsq's rank is int64.
struct LinalgTyping {
  DType compute;
  DType result;
};
LinalgTyping resolve_linalg_types(const LinalgSpec& s, const DType* operands, int n);

// numpy.matmul's result shape: 1-D operands are a row (left) or column (right) that the
// result drops; batch dimensions broadcast. ShapeMismatch names both shapes.
Shape matmul_shape(const Shape& a, const Shape& b);

}  // namespace kiln
