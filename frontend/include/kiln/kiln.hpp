// kiln's C++ API. Arrays (kiln::Array, array.hpp) and lazy expressions (kiln::Expr):
// operators and functions named as in the op table build a graph; nothing is computed
// until kiln::eval(), which fuses the whole expression into one parallel SIMD pass.
//
//   kiln::Array a = ..., b = ...;
//   kiln::Expr r = kiln::sqrt(a * a + b * b);
//   kiln::Array out = kiln::eval(r);       // new array
//   kiln::eval(2 * a + 1, a);              // into an existing array (may alias inputs)
//
// Errors throw kiln::Error (error.hpp). Python's `//` and `**` are floor_divide() and
// power(); `%` is remainder (floor semantics, like NumPy).
#pragma once
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <type_traits>
#include <vector>

#include "array.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "ops.hpp"

namespace kiln {

// Which axes a reduction folds: every axis (the default, NumPy's axis=None), one axis or
// several; negative axes count from the end.
struct Axes {
  bool all = true;
  std::vector<int> list;
  Axes() = default;
  Axes(int axis) : all(false), list{axis} {}
  Axes(std::initializer_list<int> axes) : all(false), list(axes) {}
};

class Expr {
 public:
  struct Node;
  Expr(const Array& array);  // an input, by reference to its buffer (no copy)
  // A literal: like a Python scalar it does not upcast arrays of its kind (NumPy 1.24).
  template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
  Expr(T value) : Expr(literal_of(value)) {}
  const std::shared_ptr<const Node>& node() const { return node_; }

  static Expr apply(Op op, std::initializer_list<Expr> args);
  static Expr cast(DType to, const Expr& arg);
  static Expr reduce(Reduction r, const Expr& arg, const Axes& axes, bool keepdims, int ddof);

