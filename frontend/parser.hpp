// Expression strings to Graph and back. The language is Python's expression syntax cut
// down to what kiln computes element-wise, so a NumPy or numexpr user can write
// "where(x > 0, sqrt(x), -x ** 2)" and mean what Python would mean.
//
//   literals    42, 1.5, .5, 1., 1e-3, 2E+5, True, False, and the reserved names inf
//               and nan (float64 infinity and NaN; they cannot name inputs). A minus
//               written directly before a number folds into it: "-1.5" is one literal,
//               and "-9223372036854775808" is int64's minimum. "-(1)" stays an op.
//   names       [A-Za-z_][A-Za-z0-9_]*: an input, or a function when followed by '('
//   functions   every named row of engine/ops.def (sqrt, arctan2, where, clip, ...), a few
//               NumPy aliases (absolute, mod, true_divide, pow, asin, acos, atan, atan2,
//               asinh, acosh, atanh) and the casts bool, int32, int64, float32, float64
//   operators   Python's precedence, loosest first: comparisons (< <= > >= == !=, never
//               chained), |, ^, &, + -, * / // %, unary - + ~, ** (right-associative,
//               tighter than a unary minus on its left: -x**2 is -(x**2); 2**-1 is fine)
//   reductions  sum prod mean std var min max any all argmin argmax, NumPy's way:
//               sum(x), sum(x, 1), sum(x, axis=(0, -1), keepdims=True), var(x, ddof=1);
//               axis is an integer, a tuple of them or None (argmin/argmax: one or None)
//   creation    zeros(shape, dtype=float64), ones, full(shape, fill_value, dtype=None),
//               zeros_like(a), ones_like, full_like(a, fill_value), arange([start,] stop
//               [, step], dtype=None), linspace(start, stop, num=50, endpoint=True),
//               eye(N, M=None, k=0), identity(n): NumPy's signatures and results. A
//               shape is an integer or a tuple: 5, (3, 4), (7,), (); dtype a name
//   random      numpy.random.Generator's methods plus seed= (required): random(size,
//               seed), uniform(low=0.0, high=1.0, size=None), normal(loc, scale, size),
//               standard_normal(size), integers(low, high=None, size), bernoulli(p,
//               size); shape= is size=. Without a size they take the expression's shape:
//               where(uniform(seed=1) < p, a, 0)
//   programs    statements separated by ';': `t = a*b; s = sum(t); t - s`. A name
//               assigned is that value in later statements; the last statement is the
//               expression's value
//   whitespace  space, tab, newline and carriage return; any other byte is an error
//
// Limits keep hostile input harmless: at most kMaxExpressionBytes of text and
// kMaxExpressionDepth levels of nesting (parentheses, calls, unary operators, powers).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "graph.hpp"

namespace kiln {

inline constexpr size_t kMaxExpressionBytes = size_t{1} << 20;
inline constexpr int kMaxExpressionDepth = 256;

// Parses `text` into `g`, appending nodes (hash-consed with those already there; each
// node's pos is the byte offset of its operator, function name, literal or name), sets
// g.roots = {root} and returns the root's id.
// Throws kiln::Error, whose offset() is the byte offset of the offending token:
//   ParseError   "parse error at position 4: unexpected ')'" (also bad bytes, malformed or
//                out-of-range numbers, chained comparisons, too long or too deep)
//   UnknownName  "unknown function 'sqr' at position 0"
//   BadArgument  "sqrt takes 1 argument, got 2 at position 0"
// On error g.roots is left as it was, but g may hold extra nodes nothing refers to.
int parse_expression(std::string_view text, Graph& g);

// A program's statements in order: name is empty for a statement that assigns nothing.
// g.roots is set to the last statement's root.
struct Statement {
  std::string name;
  int root = -1;
  int pos = 0;
};
std::vector<Statement> parse_program(std::string_view text, Graph& g);

// The subgraph under `root` as expression text that parse_expression reads back into the
// same structure: minimal parentheses, operators for ops that have a symbol, calls for the
// rest. Literals round-trip exactly (floats in shortest round-trip form, always with a
// '.', an exponent, inf or nan so that they re-read as floats; a NaN keeps its sign, not
// its payload). Shared subexpressions are written out at each use, so a heavily shared
// graph can be exponentially long as text: past kMaxExpressionBytes this throws
// BadArgument, as it does for a root that is not a node of g. Parentheses the printer
// adds (`-(0)`, where the input's `--0` had folded) can take an expression at the
// nesting limit one level past it; parse_expression then refuses the text as too deep.
std::string format_expression(const Graph& g, int root);

// The creation and random functions the language has, each as its call with NumPy's
// parameter names, optional ones with '=' ("full(shape, fill_value, dtype=)"): for
// `kiln ops` and the generated part of docs/guide.md.
std::vector<std::string> generator_signatures();

}  // namespace kiln
