#include "plan.hpp"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>

#include "error.hpp"
#include "generate.hpp"
#include "linalg.hpp"

namespace kiln {

namespace {

// Emits one Block: instructions over virtual registers (one per value), then assigns
// scratch registers by liveness. Graph nodes that are values of the evaluation (inputs,
// reductions computed by earlier steps) become the block's reads.
class BlockBuilder {
 public:
  BlockBuilder(const Graph& g, const std::vector<NodeType>& types, const std::vector<int>& node_value,
               const simd::KernelTable& k)
      : g_(g), types_(types), node_value_(node_value), kernels_(k) {}

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

  Block finish_reduce(const std::vector<int>& operands) {
    Block b = allocate(operands);
    for (int r : operands) b.results.push_back(remap(r));
    return b;
  }

  // Output k of the loop is regs[k] (of dtype from[k]) cast to to[k].
  Block finish_loop(const std::vector<int>& regs, const std::vector<DType>& from, const std::vector<DType>& to) {
    std::map<int, int> written;  // register -> the output it was retargeted to
    for (size_t k = 0; k < regs.size(); ++k) {
      int reg = regs[k], out = Instr::out(static_cast<int>(k));
      if (auto it = written.find(reg); it != written.end()) reg = it->second;
      // The instruction that makes a root writes the output itself when nothing else
      // reads the register and no cast is needed; otherwise one more copies or casts.
      auto def = std::find_if(code_.begin(), code_.end(), [&](const Instr& in) { return in.dst == reg; });
      bool read = std::any_of(code_.begin(), code_.end(), [&](const Instr& in) {
        return std::find(in.src, in.src + in.nsrc, reg) != in.src + in.nsrc;
      });
      if (reg >= kScratchBase && def != code_.end() && !read && from[k] == to[k]) {
        def->dst = out;
        written[regs[k]] = out;
      } else {
        emit_cast(reg, from[k], to[k]);
        code_.back().dst = out;
      }
    }
    return allocate();
  }

 private:
  int natural_value(int id, const Node& n) {
    if (node_value_[id] >= 0) return read(node_value_[id]);
    switch (n.kind) {
      case NodeKind::Cast: return value(n.args[0], n.dtype);  // the conversion itself
      case NodeKind::Op: {
        const NodeType& t = types_[id];
        Rule rule = op_info(n.op).rule;
        Instr in{kernels_.op[int(n.op)][int(t.compute)], -1, {-1, -1, -1, -1}, n.nargs, false, n.op, t.compute, t.dtype};
        KILN_ASSERT(in.fn);
        for (int i = 0; i < n.nargs; ++i) {
          DType want = (rule == Rule::Where && i == 0) ? DType::Bool : t.compute;
          in.src[i] = value(n.args[i], want);
        }
        in.dst = kScratchBase + next_scratch_++;
        code_.push_back(in);
        return in.dst;
      }
      default: break;  // inputs and reductions are values; literals are constants
    }
    KILN_ASSERT(false);
    return -1;
  }

  int emit_cast(int src, DType from, DType to) {
    Instr in{kernels_.cast[int(from)][int(to)], kScratchBase + next_scratch_++, {src, -1, -1, -1}, 1, true, Op::add, from, to};
    KILN_ASSERT(in.fn);
    code_.push_back(in);
    return in.dst;
  }

  int read(int value) {
    auto it = std::find(reads_.begin(), reads_.end(), value);
    if (it == reads_.end()) it = reads_.insert(reads_.end(), value);
    return kReadBase + static_cast<int>(it - reads_.begin());
  }

  int constant(const Constant& c) {
    for (size_t i = 0; i < constants_.size(); ++i)
      if (constants_[i].dtype == c.dtype && std::memcmp(constants_[i].bytes, c.bytes, 8) == 0)
        return kConstantBase + static_cast<int>(i);
    constants_.push_back(c);
    return kConstantBase + static_cast<int>(constants_.size()) - 1;
  }

  // Virtual registers: reads, constants and scratch are numbered apart until the block is
  // finished, when their counts are known. Outputs are negative and final.
  static constexpr int kReadBase = 1 << 20, kConstantBase = 2 << 20, kScratchBase = 3 << 20;

  int remap(int v) const {
    if (v < 0) return v;
    if (v >= kScratchBase) return phys_.at(v);
    if (v >= kConstantBase) return static_cast<int>(reads_.size()) + (v - kConstantBase);
    return v - kReadBase;
  }

