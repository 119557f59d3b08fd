#include "threads.hpp"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <shared_mutex>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task.h>
#include <tbb/task_arena.h>

#include "runtime.hpp"

namespace kiln::blas {

namespace {

// Shared: callers running OpenBLAS on one thread. Exclusive: a call that raised
// OpenBLAS's (process-wide) thread count, which would otherwise apply to theirs too.
std::shared_mutex& library_lock() {
  static std::shared_mutex m;
  return m;
}

thread_local int region_depth = 0;

// OpenBLAS's thread count is the host program's too (NumPy in the same process calls the
// same library): kiln sets it to 1 only while its own BLAS work is in flight, and gives
// back the host's setting when the last of that work ends.
std::mutex in_flight_mutex;
int in_flight = 0;
int host_threads = 0;
int threads_at_load = 0;

struct InFlight {
  InFlight() {
    std::lock_guard<std::mutex> lock(in_flight_mutex);
    if (in_flight++ == 0) {
      host_threads = openblas_get_num_threads();
      if (threads_at_load == 0) threads_at_load = host_threads;
      openblas_set_num_threads(1);
    }
  }
  ~InFlight() {
    std::lock_guard<std::mutex> lock(in_flight_mutex);
    if (--in_flight == 0) openblas_set_num_threads(host_threads);
  }
  static int count() {
    std::lock_guard<std::mutex> lock(in_flight_mutex);
    return in_flight;
  }
};

// Called from inside TBB tasks (a user's pool, or kiln's own arena). The arena slot alone
// is not enough: a thread keeps its slot in the implicit arena after its first parallel
// call returns, which would make every later LAPACK call of the thread serial. The slot
// is asked first because current_context() sets TBB up on a thread that never used it.
bool in_tbb_task() {
  return tbb::this_task_arena::current_thread_index() != tbb::task_arena::not_initialized &&
         tbb::task::current_context() != nullptr;
}

// Below this many flops a call is not split: task start-up and per-tile packing would
// cost more than a second thread saves (about 50 us of one core's GEMM).
constexpr double kParallelFlops = 4e6;

struct Region {
  Region() { ++region_depth; }
  ~Region() { --region_depth; }
};

}  // namespace

bool in_parallel_region() { return region_depth > 0; }

int blas_threads_at_load() {
  std::lock_guard<std::mutex> lock(in_flight_mutex);
  if (threads_at_load == 0) threads_at_load = openblas_get_num_threads();
  return threads_at_load;
}

void parallel_items(int64_t items, double work, const std::function<void(int64_t, int64_t)>& body) {
  if (items <= 0) return;
  auto run_serial = [&] {
    Region region;
    body(0, items);
  };
  if (region_depth > 0) return run_serial();  // already holds the shared lease
  InFlight in_flight;
  std::shared_lock<std::shared_mutex> lease(library_lock());
  auto arena = Runtime::instance().arena();
  if (items == 1 || work < kParallelFlops || arena->max_concurrency() == 1) return run_serial();
  arena->execute([&] {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, items, 1), [&](const tbb::blocked_range<int64_t>& r) {
      Region region;
      body(r.begin(), r.end());
    });
  });
}

void whole_budget_call(double work, const std::function<void()>& body) {
  if (region_depth > 0) return body();  // inside kiln's parallel work: one thread, lease held
  int budget = Runtime::instance().num_threads();
  InFlight in_flight;
  if (budget == 1 || work < kParallelFlops || in_tbb_task() || InFlight::count() > 1) {
    std::shared_lock<std::shared_mutex> lease(library_lock());
    Region region;
    return body();
  }
  std::unique_lock<std::shared_mutex> lease(library_lock());
  struct Restore {
    ~Restore() { openblas_set_num_threads(1); }
  } restore;
  openblas_set_num_threads(budget);
  Region region;
  body();
}

}  // namespace kiln::blas
