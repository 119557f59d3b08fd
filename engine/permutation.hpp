// Random orders: permutation, permuted and shuffle, from the random stream of a seed,
// made in parallel and the same for any thread count.
#pragma once
#include <cstdint>
#include <functional>

#include "array.hpp"

namespace kiln {

// A random permutation of 0..n-1 (int64) and rows of `a` (axis 0) in such an order, the
// same for any thread count: element i gets a 64-bit Philox key from (seed, i) and the
// order sorts (key, i). A copy; `a` is not changed.
Array permutation(uint64_t seed, int64_t n);
// order[0..n) = 0..n-1 sorted by (key[i], i): the permutation's sort, apart for its tests.
// keys_read, if given, is called once `key` is no longer read (it may free it).
void order_by_key(const int64_t* key, int64_t n, int64_t* order, const std::function<void()>& keys_read = {});
Array permuted(const Array& a, uint64_t seed);
// NumPy's Generator.shuffle: `a`'s rows (axis 0) permuted in place, as permuted().
void shuffle(const Array& a, uint64_t seed);

}  // namespace kiln
