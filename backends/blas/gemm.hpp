// numpy.matmul on BLAS: float32/float64 through cblas_sgemm/dgemm, integers and bool by an
// exact loop of their own (wrapping as NumPy's do; bool: or of ands). Operands keep their
// memory: a 2-D slice whose rows or columns are contiguous is handed to BLAS with the
// trans flag and leading dimension that describe it, and only other layouts are copied.
//
// The work is cut into tiles (a batch item, a block of rows and a block of columns of
// the result) run on kiln's arena, each by a single-threaded BLAS call (threads.hpp):
// one tile per thread for one big product (the fewest, squarest tiles: each tile packs
// its own panels of the operands; whole rows on a tie), whole batch items when there are
// enough of them.
// `after(tile)` runs on the thread that computed the tile, right after it, while the
// tile's output is still in cache: the executor runs the element-wise work that follows
// a matmul (relu(A @ B + bias)) there, in the same parallel pass.
#pragma once
#include <cstdint>
#include <functional>

#include "array.hpp"

namespace kiln::blas {

struct Tile {
  int64_t batch;       // flat index over the result's batch dimensions (C order)
  int64_t row0, row1;  // rows [row0, row1) and columns [col0, col1) of the M x N result
  int64_t col0, col1;
};

// out = a @ b. out: C-contiguous, of matmul_shape(a, b) and dtype promote(a, b); a and b
// of that dtype (the planner casts them). Checks shapes (ShapeMismatch naming both).
void matmul(const Array& a, const Array& b, const Array& out, const std::function<void(const Tile&)>& after = {});

// How a product of this size is cut for `threads` threads: tiles per batch item along
// rows and columns (exposed for tests and `kiln bench`).
struct TileGrid {
  int64_t rows = 1, cols = 1;
};
TileGrid tile_grid(int64_t batch, int64_t m, int64_t n, int64_t k, int threads);

}  // namespace kiln::blas
