// Graph: an immutable-once-built DAG of element-wise work and reductions. Nodes are hash-consed: adding
// a node equal to an existing one returns the existing id, so structurally equal
// subexpressions are one node and common-subexpression elimination comes for free.
// Node ids are topological (operands always have smaller ids).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dtype.hpp"
#include "kernels.hpp"
#include "lapack.hpp"
#include "ops.hpp"

namespace kiln {

// A literal as written: its kind decides NumPy's "Python scalar" promotion.
struct Scalar {
  Kind kind = Kind::Int;
  int64_t i = 0;   // Bool and Int
  double f = 0.0;  // Float
  static Scalar of_bool(bool v) { return {Kind::Bool, v, 0.0}; }
  static Scalar of_int(int64_t v) { return {Kind::Int, v, 0.0}; }
  static Scalar of_float(double v) { return {Kind::Float, 0, v}; }
  double as_double() const { return kind == Kind::Float ? f : static_cast<double>(i); }
};

// A literal as the expression language writes it, read back to the same bits: True/False,
// integers, floats in shortest round-trip form with a '.' or exponent, inf, nan (with its
// sign).
std::string scalar_text(const Scalar& v);

enum class NodeKind : uint8_t { Input, Literal, Op, Cast, Reduce, Generate, Linalg };

// A generator node (engine/generators.def): what it makes, as the user gave it. Made and
// checked by the functions of generate.hpp.
struct GenSpec {
  Gen gen = Gen::full;
  DType dtype = DType::Float64;
  bool dtype_like = false;  // *_like without dtype=: the operand's dtype
  // Given: `shape`. Context: none given (random nodes): it takes the shape of the loop it
  // is evaluated in, like a scalar that broadcasts, but with a value per element. Like:
  // the shape of its operand (zeros_like(x)).
  enum class ShapeFrom : uint8_t { Given, Context, Like } shape_from = ShapeFrom::Given;
  std::vector<int64_t> shape;
  // full: a = the value. arange: a, b, c = start, stop, step. linspace: a, b = start,
  // stop. uniform: low, high. normal: mean, std. integers: low, high. bernoulli: a = p.
  Scalar a, b, c;
  int64_t num = 0;  // linspace: num; eye: k
  bool endpoint = true;
  uint64_t seed = 0;
};

// A linear-algebra node (engine/linalg.def) and numpy.linalg's keyword arguments. A
// function of several results (qr, eigh, svd, lstsq) is one node per result, told apart
// by `part`; the executor computes them all in one call. Made and checked by linalg.hpp.
struct LinalgSpec {
  Linalg fn = Linalg::matmul;
  int8_t part = 0;
  lapack::QrMode qr_mode = lapack::QrMode::Reduced;
  bool full_matrices = true, compute_uv = true;  // svd
  char uplo = 'L';                               // eigh, eigvalsh
  double rcond = -1.0;                           // lstsq; < 0: None (eps * max(M, N))
  // norm: ord, axes (empty: None), keepdims.
  lapack::NormOrd ord;
  std::vector<int> axes;
  bool keepdims = false;
};

// What a Reduce node reduces over and how. Axes are kept as written (negative ones count
// from the end) and checked against the operand's dimensions when it is evaluated.
struct ReduceSpec {
  Reduction reduction = Reduction::sum;
  bool all_axes = true;  // axis=None
  uint64_t axes = 0;     // else: bit a for axis a >= 0, bit 32 + (-a - 1) for axis a < 0
  bool keepdims = false;
  int32_t ddof = 0;      // var and std only
  // For messages: what the user wrote, when the simplifier made this node from another
  // reduction (a mean of var's). Not part of the node's identity.
  int8_t written_as = -1;
  const char* name() const {
    return reduction_info(written_as >= 0 ? static_cast<Reduction>(written_as) : reduction).name;
  }

  // The axes as written (all_axes false), non-negative ones first, ascending, then -1, -2, ...
  std::vector<int> axis_list() const {
    std::vector<int> out;
    for (int bit = 0; bit < 64; ++bit)
      if (axes >> bit & 1) out.push_back(axis_of(bit));
    return out;
  }