  // `live_out`: registers read after the last instruction (a reduction's operands), which
  // must not be reused.
  Block allocate(const std::vector<int>& live_out = {}) {
    fuse_chains(live_out);
    for (Instr& in : code_) read_constants_as_scalars(in);
    Block b;
    b.reads = reads_;
    b.constants = constants_;
    std::map<int, size_t> last_use;
    for (size_t i = 0; i < code_.size(); ++i)
      for (int s = 0; s < code_[i].nsrc; ++s) last_use[code_[i].src[s]] = i;
    for (int r : live_out) last_use[r] = code_.size();
    int fixed = static_cast<int>(reads_.size() + constants_.size());
    std::vector<int> free_regs;
    int used = 0;
    for (size_t i = 0; i < code_.size(); ++i) {
      Instr in = code_[i];
      for (int s = 0; s < in.nsrc; ++s) in.src[s] = remap(in.src[s]);
      // The destination is taken before the sources are freed: a kernel never writes a
      // register it is still reading with another item size.
      if (in.dst >= 0) {
        int reg;
        if (!free_regs.empty()) {
          reg = free_regs.back();
          free_regs.pop_back();
        } else {
          reg = fixed + used++;
        }
        phys_[in.dst] = reg;
        in.dst = reg;
      }
      for (int s = 0; s < code_[i].nsrc; ++s) {
        int v = code_[i].src[s];
        if (v >= kScratchBase && last_use[v] == i &&
            std::find(free_regs.begin(), free_regs.end(), phys_[v]) == free_regs.end())
          free_regs.push_back(phys_[v]);
      }
      b.instrs.push_back(in);
    }
    b.num_scratch = used;
    return b;
  }

  // One op (not a cast, not already fused) computing in a float dtype and returning it.
  static bool float_op(const Instr& in) {
    return !in.is_cast && in.chain_position < 0 && (in.compute == DType::Float32 || in.compute == DType::Float64) &&
           in.result == in.compute;
  }
  static bool chainable(const Instr& in) { return float_op(in) && in.nsrc == 2 && simd::chain_index(in.op) >= 0; }
  // A float square(x) is multiply(x, x), the same rounding, so it fuses as one.
  static bool float_square(const Instr& in) { return float_op(in) && in.op == Op::square && in.nsrc == 1; }

  // The instruction that made scratch register r, when r is read once: it can run inside
  // its reader's instruction.
  std::optional<size_t> single_use_maker(int r, std::map<int, int>& uses, const std::map<int, size_t>& made_by) {
    auto it = made_by.find(r);
    if (r < kScratchBase || uses[r] != 1 || it == made_by.end()) return std::nullopt;
    return it->second;
  }

  // The float add/subtract/multiply/divide computing in `compute` that made r, used once,
  // with its index; a square comes as multiply(x, x).
  struct Fusable {
    Instr in;
    size_t at;
  };
  std::optional<Fusable> fusable_source(int r, DType compute, std::map<int, int>& uses,
                                        const std::map<int, size_t>& made_by) {
    std::optional<size_t> at = single_use_maker(r, uses, made_by);
    if (!at) return std::nullopt;
    Instr in = code_[*at];
    if (in.compute != compute) return std::nullopt;
    if (float_square(in)) {
      in.op = Op::multiply;
      in.src[1] = in.src[0];
      in.nsrc = 2;
    } else if (!chainable(in)) {
      return std::nullopt;
    }
    return Fusable{in, *at};
  }

  // A where(compare(..), t, u) instruction (where_compare) with t or u a float arithmetic
  // op's result used nowhere else: the op runs in the same pass (where(a > 0, a, 0.1*a)).
  void fuse_where_value(Instr& where, std::map<int, int>& uses, const std::map<int, size_t>& made_by,
                        std::vector<bool>& merged) {
    for (int branch = 0; branch < 2; ++branch) {
      std::optional<Fusable> made = fusable_source(where.src[2 + branch], where.compute, uses, made_by);
      if (!made) continue;
      const Op op = made->in.op;
      const int other = where.src[3 - branch];
      const int a = made->in.src[0], b = made->in.src[1];
      where.src[2] = branch == 0 ? a : other;
      where.src[3] = branch == 0 ? b : a;
      where.src[4] = branch == 0 ? other : b;
      where.nsrc = 5;
      where.fn = kernels_.where_compare_op[simd::compare_index(where.op)][simd::chain_index(op)][branch]
                                          [where.compute == DType::Float64];
      where.value_op = op;
      where.value_branch = branch;
      merged[made->at] = true;
      return;
    }
  }

