// The Op enum and per-op facts, generated from ops.def, plus the type rules that map
// operand dtypes to the dtype an op computes in and the dtype it returns (NumPy 1.24).
#pragma once
#include <string>

#include "dtype.hpp"

namespace kiln {

enum class Op : uint8_t {
#define KILN_OP(id, name, symbol, arity, rule) id,
#include "ops.def"
#undef KILN_OP
};
inline constexpr int kNumOps = 0
#define KILN_OP(id, name, symbol, arity, rule) +1
#include "ops.def"
#undef KILN_OP
    ;

enum class Rule : uint8_t {
  Arith,          // any dtype, result = promoted operands (bool: + is or, * is and)
  NumericNoBool,  // int or float, result = promoted operands; bool is refused as NumPy does
                  // (or would give int8/float16, which kiln has not)
  TrueDivide,     // result float: ints compute in float64
  FloatMath,      // float functions: ints compute in float64, bool is refused (NumPy: float16)
  IntOrBool,      // bitwise ops: bool or int only
  IntOnly,        // shifts: int only, result promoted (NumPy: int8 from bools)
  Compare,        // compute in promoted dtype, result bool
  Predicate,      // isnan & co: any dtype, result bool
  Where,          // where(cond, x, y): cond as bool, x and y promoted
  Round,          // round(x, decimals): int or float x, its dtype; decimals taken as an integer
};

// One line for docs and `kiln ops`.
const char* rule_description(Rule rule);

struct OpInfo {
  const char* name;
  const char* symbol;
  int arity;
  Rule rule;
};

inline constexpr OpInfo kOpInfo[] = {
#define KILN_OP(id, name, symbol, arity, rule) {name, symbol, arity, Rule::rule},
#include "ops.def"
#undef KILN_OP
};

constexpr const OpInfo& op_info(Op op) { return kOpInfo[static_cast<int>(op)]; }

// Whether a kernel exists for `op` computing in `t`: the kernel table is filled from this.
constexpr bool op_computes_in(Op op, DType t) {
  switch (op_info(op).rule) {
    case Rule::Arith: case Rule::Compare: case Rule::Predicate: case Rule::Where: return true;
    case Rule::NumericNoBool: case Rule::Round: return t != DType::Bool;
    case Rule::TrueDivide: case Rule::FloatMath: return is_float(t);
    case Rule::IntOrBool: return !is_float(t);
    case Rule::IntOnly: return !is_float(t) && t != DType::Bool;
  }
  return false;
}

// The dtypes an op node computes in and returns, given its operands' (already resolved)
// dtypes. Throws TypeError naming the op and the operand dtypes when NumPy would refuse.
struct OpTyping {
  DType compute;     // operands are cast to this (where's condition: to bool)
  DType result;
};
OpTyping resolve_op_types(Op op, const DType* operands, int n);

// --- reductions (reductions.def) ---------------------------------------------------

enum class Reduction : uint8_t {
#define KILN_REDUCTION(id, name, kernel, ddof) id,
#include "reductions.def"
#undef KILN_REDUCTION
};
inline constexpr int kNumReductions = 0
#define KILN_REDUCTION(id, name, kernel, ddof) +1
#include "reductions.def"
#undef KILN_REDUCTION
    ;

struct ReductionInfo {
  const char* name;
  bool kernel;  // runs on a reduction kernel (else rewritten by the simplifier)
  bool ddof;    // takes ddof=
};

inline constexpr ReductionInfo kReductionInfo[] = {
#define KILN_REDUCTION(id, name, kernel, ddof) {name, kernel != 0, ddof != 0},
#include "reductions.def"
#undef KILN_REDUCTION
};

constexpr const ReductionInfo& reduction_info(Reduction r) { return kReductionInfo[static_cast<int>(r)]; }

// Whether a reduction over zero elements has a value (sum 0, prod 1, any False, all True,
// mean/var/std NaN); min, max, argmin and argmax of nothing are errors, as in NumPy.
constexpr bool has_identity(Reduction r) {
  return r != Reduction::min && r != Reduction::max && r != Reduction::argmin && r != Reduction::argmax;
}

// NumPy 1.24's dtypes: the operand is cast to `accumulate`, the reduction runs in it and
// returns `result`. sum and prod of bool and ints accumulate in int64; mean, var and std
// of bool and ints in float64; any/all in bool; argmin/argmax return int64.
struct ReduceTyping {
  DType accumulate;
  DType result;
};
ReduceTyping resolve_reduce_types(Reduction r, DType operand);

// --- generators (generators.def) ----------------------------------------------------

enum class Gen : uint8_t {
#define KILN_GEN(id, name, random) id,
#include "generators.def"
#undef KILN_GEN
};
inline constexpr int kNumGens = 0
#define KILN_GEN(id, name, random) +1
#include "generators.def"
#undef KILN_GEN
    ;

struct GenInfo {
  const char* name;
  bool random;
};

inline constexpr GenInfo kGenInfo[] = {
#define KILN_GEN(id, name, random) {name, random != 0},
#include "generators.def"
#undef KILN_GEN
};

constexpr const GenInfo& gen_info(Gen g) { return kGenInfo[static_cast<int>(g)]; }

// The dtypes a generator makes (a kernel exists for each): random floats in float32 and
// float64, random integers in int32 and int64, bernoulli in bool; arange in every dtype
// but bool (as NumPy); the rest in all.
constexpr bool gen_makes(Gen g, DType t) {
  switch (g) {
    case Gen::uniform: case Gen::normal: return is_float(t);
    case Gen::integers: return t == DType::Int32 || t == DType::Int64;
    case Gen::bernoulli: return t == DType::Bool;
    case Gen::arange: return t != DType::Bool;
    default: return true;
  }
}

// --- linear algebra (linalg.def) ----------------------------------------------------

enum class Linalg : uint8_t {
#define KILN_LINALG(id, name, operands, results) id,
#include "linalg.def"
#undef KILN_LINALG
};

inline constexpr int kNumLinalg = 0
#define KILN_LINALG(id, name, operands, results) +1
#include "linalg.def"
#undef KILN_LINALG
    ;

struct LinalgInfo {
  const char* name;
  int operands;
  int results;
};

inline constexpr LinalgInfo kLinalgInfo[] = {
#define KILN_LINALG(id, name, operands, results) {name, operands, results},
#include "linalg.def"
#undef KILN_LINALG
};

constexpr const LinalgInfo& linalg_info(Linalg f) { return kLinalgInfo[static_cast<int>(f)]; }

}  // namespace kiln
