#include "graph.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "error.hpp"

namespace kiln {

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

int Graph::cast(DType to, int arg, int pos) {
  KILN_ASSERT(arg >= 0 && arg < static_cast<int>(nodes_.size()));
  Node n;
  n.kind = NodeKind::Cast;
  n.dtype = to;
  n.nargs = 1;
  n.args[0] = arg;
  n.pos = pos;
  return intern(n);
}

std::string Graph::key() const {
  std::string k;
  for (const Node& n : nodes_) {
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
    }
    for (int i = 0; i < n.nargs; ++i) k += (i ? "," : "(") + std::to_string(n.args[i]);
    k += n.nargs ? ");" : ";";
  }
  k += "->";
  for (int r : roots) k += std::to_string(r) + ",";
  return k;
}

static DType default_dtype(Kind k) {
  return k == Kind::Bool ? DType::Bool : (k == Kind::Int ? DType::Int64 : DType::Float64);
}

// NumPy 1.24 value-based casting of a Python scalar against arrays of dtype `strong`:
// a scalar of a lower or equal kind takes the array's dtype unless its value does not
// fit (int literal beyond int32, float literal beyond float32's range).
static DType resolve_weak(const Graph& g, int id, const NodeType& t, DType strong) {
  Kind wk = kind_of(t.dtype), sk = kind_of(strong);
  if (static_cast<int>(wk) > static_cast<int>(sk)) return t.dtype;
  const Node& n = g.node(id);
  if (n.kind == NodeKind::Literal) {
    if (wk == Kind::Int && strong == DType::Int32 &&
        (n.value.i < std::numeric_limits<int32_t>::min() || n.value.i > std::numeric_limits<int32_t>::max()))
      return DType::Int64;
    if (wk == Kind::Int && sk == Kind::Float) return strong;
    if (wk == Kind::Float && strong == DType::Float32 && std::isfinite(n.value.f) &&
        std::fabs(n.value.f) > std::numeric_limits<float>::max())
      return DType::Float64;
  }
  return strong;
}

std::vector<NodeType> infer_types(const Graph& g, const std::vector<DType>& input_dtypes) {
  const auto& nodes = g.nodes();
  std::vector<NodeType> types(nodes.size());
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
        break;
      }
      case NodeKind::Cast: types[id] = {n.dtype, types[n.args[0]].weak, n.dtype}; break;
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
          operands[i] = (i >= first && a.weak && any_strong) ? resolve_weak(g, n.args[i], a, strong) : a.dtype;
        }
        try {
          OpTyping t = resolve_op_types(n.op, operands, n.nargs);
          types[id] = {t.result, all_weak, t.compute};
        } catch (const Error& e) {
          throw Error(e.status(), e.what() + (n.pos >= 0 ? " at position " + std::to_string(n.pos) : ""), n.pos);
        }
        break;
      }
    }
  }
  return types;
}

}  // namespace kiln
