#include "plan.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>

#include "error.hpp"

namespace kiln {

namespace {

// Emits instructions over virtual registers (one per value), then assigns scratch
// registers by liveness.
class Builder {
 public:
  Builder(const Graph& g, const std::vector<DType>& in, const std::vector<NodeType>& types,
          const simd::KernelTable& k)
      : g_(g), types_(types), kernels_(k), num_inputs_(static_cast<int>(in.size())) {}

  // Register holding node `id` converted to `want`.
  int value(int id, DType want) {
    auto key = std::make_pair(id, want);
    if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    const Node& n = g_.node(id);
    int reg;
    if (n.kind == NodeKind::Literal) {
      // Scalars become constants in the dtype their use asks for (NumPy's weak scalars).
      Constant c{want, {}};
      store_scalar(n.value, want, c.bytes, kernels_);
      reg = constant(c);
    } else {
      DType natural = types_[id].dtype;
      reg = natural_value(id, n);
      if (natural != want) reg = emit_cast(reg, natural, want);
    }
    memo_[key] = reg;
    return reg;
  }

  int emit_cast(int src, DType from, DType to) {
    Instr in{kernels_.cast[int(from)][int(to)], new_vreg(), {src, -1, -1}, 1, true, Op::add, from, to};
    KILN_ASSERT(in.fn);
    code_.push_back(in);
    return in.dst;
  }

  std::shared_ptr<Plan> finish(int root_reg, DType root_dtype, DType out_dtype) {
    // The last instruction writes the output. If the root is an input or a constant, or
    // was produced earlier, or needs a cast, one more instruction copies or casts it.
    bool root_is_last = !code_.empty() && code_.back().dst == root_reg && root_dtype == out_dtype;
    if (!root_is_last) emit_cast(root_reg, root_dtype, out_dtype);
    code_.back().dst = Instr::kOut;
    auto plan = std::make_shared<Plan>();
    plan->constants = constants_;
    allocate(*plan);
    return plan;
  }

 private:
  int natural_value(int id, const Node& n) {
    switch (n.kind) {
      case NodeKind::Input: return n.input;
      case NodeKind::Cast: return value(n.args[0], n.dtype);  // the conversion itself
      case NodeKind::Op: {
        const NodeType& t = types_[id];
        Rule rule = op_info(n.op).rule;
        Instr in{kernels_.op[int(n.op)][int(t.compute)], -1, {-1, -1, -1}, n.nargs, false, n.op, t.compute, t.dtype};
        KILN_ASSERT(in.fn);
        for (int i = 0; i < n.nargs; ++i) {
          DType want = (rule == Rule::Where && i == 0) ? DType::Bool : t.compute;
          in.src[i] = value(n.args[i], want);
        }
        in.dst = new_vreg();
        code_.push_back(in);
        return in.dst;
      }
      case NodeKind::Literal: break;
    }
    KILN_ASSERT(false);
    return -1;
  }

  int constant(const Constant& c) {
    for (size_t i = 0; i < constants_.size(); ++i)
      if (constants_[i].dtype == c.dtype && std::memcmp(constants_[i].bytes, c.bytes, 8) == 0)
        return num_inputs_ + static_cast<int>(i);
    constants_.push_back(c);
    return num_inputs_ + static_cast<int>(constants_.size()) - 1;
  }

  // Virtual scratch registers are numbered from kVirtualBase so they cannot be confused
  // with inputs and constants, whose numbers are final.
  static constexpr int kVirtualBase = 1 << 20;
  int new_vreg() { return kVirtualBase + next_vreg_++; }