  // second(a(s0, s1), b(s2, s3)), both operands arithmetic results used nowhere else: one
  // instruction (sqrt(a*a + b*b) then takes its root in it too: one pass in all).
  void fuse_tree(Instr& second, std::map<int, int>& uses, const std::map<int, size_t>& made_by,
                 std::vector<bool>& merged) {
    if (!chainable(second)) return;
    if (second.src[0] == second.src[1]) return;
    std::optional<Fusable> a = fusable_source(second.src[0], second.compute, uses, made_by);
    std::optional<Fusable> b = a ? fusable_source(second.src[1], second.compute, uses, made_by) : std::nullopt;
    if (!b) return;
    Instr tree = second;
    tree.op = a->in.op;
    tree.second = second.op;
    tree.value_op = b->in.op;
    tree.src[0] = a->in.src[0];
    tree.src[1] = a->in.src[1];
    tree.src[2] = b->in.src[0];
    tree.src[3] = b->in.src[1];
    tree.nsrc = 4;
    tree.chain_position = 0;
    tree.value_branch = 0;
    tree.fn = kernels_.tree[simd::chain_index(tree.op)][simd::chain_index(tree.second)][simd::chain_index(tree.value_op)]
                          [second.compute == DType::Float64];
    merged[a->at] = true;
    merged[b->at] = true;
    second = tree;
  }

  // sqrt of a chain's result used nowhere else: the chain's instruction takes the root.
  void fuse_sqrt(Instr& root, std::map<int, int>& uses, const std::map<int, size_t>& made_by,
                 std::vector<bool>& merged) {
    if (!float_op(root) || root.op != Op::sqrt || root.nsrc != 1) return;
    std::optional<size_t> at = single_use_maker(root.src[0], uses, made_by);
    if (!at) return;
    const Instr& chain = code_[*at];
    if (chain.chain_position < 0 || chain.second == Op::where || chain.sqrt_after || chain.compute != root.compute)
      return;
    Instr fused = chain;
    const int wide = chain.compute == DType::Float64 ? 1 : 0;
    const int first = simd::chain_index(chain.op), second = simd::chain_index(chain.second);
    fused.fn = chain.value_branch >= 0 ? kernels_.tree_sqrt[first][second][simd::chain_index(chain.value_op)][wide]
                                       : kernels_.chain_sqrt[first][second][chain.chain_position][wide];
    fused.dst = root.dst;
    fused.sqrt_after = true;
    root = fused;
    merged[*at] = true;
  }

  // A float add/subtract/multiply/divide whose result feeds only one more such op merges
  // into that op's instruction: one pass instead of two, and the intermediate is never
  // stored: `2*a + 3*b*c - 1.5` runs 3 instructions instead of 5, 1.2-1.4x faster on one
  // thread (`kiln bench --suite`, medians of 3 runs, AVX-512, 10^5 and 10^7). Likewise
  // where() over a float comparison used nowhere else: the condition stays a lane mask
  // (where(a > 0, a, 0.1*a) at 10^7, one thread: 0.62-0.70 -> 0.73-0.75 of the hand loop).
  // Then (fuse_tree, fuse_sqrt, fuse_where_value): two such ops feeding a third, a square
  // root after a chain or a tree, and one of where()'s values; a square counts as
  // multiply(x, x). sqrt(a*a + b*b) and where(a > 0, a, 0.1*a) run as one instruction each,
  // sin(a)**2 + cos(b)**2 as 3 instead of 5 (benchmarks/README.md, Zen 3).
  // Scratch registers are written once before allocation, so the first op's sources still
  // hold their values where the second op runs.
  void fuse_chains(const std::vector<int>& live_out) {
    std::map<int, int> uses;
    for (const Instr& in : code_)
      for (int s = 0; s < in.nsrc; ++s) ++uses[in.src[s]];
    for (int r : live_out) ++uses[r];
    std::map<int, size_t> made_by;
    std::vector<bool> merged(code_.size(), false);
    for (size_t j = 0; j < code_.size(); ++j) {
      Instr& second = code_[j];
      if (!second.is_cast && second.op == Op::where && (second.compute == DType::Float32 || second.compute == DType::Float64)) {
        std::optional<size_t> at = single_use_maker(second.src[0], uses, made_by);
        if (at) {
          const Instr& compare = code_[*at];
          if (!compare.is_cast && compare.chain_position < 0 && simd::compare_index(compare.op) >= 0 &&
              compare.compute == second.compute) {
            Instr fused = compare;
            fused.fn = kernels_.where_compare[simd::compare_index(compare.op)][compare.compute == DType::Float64];
            fused.dst = second.dst;
            fused.src[2] = second.src[1];
            fused.src[3] = second.src[2];
            fused.nsrc = 4;
            fused.result = second.result;
            fused.second = Op::where;
            fused.chain_position = 0;
            second = fused;
            merged[*at] = true;
            fuse_where_value(second, uses, made_by, merged);
          }
        }
      }
      fuse_tree(second, uses, made_by, merged);
      for (int pos = 0; pos < 2 && chainable(second); ++pos) {
        std::optional<Fusable> made = fusable_source(second.src[pos], second.compute, uses, made_by);
        if (!made) continue;
        Instr chain = made->in;
        int f = simd::chain_index(chain.op), s = simd::chain_index(second.op);
        int wide = chain.compute == DType::Float64 ? 1 : 0;
        chain.fn = kernels_.chain[f][s][pos][wide];
        chain.dst = second.dst;
        chain.src[2] = second.src[1 - pos];
        chain.nsrc = 3;
        chain.second = second.op;
        chain.chain_position = pos;
        second = chain;
        merged[made->at] = true;
      }
      fuse_sqrt(second, uses, made_by, merged);
      if (second.dst >= kScratchBase) made_by[second.dst] = j;
    }
    std::vector<Instr> kept;
    for (size_t i = 0; i < code_.size(); ++i)
      if (!merged[i]) kept.push_back(code_[i]);
    code_ = std::move(kept);
  }

