// Graph -> Graph rewrites before planning (see plan.hpp). One pass in node order: node ids
// are topological, so every operand is rewritten before its users.
#include <cmath>

#include "error.hpp"
#include "plan.hpp"

namespace kiln {

namespace {

DType natural_dtype(Kind k) { return k == Kind::Bool ? DType::Bool : (k == Kind::Int ? DType::Int64 : DType::Float64); }

// A folded value as a literal of the same dtype: a literal has its kind's natural dtype,
// anything else is a cast of one (the value is exact in its dtype, so the cast is too).
int literal_of(Graph& out, DType dtype, const Scalar& value, int pos) {
  int lit = out.literal(value, pos);
  return dtype == natural_dtype(value.kind) ? lit : out.cast(dtype, lit, pos);
}

// x ** n by multiplication, for n = 2, 3, 4 in x's own dtype: exact for ints, within a
// rounding or two of pow for floats, and several times faster.
int small_power(Graph& out, int x, int n, int pos) {
  int sq = out.op(Op::square, {x}, pos);
  if (n == 2) return sq;
  if (n == 3) return out.op(Op::multiply, {sq, x}, pos);
  return out.op(Op::square, {sq}, pos);
}

}  // namespace

Graph simplify(const Graph& g, const std::vector<NodeType>& types) {
  Graph out;
  for (const std::string& name : g.input_names()) out.input(name);  // same input numbering
  const auto& nodes = g.nodes();
  std::vector<int> map(nodes.size(), -1);
  for (size_t id = 0; id < nodes.size(); ++id) {
    const Node& n = nodes[id];
    const NodeType& t = types[id];
    int args[3];
    for (int i = 0; i < n.nargs; ++i) args[i] = map[n.args[i]];
    int& m = map[id];
    switch (n.kind) {
      case NodeKind::Input: m = out.input(g.input_names()[n.input], n.pos); break;
      case NodeKind::Literal: m = out.literal(n.value, n.pos); break;
      case NodeKind::Cast: m = out.cast(n.dtype, args[0], n.pos); break;
      case NodeKind::Generate: m = out.generate(n.gen, n.nargs ? args[0] : -1, n.pos); break;
      case NodeKind::Linalg:
        // BLAS multiplies operands of one dtype: matmul's are cast to it (int32 @ float32
        // computes in float64, as NumPy).
        if (n.linalg.fn == Linalg::matmul)
          for (int i = 0; i < n.nargs; ++i)
            if (types[n.args[i]].dtype != t.compute) args[i] = out.cast(t.compute, args[i], n.pos);
        m = out.linalg(n.linalg, args, n.pos);
        break;
      case NodeKind::Op: {
        if (t.weak && t.known) {  // literals only: the value infer_types computed
          m = literal_of(out, t.dtype, t.value, n.pos);
          break;
        }
        // x * 1 where the product keeps x's dtype is x, bit for bit (-0.0 and NaN included):
        // isclose's `b * 1.0`, NumPy's idiom for making b float, costs nothing for float b.
        if (n.op == Op::multiply) {
          auto is_one = [&](int arg) {
            const NodeType& u = types[n.args[arg]];
            return u.weak && u.known && u.value.kind != Kind::Bool && u.value.as_double() == 1.0;
          };
          auto keeps_dtype = [&](int arg) {
            const NodeType& u = types[n.args[arg]];
            return !u.weak && u.dtype == t.dtype && u.dtype == t.compute;
          };
          if (is_one(1) && keeps_dtype(0)) {
            m = args[0];
            break;
          }
          if (is_one(0) && keeps_dtype(1)) {
            m = args[1];
            break;
          }
        }
        if (n.op == Op::power) {
          const NodeType& base = types[n.args[0]];
          const NodeType& e = types[n.args[1]];
          double v = e.known && e.weak && e.value.kind != Kind::Bool ? e.value.as_double() : 0.0;
          if (!base.weak && base.dtype == t.compute && (v == 2.0 || v == 3.0 || v == 4.0)) {
            m = small_power(out, args[0], static_cast<int>(v), n.pos);
            break;
          }
        }
        m = out.op(n.op, args, n.nargs, n.pos);
        break;
      }
      case NodeKind::Reduce: {
        Reduction r = n.reduce.reduction;
        if (r != Reduction::mean && r != Reduction::var && r != Reduction::std) {
          m = out.reduce(n.reduce, args[0], n.pos);
          break;
        }
        // As NumPy: mean sums bool and ints as float64; var is the mean of the squared
        // deviations from the mean, divided by n - ddof; std its square root.
        int x = is_float(types[n.args[0]].dtype) ? args[0] : out.cast(DType::Float64, args[0], n.pos);
        ReduceSpec mean = n.reduce;
        mean.reduction = Reduction::mean;
        mean.written_as = static_cast<int8_t>(r);
        if (r == Reduction::mean) {
          m = out.reduce(mean, x, n.pos);
          break;
        }
        // The centre keeps reduced axes so it broadcasts back; over all axes a plain mean
        // broadcasts as well, and is then the same node as a mean(x) written beside it.
        ReduceSpec centre = mean;
        centre.ddof = 0;
        centre.keepdims = !mean.all_axes;
        int deviation = out.op(Op::subtract, {x, out.reduce(centre, x, n.pos)}, n.pos);
        m = out.reduce(mean, out.op(Op::square, {deviation}, n.pos), n.pos);
        if (r == Reduction::std) m = out.op(Op::sqrt, {m}, n.pos);
        break;
      }
    }
  }
  for (int root : g.roots) out.roots.push_back(map[root]);
  return out;
}

}  // namespace kiln