  void allocate(Plan& plan) {
    std::map<int, size_t> last_use;
    for (size_t i = 0; i < code_.size(); ++i)
      for (int s = 0; s < code_[i].nsrc; ++s) last_use[code_[i].src[s]] = i;
    int fixed = num_inputs_ + static_cast<int>(constants_.size());
    std::map<int, int> phys;
    std::vector<int> free_regs;
    int used = 0;
    for (size_t i = 0; i < code_.size(); ++i) {
      Instr in = code_[i];
      for (int s = 0; s < in.nsrc; ++s)
        if (in.src[s] >= kVirtualBase) in.src[s] = phys.at(in.src[s]);
      // The destination is taken before the sources are freed: a kernel never writes a
      // register it is still reading with another item size.
      if (in.dst != Instr::kOut) {
        int reg;
        if (!free_regs.empty()) {
          reg = free_regs.back();
          free_regs.pop_back();
        } else {
          reg = fixed + used++;
        }
        phys[in.dst] = reg;
        in.dst = reg;
      }
      for (int s = 0; s < code_[i].nsrc; ++s) {
        int v = code_[i].src[s];
        if (v >= kVirtualBase && last_use[v] == i &&
            std::find(free_regs.begin(), free_regs.end(), phys[v]) == free_regs.end())
          free_regs.push_back(phys[v]);
      }
      plan.instrs.push_back(in);
    }
    plan.num_scratch = used;
  }

  const Graph& g_;
  const std::vector<NodeType>& types_;
  const simd::KernelTable& kernels_;
  int num_inputs_;
  int next_vreg_ = 0;
  std::map<std::pair<int, DType>, int> memo_;
  std::vector<Constant> constants_;
  std::vector<Instr> code_;
};

}  // namespace

std::shared_ptr<const Plan> build_plan(const Graph& g, const std::vector<DType>& input_dtypes,
                                       std::optional<DType> out_dtype, const simd::KernelTable& kernels) {
  KILN_ASSERT(g.roots.size() == 1);
  std::vector<NodeType> types = infer_types(g, input_dtypes, &kernels);
  int root = g.roots[0];
  DType result = types[root].dtype;
  DType out = out_dtype.value_or(result);
  if (!can_cast_same_kind(result, out))
    throw Error(Status::TypeError, std::string("cannot write the ") + dtype_name(result) +
                                       " result into a " + dtype_name(out) +
                                       " output (NumPy's same_kind casting rule)");
  Builder b(g, input_dtypes, types, kernels);
  int reg = b.value(root, result);
  std::shared_ptr<Plan> plan = b.finish(reg, result, out);
  plan->graph = g;
  plan->input_dtypes = input_dtypes;
  plan->result_dtype = result;
  plan->out_dtype = out;
  plan->isa = kernels.isa;
  // Short chunks: every instruction's registers stay in L1, and an instruction that
  // reads an input from memory moves on to the next input after 512 bytes, so the
  // inputs' streams are fetched nearly together as in a hand-fused loop. Measured with
  // `kiln bench` (KILN_CHUNK=...): 64 runs 2*a + 3*b*c - 1.5 at 2.6x the speed of 4096
  // on one AMD EPYC core, and 1.2-1.4x on a 16-core Xeon.
  int64_t chunk = 64;
  if (const char* forced = std::getenv("KILN_CHUNK")) chunk = std::max<int64_t>(8, std::atoll(forced));  // tuning knob
  plan->chunk = chunk;
  return plan;
}

std::string Plan::explain() const {
  std::string s = "fused loop, chunk " + std::to_string(chunk) + ", " + std::to_string(num_registers()) +
                  " registers (" + std::to_string(input_dtypes.size()) + " inputs, " +
                  std::to_string(constants.size()) + " constants, " + std::to_string(num_scratch) +
                  " scratch), isa " + isa + "\n";
  auto reg = [&](int r) {
    if (r == Instr::kOut) return std::string("out");
    int ni = static_cast<int>(input_dtypes.size()), nc = static_cast<int>(constants.size());
    if (r < ni) return "$" + graph.input_names()[r];
    if (r < ni + nc) return std::string("c") + std::to_string(r - ni);
    return std::string("r") + std::to_string(r - ni - nc);
  };
  for (const Instr& in : instrs) {
    s += "  " + reg(in.dst) + " = ";
    if (in.is_cast) {
      s += std::string("cast<") + dtype_name(in.compute) + "->" + dtype_name(in.result) + ">(" + reg(in.src[0]) + ")";
    } else {
      s += std::string(op_info(in.op).name) + "<" + dtype_name(in.compute) + ">(";
      for (int i = 0; i < in.nsrc; ++i) s += (i ? ", " : "") + reg(in.src[i]);
      s += ")";
    }
    s += "\n";
  }
  return s;
}

}  // namespace kiln
