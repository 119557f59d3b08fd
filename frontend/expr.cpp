// kiln::Expr: C++ expression trees, turned into a hash-consed Graph at eval() time and
// run through the same plan cache as expression strings.
#include <atomic>
#include <cstring>
#include <memory>
#include <optional>
#include <unordered_map>

#include "execute.hpp"
#include "generate.hpp"
#include "linalg.hpp"
#include "permutation.hpp"
#include "kiln/kiln.h"
#include "kiln/kiln.hpp"
#include "parser.hpp"
#include "plan_cache.hpp"
#include "string_eval.hpp"
#include "runtime.hpp"

namespace kiln {

namespace {
struct Evaluation;
}

struct Expr::Node {
  NodeKind kind;
  Op op = Op::add;
  DType dtype = DType::Bool;
  Scalar value;
  ReduceSpec reduce;
  GenSpec gen;
  LinalgSpec linalg;
  Array array;
  std::vector<std::shared_ptr<const Node>> args;
  // The last evaluation of an Expr with this node as its root (see evaluation()).
  mutable std::atomic<std::shared_ptr<const Evaluation>> last;
};

Expr::Expr(const Array& array) {
  if (!array.valid()) throw Error(Status::BadArgument, "expression input is not a valid array");
  auto n = std::make_shared<Node>();
  n->kind = NodeKind::Input;
  n->array = array;
  node_ = std::move(n);
}

Expr Expr::make_literal(double f, int64_t i, Kind kind) {
  auto n = std::make_shared<Node>();
  n->kind = NodeKind::Literal;
  n->value = kind == Kind::Float ? Scalar::of_float(f) : kind == Kind::Int ? Scalar::of_int(i) : Scalar::of_bool(i != 0);
  return Expr(std::shared_ptr<const Node>(std::move(n)));
}

Expr Expr::apply(Op op, std::initializer_list<Expr> args) {
  auto n = std::make_shared<Node>();
  n->kind = NodeKind::Op;
  n->op = op;
  for (const Expr& a : args) n->args.push_back(a.node());
  if (static_cast<int>(n->args.size()) != op_info(op).arity)
    throw Error(Status::BadArgument, std::string(op_info(op).name) + " takes " + std::to_string(op_info(op).arity) +
                                         " arguments, got " + std::to_string(n->args.size()));
  return Expr(std::shared_ptr<const Node>(std::move(n)));
}

Expr Expr::cast(DType to, const Expr& arg) {
  auto n = std::make_shared<Node>();
  n->kind = NodeKind::Cast;
  n->dtype = to;
  n->args.push_back(arg.node());
  return Expr(std::shared_ptr<const Node>(std::move(n)));
}

Expr Expr::reduce(Reduction r, const Expr& arg, const Axes& axes, bool keepdims, int ddof) {
  auto n = std::make_shared<Node>();
  n->kind = NodeKind::Reduce;
  n->reduce.reduction = r;
  n->reduce.all_axes = axes.all;
  n->reduce.keepdims = keepdims;
  n->reduce.ddof = ddof;
  const char* name = reduction_info(r).name;
  for (int axis : axes.list) {
    if (axis < ReduceSpec::kMinAxis || axis > ReduceSpec::kMaxAxis)
      throw Error(Status::BadArgument, std::string(name) + ": axis " + std::to_string(axis) +
                                           " is out of range (arrays have at most 32 dimensions)");
    uint64_t bit = uint64_t{1} << ReduceSpec::bit_of(axis);
    if (n->reduce.axes & bit) throw Error(Status::BadArgument, std::string(name) + ": axis " + std::to_string(axis) + " is repeated");
    n->reduce.axes |= bit;
  }
  if (ddof != 0 && !reduction_info(r).ddof) throw Error(Status::BadArgument, std::string(name) + " takes no ddof");
  Graph check;  // argmin over a tuple: refused now, not at eval
  check.reduce(n->reduce, check.literal(Scalar::of_int(0)));
  n->args.push_back(arg.node());
  return Expr(std::shared_ptr<const Node>(std::move(n)));
}

Expr Expr::generate(const GenSpec& spec, const Expr* like) {
  auto n = std::make_shared<Node>();
  n->kind = NodeKind::Generate;
  n->gen = spec;
  if (like) n->args.push_back(like->node());
  return Expr(std::shared_ptr<const Node>(std::move(n)));
}

Expr Expr::linalg(const LinalgSpec& spec, std::initializer_list<Expr> args) {
  auto n = std::make_shared<Node>();
  n->kind = NodeKind::Linalg;
  n->linalg = spec;
  for (const Expr& a : args) n->args.push_back(a.node());
  KILN_ASSERT(static_cast<int>(n->args.size()) == linalg_info(spec.fn).operands);
  return Expr(std::shared_ptr<const Node>(std::move(n)));
}

Expr matmul(const Expr& a, const Expr& b) { return Expr::linalg(LinalgSpec{}, {a, b}); }

namespace linalg {
namespace {
LinalgSpec spec_of(Linalg fn) {
  LinalgSpec s;
  s.fn = fn;
  return s;
}
std::vector<Expr> parts(LinalgSpec s, std::initializer_list<Expr> args) {
  std::vector<Expr> out;
  for (int k = 0; k < linalg_results(s); ++k) {
    s.part = static_cast<int8_t>(k);
    out.push_back(Expr::linalg(s, args));
  }
  return out;
}
}  // namespace
Expr solve(const Expr& a, const Expr& b) { return Expr::linalg(spec_of(Linalg::solve), {a, b}); }
Expr inv(const Expr& a) { return Expr::linalg(spec_of(Linalg::inv), {a}); }
Expr det(const Expr& a) { return Expr::linalg(spec_of(Linalg::det), {a}); }
Expr cholesky(const Expr& a) { return Expr::linalg(spec_of(Linalg::cholesky), {a}); }
std::vector<Expr> qr(const Expr& a, std::string_view mode) { return parts(qr_spec(mode), {a}); }
std::vector<Expr> eigh(const Expr& a, std::string_view uplo) { return parts(eigh_spec(Linalg::eigh, uplo), {a}); }
Expr eigvalsh(const Expr& a, std::string_view uplo) { return Expr::linalg(eigh_spec(Linalg::eigvalsh, uplo), {a}); }
std::vector<Expr> svd(const Expr& a, bool full_matrices, bool compute_uv) {
  return parts(svd_spec(full_matrices, compute_uv), {a});
}
std::vector<Expr> lstsq(const Expr& a, const Expr& b, std::optional<double> rcond) {
  return parts(lstsq_spec(rcond.value_or(-1.0)), {a, b});
}
Expr norm(const Expr& x, Ord ord, const std::vector<int>& axes, bool keepdims) {
  return Expr::linalg(norm_spec(ord.name, ord.number, ord.p, axes, keepdims), {x});
}
}  // namespace linalg

namespace {
Scalar scalar_of(const Number& v) {
  return v.kind == Kind::Float ? Scalar::of_float(v.f) : v.kind == Kind::Int ? Scalar::of_int(v.i) : Scalar::of_bool(v.i != 0);
}
}  // namespace

Expr zeros(const Shape& shape, DType dtype) { return Expr::generate(full_spec(shape, Scalar::of_int(0), dtype, "zeros"), nullptr); }
Expr ones(const Shape& shape, DType dtype) { return Expr::generate(full_spec(shape, Scalar::of_int(1), dtype, "ones"), nullptr); }
Expr full(const Shape& shape, Number value, std::optional<DType> dtype) {
  return Expr::generate(full_spec(shape, scalar_of(value), dtype), nullptr);
}
Expr zeros_like(const Expr& a, std::optional<DType> dtype) { return Expr::generate(full_like_spec(Scalar::of_int(0), dtype), &a); }
Expr ones_like(const Expr& a, std::optional<DType> dtype) { return Expr::generate(full_like_spec(Scalar::of_int(1), dtype), &a); }
Expr full_like(const Expr& a, Number value, std::optional<DType> dtype) {
  return Expr::generate(full_like_spec(scalar_of(value), dtype), &a);
}
Expr arange(Number stop) { return arange(0, stop); }
Expr arange(Number start, Number stop, Number step, std::optional<DType> dtype) {
  return Expr::generate(arange_spec(scalar_of(start), scalar_of(stop), scalar_of(step), dtype), nullptr);
}
Expr linspace(double start, double stop, int64_t num, bool endpoint, DType dtype) {
  return Expr::generate(linspace_spec(start, stop, num, endpoint, dtype), nullptr);
}
Expr eye(int64_t n, std::optional<int64_t> m, int64_t k, DType dtype) {
  return Expr::generate(eye_spec(n, m, k, dtype), nullptr);
}

namespace random {
Expr uniform(uint64_t seed, std::optional<Shape> shape, double low, double high, DType dtype) {
  return Expr::generate(uniform_spec(seed, std::move(shape), low, high, dtype), nullptr);
}
Expr normal(uint64_t seed, std::optional<Shape> shape, double mean, double stddev, DType dtype) {
  return Expr::generate(normal_spec(seed, std::move(shape), mean, stddev, dtype), nullptr);
}
Expr integers(uint64_t seed, std::optional<Shape> shape, int64_t low, int64_t high, DType dtype) {
  return Expr::generate(integers_spec(seed, std::move(shape), low, high, dtype), nullptr);
}
Expr bernoulli(uint64_t seed, std::optional<Shape> shape, double p) {
  return Expr::generate(bernoulli_spec(seed, std::move(shape), p), nullptr);
}
Array permutation(uint64_t seed, int64_t n) { return kiln::permutation(seed, n); }
Array permuted(const Array& a, uint64_t seed) { return kiln::permuted(a, seed); }
void shuffle(const Array& a, uint64_t seed) { kiln::shuffle(a, seed); }
}  // namespace random

namespace {

// Arrays are the same input when they are the same view of the same buffer.
bool same_view(const Array& a, const Array& b) {
  return a.data() == b.data() && a.dtype() == b.dtype() && a.shape() == b.shape() && a.strides() == b.strides();
}

struct Lowered {
  Graph graph;
  std::vector<Array> inputs;
};

class Lowering {
 public:
  int lower(const std::shared_ptr<const Expr::Node>& n) {
    if (auto it = memo_.find(n.get()); it != memo_.end()) return it->second;
    int id = -1;
    switch (n->kind) {
      case NodeKind::Input: {
        size_t k = 0;
        while (k < out.inputs.size() && !same_view(out.inputs[k], n->array)) ++k;
        if (k == out.inputs.size()) out.inputs.push_back(n->array);
        id = out.graph.input("a" + std::to_string(k));
        break;
      }
      case NodeKind::Literal: id = out.graph.literal(n->value); break;
      case NodeKind::Cast: id = out.graph.cast(n->dtype, lower(n->args[0])); break;
      case NodeKind::Reduce: id = out.graph.reduce(n->reduce, lower(n->args[0])); break;
      case NodeKind::Generate: id = out.graph.generate(n->gen, n->args.empty() ? -1 : lower(n->args[0])); break;
      case NodeKind::Linalg: {
        int args[2];
        for (size_t i = 0; i < n->args.size(); ++i) args[i] = lower(n->args[i]);
        id = out.graph.linalg(n->linalg, args);
        break;
      }
      case NodeKind::Op: {
        int args[3];
        for (size_t i = 0; i < n->args.size(); ++i) args[i] = lower(n->args[i]);
        id = out.graph.op(n->op, args, static_cast<int>(n->args.size()));
        break;
      }
    }
    memo_[n.get()] = id;
    return id;
  }
  Lowered out;