  static constexpr int kMinAxis = -32, kMaxAxis = 31;
  static int bit_of(int axis) { return axis >= 0 ? axis : 32 + (-axis - 1); }
  static int axis_of(int bit) { return bit < 32 ? bit : -(bit - 32) - 1; }
};

struct Node {
  NodeKind kind = NodeKind::Input;
  Op op = Op::add;           // Op
  DType dtype = DType::Bool; // Cast: the target
  uint8_t nargs = 0;
  int32_t args[3] = {-1, -1, -1};
  int32_t input = -1;        // Input: index into Graph::input_names()
  Scalar value;              // Literal
  ReduceSpec reduce;         // Reduce
  GenSpec gen;               // Generate (args[0]: the operand of a Like shape)
  LinalgSpec linalg;         // Linalg
  int32_t pos = -1;          // where it was written in the expression text, for errors
};

class Graph {
 public:
  // Inputs are named; asking for the same name twice gives the same node.
  int input(std::string_view name, int pos = -1);
  int literal(Scalar value, int pos = -1);
  // Checks arity (throws BadArgument naming the op); types are checked by infer_types.
  int op(Op op, const int* args, int nargs, int pos = -1);
  int op(Op o, std::initializer_list<int> args, int pos = -1) {
    return op(o, args.begin(), static_cast<int>(args.size()), pos);
  }
  int cast(DType to, int arg, int pos = -1);
  // Throws BadArgument for argmin/argmax over several axes. (mean takes a ddof here: the
  // simplifier writes var as a mean divided by n - ddof.)
  int reduce(const ReduceSpec& spec, int arg, int pos = -1);
  // A generator; `like` is the operand whose shape (and, with dtype_like, dtype) it takes
  // when spec.shape_from is Like, else -1.
  int generate(const GenSpec& spec, int like = -1, int pos = -1);
  // A linear-algebra node over linalg_info(spec.fn).operands operands.
  int linalg(const LinalgSpec& spec, const int* args, int pos = -1);

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int id) const { return nodes_[id]; }
  const std::vector<std::string>& input_names() const { return input_names_; }
  std::vector<int> roots;  // what evaluation returns, in order

  // Which nodes `roots` reach (1) and which they do not (0), by node id.
  std::vector<char> reached(const std::vector<int>& roots) const;

  // A canonical text of the nodes the roots reach (plan-cache key; printable).
  std::string key() const;

 private:
  int intern(const Node& n);
  int with_operand(Node n, int arg, int pos);  // n with its one operand, interned
  std::vector<Node> nodes_;
  std::vector<std::string> input_names_;
  std::unordered_map<std::string, int> index_;  // structural key of a node -> id
  std::unordered_map<std::string, int> input_index_;  // input name -> index
};

// dtype of every node for the given input dtypes (NumPy 1.24 rules). A node is `weak`
// when it depends on literals only: like a Python scalar it does not upcast arrays of
// the same kind. Throws TypeError naming the op, its position and operand dtypes.
struct NodeType {
  NodeType() = default;
  NodeType(DType d, bool w, DType c) : dtype(d), weak(w), compute(c) {}
  DType dtype;     // what the node returns
  bool weak;
  DType compute;   // ops: the dtype operands are cast to (where's condition: bool);
                   // reductions: the dtype they accumulate in
  bool known = false;  // weak nodes: the value is known (see below)
  Scalar value;
};
// With `kernels`, literal-only subexpressions (`2**40`, `1e300*1`) are evaluated so that
// value-based promotion sees their values, as NumPy sees a Python scalar's; without, only
// plain literals are (enough for checking, not for planning).
std::vector<NodeType> infer_types(const Graph& g, const std::vector<DType>& input_dtypes,
                                  const simd::KernelTable* kernels = nullptr);

// A scalar in dtype `d`'s representation (8 bytes at most), converted with NumPy's astype
// semantics by the cast kernels; and back.
void store_scalar(const Scalar& v, DType d, void* out, const simd::KernelTable& kernels);
Scalar load_scalar(DType d, const void* in);

}  // namespace kiln
