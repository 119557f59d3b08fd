#include "plan_cache.hpp"

namespace kiln {

PlanCache& PlanCache::global() {
  static PlanCache* cache = new PlanCache();  // never destroyed: usable during exit
  return *cache;
}

std::shared_ptr<const Plan> PlanCache::find(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++hits_;
  return it->second->second;
}

std::shared_ptr<const Plan> PlanCache::insert(const std::string& key, std::shared_ptr<const Plan> plan) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(key);
  if (it != index_.end()) return it->second->second;  // another thread built it meanwhile
  lru_.emplace_front(key, plan);
  index_[key] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return plan;
}

size_t PlanCache::size() {
  std::lock_guard<std::mutex> lock(mutex_);
  return lru_.size();
}

void PlanCache::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  lru_.clear();
  index_.clear();
}

void append_plan_key(std::string& key, std::span<const DType> input_dtypes, const DType* out_dtype, const char* isa) {
  key += '\x1f';
  for (DType d : input_dtypes) key += static_cast<char>('0' + static_cast<int>(d));
  key += out_dtype ? static_cast<char>('0' + static_cast<int>(*out_dtype)) : '-';
  key += isa;
}

}  // namespace kiln
