#include "graph.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "error.hpp"
#include "generate.hpp"
#include "linalg.hpp"

namespace kiln {

namespace {
std::string reduce_key(const ReduceSpec& r) {
  std::string k = reduction_info(r.reduction).name;
  if (!r.all_axes) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "@%llx;", static_cast<unsigned long long>(r.axes));  // ';': "d1" is hex too
    k += buf;
  }
  if (r.keepdims) k += "k";
  if (r.ddof) k += "d" + std::to_string(r.ddof);
  return k;
}
}  // namespace

std::string scalar_text(const Scalar& v) {
  if (v.kind == Kind::Bool) return v.i ? "True" : "False";
  if (v.kind == Kind::Int) return std::to_string(v.i);
  if (std::isnan(v.f)) return std::signbit(v.f) ? "-nan" : "nan";
  if (std::isinf(v.f)) return v.f < 0 ? "-inf" : "inf";
  char buf[40];
  std::string s(buf, std::to_chars(buf, buf + sizeof buf, v.f).ptr);  // shortest exact form
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

int Graph::intern(const Node& n) {
  // The structural key of a node names its operands by id: ids are themselves interned,
  // so equal keys mean equal subgraphs.
  std::string k;
  k.reserve(48);
  k += static_cast<char>('0' + static_cast<int>(n.kind));
  switch (n.kind) {
    case NodeKind::Input: k += std::to_string(n.input); break;
    case NodeKind::Literal: {
      k += static_cast<char>('0' + static_cast<int>(n.value.kind));
      char bits[8];
      if (n.value.kind == Kind::Float) std::memcpy(bits, &n.value.f, 8);  // keeps -0.0 and NaN apart
      else std::memcpy(bits, &n.value.i, 8);
      k.append(bits, 8);
      break;
    }
    case NodeKind::Op: k += std::to_string(static_cast<int>(n.op)); break;
    case NodeKind::Cast: k += std::to_string(static_cast<int>(n.dtype)); break;
    case NodeKind::Reduce: k += reduce_key(n.reduce); break;
    case NodeKind::Generate: k += gen_key(n.gen); break;
    case NodeKind::Linalg: k += linalg_key(n.linalg); break;
  }
  for (int i = 0; i < n.nargs; ++i) k += "," + std::to_string(n.args[i]);
  auto [it, inserted] = index_.emplace(std::move(k), static_cast<int>(nodes_.size()));
  if (inserted) nodes_.push_back(n);
  return it->second;
}

int Graph::input(std::string_view name, int pos) {
  auto [it, inserted] = input_index_.emplace(std::string(name), static_cast<int>(input_names_.size()));
  int idx = it->second;
  if (inserted) input_names_.emplace_back(name);
  Node n;
  n.kind = NodeKind::Input;
  n.input = idx;
  n.pos = pos;
  return intern(n);
}

int Graph::literal(Scalar value, int pos) {
  Node n;
  n.kind = NodeKind::Literal;
  n.value = value;
  n.pos = pos;
  return intern(n);
}

int Graph::op(Op o, const int* args, int nargs, int pos) {
  const OpInfo& info = op_info(o);
  if (nargs != info.arity)
    throw Error(Status::BadArgument, std::string(info.name) + " takes " + std::to_string(info.arity) +
                                         " argument" + (info.arity == 1 ? "" : "s") + ", got " +
                                         std::to_string(nargs), pos);
  Node n;
  n.kind = NodeKind::Op;
  n.op = o;
  n.nargs = static_cast<uint8_t>(nargs);
  for (int i = 0; i < nargs; ++i) {
    KILN_ASSERT(args[i] >= 0 && args[i] < static_cast<int>(nodes_.size()));
    n.args[i] = args[i];
  }
  n.pos = pos;
  return intern(n);
}

int Graph::with_operand(Node n, int arg, int pos) {
  KILN_ASSERT(arg >= 0 && arg < static_cast<int>(nodes_.size()));
  n.nargs = 1;
  n.args[0] = arg;
  n.pos = pos;
  return intern(n);
}

int Graph::cast(DType to, int arg, int pos) {
  Node n;
  n.kind = NodeKind::Cast;
  n.dtype = to;
  return with_operand(n, arg, pos);
}

int Graph::reduce(const ReduceSpec& spec, int arg, int pos) {
  const ReductionInfo& info = reduction_info(spec.reduction);
  std::string at = pos >= 0 ? " at position " + std::to_string(pos) : "";
  bool arg_kind = spec.reduction == Reduction::argmin || spec.reduction == Reduction::argmax;
  if (arg_kind && !spec.all_axes && __builtin_popcountll(spec.axes) != 1)
    throw Error(Status::BadArgument, std::string(info.name) + at + " takes one axis or None, not a tuple", pos);

  Node n;
  n.kind = NodeKind::Reduce;
  n.reduce = spec;
  return with_operand(n, arg, pos);
}

int Graph::generate(const GenSpec& spec, int like, int pos) {
  KILN_ASSERT((spec.shape_from == GenSpec::ShapeFrom::Like) == (like >= 0));
  Node n;
  n.kind = NodeKind::Generate;
  n.gen = spec;
  if (like < 0) {
    n.pos = pos;
    return intern(n);
  }
  return with_operand(n, like, pos);
}

int Graph::linalg(const LinalgSpec& spec, const int* args, int pos) {
  Node n;
  n.kind = NodeKind::Linalg;
  n.linalg = spec;
  n.nargs = static_cast<uint8_t>(linalg_info(spec.fn).operands);
  KILN_ASSERT(spec.part >= 0 && spec.part < linalg_results(spec));
  for (int i = 0; i < n.nargs; ++i) {
    KILN_ASSERT(args[i] >= 0 && args[i] < static_cast<int>(nodes_.size()));
    n.args[i] = args[i];
  }
  n.pos = pos;
  return intern(n);
}

std::vector<char> Graph::reached(const std::vector<int>& from) const {
  // Ids are topological: one pass from the highest id down reaches every operand.
  std::vector<char> out(nodes_.size(), 0);
  for (int r : from) out[r] = 1;
  for (size_t id = nodes_.size(); id-- > 0;)
    if (out[id])
      for (int a = 0; a < nodes_[id].nargs; ++a) out[nodes_[id].args[a]] = 1;
  return out;
}

std::string Graph::key() const {
  // Nodes in post-order from the roots (operands first, in operand order): equal
  // structures give equal keys whatever order the nodes were created in, and nodes the
  // roots do not reach (left by a failed parse or a rewrite) do not count.
  std::vector<int> id(nodes_.size(), -1);
  std::vector<std::pair<int, int>> stack;  // (node, next operand to visit)
  std::string k;
  int next = 0;
  auto emit = [&](const Node& n) {
    switch (n.kind) {
      case NodeKind::Input: k += "$" + input_names_[n.input]; break;
      case NodeKind::Literal:
        k += n.value.kind == Kind::Float ? "f" : (n.value.kind == Kind::Int ? "i" : "b");
        if (n.value.kind == Kind::Float) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%a", n.value.f);
          k += buf;
        } else {
          k += std::to_string(n.value.i);
        }
        break;
      case NodeKind::Op: k += op_info(n.op).name; break;
      case NodeKind::Cast: k += std::string("cast:") + dtype_name(n.dtype); break;
      case NodeKind::Reduce: k += reduce_key(n.reduce); break;
      case NodeKind::Generate: k += "gen:" + gen_key(n.gen); break;
      case NodeKind::Linalg: k += "linalg:" + linalg_key(n.linalg); break;
    }
    for (int a = 0; a < n.nargs; ++a) k += (a ? "," : "(") + std::to_string(id[n.args[a]]);
    k += n.nargs ? ");" : ";";
  };
  for (int root : roots) {
    if (id[root] < 0) stack.emplace_back(root, 0);
    while (!stack.empty()) {
      auto& [n, arg] = stack.back();
      if (arg < nodes_[n].nargs) {
        int child = nodes_[n].args[arg++];
        if (id[child] < 0) stack.emplace_back(child, 0);
        continue;
      }
      if (id[n] < 0) {  // a shared operand may have been finished through another path
        id[n] = next++;
        emit(nodes_[n]);
      }
      stack.pop_back();
    }
  }
  k += "->";
  for (int r : roots) k += std::to_string(id[r]) + ",";
  return k;
}

