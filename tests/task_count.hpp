// The threads of this process right now (its entries in /proc/self/task): what the
// thread-budget tests watch while kiln works.
#pragma once
#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace kiln::test {

inline int task_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}

// The most threads the process had while the watch ran, sampled every 200 µs by a thread of
// its own (which counts among them).
class ThreadWatch {
 public:
  ThreadWatch()
      : watcher_([this] {
          while (!done_) {
            most_ = std::max(most_.load(), task_count());
            std::this_thread::sleep_for(std::chrono::microseconds(200));
          }
        }) {}
  ~ThreadWatch() { stop(); }
  int stop() {
    done_ = true;
    if (watcher_.joinable()) watcher_.join();
    return most_;
  }

 private:
  std::atomic<bool> done_{false};
  std::atomic<int> most_{0};
  std::thread watcher_;
};

}  // namespace kiln::test
