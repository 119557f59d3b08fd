// An expression cut at its reductions, for a host that evaluates arrays block by block
// (kiln's Dask adapter): every part of the expression but a reduction is local to a block,
// while a reduction needs every block of its operand. The expression becomes stages: each
// reduction's operand as an expression of its own (over the inputs and earlier stages'
// results), then the result's expression over the inputs and every stage. The host
// evaluates each operand per block into partial results, combines them across blocks
// (a tree reduction), and binds the combined value to the stage's name.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "graph.hpp"

namespace kiln {

struct ReductionStage {
  std::string name;     // what later stages call its result: "_kiln_r0", "_kiln_r1", ...
  ReduceSpec spec;      // the reduction, as written
  std::string operand;  // the expression it reduces, over inputs and earlier stages
};

struct Stages {
  std::vector<ReductionStage> reductions;  // in an order that evaluates operands first
  std::string result;                      // over inputs and every stage's name
};

// The stages of an expression or program (its last statement). A reduction written twice
// is one stage. Names of stages never collide with the expression's inputs. Throws what
// parsing throws, and BadArgument for what no block can compute on its own: linear
// algebra and generators (a host makes those blocks itself, e.g. with generate_window).
Stages split_at_reductions(std::string_view program);

// One line per stage, fields separated by tabs, for the C ABI:
//   reduce <name> <reduction> <axes: "None" or "0,-1"> <keepdims 0|1> <ddof> <operand>
//   result <expression>
std::string stages_text(const Stages& stages);

}  // namespace kiln