static DType default_dtype(Kind k) {
  return k == Kind::Bool ? DType::Bool : (k == Kind::Int ? DType::Int64 : DType::Float64);
}

void store_scalar(const Scalar& v, DType d, void* out, const simd::KernelTable& kernels) {
  unsigned char natural[8];
  DType from = default_dtype(v.kind);
  if (v.kind == Kind::Float) std::memcpy(natural, &v.f, 8);
  else if (v.kind == Kind::Int) std::memcpy(natural, &v.i, 8);
  else natural[0] = v.i != 0;
  const void* src[1] = {natural};
  kernels.cast[static_cast<int>(from)][static_cast<int>(d)](src, out, 1);
}

Scalar load_scalar(DType d, const void* in) {
  switch (d) {
    case DType::Bool: return Scalar::of_bool(*static_cast<const uint8_t*>(in) != 0);
    case DType::Int32: { int32_t v; std::memcpy(&v, in, 4); return Scalar::of_int(v); }
    case DType::Int64: { int64_t v; std::memcpy(&v, in, 8); return Scalar::of_int(v); }
    case DType::Float32: { float v; std::memcpy(&v, in, 4); return Scalar::of_float(v); }
    case DType::Float64: { double v; std::memcpy(&v, in, 8); return Scalar::of_float(v); }
  }
  return {};
}