 private:
  explicit Expr(std::shared_ptr<const Node> n) : node_(std::move(n)) {}
  static Expr make_literal(double f, int64_t i, Kind kind);
  template <class T> static Expr literal_of(T v) {
    if constexpr (std::is_same_v<T, bool>) return make_literal(0.0, v, Kind::Bool);
    else if constexpr (std::is_integral_v<T>) return make_literal(0.0, static_cast<int64_t>(v), Kind::Int);
    else return make_literal(static_cast<double>(v), 0, Kind::Float);
  }
  std::shared_ptr<const Node> node_;
};

// Every op of the table as a function: kiln::add(a, b), kiln::sqrt(x), kiln::where(c, x, y).
#define KILN_EXPR_FN_1(id) \
  inline Expr id(const Expr& a) { return Expr::apply(Op::id, {a}); }
#define KILN_EXPR_FN_2(id) \
  inline Expr id(const Expr& a, const Expr& b) { return Expr::apply(Op::id, {a, b}); }
#define KILN_EXPR_FN_3(id) \
  inline Expr id(const Expr& a, const Expr& b, const Expr& c) { return Expr::apply(Op::id, {a, b, c}); }
#define KILN_OP(id, name, symbol, arity, rule) KILN_EXPR_FN_##arity(id)
#include "ops.def"
#undef KILN_OP
#undef KILN_EXPR_FN_1
#undef KILN_EXPR_FN_2
#undef KILN_EXPR_FN_3

inline Expr operator+(const Expr& a, const Expr& b) { return add(a, b); }
inline Expr operator-(const Expr& a, const Expr& b) { return subtract(a, b); }
inline Expr operator*(const Expr& a, const Expr& b) { return multiply(a, b); }
inline Expr operator/(const Expr& a, const Expr& b) { return divide(a, b); }
inline Expr operator%(const Expr& a, const Expr& b) { return remainder(a, b); }
inline Expr operator-(const Expr& a) { return negative(a); }
inline Expr operator+(const Expr& a) { return a; }
inline Expr operator~(const Expr& a) { return invert(a); }
inline Expr operator&(const Expr& a, const Expr& b) { return bitwise_and(a, b); }
inline Expr operator|(const Expr& a, const Expr& b) { return bitwise_or(a, b); }
inline Expr operator^(const Expr& a, const Expr& b) { return bitwise_xor(a, b); }
inline Expr operator<(const Expr& a, const Expr& b) { return less(a, b); }
inline Expr operator<=(const Expr& a, const Expr& b) { return less_equal(a, b); }
inline Expr operator>(const Expr& a, const Expr& b) { return greater(a, b); }
inline Expr operator>=(const Expr& a, const Expr& b) { return greater_equal(a, b); }
inline Expr operator==(const Expr& a, const Expr& b) { return equal(a, b); }
inline Expr operator!=(const Expr& a, const Expr& b) { return not_equal(a, b); }

// Every reduction, with NumPy's result dtypes: kiln::sum(a * b), kiln::max(x, 0),
// kiln::mean(x, {0, 1}, true), kiln::var(x, 1, false, 1) (ddof=1), kiln::argmax(x, -1).
// They nest in expressions like any value: x - kiln::mean(x, 0) broadcasts as NumPy.
#define KILN_REDUCE_FN_0(id)                                                         \
  inline Expr id(const Expr& a, const Axes& axes = {}, bool keepdims = false) {      \
    return Expr::reduce(Reduction::id, a, axes, keepdims, 0);                        \
  }
#define KILN_REDUCE_FN_1(id)                                                                  \
  inline Expr id(const Expr& a, const Axes& axes = {}, bool keepdims = false, int ddof = 0) { \
    return Expr::reduce(Reduction::id, a, axes, keepdims, ddof);                              \
  }
#define KILN_REDUCTION(id, name, kernel, ddof) KILN_REDUCE_FN_##ddof(id)
#include "reductions.def"
#undef KILN_REDUCTION
#undef KILN_REDUCE_FN_0
#undef KILN_REDUCE_FN_1

// NumPy astype: kiln::astype(x, DType::Float32), or the named forms below.
inline Expr astype(const Expr& a, DType to) { return Expr::cast(to, a); }
inline Expr as_bool(const Expr& a) { return Expr::cast(DType::Bool, a); }
inline Expr as_int32(const Expr& a) { return Expr::cast(DType::Int32, a); }
inline Expr as_int64(const Expr& a) { return Expr::cast(DType::Int64, a); }
inline Expr as_float32(const Expr& a) { return Expr::cast(DType::Float32, a); }
inline Expr as_float64(const Expr& a) { return Expr::cast(DType::Float64, a); }

// Expression strings (the same language as the C ABI and the CLI), inputs by name.
using Bindings = std::vector<std::pair<std::string, Array>>;
Array eval(std::string_view expr, const Bindings& inputs);
void eval(std::string_view expr, const Bindings& inputs, const Array& out);
std::string explain(std::string_view expr, const Bindings& inputs);
// A program of statements separated by ';' ("t = a*b; s = sum(t); t - s"), planned as one
// graph: shared subexpressions are computed once and inputs read as few times as the
// program allows. With `results` empty, the value of every statement in order;
// otherwise the values last assigned to those names.
std::vector<Array> eval_many(std::string_view program, const Bindings& inputs,
                             const std::vector<std::string>& results = {});

// Evaluates into a new C-contiguous array.
Array eval(const Expr& e);
// Evaluates into `out` (NumPy's out=): the result must broadcast to out's shape and cast
// to its dtype by same_kind rules; `out` may alias inputs. On error `out` is untouched.
void eval(const Expr& e, const Array& out);
// Several expressions over the same inputs in one planned pass, sharing common
// subexpressions: kiln::eval({a + b, kiln::sum(a * b)}).
std::vector<Array> eval(const std::vector<Expr>& exprs);
// The plan kiln runs for `e`, as text (like a database's EXPLAIN).
std::string explain(const Expr& e);
std::string explain(const std::vector<Expr>& exprs);

// Thread budget shared by all evaluations (0 = every core).
void set_num_threads(int n);
int get_num_threads();
// The SIMD instruction set in use ("sse2", "avx2", "avx512"), and forcing one.
std::string simd_isa();
void set_simd_isa(const std::string& isa);
std::vector<std::string> available_simd_isas();
const char* version();

}  // namespace kiln
