#include "runtime.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "error.hpp"

namespace kiln {

int hardware_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

namespace {

// This process's id, kept by a fork handler: getpid() is a system call, and arena() asks
// on every parallel evaluation. On a 2-core EPYC VM (page-table isolation without PCID)
// each system call flushed the TLB and the loop after it paid for the misses: where() over
// 10^5 float32 14.7-15.2 us with the call, 7.7-8.6 without.
std::atomic<long> process_id{0};
void note_fork() { process_id.store(static_cast<long>(getpid()), std::memory_order_relaxed); }
long current_pid() {
  static const bool registered = [] {
    note_fork();
    return pthread_atfork(nullptr, nullptr, note_fork) == 0;
  }();
  if (!registered) return static_cast<long>(getpid());
  return process_id.load(std::memory_order_relaxed);
}

// The calling thread's own budget (0: none) and its arena, made on first use and again
// after a fork (the parent's workers do not exist in the child).
struct ThreadBudget {
  int threads = 0;
  long owner_pid = 0;
  std::shared_ptr<tbb::task_arena> arena;
};
thread_local ThreadBudget thread_budget;

// Lets go of an arena: after fork() one made by the parent belongs to threads that do not
// exist here, and is deliberately leaked rather than destroyed (destroying it would wait
// on them).
void drop_arena(std::shared_ptr<tbb::task_arena>& arena, long owner_pid) {
  if (arena && owner_pid != current_pid()) new std::shared_ptr<tbb::task_arena>(std::move(arena));
  arena.reset();
}

}  // namespace

void Runtime::set_thread_num_threads(int n) {
  if (n < 0)
    throw Error(Status::BadArgument, "set_thread_num_threads: thread count must be >= 0, got " + std::to_string(n));
  // At most the cores: a share of the machine, never more of it (oneTBB would not start
  // the extra workers anyway, and says so on stderr).
  const int threads = std::min(n, hardware_threads());
  if (threads == thread_budget.threads) return;
  drop_arena(thread_budget.arena, thread_budget.owner_pid);
  thread_budget.threads = threads;
}

int Runtime::thread_num_threads() { return thread_budget.threads; }

Runtime& Runtime::instance() {
  static Runtime* runtime = new Runtime();  // never destroyed: usable from atexit handlers
  return *runtime;
}

void Runtime::set_num_threads(int n) {
  if (n < 0) throw Error(Status::BadArgument, "set_num_threads: thread count must be >= 0, got " + std::to_string(n));
  std::lock_guard<std::mutex> lock(mutex_);
  requested_threads_ = n;
  arena_.reset();
  allow_more_threads_.reset();
  if (n > hardware_threads())
    allow_more_threads_ = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, n);
}

int Runtime::num_threads() {
  if (thread_budget.threads > 0) return thread_budget.threads;
  std::lock_guard<std::mutex> lock(mutex_);
  return requested_threads_ > 0 ? requested_threads_ : hardware_threads();
}

std::shared_ptr<tbb::task_arena> Runtime::arena() {
  long pid = current_pid();
  if (thread_budget.threads > 0) {
    ThreadBudget& t = thread_budget;
    if (!t.arena || t.owner_pid != pid) {
      drop_arena(t.arena, t.owner_pid);
      t.arena = std::make_shared<tbb::task_arena>(t.threads);
      t.owner_pid = pid;
    }
    return t.arena;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (!arena_ || owner_pid_ != pid) {
    drop_arena(arena_, owner_pid_);
    int threads = requested_threads_ > 0 ? requested_threads_ : hardware_threads();
    arena_ = std::make_shared<tbb::task_arena>(threads);
    owner_pid_ = pid;
  }
  return arena_;
}

const simd::KernelTable& Runtime::kernels() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!kernels_) kernels_ = &simd::default_table();
  return *kernels_;
}

void Runtime::set_isa(const std::string& isa) {
  const simd::KernelTable* t = simd::table_for(isa);
  if (!t) throw Error(Status::BadArgument, "instruction set '" + isa + "' " + simd::unavailable_reason(isa));
  std::lock_guard<std::mutex> lock(mutex_);
  kernels_ = t;
}

}  // namespace kiln
