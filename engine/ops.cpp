#include "ops.hpp"

#include "error.hpp"

namespace kiln {

const char* rule_description(Rule rule) {
  switch (rule) {
    case Rule::Arith: return "any dtype; result promoted";
    case Rule::NumericNoBool: return "int or float; result promoted";
    case Rule::TrueDivide: return "result float (ints in float64)";
    case Rule::FloatMath: return "float math (ints in float64)";
    case Rule::IntOrBool: return "bool or int";
    case Rule::IntOnly: return "int; result promoted";
    case Rule::Compare: return "any dtypes, promoted; result bool";
    case Rule::Predicate: return "any dtype; result bool";
    case Rule::Where: return "condition as bool; x, y promoted";
    case Rule::Round: return "int or float, its dtype; decimals an integer";
  }
  return "";
}

OpTyping resolve_op_types(Op op, const DType* operands, int n) {
  const OpInfo& info = op_info(op);
  // where's condition takes no part in promotion.
  int first = info.rule == Rule::Where ? 1 : 0;
  DType p = operands[first];
  for (int i = first + 1; i < n; ++i) p = promote(p, operands[i]);
  DType compute = p;
  bool ok = true;
  switch (info.rule) {
    case Rule::Arith: case Rule::Compare: case Rule::Where: case Rule::Predicate: break;
    case Rule::NumericNoBool: ok = p != DType::Bool; break;
    case Rule::TrueDivide: compute = is_float(p) ? p : DType::Float64; break;
    case Rule::FloatMath:
      ok = p != DType::Bool;
      compute = is_float(p) ? p : DType::Float64;
      break;
    case Rule::IntOrBool: ok = !is_float(p); break;
    case Rule::IntOnly: ok = !is_float(p) && p != DType::Bool; break;
    case Rule::Round:  // the result keeps x's dtype; decimals (a number, or an array) is cast to it
      compute = operands[0];
      ok = compute != DType::Bool && (n < 2 || operands[1] != DType::Bool);
      break;
  }
  if (!ok) {
    std::string types;
    for (int i = 0; i < n; ++i) types += std::string(i ? ", " : "") + dtype_name(operands[i]);
    std::string hint = info.rule == Rule::IntOrBool ? " (it takes bool or integer operands)"
                       : info.rule == Rule::IntOnly ? " (it takes integer operands; cast bools first)"
                                                    : " (it takes integer or float operands; cast bools first)";
    throw Error(Status::TypeError,
                std::string(info.name) + ": not supported for operand dtype" + (n > 1 ? "s " : " ") + types + hint);
  }
  bool bool_result = info.rule == Rule::Compare || info.rule == Rule::Predicate;
  return {compute, bool_result ? DType::Bool : compute};
}

ReduceTyping resolve_reduce_types(Reduction r, DType operand) {
  switch (r) {
    case Reduction::sum: case Reduction::prod: {
      DType acc = is_float(operand) ? operand : DType::Int64;
      return {acc, acc};
    }
    case Reduction::mean: case Reduction::var: case Reduction::std: {
      DType acc = is_float(operand) ? operand : DType::Float64;
      return {acc, acc};
    }
    case Reduction::min: case Reduction::max: return {operand, operand};
    case Reduction::any: case Reduction::all: return {DType::Bool, DType::Bool};
    case Reduction::argmin: case Reduction::argmax: return {operand, DType::Int64};
  }
  return {operand, operand};
}

}  // namespace kiln