 private:
  std::unordered_map<const Expr::Node*, int> memo_;
};

std::shared_ptr<const Plan> plan_for(const Lowered& l, std::optional<DType> out,
                                     const simd::KernelTable& kernels = Runtime::instance().kernels()) {
  std::vector<DType> dtypes;
  for (const Array& a : l.inputs) dtypes.push_back(a.dtype());
  std::string key = "g:" + l.graph.key();
  append_plan_key(key, dtypes, out ? &*out : nullptr, kernels.isa);
  return PlanCache::global().get(key, [&] { return build_plan(l.graph, dtypes, out, kernels); });
}

// What eval() of one Expr needs besides running: its graph, inputs and plan. A node is
// immutable and holds its inputs, so a root lowers to the same graph over the same arrays
// every time: kept on the root, a repeated eval(e) skips lowering, the graph's key and the
// plan cache (float32 where(x > 0, x, 0.1f * x) over 16 elements into `out`, Zen 5: 2.06-2.19
// us a call before, 0.31-0.36 after).
struct Evaluation {
  Lowered lowered;
  std::shared_ptr<const Plan> plan;
  const simd::KernelTable* kernels = nullptr;  // the set the plan's kernels come from
  std::optional<DType> out_dtype;
};

Lowered lower(const std::vector<Expr>& exprs) {
  if (exprs.empty()) throw Error(Status::BadArgument, "eval: no expressions");
  Lowering lw;
  for (const Expr& e : exprs) lw.out.graph.roots.push_back(lw.lower(e.node()));
  return std::move(lw.out);
}
Lowered lower(const Expr& e) { return lower(std::vector<Expr>{e}); }

// e's lowering and plan for an output of `out_dtype` (none: a new result): the root's
// last evaluation when it was planned for the same output dtype and instruction set.
std::shared_ptr<const Evaluation> evaluation(const Expr& e, std::optional<DType> out) {
  const Expr::Node& root = *e.node();
  const simd::KernelTable* kernels = &Runtime::instance().kernels();
  std::shared_ptr<const Evaluation> last = root.last.load();
  if (last && last->kernels == kernels && last->out_dtype == out) return last;
  auto made = std::make_shared<Evaluation>();
  made->lowered = lower(e);
  made->plan = plan_for(made->lowered, out, *kernels);
  made->kernels = kernels;
  made->out_dtype = out;
  root.last.store(made);
  return made;
}

}  // namespace

Array eval(const Expr& e) {
  std::shared_ptr<const Evaluation> ev = evaluation(e, std::nullopt);
  return execute(*ev->plan, ev->lowered.inputs, nullptr);
}

void eval(const Expr& e, const Array& out) {
  if (!out.valid()) throw Error(Status::BadArgument, "eval: out is not a valid array");
  std::shared_ptr<const Evaluation> ev = evaluation(e, out.dtype());
  execute(*ev->plan, ev->lowered.inputs, &out);
}

std::vector<Array> eval(const std::vector<Expr>& exprs) {
  Lowered l = lower(exprs);
  return execute_all(*plan_for(l, std::nullopt), l.inputs);
}

std::string explain(const Expr& e) {
  Lowered l = lower(e);
  return plan_for(l, std::nullopt)->explain();
}

std::string explain(const std::vector<Expr>& exprs) {
  Lowered l = lower(exprs);
  return plan_for(l, std::nullopt)->explain();
}

namespace {
// Sets g.roots to the statements a caller asked for.
void select_results(const std::vector<Statement>& program, const ResultNames& results, Graph& g) {
  g.roots.clear();
  if (!results.names) {
    if (results.count != program.size())
      throw Error(Status::BadArgument, "the program has " + std::to_string(program.size()) + " statement" +
                                           (program.size() == 1 ? "" : "s") + " but " + std::to_string(results.count) +
                                           " result" + (results.count == 1 ? " was" : "s were") + " asked for");
    for (const Statement& st : program) g.roots.push_back(st.root);
    return;
  }
  if (results.count == 0) throw Error(Status::BadArgument, "no results were asked for");
  for (size_t i = 0; i < results.count; ++i) {
    int root = -1;
    for (const Statement& st : program)
      if (st.name == results.names[i]) root = st.root;  // the last assignment counts
    if (root < 0)
      throw Error(Status::UnknownName, std::string("result '") + results.names[i] + "' is not assigned by the program");
    g.roots.push_back(root);
  }
}
}  // namespace

// The plan of an expression string: parsed and planned once per text, names and dtypes.
std::shared_ptr<const Plan> string_plan(std::string_view expr, size_t n, const char* const* names,
                                        const Array* const* arrays, const DType* out_dtype, const ResultNames* results) {
  FewOrMany<DType> given(n);
  const std::span<DType> given_dtypes(given.data(), n);
  // Every part length-prefixed: no text, name or result name can pass for another.
  std::string key;
  key.reserve(64 + expr.size() + 16 * n);  // grown in steps, it was three allocations a call
  key += 's';
  auto part = [&](std::string_view text) {
    key += std::to_string(text.size());
    key += ':';
    key += text;
  };
  part(expr);
  if (results) {
    key += results->names ? "r" : "*" + std::to_string(results->count);
    for (size_t i = 0; results->names && i < results->count; ++i) {
      if (!results->names[i]) throw Error(Status::BadArgument, "result name " + std::to_string(i) + " is NULL");
      part(results->names[i]);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < i; ++j)
      if (std::strcmp(names[i], names[j]) == 0)
        throw Error(Status::BadArgument, std::string("input name '") + names[i] + "' is given twice");
    key += 'n';
    part(names[i]);
    given_dtypes[i] = arrays[i]->dtype();
  }
  const simd::KernelTable& kernels = Runtime::instance().kernels();
  append_plan_key(key, given_dtypes, out_dtype, kernels.isa);
  return PlanCache::global().get(key, [&]() -> std::shared_ptr<const Plan> {
    Graph g;
    std::vector<Statement> program = parse_program(expr, g);
    if (results) select_results(program, *results, g);
    std::vector<int> binding;
    std::vector<DType> dtypes;
    for (const std::string& name : g.input_names()) {
      size_t k = 0;
      while (k < n && name != names[k]) ++k;
      if (k == n) {
        int pos = -1;
        for (const Node& node : g.nodes())
          if (node.kind == NodeKind::Input && g.input_names()[node.input] == name && pos < 0) pos = node.pos;
        throw Error(Status::UnknownName,
                    "unknown name '" + name + "' at position " + std::to_string(pos) + " (no array was given for it)", pos);
      }
      binding.push_back(static_cast<int>(k));
      dtypes.push_back(given_dtypes[k]);
    }
    std::optional<DType> out;
    if (out_dtype) out = *out_dtype;
    auto plan = std::const_pointer_cast<Plan>(build_plan(g, dtypes, out, kernels));
    plan->binding = std::move(binding);
    return plan;
  });
}

std::vector<std::string> input_names(std::string_view program) {
  Graph g;
  parse_program(program, g);
  return g.input_names();
}

Array eval_string(std::string_view expr, size_t n, const char* const* names, const Array* const* arrays,
                  const Array* out) {
  for (size_t i = 0; i < n; ++i)
    if (!arrays[i]->valid()) throw Error(Status::BadArgument, std::string("input '") + names[i] + "' is not a valid array");
  DType out_dtype = out ? out->dtype() : DType::Bool;
  auto plan = string_plan(expr, n, names, arrays, out ? &out_dtype : nullptr, nullptr);
  std::vector<Array> inputs;
  inputs.reserve(plan->binding.size());
  for (int k : plan->binding) inputs.push_back(*arrays[k]);
  return execute(*plan, inputs, out);
}

std::vector<Array> eval_program(std::string_view program, size_t n, const char* const* names,
                                const Array* const* arrays, const ResultNames& results) {
  for (size_t i = 0; i < n; ++i)
    if (!arrays[i]->valid()) throw Error(Status::BadArgument, std::string("input '") + names[i] + "' is not a valid array");
  auto plan = string_plan(program, n, names, arrays, nullptr, &results);
  std::vector<Array> inputs;
  inputs.reserve(plan->binding.size());
  for (int k : plan->binding) inputs.push_back(*arrays[k]);
  KILN_ASSERT(plan->outputs.size() == results.count);
  return execute_all(*plan, inputs);
}

namespace {
// The bindings as the string API's lists of names and arrays.
struct BindingView {
  size_t size;
  FewOrMany<const char*> names;
  FewOrMany<const Array*> arrays;
  explicit BindingView(const Bindings& b) : size(b.size()), names(size), arrays(size) {
    for (size_t i = 0; i < size; ++i) {
      names[i] = b[i].first.c_str();
      arrays[i] = &b[i].second;
    }
  }
};
}  // namespace

Array eval(std::string_view expr, const Bindings& inputs) {
  BindingView v(inputs);
  return eval_string(expr, v.size, v.names.data(), v.arrays.data(), nullptr);
}

void eval(std::string_view expr, const Bindings& inputs, const Array& out) {
  if (!out.valid()) throw Error(Status::BadArgument, "eval: out is not a valid array");
  BindingView v(inputs);
  eval_string(expr, v.size, v.names.data(), v.arrays.data(), &out);
}

std::string explain(std::string_view expr, const Bindings& inputs) {
  BindingView v(inputs);
  return string_plan(expr, v.size, v.names.data(), v.arrays.data(), nullptr, nullptr)->explain();
}

std::vector<Array> eval_many(std::string_view program, const Bindings& inputs, const std::vector<std::string>& results) {
  BindingView v(inputs);
  std::vector<const char*> wanted;
  for (const std::string& r : results) wanted.push_back(r.c_str());
  ResultNames which{results.empty() ? nullptr : wanted.data(), results.size()};
  if (results.empty()) {
    // Every statement: count them first (parsing is cached with the plan afterwards).
    Graph g;
    which.count = parse_program(program, g).size();
  }
  return eval_program(program, v.size, v.names.data(), v.arrays.data(), which);
}

void set_num_threads(int n) { Runtime::instance().set_num_threads(n); }
int get_num_threads() { return Runtime::instance().num_threads(); }
std::string simd_isa() { return Runtime::instance().kernels().isa; }
void set_simd_isa(const std::string& isa) { Runtime::instance().set_isa(isa); }
std::vector<std::string> available_simd_isas() { return simd::available_isas(); }
const char* version() { return KILN_VERSION_STRING; }

}  // namespace kiln
