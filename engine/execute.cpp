#include "execute.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "runtime.hpp"

namespace kiln {

namespace {

// Shape of the result, with an error that names the op whose operands do not broadcast.
Shape result_shape(const Plan& plan, const std::vector<Array>& inputs) {
  Shape shape;
  bool ok = true;
  for (const Array& a : inputs) {
    Shape next;
    if (!try_broadcast(shape, a.shape(), next)) { ok = false; break; }
    shape = std::move(next);
  }
  if (ok) return shape;
  // Slow path, only to name the culprit: shapes node by node.
  const Graph& g = plan.graph;
  std::vector<Shape> shapes(g.nodes().size());
  for (size_t id = 0; id < g.nodes().size(); ++id) {
    const Node& n = g.node(id);
    if (n.kind == NodeKind::Input) { shapes[id] = inputs[n.input].shape(); continue; }
    for (int i = 0; i < n.nargs; ++i) {
      Shape next;
      if (!try_broadcast(shapes[id], shapes[n.args[i]], next)) {
        const char* what = n.kind == NodeKind::Op ? op_info(n.op).name : "cast";
        std::string at = n.pos >= 0 ? " at position " + std::to_string(n.pos) : "";
        throw Error(Status::ShapeMismatch, std::string(what) + at + ": shapes " + shape_str(shapes[id]) +
                                               " and " + shape_str(shapes[n.args[i]]) + " do not broadcast");
      }
      shapes[id] = std::move(next);
    }
  }
  KILN_ASSERT(false);
  return shape;
}

// One operand of the loop after broadcasting and dimension coalescing.
struct Operand {
  const char* base = nullptr;
  int64_t strides[kMaxDims] = {};
  size_t item = 0;
  enum Mode { InPlace, Splat, Strided } mode = InPlace;
};

struct Loop {
  int nd = 1;
  int64_t shape[kMaxDims] = {1};
  int64_t total = 0;
  std::vector<Operand> inputs;
  Operand out;
};

// Walks `n` elements from flat index `start` of the loop's shape, calling
// visit(byte_offset, run_length, stride) for each run along the innermost dimension.
template <class Visit>
void walk(const Loop& loop, const int64_t* strides, int64_t start, int64_t n, Visit visit) {
  int nd = loop.nd;
  int64_t idx[kMaxDims];
  int64_t offset = 0, rem = start;
  for (int d = nd - 1; d >= 0; --d) {
    idx[d] = rem % loop.shape[d];
    rem /= loop.shape[d];
    offset += idx[d] * strides[d];
  }
  int64_t inner = loop.shape[nd - 1], stride = strides[nd - 1];
  while (n > 0) {
    int64_t run = std::min(n, inner - idx[nd - 1]);
    visit(offset, run, stride);
    n -= run;
    offset += run * stride;
    idx[nd - 1] += run;
    for (int d = nd - 1; d > 0 && idx[d] == loop.shape[d]; --d) {
      offset -= idx[d] * strides[d];
      idx[d] = 0;
      ++idx[d - 1];
      offset += strides[d - 1];
    }
  }
}

template <class T>
void gather_run(char* dst, const char* src, int64_t run, int64_t stride) {
  T* d = reinterpret_cast<T*>(dst);
  if (stride == static_cast<int64_t>(sizeof(T))) {
    std::memcpy(d, src, run * sizeof(T));
  } else if (stride == 0) {
    T v;
    std::memcpy(&v, src, sizeof(T));
    std::fill(d, d + run, v);
  } else {
    for (int64_t i = 0; i < run; ++i) std::memcpy(d + i, src + i * stride, sizeof(T));
  }
}

// n copies of one item of `size` bytes.
void splat(char* dst, const void* value, size_t size, int64_t n) {
  switch (size) {
    case 1: gather_run<uint8_t>(dst, static_cast<const char*>(value), n, 0); break;
    case 4: gather_run<uint32_t>(dst, static_cast<const char*>(value), n, 0); break;
    default: gather_run<uint64_t>(dst, static_cast<const char*>(value), n, 0); break;
  }
}

template <class T>
void scatter_run(char* dst, const char* src, int64_t run, int64_t stride) {
  const T* s = reinterpret_cast<const T*>(src);
  for (int64_t i = 0; i < run; ++i) std::memcpy(dst + i * stride, s + i, sizeof(T));
}

void gather(const Loop& loop, const Operand& op, char* dst, int64_t start, int64_t n) {
  walk(loop, op.strides, start, n, [&](int64_t offset, int64_t run, int64_t stride) {
    const char* src = op.base + offset;
    switch (op.item) {
      case 1: gather_run<uint8_t>(dst, src, run, stride); break;
      case 4: gather_run<uint32_t>(dst, src, run, stride); break;
      default: gather_run<uint64_t>(dst, src, run, stride); break;
    }
    dst += run * op.item;
  });
}

void scatter(const Loop& loop, const Operand& op, const char* src, int64_t start, int64_t n) {
  char* base = const_cast<char*>(op.base);
  walk(loop, op.strides, start, n, [&](int64_t offset, int64_t run, int64_t stride) {
    switch (op.item) {
      case 1: scatter_run<uint8_t>(base + offset, src, run, stride); break;
      case 4: scatter_run<uint32_t>(base + offset, src, run, stride); break;
      default: scatter_run<uint64_t>(base + offset, src, run, stride); break;
    }
    src += run * op.item;
  });
}

// Per-thread scratch memory, reused across evaluations: chunk registers never touch
// the allocator on the hot path.
class Workspace {
 public:
  uint64_t filled_for = 0;  // the evaluation whose constants the registers hold

