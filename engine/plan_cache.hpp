// PlanCache: compiled plans by key (the graph's structure, or the expression text with the
// input names and, for programs, the results asked for; plus
// input dtypes, the output dtype and the instruction set). Bounded, least recently used
// plans are evicted; safe to use from many threads at once.
#pragma once
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "plan.hpp"

namespace kiln {

class PlanCache {
 public:
  explicit PlanCache(size_t capacity = 512) : capacity_(capacity) {}
  static PlanCache& global();

  // The cached plan for `key`, or build() (outside the lock: planning never blocks other
  // threads' lookups) and remember it. A template, not a std::function: the caller's
  // lambda did not fit std::function's inline storage, a heap allocation per lookup.
  template <class Build> std::shared_ptr<const Plan> get(const std::string& key, const Build& build) {
    if (std::shared_ptr<const Plan> plan = find(key)) return plan;
    return insert(key, build());
  }
  // The cached plan for `key` (now the most recently used), or null.
  std::shared_ptr<const Plan> find(const std::string& key);
  // Remembers `plan` for `key` and returns it, or the plan another thread put there first.
  std::shared_ptr<const Plan> insert(const std::string& key, std::shared_ptr<const Plan> plan);
  size_t size();
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  void clear();

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const Plan>>;
  size_t capacity_;
  std::mutex mutex_;
  std::list<Entry> lru_;  // most recent first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  uint64_t hits_ = 0, misses_ = 0;
};

// Appends what besides the expression decides a plan: input dtypes, the output dtype (or
// none) and the instruction set.
void append_plan_key(std::string& key, std::span<const DType> input_dtypes, const DType* out_dtype, const char* isa);

}  // namespace kiln
