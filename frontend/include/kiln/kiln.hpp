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
#include <optional>
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

struct GenSpec;     // engine/graph.hpp
struct LinalgSpec;  // engine/graph.hpp

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
  // A generator node (made by the creation and random functions below); `like` is the
  // operand of *_like.
  static Expr generate(const GenSpec& spec, const Expr* like);
  // A linear-algebra node (matmul and the functions of kiln::linalg below).
  static Expr linalg(const LinalgSpec& spec, std::initializer_list<Expr> args);

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

// round(x) is round(x, 0), as NumPy's decimals=0.
inline Expr round(const Expr& a) { return round(a, 0); }

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

// A number as written: creation functions take NumPy's default dtypes from its kind
// (an int makes int64, a float float64, a bool bool), as from a Python scalar.
struct Number {
  Kind kind = Kind::Int;
  int64_t i = 0;
  double f = 0.0;
  template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
  Number(T v) {
    if constexpr (std::is_same_v<T, bool>) kind = Kind::Bool, i = v;
    else if constexpr (std::is_integral_v<T>) kind = Kind::Int, i = static_cast<int64_t>(v);
    else kind = Kind::Float, f = static_cast<double>(v);
  }
};

// Creation, as NumPy's functions of the same names. They are nodes of the expression:
// nothing is made until eval(), which fills them in parallel, and inside an expression
// they are never stored (kiln::sin(kiln::arange(n) * 0.01) is one pass).
// Bad arguments (a negative shape, step 0, ...) throw BadArgument when the node is made.
Expr zeros(const Shape& shape, DType dtype = DType::Float64);
Expr ones(const Shape& shape, DType dtype = DType::Float64);
Expr full(const Shape& shape, Number value, std::optional<DType> dtype = std::nullopt);
Expr zeros_like(const Expr& a, std::optional<DType> dtype = std::nullopt);
Expr ones_like(const Expr& a, std::optional<DType> dtype = std::nullopt);
Expr full_like(const Expr& a, Number value, std::optional<DType> dtype = std::nullopt);
Expr arange(Number stop);
Expr arange(Number start, Number stop, Number step = 1, std::optional<DType> dtype = std::nullopt);
Expr linspace(double start, double stop, int64_t num = 50, bool endpoint = true, DType dtype = DType::Float64);
Expr eye(int64_t n, std::optional<int64_t> m = std::nullopt, int64_t k = 0, DType dtype = DType::Float64);

// Random numbers from Philox4x32-10: element i depends only on the seed and i, so the
// same seed gives the same array for any thread count. Without a shape a random node
// takes the shape of the expression around it: where(random::uniform(1) < p, a, 0).
namespace random {
Expr uniform(uint64_t seed, std::optional<Shape> shape = std::nullopt, double low = 0.0, double high = 1.0,
             DType dtype = DType::Float64);
Expr normal(uint64_t seed, std::optional<Shape> shape = std::nullopt, double mean = 0.0, double stddev = 1.0,
            DType dtype = DType::Float64);
Expr integers(uint64_t seed, std::optional<Shape> shape, int64_t low, int64_t high, DType dtype = DType::Int64);
Expr bernoulli(uint64_t seed, std::optional<Shape> shape, double p);
// 0..n-1 in a random order (int64), a copy of `a` with its rows (axis 0) in a random
// order, and that done to `a` in place; deterministic from the seed like the rest.
Array permutation(uint64_t seed, int64_t n);
Array permuted(const Array& a, uint64_t seed);
void shuffle(const Array& a, uint64_t seed);
}  // namespace random

// numpy.matmul (Python's `@`): 1-D operands are a row or a column, batch dimensions
// broadcast; float32/float64 run on BLAS, integers and bool exactly. The element-wise
// work after it (kiln::relu(kiln::matmul(a, b) + bias)) runs over the product's tiles in
// the same parallel pass. Mismatched inner dimensions throw ShapeMismatch at eval().
Expr matmul(const Expr& a, const Expr& b);

// numpy.linalg on LAPACK: the same names, conventions and result dtypes (float32 stays
// float32; ints and bool compute in float64); leading dimensions are a batch. A singular
// or not positive definite matrix throws kiln::Error with Status::LinAlgError at eval().
// Functions of several results return one Expr per result; evaluating them together
// (kiln::eval({q, r})) makes one LAPACK call.
namespace linalg {
Expr solve(const Expr& a, const Expr& b);
Expr inv(const Expr& a);
Expr det(const Expr& a);
Expr cholesky(const Expr& a);
std::vector<Expr> qr(const Expr& a, std::string_view mode = "reduced");  // {Q, R}, or {R} for "r"
std::vector<Expr> eigh(const Expr& a, std::string_view uplo = "L");     // {w, v}
Expr eigvalsh(const Expr& a, std::string_view uplo = "L");
std::vector<Expr> svd(const Expr& a, bool full_matrices = true, bool compute_uv = true);  // {U, S, Vh} or {S}
// {x, residuals, rank, s}; rcond nullopt: NumPy's rcond=None.
std::vector<Expr> lstsq(const Expr& a, const Expr& b, std::optional<double> rcond = std::nullopt);
// ord: none, "fro", "nuc" or a number (inf included); axes: none, one or two.
struct Ord {
  Ord() = default;
  Ord(double p) : number(true), p(p) {}
  Ord(const char* name) : name(name) {}
  std::string name;
  bool number = false;
  double p = 0.0;
};
Expr norm(const Expr& x, Ord ord = {}, const std::vector<int>& axes = {}, bool keepdims = false);
}  // namespace linalg

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

// An array in a shared-memory segment, /dev/shm/NAME (mode 0600), that other processes
// attach to by name with no copy (kiln's SharedArray::open or kiln_shm_open, or NumPy:
// numpy.load("/dev/shm/NAME", mmap_mode="r+")). It is an Array: use it anywhere one is,
// also as eval's out. Move-only; with unlink_on_destroy the name is removed when it goes
// (processes still attached keep their mapping). Errors: BadArgument for a bad or taken
// name, IOError for a missing or foreign segment.
class SharedArray : public Array {
 public:
  static SharedArray create(const std::string& name, DType dtype, const Shape& shape, bool unlink_on_destroy = false,
                            bool replace = false);
  static SharedArray open(const std::string& name, bool read_only = false);
  static void unlink(const std::string& name);

  SharedArray(SharedArray&& other) noexcept;
  SharedArray& operator=(SharedArray&& other) noexcept;
  SharedArray(const SharedArray&) = delete;
  SharedArray& operator=(const SharedArray&) = delete;
  ~SharedArray();

  const std::string& name() const { return name_; }
  void unlink();  // removes the name now; this array stays mapped

 private:
  SharedArray(Array a, std::string name, bool unlink_on_destroy);
  std::string name_;
  bool unlink_on_destroy_ = false;
};

// Thread budget shared by all evaluations (0 = every core).
void set_num_threads(int n);
int get_num_threads();
// The SIMD instruction set in use ("sse2", "avx2", "avx512"), and forcing one.
std::string simd_isa();
void set_simd_isa(const std::string& isa);
std::vector<std::string> available_simd_isas();
const char* version();

}  // namespace kiln
