// Runtime: the process-wide execution context. It owns the oneTBB task arena (the thread
// budget), the kernel table of the chosen SIMD instruction set, and notices a fork so
// that a child process builds a fresh arena instead of using its parent's threads.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include "kernels.hpp"

namespace kiln {

class Runtime {
 public:
  static Runtime& instance();

  // 0 means every core the process may run on. Takes effect for evaluations that start
  // afterwards; running ones keep the arena they started with.
  void set_num_threads(int n);
  // The budget of the calling thread's kiln work: its own (set_thread_num_threads) if it
  // has one, else the process's.
  int num_threads();

  // A budget for the kiln work the calling thread starts, apart from the process's: n > 0
  // gives it an arena of its own of n threads, at most the cores (1: it runs alone, on
  // itself); 0 returns it to the process's arena. A host that runs several tasks at once
  // on threads of its own (a Dask worker) gives each a share of the cores this way, and
  // nothing else changes.
  // oneTBB draws every arena's workers from one pool of at most the core count, so
  // concurrent arenas never oversubscribe the machine.
  static void set_thread_num_threads(int n);
  static int thread_num_threads();

  // The arena to run the calling thread's parallel work in: its own when it has a budget
  // of its own, else the process's (created on first use, rebuilt after a fork).
  std::shared_ptr<tbb::task_arena> arena();

  const simd::KernelTable& kernels();
  // Forces an instruction set ("sse2", "avx2", "avx512"); throws BadArgument if this CPU
  // lacks it. Plans made for another set are not reused (the set is part of their key).
  void set_isa(const std::string& isa);

 private:
  Runtime() = default;
  std::mutex mutex_;
  std::shared_ptr<tbb::task_arena> arena_;
  // Lets an explicit request for more threads than cores be honoured (TBB caps workers at
  // the core count otherwise).
  std::unique_ptr<tbb::global_control> allow_more_threads_;
  int requested_threads_ = 0;
  long owner_pid_ = 0;
  const simd::KernelTable* kernels_ = nullptr;
};

int hardware_threads();

}  // namespace kiln
