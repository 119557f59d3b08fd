// Generators: nodes that make arrays from parameters alone (zeros, arange, linspace, eye,
// random numbers), usable wherever an array is, so `sin(arange(n) * 0.01)` is one fused
// pass that never stores the arange. Element i of a generator depends only on its
// parameters and i (its C-order index in the generator's own shape): the kernels run it
// over any range, so chunking and thread count never change a bit.
//
// The *_spec functions check their arguments as NumPy would and throw BadArgument (or
// TypeError for a dtype the generator cannot make) with a message naming the function and
// the value; every front end (parser, C++ builder, C ABI) goes through them.
#pragma once
#include <optional>
#include <string>

#include "array.hpp"  // Shape
#include "graph.hpp"

namespace kiln {

// dtype defaults follow NumPy: full takes the value's kind (int64, float64, bool),
// arange int64 when every argument is an integer, the others float64.
// `fn` names the function in messages (zeros, ones and full all make a full node).
GenSpec full_spec(const Shape& shape, Scalar value, std::optional<DType> dtype, const char* fn = "full");
GenSpec full_like_spec(Scalar value, std::optional<DType> dtype);  // shape (and dtype) of the operand
GenSpec arange_spec(Scalar start, Scalar stop, Scalar step, std::optional<DType> dtype);
GenSpec linspace_spec(double start, double stop, int64_t num, bool endpoint, std::optional<DType> dtype);
GenSpec eye_spec(int64_t rows, std::optional<int64_t> cols, int64_t k, std::optional<DType> dtype);
// Random nodes: without a shape they take the shape of the loop they are evaluated in.
GenSpec uniform_spec(uint64_t seed, std::optional<Shape> shape, double low, double high, std::optional<DType> dtype);
GenSpec normal_spec(uint64_t seed, std::optional<Shape> shape, double mean, double std, std::optional<DType> dtype);
GenSpec integers_spec(uint64_t seed, std::optional<Shape> shape, int64_t low, int64_t high, std::optional<DType> dtype);
GenSpec bernoulli_spec(uint64_t seed, std::optional<Shape> shape, double p);

// The kernel parameters of a spec made in `dtype` (simd::GenParams documents them).
simd::GenParams gen_params(const GenSpec& spec, DType dtype, const simd::KernelTable& kernels);

// The window [start, start + shape) of a generator with a given shape (not *_like, not a
// random node that takes its loop's shape), as a new C-contiguous array: element i of the
// window is the generator's element at the C-order index of start + i in its own shape,
// so a block of a big array is made on its own (by a Dask task, say) and is bit-identical
// to that part of the whole. Filled in parallel. BadArgument for a window that does not
// fit the generator's shape or a generator without a shape of its own.
Array generate_window(const GenSpec& spec, const Shape& start, const Shape& shape);

// Structural identity (the graph's hash-consing and plan-cache key): every field that
// changes a value.
std::string gen_key(const GenSpec& spec);
// The call that parses back into this node: "arange(0, 10, 2)", "uniform(size=(3, 4),
// low=0.0, high=1.0, seed=7)". `like` is the operand's text for *_like.
std::string gen_text(const GenSpec& spec, const std::string& like);

}  // namespace kiln
