#include "stages.hpp"

#include "error.hpp"
#include "parser.hpp"

namespace kiln {

namespace {

// A prefix no input name starts with, so "<prefix><k>" never names an input.
std::string stage_prefix(const std::vector<std::string>& inputs) {
  std::string prefix = "_kiln_r";
  for (bool clash = true; clash;) {
    clash = false;
    for (const std::string& name : inputs) clash = clash || name.starts_with(prefix);
    if (clash) prefix.insert(0, "_");
  }
  return prefix;
}

[[noreturn]] void not_blockwise(const Node& n, const std::string& what) {
  throw Error(Status::BadArgument, what + " at position " + std::to_string(n.pos) +
                                       " cannot be computed block by block: make it an input");
}

}  // namespace

Stages split_at_reductions(std::string_view program) {
  Graph g;
  const int root = parse_expression(program, g);
  // Only what the root reaches (a program's earlier statements may compute more).
  const std::vector<char> reached = g.reached({root});
  // The graph again, each reduction replaced by an input named after its stage. Node ids
  // are topological, so a reduction's operand is rewritten before the reduction is.
  const std::string prefix = stage_prefix(g.input_names());
  Stages stages;
  Graph local;
  std::vector<int> to_local(g.nodes().size(), -1);
  for (int id = 0; id <= root; ++id) {
    if (!reached[id]) continue;
    const Node& n = g.node(id);
    int args[3];
    for (int a = 0; a < n.nargs; ++a) args[a] = to_local[n.args[a]];
    switch (n.kind) {
      case NodeKind::Input: to_local[id] = local.input(g.input_names()[n.input], n.pos); break;
      case NodeKind::Literal: to_local[id] = local.literal(n.value, n.pos); break;
      case NodeKind::Op: to_local[id] = local.op(n.op, args, n.nargs, n.pos); break;
      case NodeKind::Cast: to_local[id] = local.cast(n.dtype, args[0], n.pos); break;
      case NodeKind::Reduce: {
        ReductionStage stage{prefix + std::to_string(stages.reductions.size()), n.reduce,
                             format_expression(local, args[0])};
        to_local[id] = local.input(stage.name, n.pos);
        stages.reductions.push_back(std::move(stage));
        break;
      }
      case NodeKind::Generate: not_blockwise(n, std::string("'") + gen_info(n.gen.gen).name + "'");
      case NodeKind::Linalg: not_blockwise(n, std::string("'") + linalg_info(n.linalg.fn).name + "'");
    }
  }
  stages.result = format_expression(local, to_local[root]);
  return stages;
}

std::string stages_text(const Stages& stages) {
  std::string text;
  for (const ReductionStage& s : stages.reductions) {
    std::string axes = s.spec.all_axes ? "None" : "";
    for (int axis : s.spec.all_axes ? std::vector<int>{} : s.spec.axis_list())
      axes += (axes.empty() ? "" : ",") + std::to_string(axis);
    text += "reduce\t" + s.name + "\t" + reduction_info(s.spec.reduction).name + "\t" + axes + "\t" +
            (s.spec.keepdims ? "1" : "0") + "\t" + std::to_string(s.spec.ddof) + "\t" + s.operand + "\n";
  }
  return text + "result\t" + stages.result + "\n";
}

}  // namespace kiln