  char* get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      size_ = (bytes + 4095) / 4096 * 4096;
      data_ = static_cast<char*>(std::aligned_alloc(64, size_));
      if (!data_) {
        size_ = 0;
        throw Error(Status::OutOfMemory, "cannot allocate evaluation scratch memory");
      }
    }
    return data_;
  }
  size_t capacity() const { return size_; }
  ~Workspace() { std::free(data_); }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

Workspace& thread_workspace() {
  thread_local Workspace ws;
  return ws;
}

// Runs chunks [first, last) of the loop on the calling thread.
void run_chunks(const Plan& plan, const Loop& loop, uint64_t eval_id, int64_t first, int64_t last) {
  const int64_t chunk = plan.chunk;
  const size_t reg_bytes = static_cast<size_t>(chunk) * 8;
  const int num_inputs = static_cast<int>(plan.input_dtypes.size());
  const int num_regs = plan.num_registers();
  // Layout: one slot per register (inputs that are read in place leave theirs unused),
  // plus one for a strided output.
  Workspace& ws = thread_workspace();
  size_t need = reg_bytes * (num_regs + 1);
  if (need > ws.capacity()) ws.filled_for = 0;
  char* mem = ws.get(need);
  void* regs[256];
  std::vector<void*> big_regs;
  void** r = regs;
  if (num_regs > static_cast<int>(sizeof regs / sizeof regs[0])) {
    big_regs.resize(num_regs);
    r = big_regs.data();
  }
  for (int i = 0; i < num_regs; ++i) r[i] = mem + reg_bytes * i;
  char* out_scratch = mem + reg_bytes * num_regs;

  // Constants and splatted (fully broadcast) inputs are filled once per thread and
  // evaluation (a thread may run many tasks of one evaluation, or tasks of others between).
  bool fill = ws.filled_for != eval_id;
  ws.filled_for = eval_id;
  int64_t longest = std::min(chunk, loop.total);  // no chunk of this evaluation is longer
  for (size_t c = 0; fill && c < plan.constants.size(); ++c) {
    const Constant& k = plan.constants[c];
    splat(static_cast<char*>(r[num_inputs + c]), k.bytes, itemsize(k.dtype), longest);
  }
  for (int i = 0; fill && i < num_inputs; ++i) {
    const Operand& op = loop.inputs[i];
    if (op.mode == Operand::Splat) splat(static_cast<char*>(r[i]), op.base, op.item, longest);
  }

  const void* srcs[3];
  for (int64_t c = first; c < last; ++c) {
    int64_t start = c * chunk;
    int64_t n = std::min(chunk, loop.total - start);
    for (int i = 0; i < num_inputs; ++i) {
      const Operand& op = loop.inputs[i];
      if (op.mode == Operand::InPlace) r[i] = const_cast<char*>(op.base) + start * op.item;
      else if (op.mode == Operand::Strided) gather(loop, op, static_cast<char*>(r[i]), start, n);
    }
    void* out_ptr = loop.out.mode == Operand::InPlace ? const_cast<char*>(loop.out.base) + start * loop.out.item
                                                      : out_scratch;
    for (const Instr& in : plan.instrs) {
      for (int s = 0; s < in.nsrc; ++s) srcs[s] = r[in.src[s]];
      in.fn(srcs, in.dst == Instr::kOut ? out_ptr : r[in.dst], n);
    }
    if (loop.out.mode != Operand::InPlace) scatter(loop, loop.out, out_scratch, start, n);
  }
}

bool overlaps(const Array& a, const Array& b) {
  const char *alo, *ahi, *blo, *bhi;
  a.byte_extent(alo, ahi);
  b.byte_extent(blo, bhi);
  return alo < bhi && blo < ahi;
}

// Same element at the same address for every index of the (broadcast) iteration shape:
// reading then writing one chunk at a time is then safe.
bool same_mapping(const Array& in, const Array& out) {
  if (in.data() != out.data() || in.dtype() != out.dtype() || in.shape() != out.shape()) return false;
  for (int d = 0; d < out.ndim(); ++d)
    if (out.shape()[d] > 1 && in.strides()[d] != out.strides()[d]) return false;
  return true;
}

}  // namespace

int64_t serial_threshold() {
  static const int64_t threshold = [] {
    const char* forced = std::getenv("KILN_SERIAL_THRESHOLD");
    return forced ? std::atoll(forced) : int64_t{16384};
  }();
  return threshold;
}