namespace {

bool fits(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

// NumPy 1.24 value-based casting of a scalar (a literal, or an expression of literals
// whose value is known) against arrays of dtype `strong`: a scalar of a lower or equal
// kind takes the array's dtype unless its value needs more. Ints need int64 beside int32
// beyond int32's range, and float64 beside float32 beyond int16/uint16 (NumPy's
// min_scalar_type, promoted with float32); floats need float64 beyond float32's range.
DType resolve_weak(const NodeType& t, const Scalar* value, DType strong) {
  Kind wk = kind_of(t.dtype), sk = kind_of(strong);
  if (static_cast<int>(wk) > static_cast<int>(sk)) return t.dtype;
  if (!value) return strong;
  if (wk == Kind::Int && strong == DType::Int32 && !fits(value->i, INT32_MIN, INT32_MAX)) return DType::Int64;
  if (wk == Kind::Int && strong == DType::Float32 && !fits(value->i, -32768, 65535)) return DType::Float64;
  if (wk == Kind::Float && strong == DType::Float32 && std::isfinite(value->f) &&
      std::fabs(value->f) > std::numeric_limits<float>::max())
    return DType::Float64;
  return strong;
}

}  // namespace

std::vector<NodeType> infer_types(const Graph& g, const std::vector<DType>& input_dtypes,
                                  const simd::KernelTable* kernels) {
  const auto& nodes = g.nodes();
  std::vector<NodeType> types(nodes.size());
  // Values of weak nodes, where known (literals always; their expressions with kernels).
  std::vector<Scalar> values(nodes.size());
  std::vector<bool> known(nodes.size(), false);
  for (size_t id = 0; id < nodes.size(); ++id) {
    const Node& n = nodes[id];
    switch (n.kind) {
      case NodeKind::Input:
        KILN_ASSERT(n.input < static_cast<int>(input_dtypes.size()));
        types[id] = {input_dtypes[n.input], false, input_dtypes[n.input]};
        break;
      case NodeKind::Literal: {
        DType d = default_dtype(n.value.kind);
        types[id] = {d, true, d};
        values[id] = n.value;
        known[id] = true;
        break;
      }
      case NodeKind::Reduce: {
        // A reduction's result is an array, never weak (kiln treats 0-d arrays as strong).
        ReduceTyping t = resolve_reduce_types(n.reduce.reduction, types[n.args[0]].dtype);
        types[id] = {t.result, false, t.accumulate};
        break;
      }
      case NodeKind::Generate: {
        // An array like any input (never weak); *_like takes its operand's dtype.
        DType d = n.gen.dtype_like ? types[n.args[0]].dtype : n.gen.dtype;
        if (!gen_makes(n.gen.gen, d))
          throw Error(Status::TypeError, std::string(gen_info(n.gen.gen).name) + " cannot make " + dtype_name(d) +
                                             " arrays" + (n.pos >= 0 ? " (at position " + std::to_string(n.pos) + ")" : ""),
                      n.pos);
        types[id] = {d, false, d};
        break;
      }
      case NodeKind::Linalg: {
        // Arrays in, arrays out: never weak (a literal operand fails matmul's shape check).
        DType operands[2];
        for (int i = 0; i < n.nargs; ++i) operands[i] = types[n.args[i]].dtype;
        LinalgTyping t = resolve_linalg_types(n.linalg, operands, n.nargs);
        types[id] = {t.result, false, t.compute};
        break;
      }
      case NodeKind::Cast:
        types[id] = {n.dtype, types[n.args[0]].weak, n.dtype};
        if (kernels && known[n.args[0]]) {
          unsigned char bytes[8];
          store_scalar(values[n.args[0]], n.dtype, bytes, *kernels);
          values[id] = load_scalar(n.dtype, bytes);
          known[id] = true;
        }
        break;
      case NodeKind::Op: {
        const OpInfo& info = op_info(n.op);
        int first = info.rule == Rule::Where ? 1 : 0;  // where's condition is not promoted
        bool any_strong = false, all_weak = true;
        DType strong = DType::Bool;
        for (int i = 0; i < n.nargs; ++i) {
          const NodeType& a = types[n.args[i]];
          all_weak = all_weak && a.weak;
          if (i < first || a.weak) continue;
          strong = any_strong ? promote(strong, a.dtype) : a.dtype;
          any_strong = true;
        }
        DType operands[3];
        for (int i = 0; i < n.nargs; ++i) {
          const NodeType& a = types[n.args[i]];
          const Scalar* value = known[n.args[i]] ? &values[n.args[i]] : nullptr;
          operands[i] = (i >= first && a.weak && any_strong) ? resolve_weak(a, value, strong) : a.dtype;
        }
        try {
          OpTyping t = resolve_op_types(n.op, operands, n.nargs);
          types[id] = {t.result, all_weak, t.compute};
          if (all_weak && kernels) {
            // Evaluate the scalar expression once, with the kernels themselves.
            unsigned char in[3][8], out[8];
            const void* src[3];
            for (int i = 0; i < n.nargs; ++i) {
              DType want = (info.rule == Rule::Where && i == 0) ? DType::Bool : t.compute;
              store_scalar(values[n.args[i]], want, in[i], *kernels);
              src[i] = in[i];
            }
            kernels->op[static_cast<int>(n.op)][static_cast<int>(t.compute)](src, out, 1);
            values[id] = load_scalar(t.result, out);
            known[id] = true;
          }
        } catch (const Error& e) {
          throw Error(e.status(), e.what() + (n.pos >= 0 ? " at position " + std::to_string(n.pos) : ""), n.pos);
        }
        break;
      }
    }
  }
  for (size_t id = 0; id < nodes.size(); ++id) {
    types[id].known = known[id];
    if (known[id]) types[id].value = values[id];
  }
  return types;
}

}  // namespace kiln