  // The variant of in's kernel that reads its constant operands as scalars (simd::
  // kBinaryMasks, ...): of those whose every scalar operand is a constant register, the
  // one with the most. Trees and square roots after a chain keep their plain kernels.
  void read_constants_as_scalars(Instr& in) const {
    unsigned constants = 0;
    for (int s = 0; s < in.nsrc; ++s)
      if (in.src[s] >= kConstantBase && in.src[s] < kScratchBase) constants |= 1u << s;
    if (constants == 0 || in.is_cast || in.sqrt_after) return;
    auto pick = [&](const auto& masks, const simd::KernelFn* variants) {
      int best = -1;
      for (size_t m = 0; m < std::size(masks); ++m)
        if ((masks[m] & ~constants) == 0 && (best < 0 || std::popcount(masks[m]) > std::popcount(masks[best])))
          best = static_cast<int>(m);
      if (best >= 0 && variants[best]) in.fn = variants[best];
    };
    const int wide = in.compute == DType::Float64 ? 1 : 0;
    if (in.chain_position < 0) {
      if (in.nsrc == 2) pick(simd::kBinaryMasks, kernels_.op_scalar[int(in.op)][int(in.compute)]);
    } else if (in.second == Op::where) {
      const int compare = simd::compare_index(in.op);
      if (in.value_branch < 0) pick(simd::kWhereMasks, kernels_.where_compare_scalar[compare][wide]);
      else
        pick(simd::kWhereOpMasks,
             kernels_.where_compare_op_scalar[compare][simd::chain_index(in.value_op)][in.value_branch][wide]);
    } else if (in.value_branch < 0) {
      pick(simd::kChainMasks,
           kernels_.chain_scalar[simd::chain_index(in.op)][simd::chain_index(in.second)][in.chain_position][wide]);
    }
  }

