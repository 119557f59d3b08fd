// The BLAS thread policy: kiln's one thread budget (Runtime::num_threads) covers OpenBLAS
// too, so a program never runs its cores' worth of BLAS threads inside each of its own.
//   - Every BLAS/LAPACK call kiln makes from its tasks runs on one thread: kiln cuts the
//     work (GEMM tiles, batch items) over its own arena, which every caller shares.
//   - A single big LAPACK call made at top level (not inside a kiln parallel region or
//     any TBB task, and while no other kiln BLAS work is in flight) may let OpenBLAS use
//     the whole budget; it holds the BLAS library exclusively meanwhile, because OpenBLAS
//     0.3.21's thread count is one process-wide setting. Otherwise it runs on one thread.
// OpenBLAS's thread count is also the host program's (NumPy in the same process calls the
// same library): kiln sets it to 1 only while its own BLAS work is in flight and then gives
// the host's setting back. OpenBLAS's pthread build starts its own (idle) pool when the
// library loads; kiln never wakes it except under an exclusive lease.
// OPENBLAS_NUM_THREADS=1 avoids even that pool.
#pragma once
#include <cstdint>
#include <functional>

namespace kiln::blas {

// Runs body(first, last) over [0, items), in parallel on kiln's arena when `work` (an
// estimate of the whole job's flops) is worth it. BLAS calls inside run on one thread.
// Nested calls (from inside such a body) run serially on the calling thread.
void parallel_items(int64_t items, double work, const std::function<void(int64_t, int64_t)>& body);

// Runs `body`, which makes one large BLAS/LAPACK call: with OpenBLAS allowed the whole
// budget when called at top level and `work` (flops) is worth it, else on one thread.
void whole_budget_call(double work, const std::function<void()>& body);

// Whether the calling thread is inside a kiln BLAS parallel region.
bool in_parallel_region();

// How many threads OpenBLAS said it would use when kiln first asked (its pool size plus
// the caller, as the library started it, unless the host changed it since).
int blas_threads_at_load();

}  // namespace kiln::blas