Array execute(const Plan& plan, const std::vector<Array>& given, const Array* out_arg) {
  const auto& names = plan.graph.input_names();
  KILN_ASSERT(given.size() == names.size());
  for (size_t i = 0; i < given.size(); ++i) {
    if (!given[i].valid()) throw Error(Status::BadArgument, "input '" + names[i] + "' is not a valid array");
    KILN_ASSERT(given[i].dtype() == plan.input_dtypes[i]);  // the plan was chosen by these dtypes
  }
  Shape shape = result_shape(plan, given);

  Array out;
  if (out_arg && out_arg->valid()) {
    out = *out_arg;
    Shape joined;
    if (!try_broadcast(shape, out.shape(), joined) || joined != out.shape())
      throw Error(Status::ShapeMismatch, "out: result of shape " + shape_str(shape) +
                                             " cannot be written into an output of shape " + shape_str(out.shape()));
    KILN_ASSERT(out.dtype() == plan.out_dtype);
    for (int d = 0; d < out.ndim(); ++d)
      if (out.strides()[d] == 0 && out.shape()[d] > 1)
        throw Error(Status::BadArgument, "out: a broadcast view (stride 0) cannot be written: its elements overlap");
    shape = out.shape();
  } else {
    out = Array::empty(plan.out_dtype, shape);
  }
  int64_t total = out.size();
  if (total == 0) return out;

  // Inputs broadcast to the output shape; any that overlap `out` with a different
  // element mapping are copied first (what NumPy does for a[1:] = a[:-1] + 1).
  std::vector<Array> inputs(given.size());
  for (size_t i = 0; i < given.size(); ++i) {
    inputs[i] = given[i].broadcast_to(shape);
    if (out_arg && overlaps(inputs[i], out) && !same_mapping(inputs[i], out))
      inputs[i] = given[i].copy().broadcast_to(shape);
  }

  // Coalesce: drop size-1 dimensions, merge neighbours that every operand walks
  // contiguously across. Fewer dimensions mean longer inner runs in gathers.
  Loop loop;
  loop.total = total;
  std::vector<const Array*> all;
  for (const Array& a : inputs) all.push_back(&a);
  all.push_back(&out);
  std::vector<int> dims;
  for (int d = 0; d < out.ndim(); ++d)
    if (shape[d] != 1) dims.push_back(d);
  int nd = 0;
  std::vector<std::vector<int64_t>> strides(all.size());
  for (int d : dims) {
    bool merge = nd > 0;
    for (size_t k = 0; k < all.size() && merge; ++k)
      merge = strides[k].back() == all[k]->strides()[d] * shape[d];
    if (merge) {
      loop.shape[nd - 1] *= shape[d];
      for (size_t k = 0; k < all.size(); ++k) strides[k].back() = all[k]->strides()[d];
    } else {
      loop.shape[nd++] = shape[d];
      for (size_t k = 0; k < all.size(); ++k) strides[k].push_back(all[k]->strides()[d]);
    }
  }
  if (nd == 0) {
    nd = 1;
    loop.shape[0] = 1;
    for (auto& s : strides) s.push_back(0);
  }
  loop.nd = nd;
  auto classify = [&](const Array& a, const std::vector<int64_t>& st) {
    Operand op;
    op.base = a.data();
    op.item = a.itemsize();
    std::copy(st.begin(), st.end(), op.strides);
    bool all_zero = std::all_of(st.begin(), st.end(), [](int64_t s) { return s == 0; });
    if (total == 1 || (nd == 1 && st[0] == static_cast<int64_t>(op.item))) op.mode = Operand::InPlace;
    else if (all_zero) op.mode = Operand::Splat;
    else op.mode = Operand::Strided;
    return op;
  };
  for (size_t i = 0; i < inputs.size(); ++i) loop.inputs.push_back(classify(inputs[i], strides[i]));
  loop.out = classify(out, strides.back());
  KILN_ASSERT(loop.out.mode != Operand::Splat);

  static std::atomic<uint64_t> next_eval_id{1};
  uint64_t eval_id = next_eval_id.fetch_add(1, std::memory_order_relaxed);
  int64_t chunks = (total + plan.chunk - 1) / plan.chunk;
  Runtime& rt = Runtime::instance();
  if (total <= serial_threshold() || chunks == 1) {
    run_chunks(plan, loop, eval_id, 0, chunks);
  } else {
    auto arena = rt.arena();
    if (arena->max_concurrency() == 1) {
      run_chunks(plan, loop, eval_id, 0, chunks);
    } else {
      arena->execute([&] {
        // Tasks of at least 4096 elements: small chunks keep registers in L1, but each
        // task must be worth scheduling. Chunk boundaries, not tasks, decide results.
        int64_t grain = std::max<int64_t>(1, 4096 / plan.chunk);
        tbb::parallel_for(tbb::blocked_range<int64_t>(0, chunks, grain),
                          [&](const tbb::blocked_range<int64_t>& r) { run_chunks(plan, loop, eval_id, r.begin(), r.end()); });
      });
    }
  }
  return out;
}

}  // namespace kiln