  const Graph& g_;
  const std::vector<NodeType>& types_;
  const std::vector<int>& node_value_;
  const simd::KernelTable& kernels_;
  int next_scratch_ = 0;
  std::map<std::pair<int, DType>, int> memo_;
  std::vector<int> reads_;
  std::vector<Constant> constants_;
  std::vector<Instr> code_;
  std::map<int, int> phys_;
};

// The reduction kernel a reduction runs on: mean is a sum divided at the end.
Reduction kernel_reduction(Reduction r) { return r == Reduction::mean ? Reduction::sum : r; }

// The bools a sum may count in place of its operand node `id`: the operand itself (sum(a >
// 0), sum(b)) or the bools at the bottom of a chain of casts (mean(b), sum(int32(b)),
// mean(int32(b)): a cast of 0 or 1 is 0 or 1), else -1. Not a literal's (sum(True)):
// there is nothing to gain, and constant registers stay on the paths they had.
int counted_bools(const Graph& g, const std::vector<NodeType>& types, int id) {
  int bools = -1;
  for (int at = id;; at = g.node(at).args[0]) {
    if (g.node(at).kind == NodeKind::Literal) return -1;
    if (types[at].dtype == DType::Bool) bools = at;
    if (g.node(at).kind != NodeKind::Cast) return bools;
  }
}

std::string axes_text(const ReduceSpec& s) {
  if (s.all_axes) return "all axes";
  std::string t = "axis (";
  int count = 0;
  for (int bit = 0; bit < 64; ++bit)
    if (s.axes >> bit & 1) t += (count++ ? ", " : "") + std::to_string(ReduceSpec::axis_of(bit));
  return t + (count == 1 ? ",)" : ")");
}

}  // namespace

std::shared_ptr<const Plan> build_plan(const Graph& given, const std::vector<DType>& input_dtypes,
                                       std::optional<DType> out_dtype, const simd::KernelTable& kernels) {
  KILN_ASSERT(!given.roots.empty() && (!out_dtype || given.roots.size() == 1));
  auto plan = std::make_shared<Plan>();
  plan->graph = simplify(given, infer_types(given, input_dtypes, &kernels));
  const Graph& g = plan->graph;
  std::vector<NodeType> types = infer_types(g, input_dtypes, &kernels);
  plan->input_dtypes = input_dtypes;
  plan->kernels = &kernels;

  // Nodes the roots reach; the reductions among them, in topological (id) order.
  const std::vector<char> reached = g.reached(g.roots);

  plan->node_value.assign(g.nodes().size(), -1);
  for (size_t id = 0; id < g.nodes().size(); ++id)
    if (g.node(id).kind == NodeKind::Input) plan->node_value[id] = g.node(id).input;
  plan->num_values = static_cast<int>(input_dtypes.size());
  // Generators are values too, made where they are read.
  for (size_t id = 0; id < g.nodes().size(); ++id) {
    const Node& n = g.node(id);
    if (n.kind != NodeKind::Generate || !reached[id]) continue;
    Generator gen;
    gen.node = static_cast<int>(id);
    gen.value = plan->num_values++;
    gen.dtype = types[id].dtype;
    gen.fn = kernels.generate[int(n.gen.gen)][int(gen.dtype)];
    KILN_ASSERT(gen.fn);
    gen.params = gen_params(n.gen, gen.dtype, kernels);
    gen.random = gen_info(n.gen.gen).random;
    plan->node_value[id] = gen.value;
    plan->generators.push_back(gen);
  }

  // Element-wise values made of reductions only (sqrt(var) in x / std(x)) are hoisted:
  // computed once, at the reductions' shape, not again for every element of the loop
  // that uses them.
  std::vector<char> on_input(g.nodes().size(), 0), on_reduction(g.nodes().size(), 0), hoist(g.nodes().size(), 0);
  for (size_t id = 0; id < g.nodes().size(); ++id) {
    const Node& n = g.node(id);
    // a value per element
    on_input[id] = n.kind == NodeKind::Input || n.kind == NodeKind::Generate || n.kind == NodeKind::Linalg;
    on_reduction[id] = n.kind == NodeKind::Reduce;
    if (n.kind == NodeKind::Linalg) {
      // BLAS and LAPACK take arrays: an operand that is not one already is made first.
      for (int i = 0; i < n.nargs; ++i) {
        NodeKind k = g.node(n.args[i]).kind;
        hoist[n.args[i]] |= k != NodeKind::Input && k != NodeKind::Reduce && k != NodeKind::Linalg;
      }
      continue;
    }
    if (n.kind != NodeKind::Op && n.kind != NodeKind::Cast) continue;
    for (int i = 0; i < n.nargs; ++i) {
      on_input[id] |= on_input[n.args[i]];
      on_reduction[id] |= on_reduction[n.args[i]];
    }
    if (!on_input[id]) continue;
    for (int i = 0; i < n.nargs; ++i) {
      int a = n.args[i];
      const Node& arg = g.node(a);
      hoist[a] |= (arg.kind == NodeKind::Op || arg.kind == NodeKind::Cast) && on_reduction[a] && !on_input[a];
    }
  }

  // The values of the evaluation, in order. Reductions over the same axes join one step
  // (one pass over memory for all) when the values their operands are made of are all
  // ready before that step. Their operands' shapes may still differ at execution: then
  // they run one by one.
  auto is_value = [&](int id) {
    NodeKind k = g.node(id).kind;
    return k == NodeKind::Input || k == NodeKind::Generate || k == NodeKind::Reduce || k == NodeKind::Linalg || hoist[id];
  };
  std::vector<int> made_by(g.nodes().size(), -1);  // value node -> index of its step; inputs -1
  auto ready_after = [&](int root) {  // the last step a value under root comes from
    int last = -1;
    std::vector<int> stack{root};
    std::vector<char> seen(g.nodes().size(), 0);
    while (!stack.empty()) {
      int id = stack.back();
      stack.pop_back();
      if (seen[id]) continue;
      seen[id] = 1;
      if (is_value(id)) {
        last = std::max(last, made_by[id]);
        continue;
      }
      for (int i = 0; i < g.node(id).nargs; ++i) stack.push_back(g.node(id).args[i]);
    }
    return last;
  };
  std::vector<std::vector<int>> pending;  // node ids of each step
  for (size_t id = 0; id < g.nodes().size(); ++id) {
    const Node& n = g.node(id);
    // zeros_like(x) can be made once x's shape is known: after the steps x is made of.
    if (n.kind == NodeKind::Generate && n.nargs) made_by[id] = ready_after(n.args[0]);
    if (!reached[id] || (n.kind != NodeKind::Reduce && n.kind != NodeKind::Linalg && !hoist[id])) continue;
    int join = -1;
    if (n.kind == NodeKind::Linalg) {
      // The results of one call (q and r of qr(a)) share its step.
      for (int i = 0; i < static_cast<int>(pending.size()) && join < 0; ++i) {
        const Node& first = g.node(pending[i][0]);
        if (first.kind != NodeKind::Linalg || first.nargs != n.nargs || !std::equal(n.args, n.args + n.nargs, first.args))
          continue;
        LinalgSpec a = first.linalg, b = n.linalg;
        a.part = b.part = 0;
        if (linalg_key(a) == linalg_key(b)) join = i;
      }
    }
    if (n.kind == NodeKind::Reduce) {
      for (int i = ready_after(n.args[0]) + 1; i < static_cast<int>(pending.size()) && join < 0; ++i) {
        const Node& first = g.node(pending[i][0]);
        if (first.kind == NodeKind::Reduce && first.reduce.all_axes == n.reduce.all_axes &&
            first.reduce.axes == n.reduce.axes)
          join = i;
      }
    }
    if (join < 0) {
      join = static_cast<int>(pending.size());
      pending.emplace_back();
    }
    pending[join].push_back(static_cast<int>(id));
    made_by[id] = join;
  }

  for (const std::vector<int>& nodes : pending) {
    Step st;
    BlockBuilder b(g, types, plan->node_value, kernels);
    if (g.node(nodes[0]).kind == NodeKind::Linalg) {
      st.kind = Step::Kind::Linalg;
      const Node& n = g.node(nodes[0]);
      for (int i = 0; i < n.nargs; ++i) {
        st.linalg.operands.push_back(plan->node_value[n.args[i]]);
        KILN_ASSERT(st.linalg.operands.back() >= 0);
      }
      for (int id : nodes) {
        st.linalg.nodes.push_back(id);
        st.linalg.values.push_back(plan->num_values);
        plan->node_value[id] = plan->num_values++;
      }
    } else if (g.node(nodes[0]).kind == NodeKind::Reduce) {
      st.kind = Step::Kind::Reduce;
      std::vector<int> operands;
      for (int id : nodes) {
        Fold f;
        f.node = id;
        f.spec = g.node(id).reduce;
        f.accumulate = types[id].compute;
        f.result = types[id].dtype;
        f.fns = kernels.reduce[int(kernel_reduction(f.spec.reduction))][int(f.accumulate)];
        KILN_ASSERT(f.fns.run);
        const int arg = g.node(id).args[0], bools = counted_bools(g, types, arg);
        const simd::ReduceFns& counting = kernels.count_bools[int(f.accumulate)];
        const bool count = nodes.size() == 1 && kernel_reduction(f.spec.reduction) == Reduction::sum && counting.run &&
                           bools >= 0;
        f.operand = count ? DType::Bool : f.accumulate;
        f.operand_fns = count ? counting : f.fns;
        operands.push_back(count ? b.value(bools, DType::Bool) : b.value(arg, f.accumulate));
        st.folds.push_back(f);
        if (nodes.size() > 1) {
          BlockBuilder one(g, types, plan->node_value, kernels);
          st.separate.push_back(one.finish_reduce({one.value(g.node(id).args[0], f.accumulate)}));
        }
      }
      st.body = b.finish_reduce(operands);
      for (Fold& f : st.folds) {
        f.value = plan->num_values++;
        plan->node_value[f.node] = f.value;
      }
    } else {
      int id = nodes[0];
      st.kind = Step::Kind::Loop;
      st.result = types[id].dtype;
      st.body = b.finish_loop({b.value(id, st.result)}, {st.result}, {st.result});
      st.value = plan->num_values++;
      plan->node_value[id] = st.value;
    }
    plan->steps.push_back(std::move(st));
  }

  // Outputs: a reduction's result is returned as it is; everything else is computed by
  // one loop step with an output for each.
  std::vector<int> loop_roots;
  std::vector<DType> loop_from, loop_to;
  for (size_t k = 0; k < g.roots.size(); ++k) {
    int root = g.roots[k];
    Plan::Output o;
    o.result = types[root].dtype;
    o.dtype = out_dtype.value_or(o.result);
    if (!can_cast_same_kind(o.result, o.dtype))
      throw Error(Status::TypeError, std::string("cannot write the ") + dtype_name(o.result) + " result into a " +
                                         dtype_name(o.dtype) + " output (NumPy's same_kind casting rule)");
    NodeKind rk = g.node(root).kind;
    if ((rk == NodeKind::Reduce || rk == NodeKind::Linalg) && !out_dtype) {
      o.value = plan->node_value[root];
    } else {
      loop_roots.push_back(root);
      loop_from.push_back(o.result);
      loop_to.push_back(o.dtype);
    }
    plan->outputs.push_back(o);
  }
  if (!loop_roots.empty()) {
    Step st;
    st.kind = Step::Kind::Loop;
    BlockBuilder b(g, types, plan->node_value, kernels);
    std::vector<int> regs;
    for (size_t k = 0; k < loop_roots.size(); ++k) regs.push_back(b.value(loop_roots[k], loop_from[k]));
    st.body = b.finish_loop(regs, loop_from, loop_to);
    for (size_t k = 0; k < g.roots.size(); ++k)
      if (plan->outputs[k].value < 0) st.outputs.push_back(static_cast<int>(k));
    if (loop_roots.size() > 1) {
      for (size_t k = 0; k < loop_roots.size(); ++k) {
        BlockBuilder one(g, types, plan->node_value, kernels);
        st.separate.push_back(one.finish_loop({one.value(loop_roots[k], loop_from[k])}, {loop_from[k]}, {loop_to[k]}));
      }
    }
    // A matmul right before the loop that reads its result: the loop may run over the
    // product's tiles as they are made.
    if (!plan->steps.empty()) {
      Step& last = plan->steps.back();
      if (last.kind == Step::Kind::Linalg && g.node(last.linalg.nodes[0]).linalg.fn == Linalg::matmul &&
          std::find(st.body.reads.begin(), st.body.reads.end(), last.linalg.values[0]) != st.body.reads.end())
        last.linalg.epilogue = true;
    }
    plan->steps.push_back(std::move(st));
  }
  // Short chunks: every instruction's registers stay in L1, and an instruction that
  // reads an input from memory moves on to the next input after 512 bytes, so the
  // inputs' streams are fetched nearly together as in a hand-fused loop. Measured with
  // `kiln bench` (KILN_CHUNK=...): 64 float64s runs 2*a + 3*b*c - 1.5 at 2.6x the speed
  // of 4096 on one AMD EPYC core, and 1.2-1.4x on a 16-core Xeon. The 512 bytes are of
  // the widest value: a float32 plan takes 128 elements, which halves the per-call cost
  // of every instruction (float32 at 10^5 elements: 1.2-1.5x faster, sin/cos and exp at
  // 10^7 1.2x; see the closing note of issue 5).
  size_t widest = 4;
  for (size_t id = 0; id < types.size(); ++id) {
    if (types[id].weak) continue;  // a literal becomes a constant of its user's dtype
    widest = std::max({widest, itemsize(types[id].dtype), itemsize(types[id].compute)});
  }
  int64_t chunk = static_cast<int64_t>(512 / widest);
  if (const char* forced = std::getenv("KILN_CHUNK")) chunk = std::max<int64_t>(8, std::atoll(forced));  // tuning knob
  plan->chunk = chunk;
  return plan;
}

std::string Plan::explain() const {
  std::string s;
  auto value_name = [&](int v) {
    int ni = static_cast<int>(input_dtypes.size());
    if (const Generator* gen = generator_of(v)) return gen_text(graph.node(gen->node).gen, "...");
    return v < ni ? "$" + graph.input_names()[v] : "%" + std::to_string(v - ni);
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& st = steps[i];
    const Block& b = st.body;
    std::string regs = std::to_string(b.num_registers()) + " registers (" + std::to_string(b.reads.size()) + " reads, " +
                       std::to_string(b.constants.size()) + " constants, " + std::to_string(b.num_scratch) +
                       " scratch)";
    if (st.kind == Step::Kind::Linalg) {
      const Node& n = graph.node(st.linalg.nodes[0]);
      std::string call = std::string(linalg_info(n.linalg.fn).name) + "(";
      for (size_t k = 0; k < st.linalg.operands.size(); ++k) call += (k ? ", " : "") + value_name(st.linalg.operands[k]);
      LinalgSpec whole = n.linalg;
      whole.part = 0;
      call += linalg_keywords(whole) + ")";
      std::string made;
      for (size_t k = 0; k < st.linalg.values.size(); ++k)
        made += (k ? ", " : "") + value_name(st.linalg.values[k]) + linalg_subscript(graph.node(st.linalg.nodes[k]).linalg);
      s += made + " = " + call + (st.linalg.epilogue ? ", the loop below runs over its tiles" : "") + "\n";
      continue;
    }
    if (st.kind == Step::Kind::Reduce) {
      s += "reduce over " + axes_text(st.folds[0].spec) + ", fused loop, chunk " + std::to_string(chunk) + ", " + regs +
           ", isa " + kernels->isa + "\n";
    } else {
      std::string outs = st.value >= 0 ? "-> " + value_name(st.value)
                                       : std::to_string(st.outputs.size()) + " output" + (st.outputs.size() == 1 ? "" : "s");
      s += "fused loop, chunk " + std::to_string(chunk) + ", " + regs + ", " + outs + ", isa " + kernels->isa + "\n";
    }
    auto reg = [&](int r) {
      if (r < 0) return st.value >= 0 ? value_name(st.value) : "out" + std::to_string(st.outputs[Instr::out_index(r)]);
      int nr = static_cast<int>(b.reads.size()), nc = static_cast<int>(b.constants.size());
      if (r < nr) return value_name(b.reads[r]);
      if (r < nr + nc) return std::string("c") + std::to_string(r - nr);
      return std::string("r") + std::to_string(r - nr - nc);
    };
    for (const Instr& in : b.instrs) {
      s += "  " + reg(in.dst) + " = ";
      if (in.is_cast) {
        s += std::string("cast<") + dtype_name(in.compute) + "->" + dtype_name(in.result) + ">(" + reg(in.src[0]) + ")";
      } else if (in.chain_position >= 0) {
        std::string dt = std::string("<") + dtype_name(in.compute) + ">";
        std::string first = op_info(in.op).name + dt + "(" + reg(in.src[0]) + ", " + reg(in.src[1]) + ")";
        std::string rest;
        for (int k = 2; k < in.nsrc; ++k) {
          rest += k > 2 ? ", " : "";
          if (k == 2 + in.value_branch) {
            rest += op_info(in.value_op).name + dt + "(" + reg(in.src[k]) + ", " + reg(in.src[k + 1]) + ")";
            ++k;
          } else {
            rest += reg(in.src[k]);
          }
        }
        std::string chain = op_info(in.second).name + dt + "(" + (in.chain_position == 0 ? first + ", " + rest : rest + ", " + first) + ")";
        s += in.sqrt_after ? "sqrt" + dt + "(" + chain + ")" : chain;
      } else {
        s += std::string(op_info(in.op).name) + "<" + dtype_name(in.compute) + ">(";
        for (int k = 0; k < in.nsrc; ++k) s += (k ? ", " : "") + reg(in.src[k]);
        s += ")";
      }
      s += "\n";
    }
    for (size_t k = 0; k < st.folds.size(); ++k) {
      const Fold& f = st.folds[k];
      s += "  " + value_name(f.value) + " = " + reduction_info(f.spec.reduction).name + "<" + dtype_name(f.accumulate) +
           "->" + dtype_name(f.result) + ">(" + reg(b.results[k]) +
           (f.operand != f.accumulate ? std::string(" counted as ") + dtype_name(f.operand) + "s" : "") +
           (f.spec.keepdims ? ", keepdims" : "") + (f.spec.ddof ? ", ddof " + std::to_string(f.spec.ddof) : "") + ")\n";
    }
  }
  for (size_t k = 0; k < outputs.size(); ++k)
    if (outputs[k].value >= 0) s += "out" + std::to_string(k) + " = " + value_name(outputs[k].value) + "\n";
  return s;
}

}  // namespace kiln
