#include "execute.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <optional>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "gemm.hpp"
#include "lapack.hpp"
#include "linalg.hpp"
#include "parallel.hpp"
#include "runtime.hpp"
#include "threads.hpp"

namespace kiln {

namespace {

// Each node's shape, as far as the values so far tell (nullopt where they do not yet).
// Operands that do not broadcast are an error naming the op and where it was written.
std::vector<std::optional<Shape>> node_shapes(const Plan& plan, const std::vector<Array>& values) {
  const Graph& g = plan.graph;
  std::vector<std::optional<Shape>> shapes(g.nodes().size());
  for (size_t id = 0; id < g.nodes().size(); ++id) {
    const Node& n = g.node(id);
    int v = plan.node_value[id];
    if (n.kind == NodeKind::Generate && n.nargs) {  // *_like: its operand's shape
      shapes[id] = shapes[n.args[0]];
      continue;
    }
    if (v >= 0) {
      if (values[v].valid()) shapes[id] = values[v].shape();
      continue;
    }
    Shape shape;  // literals, ops and casts
    bool known = true;
    for (int i = 0; i < n.nargs && known; ++i) {
      known = shapes[n.args[i]].has_value();
      Shape next;
      if (known && !try_broadcast(shape, *shapes[n.args[i]], next)) {
        const char* what = n.kind == NodeKind::Op ? op_info(n.op).name : "cast";
        std::string at = n.pos >= 0 ? " at position " + std::to_string(n.pos) : "";
        throw Error(Status::ShapeMismatch, std::string(what) + at + ": shapes " + shape_str(shape) + " and " +
                                               shape_str(*shapes[n.args[i]]) + " do not broadcast");
      }
      shape = std::move(next);
    }
    if (known) shapes[id] = std::move(shape);
  }
  return shapes;
}

// Broadcast shape of the values a block reads, with an error that names the op whose
// operands do not broadcast.
Shape block_shape(const Plan& plan, const Block& b, const std::vector<Array>& values) {
  Shape shape;
  bool ok = true;
  for (int v : b.reads) {
    Shape next;
    if (!try_broadcast(shape, values[v].shape(), next)) { ok = false; break; }
    shape = std::move(next);
  }
  if (ok) return shape;
  // Slow path, only to name the culprit: shapes node by node, as far as values are known.
  node_shapes(plan, values);
  throw Error(Status::ShapeMismatch, "operand shapes do not broadcast");
}

// One operand of the loop after broadcasting and dimension coalescing.
struct Operand {
  const char* base = nullptr;
  int64_t strides[kMaxDims] = {};
  size_t item = 0;
  // Periodic (set by run_fused only): element i is element i % period of a pattern that
  // fills the register once per thread, as a constant does (`m + row`, `x + bias`).
  enum Mode { InPlace, Splat, Strided, Periodic } mode = InPlace;
  int64_t period = 0;
  // A generator: no memory (base is null, strides are those of its C-ordered shape); its
  // kernel makes the elements a read would load, from their indices (offset / item).
  const Generator* gen = nullptr;
};

struct Loop {
  int nd = 1;
  int64_t shape[kMaxDims] = {1};
  int64_t total = 0;
  std::vector<Operand> inputs;
  std::vector<Operand> outs;
  uint64_t bytes = 0;               // operand_bytes, for the choices that depend on the caches
  simd::GatherFn gather = nullptr;  // strided reads' (see sse2_gather)
  simd::BandFn move_band = nullptr;  // banded operands' (see band_shape)
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
void scatter_run(char* dst, const char* src, int64_t run, int64_t stride) {
  const T* s = reinterpret_cast<const T*>(src);
  for (int64_t i = 0; i < run; ++i) std::memcpy(dst + i * stride, s + i, sizeof(T));
}

// One run of `run` items of `item` bytes (1, 4 or 8) out of a dense register into memory
// `stride` bytes apart (the way in is the kernel table's gather). Not inlined, its loops
// aligned as move_band's are: inside run_row_chunks its loop moved with unrelated edits
// there, and transposed outputs of 600^2 ran 1.06-1.17x slower in one such build.
[[gnu::noinline, gnu::aligned(64), gnu::optimize("align-loops=64")]] void scatter_items(char* dst, const char* src,
                                                                                      size_t item, int64_t run,
                                                                                      int64_t stride) {
  switch (item) {
    case 1: scatter_run<uint8_t>(dst, src, run, stride); break;
    case 4: scatter_run<uint32_t>(dst, src, run, stride); break;
    default: scatter_run<uint64_t>(dst, src, run, stride); break;
  }
}

// The SSE2 table's gather: splat's, and that of loops beyond the caches (make_loop).
// Wider shuffles win from the caches and lose from memory. Zen 5, 1 thread, a[::2]*2 + b,
// one process alternating two builds (AVX2-width against SSE2 gather), the wide one's time
// over the narrow one's: float32 at 3*10^4 0.68, 10^5 0.83, 3*10^5 0.97, 10^6 (12 MB of
// operands) 1.02, 2*10^6 1.15; float64 at 10^5 0.94, 6*10^5 0.99, 10^6 1.14. (AVX-512's
// shuffles were slower still from memory: 10^7 float64 1.8-2.1x the hand loop.)
simd::GatherFn sse2_gather() {
  static const simd::GatherFn gather = simd::table_for("sse2")->gather;
  return gather;
}

// n copies of one item of `size` bytes.
void splat(char* dst, const void* value, size_t size, int64_t n) { sse2_gather()(dst, value, size, n, 0); }

// n elements of a generator operand, `byte_stride` apart in its own index space, from
// the element at `byte_offset` (a broadcast run, stride 0, repeats one element).
void generate_run(const Operand& op, char* dst, int64_t byte_offset, int64_t run, int64_t byte_stride) {
  const auto item = static_cast<int64_t>(op.item);
  if (byte_stride == 0) {
    alignas(8) unsigned char one[8];
    op.gen->fn(op.gen->params, byte_offset / item, 1, 1, one);
    splat(dst, one, op.item, run);
    return;
  }
  op.gen->fn(op.gen->params, byte_offset / item, byte_stride / item, run, dst);
}

void gather(const Loop& loop, const Operand& op, char* dst, int64_t start, int64_t n) {
  // A 1-d read is one run: a direct call. Through walk's closure, float64 a[::2]*2 + b at
  // 10^7 (a chunk of 64 elements per call) ran 1.2x slower.
  if (loop.nd == 1 && !op.gen) return loop.gather(dst, op.base + start * op.strides[0], op.item, n, op.strides[0]);
  walk(loop, op.strides, start, n, [&](int64_t offset, int64_t run, int64_t stride) {
    if (op.gen) generate_run(op, dst, offset, run, stride);
    else loop.gather(dst, op.base + offset, op.item, run, stride);
    dst += run * op.item;
  });
}

// Points register slot `r` at elements [start, start + n) of a read: in place when the
// read is contiguous memory, else gathered (or generated) into the slot's own memory.
void bind_read(const Loop& loop, const Operand& op, void*& r, void* own, int64_t start, int64_t n) {
  if (op.gen) {
    if (op.mode == Operand::InPlace) op.gen->fn(op.gen->params, start, 1, n, own);
    else if (op.mode == Operand::Strided) gather(loop, op, static_cast<char*>(own), start, n);
    return;
  }
  if (op.mode == Operand::InPlace) r = const_cast<char*>(op.base) + start * op.item;
  else if (op.mode == Operand::Strided) gather(loop, op, static_cast<char*>(r), start, n);
}

// The bytes of a loop's operands (a broadcast value counts nothing).
uint64_t operand_bytes(const Loop& loop) {
  uint64_t bytes = 0;
  for (const Operand& op : loop.inputs) bytes += op.mode == Operand::Splat ? 0 : op.item;
  for (const Operand& op : loop.outs) bytes += op.item;
  return bytes * static_cast<uint64_t>(loop.total);
}

// The work a block's transcendental instructions (exp, log, sin, power, ...; not sqrt or
// rounding, one instruction each) add per element, in bytes: kTranscendentalItems items
// of each one's dtype. Zen 5, in L2, 1 thread: loops such as a*b + c, where() and a + 1,
// and sums, moved 7-9 ps per byte; sin and cos took 250 ps per float32 element (7 items'
// worth), 730 per float64 (10 items); a uniform random number 730-770 (80 bytes; counted
// as kRandomBytes).
uint64_t transcendental_bytes(const Block& b) {
  uint64_t bytes = 0;
  for (const Instr& in : b.instrs) {
    if (in.is_cast || op_info(in.op).rule != Rule::FloatMath) continue;
    switch (in.op) {
      case Op::sqrt: case Op::floor: case Op::ceil: case Op::trunc: case Op::rint: case Op::copysign: case Op::fabs:
      case Op::heaviside: case Op::deg2rad: case Op::rad2deg: continue;
      default: bytes += kTranscendentalItems * itemsize(in.compute);
    }
  }
  return bytes;
}

// How much work a loop is, in bytes, for deciding whether threads pay (for_items): the
// bytes its operands move, its transcendental instructions' worth, and kRandomBytes per
// random number it makes.
uint64_t work_bytes(const Block& b, const Loop& loop) {
  uint64_t per_element = transcendental_bytes(b);
  for (const Operand& op : loop.inputs) per_element += op.gen && op.gen->random ? kRandomBytes : 0;
  return loop.bytes + per_element * static_cast<uint64_t>(loop.total);
}

// Whether a loop's operands fit in the caches together (see run_fused).
constexpr bool cache_resident(uint64_t operand_bytes) { return operand_bytes <= (uint64_t{4} << 20); }

// Whether loops over operands beyond the caches prefetch their next chunk's reads
// (prefetch_span). On Intel (a Xeon with AVX-512) that hid memory behind computation; on
// AMD Zen 5 every read prefetched, to any cache level, made the same loops slower (1
// thread, suite medians of 3+3 alternated: 10^7 float64 a*b + c 6.5 -> 7.3 ms,
// sqrt(a*a + b*b) 5.2 -> 5.9, float32 at 10^6 1.10-1.25x slower): its own prefetchers
// keep up, and the instructions only queue behind them. So on for Intel only;
// KILN_PREFETCH=1 or 0 forces it, for measuring on other CPUs.
bool prefetch_ahead() {
  static const bool on = [] {
    if (const char* v = std::getenv("KILN_PREFETCH")) return v[0] == '1';
#if defined(__x86_64__) || defined(__i386__)
    unsigned max_leaf, ebx, ecx, edx;
    // CPUID leaf 0: the vendor string in ebx, edx, ecx ("Genu" "ineI" "ntel").
    return __get_cpuid(0, &max_leaf, &ebx, &ecx, &edx) && ebx == 0x756e6547 && edx == 0x49656e69 && ecx == 0x6c65746e;
#else
    return false;
#endif
  }();
  return on;
}

// Asks for the cache lines of `bytes` from `p`, to arrive while the current chunk
// computes. Without it memory idles while a block's kernels compute (exp(a) * b reads b
// only after exp), the hardware prefetcher running no further ahead than the last load:
// on an Intel Xeon (1 thread, 10^7 float64, one chunk ahead) exp(-a) * log1p(b)
// 30.5 -> 26.5 ms, exp(a) * b 20.7 -> 17.2, a*b + c 18.6 -> 16.8. Not for data already in
// cache, where the prefetches are pure cost (exp(a) * b at 10^5 0.131 -> 0.151 ms).
// Always inlined: GCC finds a function of prefetches alone free of effects and drops the
// calls to it.
[[gnu::always_inline]] inline void prefetch_span(const char* p, int64_t bytes) {
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 3);
}

// The next piece of a row that a band comes back to after its other rows' pieces: into
// L2, where the band's pieces of all its streams fit (L1 would lose them first).
[[gnu::always_inline]] inline void prefetch_row_piece(const char* p, int64_t bytes, bool write) {
  for (int64_t off = 0; off < bytes; off += 64) {
    if (write) __builtin_prefetch(p + off, 1, 2);
    else __builtin_prefetch(p + off, 0, 2);
  }
}

// The same for elements [start, start + n) of every read from memory in order: in place,
// or (1-d) strided at most a line apart.
[[gnu::always_inline]] inline void prefetch_reads(const Loop& loop, int num_reads, int64_t start, int64_t n) {
  n = std::min(n, loop.total - start);
  for (int i = 0; i < num_reads; ++i) {
    const Operand& op = loop.inputs[i];
    if (op.gen) continue;
    if (op.mode == Operand::InPlace) {
      prefetch_span(op.base + start * static_cast<int64_t>(op.item), n * static_cast<int64_t>(op.item));
    } else if (op.mode == Operand::Strided && loop.nd == 1 && op.strides[0] > 0 && op.strides[0] <= 64) {
      prefetch_span(op.base + start * op.strides[0], n * op.strides[0]);
    }
  }
}

void scatter(const Loop& loop, const Operand& op, const char* src, int64_t start, int64_t n) {
  char* base = const_cast<char*>(op.base);
  walk(loop, op.strides, start, n, [&](int64_t offset, int64_t run, int64_t stride) {
    scatter_items(base + offset, src, op.item, run, stride);
    src += run * op.item;
  });
}

// Per-thread scratch memory, reused across evaluations: chunk registers never touch
// the allocator on the hot path.
std::atomic<uint64_t> g_scratch_bytes{0};  // held by all threads' workspaces

class Workspace {
 public:
  uint64_t filled_for = 0;  // the evaluation whose constants the registers hold

  char* get(size_t bytes) {
    if (bytes > size_) {
      release();
      size_t size = (bytes + 4095) / 4096 * 4096;
      data_ = static_cast<char*>(std::aligned_alloc(64, size));
      if (!data_) throw Error(Status::OutOfMemory, "cannot allocate evaluation scratch memory");
      size_ = size;
      g_scratch_bytes += size_;
    }
    return data_;
  }
  size_t capacity() const { return size_; }
  ~Workspace() { release(); }

 private:
  void release() {
    std::free(data_);
    data_ = nullptr;
    g_scratch_bytes -= size_;
    size_ = 0;
  }
  char* data_ = nullptr;
  size_t size_ = 0;
};

Workspace& thread_workspace() {
  thread_local Workspace ws;
  return ws;
}

// Constants, splatted (fully broadcast) reads and periodic reads' repeated patterns,
// `longest` elements of each (no range of the step is longer). Filled once per thread and
// step: a thread may run many tasks of one step, or tasks of others between, so the
// workspace remembers whose they are.
void fill_constants(const Block& b, const Loop& loop, void* const* r, int64_t longest) {
  const int num_reads = static_cast<int>(b.reads.size());
  for (size_t c = 0; c < b.constants.size(); ++c) {
    const Constant& k = b.constants[c];
    splat(static_cast<char*>(r[num_reads + c]), k.bytes, itemsize(k.dtype), longest);
  }
  for (int i = 0; i < num_reads; ++i) {
    const Operand& op = loop.inputs[i];
    char* reg = static_cast<char*>(r[i]);
    if (op.mode == Operand::Splat) {
      if (op.gen) generate_run(op, reg, 0, longest, 0);
      else splat(reg, op.base, op.item, longest);
    } else if (op.mode == Operand::Periodic) {
      const int64_t period = std::min(op.period, longest), bytes = longest * static_cast<int64_t>(op.item);
      int64_t have = period * static_cast<int64_t>(op.item);
      gather(loop, op, reg, 0, period);
      for (; have < bytes; have *= 2) std::memcpy(reg + have, reg, std::min(have, bytes - have));
    }
  }
}

uint64_t new_stamp() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

// Runs a reduction step's block over any range of at most `chunk` elements, on the calling
// thread (a reduction folds chunk by chunk, at segment and row boundaries of its own).
// The workspace holds the register table, then one slot per register (reads done in
// place leave theirs unused). The block writes no outputs: its folds read the registers.
class ChunkRunner {
 public:
  ChunkRunner(const Block& b, const Loop& loop, uint64_t stamp, int64_t chunk)
      : b_(b), loop_(loop), prefetch_(prefetch_ahead() && !cache_resident(loop.bytes)) {
    KILN_ASSERT(loop.outs.empty());
    const size_t reg_bytes = static_cast<size_t>(chunk) * 8;
    const int num_regs = b.num_registers();
    const size_t table = (num_regs * sizeof(void*) + 63) / 64 * 64;
    Workspace& ws = thread_workspace();
    size_t need = table + reg_bytes * num_regs;
    if (need > ws.capacity()) ws.filled_for = 0;
    char* mem = ws.get(need);
    r_ = reinterpret_cast<void**>(mem);
    for (int i = 0; i < num_regs; ++i) r_[i] = mem + table + reg_bytes * i;
    own_ = mem + table;
    reg_bytes_ = reg_bytes;

    if (ws.filled_for == stamp) return;
    ws.filled_for = stamp;
    fill_constants(b, loop, r_, std::min(chunk, loop.total));
  }

  // Computes elements [start, start + n). With `result_at`, a block's (only) operand is
  // computed there, when it is computed at all (not a read or a constant).
  void run(int64_t start, int64_t n, void* result_at = nullptr) {
    if (result_at && b_.results[0] >= static_cast<int>(b_.reads.size() + b_.constants.size()))
      r_[b_.results[0]] = result_at;
    const int num_reads = static_cast<int>(b_.reads.size());
    for (int i = 0; i < num_reads; ++i) bind_read(loop_, loop_.inputs[i], r_[i], own_ + reg_bytes_ * i, start, n);
    if (prefetch_) prefetch_reads(loop_, num_reads, start + n, n);  // runs mostly come in order
    const void* srcs[kMaxInstrSources];
    for (const Instr& in : b_.instrs) {
      for (int s = 0; s < in.nsrc; ++s) srcs[s] = r_[in.src[s]];
      in.fn(srcs, r_[in.dst], n);
    }
  }

  // A register's data after run().
  const void* reg(int r) const { return r_[r]; }

 private:
  const Block& b_;
  const Loop& loop_;
  const bool prefetch_;
  void** r_;
  char* own_;  // register i's own memory is own_ + reg_bytes_ * i (a generated read is made there)
  size_t reg_bytes_;
};

// The generator behind each read of a block (null for arrays).
std::vector<const Generator*> generators_of(const Plan& plan, const Block& b) {
  std::vector<const Generator*> gens;
  if (plan.generators.empty()) return gens;  // most plans: no search, no allocation
  for (int v : b.reads) gens.push_back(plan.generator_of(v));
  return gens;
}

// Coalesces and classifies operands (all of `shape`) into a loop: drops size-1
// dimensions and merges neighbours that every operand walks contiguously across. Fewer
// dimensions mean longer inner runs in gathers.
Loop make_loop(const Plan& plan, const Block& b, const Shape& shape, const std::vector<Array>& ins,
               const std::vector<Array>& outs) {
  const std::vector<const Generator*> gens = generators_of(plan, b);
  Loop loop;
  loop.total = shape_size(shape);
  const size_t nops = ins.size() + outs.size();
  auto array = [&](size_t k) -> const Array& { return k < ins.size() ? ins[k] : outs[k - ins.size()]; };
  std::vector<Operand> ops(nops);  // strides filled dimension by dimension
  int nd = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = nd > 0;
    for (size_t k = 0; k < nops && merge; ++k) merge = ops[k].strides[nd - 1] == array(k).strides()[d] * shape[d];
    if (merge) {
      loop.shape[nd - 1] *= shape[d];
      for (size_t k = 0; k < nops; ++k) ops[k].strides[nd - 1] = array(k).strides()[d];
    } else {
      loop.shape[nd] = shape[d];
      for (size_t k = 0; k < nops; ++k) ops[k].strides[nd] = array(k).strides()[d];
      ++nd;
    }
  }
  if (nd == 0) {
    nd = 1;
    loop.shape[0] = 1;
    for (Operand& op : ops) op.strides[0] = 0;
  }
  loop.nd = nd;
  for (size_t k = 0; k < nops; ++k) {
    Operand& op = ops[k];
    op.base = array(k).data();
    op.item = array(k).itemsize();
    op.gen = k < gens.size() ? gens[k] : nullptr;
    bool all_zero = std::all_of(op.strides, op.strides + nd, [](int64_t s) { return s == 0; });
    // C-contiguous over the loop's shape: flat index i is at base + i * item. (An operand
    // broadcast along some axis keeps the others from merging with it.)
    bool contiguous = true;
    for (int64_t d = nd - 1, step = static_cast<int64_t>(op.item); d >= 0 && contiguous; step *= loop.shape[d--])
      contiguous = op.strides[d] == step;
    if (loop.total == 1 || contiguous) op.mode = Operand::InPlace;
    else if (all_zero) op.mode = Operand::Splat;
    else op.mode = Operand::Strided;
    KILN_ASSERT(k < ins.size() || op.mode != Operand::Splat);
  }
  loop.outs.assign(ops.begin() + ins.size(), ops.end());
  ops.resize(ins.size());
  loop.inputs = std::move(ops);
  loop.bytes = operand_bytes(loop);
  loop.gather = cache_resident(loop.bytes) ? plan.kernels->gather : sse2_gather();
  loop.move_band = plan.kernels->move_band;
  return loop;
}

// The register table of an element-wise loop, on the caller's stack: one slot per
// register (reads done in place leave theirs unused), then one per output, pointing into
// this thread's workspace; constants filled once per thread and evaluation.
struct LoopRegisters {
  void* local[256];
  std::vector<void*> big;
  void** r;
  void** out;
  char* out_scratch;
  char* own;  // register i's own memory is own + reg_bytes * i
  char* extra;  // `extra_bytes` after the slots
  size_t reg_bytes;
  void* own_slot(int i) const { return own + reg_bytes * i; }

  LoopRegisters(const Block& b, const Loop& loop, uint64_t stamp, int64_t chunk, size_t extra_bytes = 0) {
    reg_bytes = static_cast<size_t>(chunk) * 8;
    const int num_regs = b.num_registers(), slots = num_regs + static_cast<int>(loop.outs.size());
    Workspace& ws = thread_workspace();
    size_t need = reg_bytes * static_cast<size_t>(slots) + extra_bytes;
    if (need > ws.capacity()) ws.filled_for = 0;
    char* mem = ws.get(need);
    r = local;
    if (slots > static_cast<int>(sizeof local / sizeof local[0])) {
      big.resize(slots);
      r = big.data();
    }
    for (int i = 0; i < num_regs; ++i) r[i] = mem + reg_bytes * i;
    own = mem;
    out = r + num_regs;
    out_scratch = mem + reg_bytes * num_regs;
    extra = mem + reg_bytes * static_cast<size_t>(slots);
    if (ws.filled_for != stamp) {
      ws.filled_for = stamp;
      fill_constants(b, loop, r, std::min(chunk, loop.total));
    }
  }

  // Every instruction of the block over the current chunk of n elements.
  void run(const Block& b, int64_t n) const {
    const void* srcs[kMaxInstrSources];
    for (const Instr& in : b.instrs) {
      for (int s = 0; s < in.nsrc; ++s) srcs[s] = in.src[s] >= 0 ? r[in.src[s]] : out[Instr::out_index(in.src[s])];
      in.fn(srcs, in.dst >= 0 ? r[in.dst] : out[Instr::out_index(in.dst)], n);
    }
  }
};

// Runs chunks [first, last) of a loop block on the calling thread. The element-wise path
// keeps its register pointers in a local array and its chunk loop in one function: the
// same work through ChunkRunner measured 1.2-1.8x slower on 2*a + 3*b*c - 1.5 (1 thread,
// 4M elements), depending on where the process's memory happened to be laid out.
// With `stream`, contiguous outputs are computed into scratch and copied out with
// non-temporal stores (see run_fused). Chunk c covers [c * chunk - lead, (c + 1) * chunk
// - lead) within [0, total): the first is short when lead > 0 (see line_head).
void run_chunks(const Block& b, const Loop& loop, uint64_t stamp, int64_t chunk, int64_t lead, int64_t first,
                int64_t last, const simd::KernelTable* stream, bool prefetch) {
  const int num_reads = static_cast<int>(b.reads.size());
  const int num_outs = static_cast<int>(loop.outs.size());
  LoopRegisters regs(b, loop, stamp, chunk);
  void** r = regs.r;
  void** out = regs.out;
  for (int64_t c = first; c < last; ++c) {
    const int64_t start = std::max<int64_t>(c * chunk - lead, 0);
    const int64_t n = std::min(c * chunk - lead + chunk, loop.total) - start;
    for (int i = 0; i < num_reads; ++i) {
      // bind_read's first case, inline here: an always_inline bind_read instead measured
      // 1.02-1.10x the time (2*a + 3*b*c - 1.5, 10^5 and 10^7 float64).
      const Operand& op = loop.inputs[i];
      if (op.mode == Operand::InPlace && !op.gen) r[i] = const_cast<char*>(op.base) + start * op.item;
      else bind_read(loop, op, r[i], regs.own_slot(i), start, n);
    }
    for (int k = 0; k < num_outs; ++k) {
      const Operand& o = loop.outs[k];
      out[k] = o.mode == Operand::InPlace && !stream ? const_cast<char*>(o.base) + start * o.item
                                                     : regs.out_scratch + regs.reg_bytes * k;
    }
    if (prefetch) prefetch_reads(loop, num_reads, start + n, chunk);
    regs.run(b, n);
    for (int k = 0; k < num_outs; ++k) {
      const Operand& o = loop.outs[k];
      if (o.mode != Operand::InPlace) scatter(loop, o, static_cast<char*>(out[k]), start, n);
      else if (stream) stream->stream_store(const_cast<char*>(o.base) + start * o.item, out[k], n * static_cast<int64_t>(o.item));
    }
  }
  if (stream) stream->stream_fence();
}

// Pieces of a row in run_row_chunks: row by row, a head up to the first aligned output
// line (maybe empty), then chunks (the last maybe empty); in bands, chunks only.
int64_t row_pieces(int64_t inner, int64_t chunk, int64_t band) {
  return (band == 1) + (inner + chunk - 1) / chunk;
}

// Whether run_row_chunks moves an operand a band of rows at a time (see band_shape): it
// steps a cache line or more along the row but less than one between rows (a transposed
// view: `a.T + b`, or an output `o.T`).
bool banded(const Operand& op, int nd) {
  const int64_t along = std::abs(op.strides[nd - 1]), across = std::abs(op.strides[nd - 2]);
  return !op.gen && along >= 64 && across > 0 && across < 64;
}

// How run_row_chunks takes rows: `rows` together (1: row by row), cut into pieces of
// `piece` elements along the row.
struct Bands {
  int64_t rows = 1;
  int64_t piece = 0;
};

// Row by row, a banded operand touches a line per element and uses one item of it; the
// next row finds that line again in L1 only while a row's lines fit there (48 KiB on Zen 5:
// a row of 768 elements, for one banded operand), else in L2 or memory. In bands, the
// banded operands move between memory and a tile of the band's rows (simd::BandFn), the
// kernels then run on the tile's rows. Bands beyond the caches prefetch their next piece:
// a band's piece of a row is too short for the CPU's prefetchers.
//  - Transposed views (rows an item apart: `a.T + b`, out=o.T; 4- and 8-byte items) move
//    through registers a block at a time, several times faster than an item at a time,
//    and band everywhere. While the banded operands' rows have under 4096 lines together,
//    bands are one line deep (8 rows of float64, 16 of float32), a whole row a piece: each
//    line is used up as it arrives. Beyond that, 512 bytes deep in pieces of 128: a band
//    visits a page per column, and 8 lines a visit beat one once the pages outnumber the
//    TLB's, it seems (one line deep against that, float64: 2500^2 0.79-0.90x, 4000^2
//    0.94-1.03x, rows of 10000 1.17-1.41x; a and the result transposed at 4000^2
//    1.20-1.40x).
//  - Other banded views (a[:, ::2].T, bool ones) move an item at a time, 512 bytes deep in
//    pieces of 128, and only beyond the caches with rows beyond L1 (bands were up to 1.3x
//    slower with rows of 500-800, and within the caches no faster).
// Zen 5, 1 thread, kiln-ab, time now over time with the item-at-a-time bands of before
// (a + b, a*b + c, sqrt(a*a + b*b); those ran row by row below 1000^2):
//                        300^2      600^2      1000^2     2000^2     4000^2     5000^2
//   float64, a.T         0.72-0.77  0.72-0.79  0.70-0.74  0.67-0.71  0.90-0.96  0.97-0.99
//   float64, out=o.T     0.80-0.85  0.71-0.78  0.64-0.66  0.66-0.74  0.77-0.82  0.89-0.90
//   float64, both        0.68-0.73  0.62-0.63  0.62-0.67  0.85-0.89  0.89-0.91  0.88-0.90
//   float32, a.T         0.37-0.45  0.47-0.53  0.50-0.53  0.49-0.54  0.76-0.82  0.73-0.80
//   float32, out=o.T     0.54-0.59  0.65-0.72  0.48-0.49  0.53-0.59  0.68-0.78  0.70-0.79
//   float32, both        0.38-0.47  0.48-0.49  0.44-0.46  0.69-0.79  0.59-0.67  0.60-0.68
Bands band_shape(const Loop& loop) {
  const int nd = loop.nd;
  if (nd < 2) return {};
  const int64_t inner = loop.shape[nd - 1];
  int64_t across_least = 64, lines = 0;
  bool transposed = true;
  auto consider = [&](const Operand& op) {
    if (!banded(op, nd)) return;
    const int64_t across = op.strides[nd - 2];
    transposed = transposed && across == static_cast<int64_t>(op.item) && op.item >= 4;
    across_least = std::min(across_least, std::abs(across));
    lines += inner;
  };
  for (const Operand& op : loop.inputs) consider(op);
  for (const Operand& op : loop.outs) consider(op);
  if (lines == 0) return {};
  int64_t depth = 512, piece = 128;
  if (transposed) {
    if (lines < 4096) depth = 64, piece = inner;
  } else if (cache_resident(loop.bytes) || lines * 64 <= (int64_t{48} << 10)) {
    return {};
  }
  return {std::min({int64_t{128}, depth / across_least, loop.shape[nd - 2]}), piece};
}

// Items of `item` bytes from `at` to the next cache line (0 if it starts one), or -1 if
// no item ever starts one (an address not a multiple of the item).
int64_t items_to_line(const void* at, size_t item) {
  const uintptr_t past = reinterpret_cast<uintptr_t>(at) % 64;
  return past % item ? -1 : static_cast<int64_t>((64 - past) % 64 / item);
}

// Whether `head` items of `item` bytes past `at` start a cache line.
bool line_after(const void* at, int64_t head, size_t item) {
  return (reinterpret_cast<uintptr_t>(at) + head * item) % 64 == 0;
}

// Runs chunks [first, last) of a loop block whose inner dimension is at least a chunk
// long, cutting each row (all of the inner dimension) into chunks of its own. An operand
// then needs only its inner stride to be the item size to be read or written in place:
// a broadcast row (`m + row`) or a row-padded view is never gathered, an operand
// broadcast along the inner dimension is filled once per row, and a strided one is
// gathered as one run without walking its index.
// Rows go in bands of `band` (band_shape): a chunk numbers a band and a piece, and runs
// that piece of each of the band's rows in turn, banded reads moved into a tile first
// and banded outputs out of one after.
void run_row_chunks(const Block& b, const Loop& loop, uint64_t stamp, int64_t chunk, int64_t band, int64_t first,
                    int64_t last, bool prefetch) {
  const int nd = loop.nd, num_reads = static_cast<int>(b.reads.size());
  const int num_outs = static_cast<int>(loop.outs.size()), nops = num_reads + num_outs;
  const int64_t inner = loop.shape[nd - 1], per_row = row_pieces(inner, chunk, band);
  // Each operand's way through a piece, decided once; reads first, then outputs. Rows
  // of 1000 float32 elements make a piece only a few hundred cycles of work.
  enum class Way : uint8_t { PerRow, InPlace, Strided, Generated, Banded };  // PerRow: a value per row
  struct Side {
    const Operand* op;
    Way way;
    bool streamed;   // prefetched a piece ahead
    int64_t stride;  // along the row
    int64_t offset;  // bytes to the current row's first element
    char* tile;      // Banded: the band's piece, a row per `pitch` bytes
  };
  Side local[16];
  std::vector<Side> more(nops > 16 ? nops : 0);
  Side* sides = nops > 16 ? more.data() : local;
  int num_banded = 0, banded_outs = 0;
  for (int k = 0; k < nops; ++k) {
    const Operand& op = k < num_reads ? loop.inputs[k] : loop.outs[k - num_reads];
    const int64_t stride = op.strides[nd - 1];
    Way way = op.gen ? Way::Generated : stride == static_cast<int64_t>(op.item) ? Way::InPlace : Way::Strided;
    if (k < num_reads && (op.mode == Operand::Splat || stride == 0)) way = Way::PerRow;
    if (band > 1 && way == Way::Strided && banded(op, nd)) {
      way = Way::Banded;
      ++num_banded;
      banded_outs += k >= num_reads;
    }
    // Reads from memory in order along the row, and not broadcast over rows (a row read
    // again for every row stays in cache).
    bool streamed = prefetch && band == 1 && k < num_reads && way != Way::PerRow && way != Way::Generated &&
                    stride > 0 && stride <= 64;
    for (int d = 0; d < nd - 1; ++d) streamed = streamed && op.strides[d] != 0;
    sides[k] = {&op, way, streamed, stride, 0, nullptr};
  }
  // A tile's rows hold a piece of their operand's items (a read register is only read, an
  // output's only written at its item size), a line more than that apart: rows a power
  // of two of bytes apart fall in one set of L1's.
  size_t widest = 1;
  for (int k = 0; k < nops; ++k)
    if (sides[k].way == Way::Banded) widest = std::max(widest, sides[k].op->item);
  const size_t pitch = static_cast<size_t>(chunk) * widest + 64, tile_bytes = pitch * static_cast<size_t>(band);
  LoopRegisters regs(b, loop, stamp, chunk, tile_bytes * static_cast<size_t>(num_banded));
  void** r = regs.r;
  void** out = regs.out;
  for (int k = 0, t = 0; k < nops; ++k)
    if (sides[k].way == Way::Banded) sides[k].tile = regs.extra + tile_bytes * static_cast<size_t>(t++);
  // Bands beyond the caches prefetch their next piece (see band_shape).
  const bool fetch_pieces = band > 1 && !cache_resident(loop.bytes);
  int64_t idx[kMaxDims] = {};  // the current row's index over the outer dims
  int64_t row = -2, head = 0;  // the row the sides' offsets and head are for
  // Moves to row `next`: each side's offset, and the head, the first piece: it ends a
  // line past the first output address on a 64-byte line, so the full chunks after it
  // store whole lines (an AVX-512 store that splits two lines made float32 m + row, rows
  // of 4000 bytes, 1.25x slower than AVX2's), and so it is at least a full batch long: a
  // kernel's ragged end after a full batch costs one batch more, a piece shorter than a
  // batch a padded copy in and out. Bands have no head: their rows' pieces line up.
  auto enter_row = [&](int64_t next) {
    if (next == row) return;
    if (next == row + 1) {
      for (int d = nd - 2; d >= 0 && ++idx[d] == loop.shape[d]; --d) idx[d] = 0;
    } else {
      for (int64_t rest = next, d = nd - 2; d >= 0; --d) {
        idx[d] = rest % loop.shape[d];
        rest /= loop.shape[d];
      }
    }
    row = next;
    for (int k = 0; k < nops; ++k) {
      int64_t off = 0;
      for (int d = 0; d < nd - 1; ++d) off += idx[d] * sides[k].op->strides[d];
      sides[k].offset = off;
    }
    head = 0;
    if (band == 1 && num_outs > 0 && sides[num_reads].way == Way::InPlace) {
      const size_t item = loop.outs[0].item;
      const int64_t to_line = items_to_line(loop.outs[0].base + sides[num_reads].offset, item);
      if (to_line > 0) head = std::min({inner, chunk, to_line + static_cast<int64_t>(64 / item)});
    }
  };
  // The current row's reads broadcast along the row.
  auto fill_per_row = [&] {
    for (int i = 0; i < num_reads; ++i) {
      const Side& s = sides[i];
      if (s.way != Way::PerRow || s.op->mode == Operand::Splat) continue;
      if (s.op->gen) generate_run(*s.op, static_cast<char*>(r[i]), s.offset, chunk, 0);
      else splat(static_cast<char*>(r[i]), s.op->base + s.offset, s.op->item, chunk);
    }
  };
  // Elements [j, j + n) of the current row; a banded operand's are row `in_band` of its
  // tile.
  auto run_piece = [&](int64_t j, int64_t n, int64_t in_band) __attribute__((always_inline)) {
    const size_t tile_row = static_cast<size_t>(in_band) * pitch;
    for (int i = 0; i < num_reads; ++i) {
      const Side& s = sides[i];
      if (s.way == Way::PerRow) continue;
      if (s.way == Way::Generated) {
        generate_run(*s.op, static_cast<char*>(r[i]), s.offset + j * s.stride, n, s.stride);
        continue;
      }
      if (s.way == Way::Banded) {
        r[i] = s.tile + tile_row;
        continue;
      }
      const char* src = s.op->base + s.offset + j * s.stride;
      if (s.streamed) prefetch_span(src + n * s.stride, chunk * s.stride);  // past a row's end: the next row's, mostly
      if (fetch_pieces && s.way == Way::InPlace) prefetch_row_piece(src + n * s.stride, chunk * s.stride, false);
      if (s.way == Way::InPlace) r[i] = const_cast<char*>(src);
      else loop.gather(r[i], src, s.op->item, n, s.stride);
    }
    for (int k = 0; k < num_outs; ++k) {
      const Side& s = sides[num_reads + k];
      char* dst = const_cast<char*>(s.op->base) + s.offset + j * s.stride;
      if (fetch_pieces && s.way == Way::InPlace) prefetch_row_piece(dst + n * s.stride, chunk * s.stride, true);
      out[k] = s.way == Way::InPlace  ? dst
               : s.way == Way::Banded ? s.tile + tile_row
                                      : regs.out_scratch + regs.reg_bytes * k;
    }
    regs.run(b, n);
    for (int k = 0; k < num_outs; ++k) {
      const Side& s = sides[num_reads + k];
      if (s.way == Way::Strided)
        scatter_items(const_cast<char*>(s.op->base) + s.offset + j * s.stride, static_cast<const char*>(out[k]),
                      s.op->item, n, s.stride);
    }
  };
  // Moves the banded operands of one direction between a band's rows and their tiles
  // (the current row is the band's first).
  auto move_banded = [&](bool reads, int64_t count, int64_t j, int64_t n) {
    for (int k = reads ? 0 : num_reads; k < (reads ? num_reads : nops); ++k) {
      const Side& s = sides[k];
      if (s.way != Way::Banded) continue;
      char* at = const_cast<char*>(s.op->base) + s.offset + j * s.stride;
      const int64_t across = s.op->strides[nd - 2];
      loop.move_band(reads, s.tile, pitch, at, s.op->item, across, s.stride, count, n);
      if (!fetch_pieces) continue;
      // The next piece's lines, the band deep, into L1 (into L2 only, or none: 1.05-1.12x
      // slower at 4000^2; from the line of the band's first item, covering a line
      // beyond its last when that straddles one: 1.04-1.10x slower, float32 at 4000^2).
      const int64_t deep = count * std::abs(across), m = std::min(chunk, inner - j - n);
      if (m == 0) continue;  // the row's last piece
      const char* next = at + n * s.stride + (across < 0 ? (count - 1) * across : 0);
      for (int64_t e = 0; e < m; ++e) {
        for (int64_t line = 0; line < deep; line += 64) {
          if (reads) __builtin_prefetch(next + e * s.stride + line, 0, 3);
          else __builtin_prefetch(next + e * s.stride + line, 1, 3);
        }
      }
    }
  };
  if (band == 1) {  // row by row: chunk c is piece c % per_row of row c / per_row
    for (int64_t c = first, piece = first % per_row, next = first / per_row; c < last; piece = 0, ++next) {
      enter_row(next);
      fill_per_row();
      for (const int64_t row_end = std::min(last, c + per_row - piece); c < row_end; ++c, ++piece) {
        const int64_t j = piece == 0 ? 0 : head + (piece - 1) * chunk;
        const int64_t n = piece == 0 ? head : std::min(chunk, inner - j);
        if (n > 0) run_piece(j, n, 0);  // else no head, or no last piece, in this row
      }
    }
    return;
  }
  // In bands: chunk c is piece c % per_row of band c / per_row. A band is rows of one plane
  // (the outer dims but the last fixed); a plane has `plane_bands` bands.
  const int64_t plane_rows = loop.shape[nd - 2], plane_bands = (plane_rows + band - 1) / band;
  for (int64_t c = first; c < last; ++c) {
    const int64_t piece = c % per_row, band_index = c / per_row, in_plane = band_index % plane_bands * band;
    const int64_t band_first = band_index / plane_bands * plane_rows + in_plane;
    const int64_t count = std::min(band, plane_rows - in_plane);
    const int64_t j = piece * chunk, n = std::min(chunk, inner - j);
    enter_row(band_first);
    move_banded(true, count, j, n);
    for (int64_t k = 0; k < count; ++k) {
      if (k > 0) enter_row(band_first + k);
      fill_per_row();
      run_piece(j, n, k);
    }
    if (banded_outs > 0) {
      enter_row(band_first);
      move_banded(false, count, j, n);
    }
  }
}

constexpr uint64_t kStreamBytes = uint64_t{64} << 20;

// KILN_STREAM_STORES=1 or 0 forces non-temporal output stores on or off (both the
// streamed generators and streamed loop outputs), for measuring; -1 when unset.
int forced_stream_stores() {
  static const int forced = [] {
    const char* v = std::getenv("KILN_STREAM_STORES");
    return v ? (v[0] == '1' ? 1 : 0) : -1;
  }();
  return forced;
}

// Whether a block calls a transcendental kernel: such a loop waits on arithmetic, not
// memory, and streaming its output only adds the copy out of scratch (exp(-a) * log1p(b)
// at 10^7 float64, 1 thread: 12.8 ms plain, 14.3 streamed).
bool computes_much(const Block& b) { return transcendental_bytes(b) > 0; }

// A block that only copies a generator into a contiguous output (zeros(n), uniform(...)
// evaluated on their own) runs as pieces made in L1 and streamed to memory past the
// caches: a plain store first reads every line it writes, so a write-only stream moved
// twice its bytes (full(n, 7.0) at 10^8: 69% of the STREAM triad's rate with plain
// stores). `work` is the loop's work_bytes. Returns false when the block is not such a copy.
bool stream_generator(const Block& b, const Loop& loop, uint64_t work) {
  if (b.instrs.size() != 1 || loop.outs.size() != 1 || loop.inputs.size() != 1) return false;
  const Instr& in = b.instrs[0];
  const Operand& src = loop.inputs[0];
  const Operand& dst = loop.outs[0];
  if (!in.is_cast || in.compute != in.result || in.src[0] != 0 || in.dst != Instr::out(0) || !src.gen ||
      src.mode != Operand::InPlace || dst.mode != Operand::InPlace)
    return false;
  const simd::KernelTable& kernels = Runtime::instance().kernels();
  constexpr int64_t kPieceBytes = 16384;
  const int64_t item = static_cast<int64_t>(dst.item), piece = kPieceBytes / item;
  const int64_t pieces = (loop.total + piece - 1) / piece;
  for_items(pieces, 1, work, [&](int64_t first, int64_t last) {
    Workspace& ws = thread_workspace();
    ws.filled_for = 0;  // the memory no longer holds any block's constants
    char* buf = ws.get(kPieceBytes);
    for (int64_t p = first; p < last; ++p) {
      const int64_t start = p * piece, n = std::min(piece, loop.total - start);
      src.gen->fn(src.gen->params, start, 1, n, buf);
      kernels.stream_store(const_cast<char*>(dst.base) + start * item, buf, n * item);
    }
    kernels.stream_fence();
  });
  return true;
}

// How many times the plan's chunk a loop block runs with. The plan's short chunk keeps a
// block's registers in L1 and, from memory, reads all input streams nearly together; its
// cost is per kernel call. Element-wise results do not depend on where calls are cut
// (every element goes through the same batch function, tails included), so:
//  - operands that fit in the caches together (4 MiB): no stream waits on memory, 8x the
//    chunk runs 1.2-1.6x faster at 10^5 elements (kiln bench --suite, 1 thread);
//  - beyond that, unless the loop prefetches a chunk ahead (Intel, prefetch_ahead), while
//    the operands come from the last-level cache: a block with no scratch register (one
//    instruction, or one per output) keeps nothing in L1 between its calls, so only the
//    call count depends on the chunk: 8x up to 24 MiB of operands; other blocks 4x up to
//    16 MiB. AMD Zen 5, 1 thread, 15 alternations in one process, medians: at 10^6
//    float32 where(a > 0, a, 0.1*a) 138 -> 94 us, a[::2]*2 + b 285 -> 184, m + row
//    152 -> 102, 2*a + 3*b*c - 1.5 311 -> 206, abs(a - b) + minimum(a, c) 327 -> 220,
//    sin(a)**2 + cos(b)**2 544 -> 464; float64 at 3*10^5 1.09-1.48x. At 32 MiB a*b + c
//    ran 0.91x with 8x and blocks with scratch 0.64-0.82x, and from memory (3*10^7)
//    one-instruction blocks 0.93-1.07x: the short chunk stays there.
//  - a block whose every operand is in place in memory, with no register of its own
//    (a + b, a*b + c: NumPy's single ufunc calls), keeps nothing in L1 between calls:
//    64x (calls of 32 KiB of float64 each) while its operands come from the caches.
//    kiln-ab over 8x, AMD Zen 3 (AVX2), a + b: 1 thread float64 at 10^5 0.87-0.94,
//    3*10^5 0.87-0.92, 10^6 0.95, float32 0.94-0.99; 2 threads 0.85-0.89 up to 3*10^5,
//    0.98-1.03 at 10^6 (from Python, a + b at 3*10^5 had taken 1.43x NumPy's time). From
//    memory (10^7, streamed stores) it took 1.03-1.13x the time: the short chunk stays.
int64_t chunk_factor(const Block& b, const Loop& loop, bool prefetch) {
  const uint64_t operand_bytes = loop.bytes;
  const bool from_cache_without_scratch = b.num_scratch == 0 && operand_bytes <= (uint64_t{24} << 20);
  auto in_place = [](const Operand& op) { return op.mode == Operand::InPlace && !op.gen; };
  if (!prefetch && from_cache_without_scratch && b.constants.empty() &&
      std::all_of(loop.inputs.begin(), loop.inputs.end(), in_place) && std::all_of(loop.outs.begin(), loop.outs.end(), in_place))
    return 64;
  if (cache_resident(operand_bytes)) return 8;
  if (prefetch) return 1;
  if (from_cache_without_scratch) return 8;
  if (operand_bytes <= (uint64_t{16} << 20)) return 4;
  return 1;
}

// How many elements a read broadcast over the loop's leading dimensions takes to repeat:
// the size of the dimensions from its first nonzero stride on (0 if that is the first).
int64_t period_of(const Loop& loop, const Operand& op) {
  int d = 0;
  while (d < loop.nd && op.strides[d] == 0) ++d;
  int64_t period = d > 0;
  for (; d < loop.nd && period > 0; ++d) period *= loop.shape[d];
  return period;
}

// Where every operand not in place is a read broadcast over leading dimensions (`m + row`,
// `x + bias`, a (n, 3, 3) stack plus one 3x3 matrix): marks those reads Periodic and
// returns the chunk cut to a multiple of their periods, so that every chunk starts at
// element 0 of each pattern and the loop runs flat, with no gather and no per-row piece.
// Returns 0 (and marks nothing) otherwise, or when the periods need a longer chunk.
int64_t periodic_chunk(Loop& loop, int64_t chunk) {
  int64_t common = 1;
  for (const Operand& op : loop.outs)
    if (op.mode != Operand::InPlace) return 0;
  for (const Operand& op : loop.inputs) {
    if (op.mode != Operand::Strided) continue;
    const int64_t period = period_of(loop, op);
    if (period == 0) return 0;
    common = std::lcm(common, period);
    if (common > chunk) return 0;
  }
  if (common == 1) return 0;  // nothing broadcast
  for (Operand& op : loop.inputs) {
    if (op.mode != Operand::Strided) continue;
    op.mode = Operand::Periodic;
    op.period = period_of(loop, op);
  }
  return chunk / common * common;
}

// How many elements the first chunk of a flat loop takes so that the others start on a
// cache line of as many of the operands in memory as can share one (outputs count twice:
// streaming stores want whole lines). NumPy's arrays (malloc's large blocks) start 16
// bytes past a line: every AVX-512 load then straddled two lines, and outputs could not be
// streamed. Element-wise results do not depend on where chunks are cut. Zen 5, 1 thread,
// float64 operands and result 16 bytes past a line, time with this head over time without
// (kiln-ab --offset 16): at 10^7 a*b + c 0.85, a + 1 0.79, sqrt(a*a + b*b) 0.84,
// where(a > 0, a, 0.1*a) 0.90, 2*a + 3*b*c - 1.5 0.92; at 3*10^4 0.64-0.97; operands
// already on a line 0.97-1.04 (noise).
int64_t line_head(const Loop& loop) {
  auto each_in_memory = [&](auto visit) {
    for (const Operand& op : loop.inputs)
      if (op.mode == Operand::InPlace && !op.gen) visit(op, 1);
    for (const Operand& op : loop.outs)
      if (op.mode == Operand::InPlace) visit(op, 2);
  };
  auto votes_for = [&](int64_t head) {
    int votes = 0;
    each_in_memory([&](const Operand& op, int weight) {
      votes += line_after(op.base, head, op.item) ? weight : 0;
    });
    return votes;
  };
  int64_t best = 0;
  int best_votes = votes_for(0);
  each_in_memory([&](const Operand& candidate, int) {
    const int64_t head = items_to_line(candidate.base, candidate.item);
    if (head <= 0) return;
    if (const int votes = votes_for(head); votes > best_votes) best = head, best_votes = votes;
  });
  return best;
}

// Runs a loop block over `shape`: reads broadcast to it, outs of exactly that shape.
void run_fused(const Plan& plan, const Block& b, const Shape& shape, const std::vector<Array>& reads,
               const std::vector<Array>& outs) {
  if (shape_size(shape) == 0) return;  // nothing to write (NumPy gives empty arrays 0 strides)
  int64_t chunk = plan.chunk;
  Loop loop = make_loop(plan, b, shape, reads, outs);
  const int64_t plan_chunk = chunk;
  const bool in_cache = cache_resident(loop.bytes);
  const uint64_t work = work_bytes(b, loop);
  const bool prefetch = !in_cache && prefetch_ahead();
  chunk *= chunk_factor(b, loop, prefetch);
  const int forced = forced_stream_stores();
  if ((forced >= 0 ? forced == 1 : !in_cache) && stream_generator(b, loop, work)) return;
  uint64_t stamp = new_stamp();
  // Tasks of at least 4096 elements: small chunks keep registers in L1, but each task
  // must be worth scheduling. Chunk boundaries, not tasks, decide results.
  const int64_t inner = loop.shape[loop.nd - 1];
  const int64_t cut = periodic_chunk(loop, chunk);
  if (cut) chunk = cut;
  bool by_rows = false;
  // Banded loops go by rows from rows of 64 elements: float32 transposed, rows of 64-127,
  // ran in 0.49-0.76x the flat gather's time, rows of 16-48 in 1.1-1.7x.
  const Bands bands_of = band_shape(loop);
  if (loop.nd > 1 && (inner >= plan_chunk || (bands_of.rows > 1 && inner >= 64))) {
    for (const Operand& op : loop.inputs) by_rows |= op.mode == Operand::Strided;
    for (const Operand& op : loop.outs) by_rows |= op.mode == Operand::Strided;
  }
  if (by_rows) {
    const int64_t band = bands_of.rows;
    if (band > 1) chunk = bands_of.piece;
    const int64_t per_row = row_pieces(inner, chunk, band), rows = loop.total / inner;
    const int64_t plane_rows = loop.shape[loop.nd - 2], bands = rows / plane_rows * ((plane_rows + band - 1) / band);
    const int64_t grain =
        std::max<int64_t>(1, 4096 / (band > 1 ? band * std::min(chunk, inner) : inner)) * (band > 1 ? 1 : per_row);
    for_items(bands * per_row, grain, work,
              [&](int64_t first, int64_t last) { run_row_chunks(b, loop, stamp, chunk, band, first, last, prefetch); });
    return;
  }
  // Loops far bigger than the caches write with non-temporal stores: a plain store reads
  // each line before writing it, a fifth of the traffic of a + b. Far bigger: a block of
  // one instruction (no scratch register) when its operands move 64 MiB, others when their
  // outputs alone are that big. kiln-ab, streamed over plain stores, Zen 5, quiet minutes:
  // a*b + c, (a + b)*c, a + b at 10^7 float32 (40 MB outputs) 0.79-0.96 on 1 and 2 threads,
  // at 3-5 * 10^6 float64 0.76-0.84; 2*a + 3*b*c - 1.5 and a*b*c + a at 10^7 float32
  // 0.96-1.11, float64 0.95-1.18 on 1 thread and 0.89-1.06 on 2 (10^7, 3 * 10^7), but at
  // 10^8 on 2 threads plain stores took 1.20-1.24x the time. With the memory bus loaded by
  // neighbours, streaming float32's one-instruction blocks took 1.00-1.12x the time.
  // A loop of several chunks cuts them on cache lines (line_head), unless periodic reads
  // need them to start on their patterns. Streamed only if every output's chunks then
  // start on a line: a line written half streamed and half cached costs more than plain
  // stores (outputs 16 bytes past a line, cut without a head: where(a > 0, a, 0.1*a)
  // 4.2 -> 5.1 ms streamed).
  int64_t head = loop.total > chunk && cut == 0 ? line_head(loop) : 0;
  if (head >= chunk) head = 0;
  uint64_t out_bytes = 0;
  bool lines = true;
  for (const Operand& op : loop.outs) {
    out_bytes += op.item * static_cast<uint64_t>(loop.total);
    lines = lines && line_after(op.base, head, op.item);
  }
  // And only when two or more operands are read from memory. 10^7 float64, time with
  // plain stores over streamed, Zen 5: one read (a + 1, where(a > 0, a, 0.1*a), sqrt(a))
  // 0.56-0.67 while a neighbour loaded the memory bus, 0.84-1.05 while it did not, 0.83-0.86
  // on 2 threads; two reads (a*b, a + b) 1.15-1.29 quiet, 0.93-0.95 loaded, 1.15 on 2.
  int reads_from_memory = 0;
  for (const Operand& op : loop.inputs) reads_from_memory += op.mode != Operand::Splat && !op.gen;
  const bool stream = forced >= 0 ? forced == 1
                                  : (b.num_scratch == 0 ? loop.bytes : out_bytes) >= kStreamBytes && lines &&
                                        reads_from_memory >= 2 && !computes_much(b);
  const simd::KernelTable* streamer = stream ? &Runtime::instance().kernels() : nullptr;
  const int64_t lead = head > 0 ? chunk - head : 0, chunks = (loop.total + lead + chunk - 1) / chunk;
  for_items(chunks, 4096 / chunk, work, [&](int64_t first, int64_t last) {
    run_chunks(b, loop, stamp, chunk, lead, first, last, streamer, prefetch);
  });
}

// How many elements a reduction's producer computes per call: up to `most` chunks, as
// many as keep all its registers within `bytes`. Each call pays for binding the reads and
// a call per instruction; a call per 64 float64s cost more than the work over the caches,
// and as much as a third of it from memory (Zen 5, 1 thread, 10^7 float64, 8 chunks a
// call: std(a) 0.70x the time, max(abs(a)) 0.66, sum(a*b + c) 0.89-0.91, sum(sqrt(a*a +
// b*b)) 0.76; std along rows of 1000 0.66, sum along columns 0.83; at 10^5 0.53-0.89).
// Along segments the fold's group of 8 chunks, in L1 (24 KiB) beside the group's buffer:
// groups and calls of 16 made std(a) 1.28x slower than 8, its registers no longer fit.
int64_t producer_step(const Block& b, int64_t chunk, int64_t most, int64_t bytes) {
  int64_t chunks = most;
  while (chunks > 1 && b.num_registers() * chunks * chunk * 8 > bytes) chunks /= 2;
  return chunks * chunk;
}

// Pairwise combination of a sequence of accumulators fed in order: the tree depends only
// on how many there are, so the result does not depend on which thread fed which.
class PairwiseFold {
 public:
  explicit PairwiseFold(const simd::ReduceFns& f) : f_(f) {}
  void clear() { top_ = 0; }
  void add(simd::ReduceAcc a) {
    int level = 0;
    while (top_ > 0 && level_[top_ - 1] == level) {
      simd::ReduceAcc earlier = stack_[--top_];
      f_.combine(&earlier, &a);
      a = earlier;
      ++level;
    }
    stack_[top_] = a;
    level_[top_++] = level;
  }
  simd::ReduceAcc result() const {
    if (top_ == 0) return {};  // nothing was added (callers always add something)
    simd::ReduceAcc a = stack_[top_ - 1];
    for (int i = top_ - 2; i >= 0; --i) {
      simd::ReduceAcc earlier = stack_[i];
      f_.combine(&earlier, &a);
      a = earlier;
    }
    return a;
  }

 private:
  const simd::ReduceFns& f_;
  simd::ReduceAcc stack_[64];
  int level_[64];
  int top_ = 0;
};

// Writes n finished accumulators (each of `count` elements) as the fold's result dtype:
// accumulator k at acc + k * acc_step bytes, its index (argmin/argmax) at index[k *
// index_step]. Whole rows at a time, since a call per element cost more than the
// reduction itself for sum(x, axis=0) over a few long rows.
void finalize_row(const Fold& f, const unsigned char* acc, size_t acc_step, const int64_t* index, size_t index_step,
                  int64_t count, int64_t n, char* dst) {
  const size_t out_item = itemsize(f.result);
  switch (f.spec.reduction) {
    case Reduction::argmin: case Reduction::argmax:
      for (int64_t k = 0; k < n; ++k) std::memcpy(dst + k * 8, index + k * index_step, 8);
      return;
    case Reduction::mean: {
      // NumPy divides by the count in float64 (and by n - ddof, at least 0, for var). Many
      // contiguous means of the accumulator's dtype at a time in the plan's SIMD set;
      // otherwise a loop per dtype pair. Item by item, choosing the dtypes for each, 1.25e6
      // means took 1.7 ms, half of mean(x, axis=0) over 8 rows.
      const double d = static_cast<double>(std::max<int64_t>(count - f.spec.ddof, 0));
      if (f.fns.divide && f.result == f.accumulate && acc_step == out_item) return f.fns.divide(acc, d, n, dst);
      auto divide = [&]<class A, class R>(A, R) {
        for (int64_t k = 0; k < n; ++k) {
          A sum;
          std::memcpy(&sum, acc + k * acc_step, sizeof sum);
          const R q = static_cast<R>(static_cast<double>(sum) / d);
          std::memcpy(dst + k * sizeof q, &q, sizeof q);
        }
      };
      if (f.accumulate == DType::Float32) {
        if (f.result == DType::Float32) divide(float{}, float{});
        else divide(float{}, double{});
      } else {
        if (f.result == DType::Float32) divide(double{}, float{});
        else divide(double{}, double{});
      }
      return;
    }
    default: {
      // The result is the accumulator's leading bytes (the same dtype, or a narrower view).
      auto copy = [&]<size_t S>(std::integral_constant<size_t, S>) {
        for (int64_t k = 0; k < n; ++k) std::memcpy(dst + k * S, acc + k * acc_step, S);
      };
      if (acc_step == out_item) std::memcpy(dst, acc, static_cast<size_t>(n) * out_item);
      else if (out_item == 8) copy(std::integral_constant<size_t, 8>{});
      else if (out_item == 4) copy(std::integral_constant<size_t, 4>{});
      else if (out_item == 2) copy(std::integral_constant<size_t, 2>{});
      else copy(std::integral_constant<size_t, 1>{});
      return;
    }
  }
}

// A fold's first row of accumulators: its operand's items as they are, but bools as NumPy
// reads them (any nonzero byte 1: a view of uint8 as bool may hold others), which the
// kernels' later rows and a length-1 axis's result take them to be: the bool-to-bool cast,
// or, for counted bools, the cast to the accumulate dtype.
void copy_first_row(const simd::KernelTable& kernels, char* acc, const void* src, int64_t n, DType operand,
                    DType accumulate) {
  if (operand == accumulate && accumulate != DType::Bool)
    return (void)std::memcpy(acc, src, static_cast<size_t>(n) * itemsize(accumulate));
  const void* from[] = {src};
  kernels.cast[static_cast<int>(operand)][static_cast<int>(accumulate)](from, acc, n);
}

// n finished accumulators of the segments path, one after another in an array.
void finalize(const Fold& f, const simd::ReduceAcc* a, int64_t count, int64_t n, char* dst) {
  finalize_row(f, a->value, sizeof(simd::ReduceAcc), &a->index, sizeof(simd::ReduceAcc) / sizeof(int64_t), count, n, dst);
}

simd::ReduceAcc identity(const Fold& f) {
  simd::ReduceAcc a{};
  int64_t one = (f.spec.reduction == Reduction::prod || f.spec.reduction == Reduction::all) ? 1 : 0;
  switch (f.accumulate) {
    case DType::Bool: a.value[0] = static_cast<unsigned char>(one); break;
    case DType::Int32: { int32_t v = static_cast<int32_t>(one); std::memcpy(a.value, &v, 4); break; }
    case DType::Int64: std::memcpy(a.value, &one, 8); break;
    case DType::Float32: { float v = static_cast<float>(one); std::memcpy(a.value, &v, 4); break; }
    case DType::Float64: { double v = static_cast<double>(one); std::memcpy(a.value, &v, 8); break; }
  }
  return a;
}

// The values a block reads, broadcast to the shape it runs over. A generator without a
// shape of its own takes that shape: one element for each of the loop's.
std::vector<Array> broadcast_reads(const Plan& plan, const Block& b, const std::vector<Array>& values,
                                   const Shape& shape) {
  std::vector<Array> reads;
  reads.reserve(b.reads.size());
  for (int v : b.reads) {
    const Generator* gen = plan.generator_of(v);
    if (gen && plan.graph.node(gen->node).gen.shape_from == GenSpec::ShapeFrom::Context)
      reads.push_back(Array::placeholder(gen->dtype, shape));
    else
      reads.push_back(values[v].broadcast_to(shape));
  }
  return reads;
}

// One fold's state while its step runs.
struct FoldRun {
  const Fold* f;
  size_t acc_item, out_item;
  size_t op_item;  // the operand's items (Fold::operand)
  bool is_arg;
  Array out;
  std::vector<simd::ReduceAcc> partial;  // segments: one per (output, block)
  Array partial_rows;                      // rows: one row of accumulators per band
  Array partial_index;                     // rows, argmin/argmax: where each came from
};

// A single fold's operand read straight from memory instead of computed into a register:
// one array (sum(a), max(a, axis=1)), the products of two (sum(x*y), sum(x**2)), or one
// array's deviations from one value (var's second pass), or, along columns only, from a
// value per column (var(x, axis=0)'s). Products and deviations are folded as they are
// made, never stored, with the roundings a register would have given them: the same bits.
struct MemoryOperand {
  enum class Kind { None, Direct, Products, Deviations, ColumnDeviations } kind = Kind::None;
  const char* x = nullptr;
  // Products: the second factor; Deviations: the value (with centre_step, segment s's at
  // y + s * centre_step bytes); ColumnDeviations: a row of them
  const char* y = nullptr;
  size_t item = 0;  // bytes per element (the fold's operand's)
  int64_t centre_step = 0;

  explicit operator bool() const { return kind != Kind::None; }
  // Whether whole segments go many to a call (run_segments, run_products_segments).
  bool packs() const { return kind == Kind::Direct || kind == Kind::Products; }
  // Elements [flat, flat + n) of segment `seg` into *acc; `first` is the first one's index
  // in its segment.
  void run(const simd::ReduceFns& fns, int64_t flat, int64_t n, int64_t seg, int64_t first, simd::ReduceAcc* acc) const {
    const size_t at = static_cast<size_t>(flat) * item;
    if (kind == Kind::Direct) fns.run(x + at, n, first, acc);
    else if (kind == Kind::Products) fns.run_products(x + at, y + at, n, acc);
    else fns.run_deviations(x + at, y + seg * centre_step, n, acc);
  }
  // `count` whole segments of n from element `flat` (packs() only).
  void run_segments(const simd::ReduceFns& fns, int64_t flat, int64_t n, int64_t count, void* values,
                    int64_t* index) const {
    const size_t at = static_cast<size_t>(flat) * item;
    if (kind == Kind::Direct) fns.run_segments(x + at, n, count, values, index);
    else fns.run_products_segments(x + at, y + at, n, count, values);
  }
};

bool overlaps(const Array& a, const Array& b) {
  const char *alo, *ahi, *blo, *bhi;
  a.byte_extent(alo, ahi);
  b.byte_extent(blo, bhi);
  return alo < bhi && blo < ahi;
}

// One reduction step. The operand's iteration space is ordered so that memory is walked
// forwards: when the innermost axis in memory (of the first operand read in full; see
// below) is reduced, as [kept axes, reduced axes], and every output element folds one
// contiguous segment; otherwise (and for many segments of at most 16 bytes) as [reduced
// axes, kept axes], and each row of that space is added element-wise into a row of
// accumulators.
// Both cut the work into pieces fixed by the shape alone (blocks of a segment; bands of
// rows and columns), fold each piece on one thread and combine the pieces' partial
// results in order afterwards: the same bits for any number of threads. Every fold of
// the step reads the same chunks: one pass over memory for all of them.
// `into`, when given, is the caller's `out` for the fold that makes value into_value:
// that fold writes its results there when they fit it exactly (its dtype and shape,
// C-contiguous, writable, apart from every operand). Returns whether one did.
bool run_reduce(const Plan& plan, const Step& st, std::vector<Array>& values, const Array* into = nullptr,
                int into_value = -1) {
  const Block& b = st.body;
  if (!st.separate.empty()) {
    Shape first = block_shape(plan, st.separate[0], values);
    bool same = true;
    for (const Block& one : st.separate) same = same && block_shape(plan, one, values) == first;
    if (!same) {
      bool wrote = false;
      for (size_t k = 0; k < st.folds.size(); ++k) {
        Step alone;
        alone.kind = Step::Kind::Reduce;
        alone.body = st.separate[k];
        alone.folds = {st.folds[k]};
        wrote = run_reduce(plan, alone, values, into, into_value) || wrote;
      }
      return wrote;
    }
  }
  const Shape shape = block_shape(plan, b, values);
  auto where = [&](const Fold& f) {
    int pos = plan.graph.node(f.node).pos;
    return std::string(f.spec.name()) + (pos >= 0 ? " at position " + std::to_string(pos) : "");
  };
  const ReduceSpec& axes = st.folds[0].spec;  // the same for every fold
  const int nd = static_cast<int>(shape.size());
  std::array<char, kMaxDims> reduced;
  reduced.fill(axes.all_axes ? 1 : 0);
  for (int bit = 0; bit < 64 && !axes.all_axes; ++bit) {
    if (!(axes.axes >> bit & 1)) continue;
    int axis = ReduceSpec::axis_of(bit), a = axis < 0 ? axis + nd : axis;
    if (a < 0 || a >= nd)
      throw Error(Status::BadArgument, where(st.folds[0]) + ": axis " + std::to_string(axis) +
                                           " is out of bounds for an operand of " + std::to_string(nd) + " dimension" +
                                           (nd == 1 ? "" : "s") + ", shape " + shape_str(shape));
    if (reduced[a])
      throw Error(Status::BadArgument, where(st.folds[0]) + ": axis " + std::to_string(a) + " is given twice (as " +
                                           std::to_string(a) + " and " + std::to_string(a - nd) + ")");
    reduced[a] = 1;
  }
  int64_t L = 1, M = 1;  // elements folded into each output; outputs
  for (int d = 0; d < nd; ++d) (reduced[d] ? L : M) *= shape[d];
  const size_t K = st.folds.size();
  std::vector<FoldRun> runs(K);
  bool wrote_into = false;
  for (size_t k = 0; k < K; ++k) {
    const Fold& f = st.folds[k];
    if (f.spec.keepdims && nd == 0)
      throw Error(Status::BadArgument, where(f) + ": keepdims=True on a 0-d operand, which has no axes to keep");
    if (L == 0 && !has_identity(f.spec.reduction))
      throw Error(Status::BadArgument, where(f) + ": the reduced extent of the operand (shape " + shape_str(shape) +
                                           ") is empty, and " + f.spec.name() + " of no elements has no value");
    Shape out_shape;
    for (int d = 0; d < nd; ++d)
      if (!reduced[d] || f.spec.keepdims) out_shape.push_back(reduced[d] ? 1 : shape[d]);
    auto fits = [&](const Array& out) {
      if (out.dtype() != f.result || out.shape() != out_shape || !out.is_c_contiguous() || !out.writable()) return false;
      for (int v : b.reads)
        if (!plan.generator_of(v) && overlaps(values[v], out)) return false;
      return true;
    };
    runs[k].f = &f;
    runs[k].acc_item = itemsize(f.accumulate);
    runs[k].op_item = itemsize(f.operand);
    runs[k].out_item = itemsize(f.result);
    runs[k].is_arg = f.spec.reduction == Reduction::argmin || f.spec.reduction == Reduction::argmax;
    const bool to_into = f.value == into_value && fits(*into);
    runs[k].out = to_into ? *into : Array::empty(f.result, out_shape);
    wrote_into = wrote_into || to_into;
    values[f.value] = runs[k].out;
  }
  if (M == 0) return wrote_into;
  if (L == 0) {
    for (FoldRun& fr : runs) {
      const simd::ReduceAcc empty = identity(*fr.f);
      for (int64_t k = 0; k < M; ++k) finalize(*fr.f, &empty, 0, 1, fr.out.data() + k * fr.out_item);
    }
    return wrote_into;
  }

  // The axis the iteration walks last: the one innermost in memory (the smallest stride)
  // of the first operand read in full, else the last (computed operands). Segments along a
  // transposed operand's logical last axis were read an item at a time: sum(a.T, axis=1)
  // over 10^7 float64s took 30x the time of sum(a, axis=1). Not for argmin/argmax over
  // several axes: their index counts in the logical order.
  std::vector<Array> reads = broadcast_reads(plan, b, values, shape);
  int last = nd - 1;
  while (last >= 0 && shape[last] == 1) --last;
  int reduced_axes = 0;
  for (int d = 0; d < nd; ++d) reduced_axes += reduced[d] && shape[d] > 1;
  const bool logical = reduced_axes > 1 && std::any_of(runs.begin(), runs.end(), [](const FoldRun& fr) { return fr.is_arg; });
  for (size_t i = 0; i < reads.size() && !logical && last >= 0; ++i) {
    const Array& r = reads[i];
    if (!r.data()) continue;  // a generator: no memory
    bool full = true;
    int inner = -1;
    for (int d = 0; d < nd; ++d) {
      if (shape[d] == 1) continue;
      const int64_t stride = std::abs(r.strides()[d]);
      full = full && stride != 0;
      if (inner < 0 || stride <= std::abs(r.strides()[inner])) inner = d;
    }
    if (!full) continue;
    last = inner;
    break;
  }
  // Kernels that take short segments a block of rows at a time (float folds) are fastest
  // along the segments. For the rest, many segments of at most 16 bytes are folded as
  // rows are, a column at a time: that took 0.3-0.8x the time of folding segment by
  // segment; from 24 bytes, 0.6-3x.
  const bool short_by_blocks =
      std::all_of(runs.begin(), runs.end(), [](const FoldRun& fr) { return fr.f->operand_fns.blocks_short_segments; });
  const bool segments =
      (last < 0 || reduced[last]) && (short_by_blocks || !(L * runs[0].acc_item <= 16 && M >= 1024));
  std::vector<int> perm;
  perm.reserve(nd);
  for (int pass = 0; pass < 2; ++pass)
    for (int d = 0; d < nd; ++d)
      if ((reduced[d] != 0) == (segments ? pass == 1 : pass == 0) && !(segments && d == last)) perm.push_back(d);
  if (segments && last >= 0) perm.push_back(last);  // the segments run along it
  Shape iter_shape;
  for (int d : perm) iter_shape.push_back(shape[d]);
  for (Array& r : reads) r = r.transpose(perm);
  const Loop loop = make_loop(plan, b, iter_shape, reads, {});
  const uint64_t stamp = new_stamp();
  const int64_t chunk = plan.chunk;
  const uint64_t work = work_bytes(b, loop);
  constexpr int64_t kPiece = 16384;  // elements: enough work to be worth a task
  // A single fold's operand from memory, where the block's instructions allow (else
  // computed into a register, chunk by chunk):
  //  - one operand read straight from contiguous memory is folded in place, in long runs;
  //  - sum(x*y) of two such operands, and sum(x**2) as sum(x*x). Rows of 1000 float64s:
  //    sum(x**2, axis=1) took 1.25x the time of sum(x*x, axis=1) through a register;
  //  - var's second pass, (x - mean)**2 over a whole array (or long segments, the mean one
  //    value). 10^7 float64: var(a) 0.84-0.89x the time, std(a) 0.87-0.93x, at 10^5 0.47x.
  //    Many short segments stay many to a call through a register. Segments of a page or
  //    more with a mean each (var(x, axis=1), rows of 1000 float64: 0.61-0.69x the time),
  //    and columns (var(x, axis=0), 0.51-0.60x), fold deviations from their own means.
  MemoryOperand from_memory;
  if (K == 1) {
    // Whether register r is a read of an array (not a generator) bound in this way.
    auto read_as = [&](int r, Operand::Mode mode) {
      return r >= 0 && r < static_cast<int>(b.reads.size()) && loop.inputs[r].mode == mode && !loop.inputs[r].gen;
    };
    auto in_place_read = [&](int r) { return read_as(r, Operand::InPlace); };
    // An instruction of one op alone (no chain, no cast) computing in the fold's dtype.
    auto plain = [&](const Instr& in, Op op, int nsrc) {
      return !in.is_cast && in.chain_position < 0 && in.op == op && in.nsrc == nsrc &&
             in.compute == runs[0].f->accumulate;
    };
    const simd::ReduceFns& fns = runs[0].f->operand_fns;
    const int result = b.results[0];
    auto base = [&](int r) { return loop.inputs[r].base; };
    using Kind = MemoryOperand::Kind;
    if (b.instrs.empty() && in_place_read(result)) {
      from_memory = {Kind::Direct, base(result)};
    } else if (b.instrs.size() == 1) {
      const Instr& in = b.instrs[0];
      const int y = in.src[in.nsrc - 1];
      if ((plain(in, Op::multiply, 2) || plain(in, Op::square, 1)) && in.dst == result && fns.run_products &&
          in_place_read(in.src[0]) && in_place_read(y))
        from_memory = {Kind::Products, base(in.src[0]), base(y)};
    } else if (b.instrs.size() == 2) {
      // (x - centre)**2, x read in place; the centre decides how it is read.
      const Instr &sub = b.instrs[0], &squaring = b.instrs[1];
      const int c = sub.src[1];
      const bool var_pattern = plain(sub, Op::subtract, 2) && plain(squaring, Op::square, 1) &&
                               squaring.src[0] == sub.dst && squaring.dst == result && in_place_read(sub.src[0]);
      // The centre an array in memory, indexed in the (L, M) or (M, L) iteration by its strides.
      const bool centre_in_memory =
          c >= 0 && c < static_cast<int>(b.reads.size()) && !loop.inputs[c].gen && loop.nd == 2;
      // One value for the whole operand (or long segments).
      if ((M == 1 || L >= kPiece) && var_pattern && fns.run_deviations && read_as(c, Operand::Splat))
        from_memory = {Kind::Deviations, base(sub.src[0]), base(c)};
      // A centre per segment (var(x, axis=1)'s mean per row): one value along each segment
      // of the (M, L) iteration. Segments shorter than a page stay many to a call through
      // a register.
      else if (segments && var_pattern && fns.run_deviations && centre_in_memory && loop.shape[1] == L &&
               loop.inputs[c].strides[1] == 0 && L * static_cast<int64_t>(runs[0].acc_item) >= 4096)
        from_memory = {Kind::Deviations, base(sub.src[0]), base(c), 0, loop.inputs[c].strides[0]};
      // A centre per column: the same row of values (its stride along the rows 0) for
      // every row of the (L, M) iteration.
      else if (!segments && var_pattern && fns.accumulate_deviations && centre_in_memory && loop.shape[1] == M &&
               loop.inputs[c].strides[0] == 0 && loop.inputs[c].strides[1] == static_cast<int64_t>(loop.inputs[c].item))
        from_memory = {Kind::ColumnDeviations, base(sub.src[0]), base(c)};
    }
    from_memory.item = runs[0].op_item;
  }
  const int64_t group = 8 * chunk, step = producer_step(b, chunk, 8, 24 << 10);

  if (segments) {
    const int64_t blocks = (L + kPiece - 1) / kPiece;  // per segment
    // With one block to a segment, each result goes straight to the output. With more,
    // the blocks' results are combined afterwards (few: the segments are long). A vector
    // of M results was page-faulted in on every call: 160 ms for 3.3 million segments.
    if (blocks > 1)
      for (FoldRun& fr : runs) fr.partial.resize(M * blocks);
    auto store = [&](size_t k, int64_t item, const simd::ReduceAcc& a) {
      if (blocks > 1) runs[k].partial[item] = a;
      else finalize(*runs[k].f, &a, L, 1, runs[k].out.data() + item * runs[k].out_item);
    };
    // Whole segments, as many as a group holds (256 of them, read from memory) per call:
    // a call apiece cost more than the fold of a short segment.
    const bool packed = blocks == 1 && (from_memory ? from_memory.packs() : L <= group);
    for_items(M * blocks, kPiece / std::min(L, kPiece), work, [&](int64_t lo, int64_t hi) {
      std::optional<ChunkRunner> runner;
      std::vector<std::vector<char>> buffers;
      std::vector<PairwiseFold> folds;
      if (!from_memory) {
        buffers.resize(K);
        if (!packed)
          for (const FoldRun& fr : runs) folds.emplace_back(fr.f->fns);
        runner.emplace(b, loop, stamp, step);
        // A single fold's operand is computed straight into its buffer (see run()); the
        // register may first hold wider temporaries of the chunk: room for 8-byte items.
        for (size_t k = 0; k < K; ++k) buffers[k].resize(group * runs[k].op_item + (K == 1 ? step * 8 : 0));
      }
      // The operands of elements [flat, flat + m), m <= group, computed into the buffers.
      auto compute = [&](int64_t flat, int64_t m) {
        for (int64_t j = 0; j < m; j += step) {
          int64_t n = std::min(step, m - j);
          runner->run(flat + j, n, K == 1 ? buffers[0].data() + j * runs[0].op_item : nullptr);
          for (size_t k = 0; k < K; ++k) {
            char* at = buffers[k].data() + j * runs[k].op_item;
            const void* p = runner->reg(b.results[k]);
            if (p != at) std::memcpy(at, p, n * runs[k].op_item);
          }
        }
      };
      if (packed) {
        constexpr int64_t kMost = 256;
        alignas(64) unsigned char values[kMost * 8];  // the accumulate dtype's items
        int64_t index[kMost];
        const int64_t per = std::min(from_memory ? kMost : group / L, kMost);
        for (int64_t item = lo; item < hi; item += per) {
          const int64_t count = std::min(per, hi - item);
          if (!from_memory) compute(item * L, count * L);
          for (size_t k = 0; k < K; ++k) {
            const simd::ReduceFns& fns = runs[k].f->operand_fns;
            if (from_memory) from_memory.run_segments(fns, item * L, L, count, values, index);
            else fns.run_segments(buffers[k].data(), L, count, values, index);
            finalize_row(*runs[k].f, values, runs[k].acc_item, index, 1, L, count,
                         runs[k].out.data() + item * runs[k].out_item);
          }
        }
        return;
      }
      for (int64_t item = lo; item < hi; ++item) {
        int64_t first = (item % blocks) * kPiece, len = std::min(kPiece, L - first);
        int64_t flat = (item / blocks) * L + first;
        if (from_memory) {
          simd::ReduceAcc a{};
          from_memory.run(runs[0].f->operand_fns, flat, len, item / blocks, first, &a);
          store(0, item, a);
          continue;
        }
        // Chunks are computed into a group of 8 before they are folded: the fold's fixed
        // cost (across SIMD lanes, into the pairwise tree) is paid once per group.
        for (PairwiseFold& pf : folds) pf.clear();
        for (int64_t off = 0; off < len; off += group) {
          int64_t m = std::min(group, len - off);
          compute(flat + off, m);
          for (size_t k = 0; k < K; ++k) {
            simd::ReduceAcc a{};
            runs[k].f->operand_fns.run(buffers[k].data(), m, first + off, &a);
            folds[k].add(a);
          }
        }
        for (size_t k = 0; k < K; ++k) store(k, item, folds[k].result());
      }
    });
    if (blocks == 1) return wrote_into;
    for (FoldRun& fr : runs) {  // each segment's blocks into its first accumulator, in place
      PairwiseFold fold(fr.f->fns);
      for (int64_t seg = 0; seg < M; ++seg) {
        fold.clear();
        for (int64_t i = 0; i < blocks; ++i) fold.add(fr.partial[seg * blocks + i]);
        fr.partial[seg] = fold.result();
      }
      finalize(*fr.f, fr.partial.data(), L, M, fr.out.data());
    }
    return wrote_into;
  }

  // Bands of rows, each folded into its own row of accumulators, then combined in order.
  // With many columns (bands of columns to share out), a band takes up to 64 rows: each
  // column then adds its rows one after another, as NumPy does, and a few rows (sum(q,
  // axis=0) over 8 long ones) take one band, folded straight into the output when its
  // accumulators are the result's items. A band takes at least 16 rows, as its row of
  // partial results is written and read again: in bands of 2 rows, 100 rows of 10^4
  // float64s moved twice the bytes of one pass (in bands of 16, sum took 0.54x the time
  // on 1 thread, 0.43x on 2; max 0.72x, 0.56x). Where that leaves fewer bands than twice
  // the threads, columns are split too, 1024 wide at least (how columns are split never
  // changes a result, so it may follow the thread count; splitting them on 2 threads
  // anyway took max over 400 rows of 4000 1.08-1.15x the time).
  int64_t cols = M <= kPiece ? M : 4096;
  int64_t rows = std::max({(kPiece + cols - 1) / cols, (L + 63) / 64, std::min<int64_t>(L, 16)});
  if (M > kPiece) rows = std::max(rows, std::min<int64_t>(L, 64));
  const int64_t row_bands = (L + rows - 1) / rows;
  if (M <= kPiece && work > serial_threshold()) {
    const int64_t items = 2 * static_cast<int64_t>(Runtime::instance().arena()->max_concurrency());
    if (row_bands < items) cols = std::min(cols, std::max<int64_t>(1024, (M * row_bands + items - 1) / items));
  }
  const int64_t col_bands = (M + cols - 1) / cols;
  // A computed operand is made a longer piece of a row per call: a row's accumulators
  // (32 KiB) leave little of L1 to keep. 8 rows of 1.25e6 float64, 2048 items a call
  // against 512: sum(x**2, axis=0) 0.71x the time, max(abs(x), axis=0) 0.73x; 100 rows
  // 0.79-0.82x; 9 registers (1024 a call) 0.91x; rows of 1000 0.94-1.01x.
  const int64_t row_step = std::min(cols, producer_step(b, chunk, 32, 48 << 10));
  auto in_place = [&](const FoldRun& fr) {
    return row_bands == 1 && !fr.is_arg && fr.f->spec.reduction != Reduction::mean && fr.f->accumulate == fr.f->result;
  };
  for (FoldRun& fr : runs) {
    fr.partial_rows = in_place(fr) ? fr.out : Array::empty(fr.f->accumulate, {row_bands, M});
    if (fr.is_arg) fr.partial_index = Array::empty(DType::Int64, {row_bands, M});  // reused, as arrays are
  }
  // Along columns: one array read in place, and sum(x*y, axis=0) and sum(x**2, axis=0),
  // their products added as they are made; the rest through a register.
  using Kind = MemoryOperand::Kind;
  if (from_memory.kind == Kind::Deviations ||
      (from_memory.kind == Kind::Products && !runs[0].f->operand_fns.accumulate_products))
    from_memory = {};
  const bool direct = from_memory.kind == Kind::Direct;
  const bool column_products = from_memory.kind == Kind::Products;
  const bool column_deviations = from_memory.kind == Kind::ColumnDeviations;
  // An array's sums and products along columns, and sums of products (an operand read from
  // memory has one fold), take 8 rows a call: their streams read side by side and each
  // column's value kept in a register, where row by row adds each row to the accumulators
  // in L1. Sums of float64 in 8 rows of 1.25e6 took 0.59x the time, rows of 20000 0.51x, of
  // 2000 0.81x, of 1000 0.91x; sum(x*y, axis=0) in rows of 20000 0.70x. Rows shorter than a
  // page stay one stream, a row a call: rows of 4000 bytes took 1.05-1.14x the time in 8
  // streams. An array's short rows go through `accumulate` as computed operands' do (float32
  // rows of 2000 bytes took 1.08-1.13x the time through accumulate_rows, reason not found).
  // Squares (x*x reads x once) gain from 8 rows only from rows of some 24 KiB: float64 rows
  // of 16000 bytes took 0.90x the time a row at a time (float32 of 8000 0.81x, float64 of
  // 8000 0.84x), rows of 32000 1.09x, 80000 1.18x.
  const bool squares = column_products && from_memory.x == from_memory.y;
  const int64_t rows_at_once =
      std::min(cols, M) * static_cast<int64_t>(runs[0].acc_item) >= (squares ? 24 << 10 : 4096) ? 8 : 1;
  const bool by_rows =
      column_products || column_deviations ||
      (from_memory.kind == Kind::Direct && rows_at_once > 1 && runs[0].f->operand_fns.accumulate_rows);
  for_items(row_bands * col_bands, 1, work, [&](int64_t lo, int64_t hi) {
    std::optional<ChunkRunner> runner;
    if (!from_memory) runner.emplace(b, loop, stamp, row_step);
    for (int64_t item = lo; item < hi; ++item) {
      int64_t band = item / col_bands, r0 = band * rows, r1 = std::min(L, r0 + rows);
      int64_t c0 = (item % col_bands) * cols, c1 = std::min(M, c0 + cols);
      const int64_t run = from_memory ? c1 - c0 : row_step;
      if (by_rows) {
        const simd::ReduceFns& fns = runs[0].f->operand_fns;
        char* acc = runs[0].partial_rows.data() + (band * M + c0) * runs[0].acc_item;
        for (int64_t r = r0; r < r1; r += rows_at_once) {
          const int64_t k = std::min(rows_at_once, r1 - r);
          const size_t at = static_cast<size_t>(r * M + c0) * runs[0].acc_item;
          if (column_products) fns.accumulate_products(acc, from_memory.x + at, from_memory.y + at, M, k, c1 - c0, r == r0);
          else if (column_deviations)
            fns.accumulate_deviations(acc, from_memory.x + at, from_memory.y + c0 * runs[0].acc_item, M, k, c1 - c0, r == r0);
          else fns.accumulate_rows(acc, from_memory.x + at, M, k, c1 - c0, r == r0);
        }
        continue;
      }
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; c += run) {
          int64_t n = std::min(run, c1 - c);
          if (!direct) runner->run(r * M + c, n);
          for (FoldRun& fr : runs) {
            const void* src = direct ? from_memory.x + (r * M + c) * fr.op_item : runner->reg(b.results[&fr - runs.data()]);
            char* acc = fr.partial_rows.data() + (band * M + c) * fr.acc_item;
            int64_t* index = fr.is_arg ? fr.partial_index.data_as<int64_t>() + band * M + c : nullptr;
            if (r == r0) {
              copy_first_row(*plan.kernels, acc, src, n, fr.f->operand, fr.f->accumulate);
              if (index) std::fill(index, index + n, r);
            } else {
              fr.f->operand_fns.accumulate(acc, index, src, nullptr, r, n);
            }
          }
        }
      }
    }
  });
  if (std::all_of(runs.begin(), runs.end(), in_place)) return wrote_into;
  uint64_t partial_bytes = 0;  // what combining the bands' partial rows reads
  for (const FoldRun& fr : runs) partial_bytes += fr.acc_item * static_cast<uint64_t>(row_bands * M);
  for_items(col_bands, 1, partial_bytes, [&](int64_t lo, int64_t hi) {
    for (int64_t band = lo; band < hi; ++band) {
      int64_t c0 = band * cols, n = std::min(M, c0 + cols) - c0;
      for (FoldRun& fr : runs) {
        if (in_place(fr)) continue;
        char* pv = fr.partial_rows.data();
        int64_t* pi = fr.is_arg ? fr.partial_index.data_as<int64_t>() : nullptr;
        for (int64_t rb = 1; rb < row_bands; ++rb)
          fr.f->fns.accumulate(pv + c0 * fr.acc_item, fr.is_arg ? pi + c0 : nullptr, pv + (rb * M + c0) * fr.acc_item,
                               fr.is_arg ? pi + rb * M + c0 : nullptr, 0, n);
        finalize_row(*fr.f, reinterpret_cast<const unsigned char*>(pv) + c0 * fr.acc_item, fr.acc_item,
                     fr.is_arg ? pi + c0 : nullptr, 1, L, n, fr.out.data() + c0 * fr.out_item);
      }
    }
  });
  return wrote_into;
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

uint64_t scratch_bytes_held() { return g_scratch_bytes.load(); }

uint64_t serial_threshold() {
  static const uint64_t threshold = [] {
    const char* forced = std::getenv("KILN_SERIAL_THRESHOLD");
    return forced ? std::strtoull(forced, nullptr, 10) : uint64_t{768} << 10;
  }();
  return threshold;
}


namespace {


// Where a loop's new results start: the element count to the first cache line that most
// of the operands read whole in memory share (0 when most start on one). NumPy's arrays
// lie 16 bytes past a line (malloc's large blocks); a result on a line beside them
// left every chunk's AVX-512 loads or stores straddling lines whatever line_head chose,
// while with all of them alike the chunks start on lines for all. Zen 5, 1 thread, 10^6
// float64, kiln-ab operands 16 past a line and the result on one, over all 16 past:
// floor(a) 1.2x the time, sqrt(a*a + b*b) 1.8-2.0x, where(a > 0, a, 0.1*a) 1.8x, a + b
// 1.1x (and all 16 past ran as fast as all on lines).
int64_t common_head(const std::vector<Array>& reads, const Shape& shape) {
  // Operands by head (under 64), and the heads in the order first read: no allocation on
  // every call.
  int operands[64] = {};
  int64_t heads[64];
  int distinct = 0;
  for (const Array& r : reads) {
    if (!r.data() || r.shape() != shape || !r.is_c_contiguous() || r.size() <= 1) continue;
    const int64_t head = items_to_line(r.data(), r.itemsize());
    if (head >= 0 && operands[head]++ == 0) heads[distinct++] = head;
  }
  // The most common head; a tie goes to 0, else to the one read first.
  int64_t best = 0;
  for (int k = 0; k < distinct; ++k)
    if (operands[heads[k]] > operands[best]) best = heads[k];
  return best;
}

// The loop step's arrays, checked and allocated: its outputs (new, or `out`) and, for
// each block it runs, that block's shape and reads broadcast to it. `together`: one pass
// of the step's body over shapes[0].
struct LoopArrays {
  bool together = true;
  std::vector<Shape> shapes;
  std::vector<std::vector<Array>> reads;
  std::vector<Array> outs;
};

LoopArrays prepare_loop(const Plan& plan, const Step& st, const std::vector<Array>& values, const Array* out_arg,
                        std::vector<Array>& results) {
  LoopArrays w;
  if (out_arg && out_arg->valid()) {
    KILN_ASSERT(st.outputs.size() == 1);
    out_arg->require_writable("out");
    Shape shape = block_shape(plan, st.body, values);
    Array out = *out_arg;
    Shape joined;
    if (!try_broadcast(shape, out.shape(), joined) || joined != out.shape())
      throw Error(Status::ShapeMismatch, "out: result of shape " + shape_str(shape) +
                                             " cannot be written into an output of shape " + shape_str(out.shape()));
    KILN_ASSERT(out.dtype() == plan.out_dtype());
    for (int d = 0; d < out.ndim() && out.size() > 0; ++d)
      if (out.strides()[d] == 0 && out.shape()[d] > 1)
        throw Error(Status::BadArgument, "out: a broadcast view (stride 0) cannot be written: its elements overlap");
    // Inputs that overlap `out` with a different element mapping are copied first (what
    // NumPy does for a[1:] = a[:-1] + 1).
    std::vector<Array> reads = broadcast_reads(plan, st.body, values, out.shape());
    for (size_t i = 0; i < reads.size(); ++i)
      if (!plan.generator_of(st.body.reads[i]) && overlaps(reads[i], out) && !same_mapping(reads[i], out))
        reads[i] = values[st.body.reads[i]].copy().broadcast_to(out.shape());
    w.shapes.push_back(out.shape());
    w.reads.push_back(std::move(reads));  // not `= {...}`: an initializer list copies every Array
    w.outs.push_back(out);
    results[st.outputs[0]] = out;
    return w;
  }
  if (st.separate.empty()) w.shapes.push_back(block_shape(plan, st.body, values));
  for (const Block& b : st.separate) w.shapes.push_back(block_shape(plan, b, values));
  w.together = std::all_of(w.shapes.begin(), w.shapes.end(), [&](const Shape& s) { return s == w.shapes[0]; });
  if (w.together) {
    w.reads.push_back(broadcast_reads(plan, st.body, values, w.shapes[0]));
  } else {
    for (size_t j = 0; j < st.separate.size(); ++j) w.reads.push_back(broadcast_reads(plan, st.separate[j], values, w.shapes[j]));
  }
  const int64_t head = w.together ? common_head(w.reads[0], w.shapes[0]) : 0;
  for (size_t j = 0; j < st.outputs.size(); ++j) {
    const DType dtype = plan.outputs[st.outputs[j]].dtype;
    w.outs.push_back(Array::empty_past_line(dtype, w.shapes[j], (64 - head * itemsize(dtype) % 64) % 64));
    results[st.outputs[j]] = w.outs.back();
  }
  return w;
}

void run_prepared_loop(const Plan& plan, const Step& st, const LoopArrays& w) {
  if (w.together) return run_fused(plan, st.body, w.shapes[0], w.reads[0], w.outs);
  for (size_t j = 0; j < st.separate.size(); ++j) run_fused(plan, st.separate[j], w.shapes[j], w.reads[j], {w.outs[j]});
}

// The loop step: every output that is not a reduction's result, in one pass when their
// shapes agree.
void run_loop(const Plan& plan, const Step& st, const std::vector<Array>& values, const Array* out_arg,
              std::vector<Array>& results) {
  run_prepared_loop(plan, st, prepare_loop(plan, st, values, out_arg, results));
}

void bind_generators(const Plan& plan, std::vector<Array>& values);

// The part of `x` (of the matmul result's full shape, batch dimensions `batch`) a tile covers.
Array tile_view(const Array& x, size_t batch_dims, const Shape& batch, const blas::Tile& t) {
  Array v = x;
  int64_t index = t.batch;
  for (size_t d = batch_dims; d-- > 0;) {
    int64_t i = index % batch[d];
    index /= batch[d];
    v = v.slice(static_cast<int>(d), i, i + 1);
  }
  int nd = v.ndim();
  return v.slice(nd - 2, t.row0, t.row1).slice(nd - 1, t.col0, t.col1);
}

// A matmul step. With `loop` (the plan's loop step, which reads the product) it runs that
// loop too, over each tile right after the tile is made when it can: the loop is one pass
// of the product's shape, and `out` (if any) shares no memory with the operands, which
// later tiles still read. Returns whether it ran the loop.
bool run_matmul(const Plan& plan, const Step& st, std::vector<Array>& values, const Step* loop, const Array* out_arg,
                std::vector<Array>& results) {
  const Array& a = values[st.linalg.operands[0]];
  const Array& b = values[st.linalg.operands[1]];
  Shape shape = matmul_shape(a.shape(), b.shape());  // checked before anything is made
  KILN_ASSERT(a.dtype() == b.dtype());  // the planner casts both to the product's dtype
  Array product = Array::empty(a.dtype(), shape);
  values[st.linalg.values[0]] = product;
  if (!loop) {
    blas::matmul(a, b, product);
    return false;
  }
  KILN_ASSERT(loop->kind == Step::Kind::Loop && loop->value < 0);
  bind_generators(plan, values);  // zeros_like(a @ b) takes the product's shape
  LoopArrays w = prepare_loop(plan, *loop, values, out_arg, results);
  bool generated = false;
  for (int v : loop->body.reads) generated |= plan.generator_of(v) != nullptr;
  bool tiled = w.together && w.shapes[0] == shape && a.ndim() >= 2 && b.ndim() >= 2 && !generated;
  for (const Array& o : w.outs) tiled = tiled && !overlaps(o, a) && !overlaps(o, b);
  if (!tiled) {
    blas::matmul(a, b, product);
    run_prepared_loop(plan, *loop, w);
    return true;
  }
  const size_t batch_dims = shape.size() - 2;
  const Shape batch(shape.begin(), shape.end() - 2);
  blas::matmul(a, b, product, [&](const blas::Tile& t) {
    Shape tile_shape(batch_dims, 1);
    tile_shape.push_back(t.row1 - t.row0);
    tile_shape.push_back(t.col1 - t.col0);
    std::vector<Array> reads, outs;
    for (const Array& r : w.reads[0]) reads.push_back(tile_view(r, batch_dims, batch, t));
    for (const Array& o : w.outs) outs.push_back(tile_view(o, batch_dims, batch, t));
    run_fused(plan, loop->body, tile_shape, reads, outs);
  });
  return true;
}

// A LAPACK step (every linalg row but matmul): its results, one value per part.
void run_lapack(const Plan& plan, const Step& st, std::vector<Array>& values) {
  const LinalgSpec& s = plan.graph.node(st.linalg.nodes[0]).linalg;
  std::vector<Array> ops;
  for (int v : st.linalg.operands) ops.push_back(values[v]);
  std::vector<Array> made;
  switch (s.fn) {
    case Linalg::solve: made = {lapack::solve(ops[0], ops[1])}; break;
    case Linalg::inv: made = {lapack::inv(ops[0])}; break;
    case Linalg::det: made = {lapack::det(ops[0])}; break;
    case Linalg::cholesky: made = {lapack::cholesky(ops[0])}; break;
    case Linalg::qr: made = lapack::qr(ops[0], s.qr_mode); break;
    case Linalg::eigh: made = lapack::eigh(ops[0], s.uplo); break;
    case Linalg::eigvalsh: made = {lapack::eigvalsh(ops[0], s.uplo)}; break;
    case Linalg::svd: made = lapack::svd(ops[0], s.full_matrices, s.compute_uv); break;
    case Linalg::lstsq: made = lapack::lstsq(ops[0], ops[1], s.rcond); break;
    case Linalg::norm: made = {lapack::norm(ops[0], s.ord, s.axes, s.keepdims)}; break;
    case Linalg::matmul: KILN_ASSERT(false);
  }
  KILN_ASSERT(static_cast<int>(made.size()) == linalg_results(s));
  for (size_t i = 0; i < st.linalg.nodes.size(); ++i) {
    const Node& n = plan.graph.node(st.linalg.nodes[i]);
    values[st.linalg.values[i]] = made[n.linalg.part];
  }
}

// Placeholders for the generators: of their own shape, of none (Context: see
// broadcast_reads) or, for *_like, of their operand's shape once it is known.
void bind_generators(const Plan& plan, std::vector<Array>& values) {
  std::optional<std::vector<std::optional<Shape>>> shapes;
  for (const Generator& gen : plan.generators) {
    if (values[gen.value].valid()) continue;
    const Node& n = plan.graph.node(gen.node);
    switch (n.gen.shape_from) {
      case GenSpec::ShapeFrom::Given: values[gen.value] = Array::placeholder(gen.dtype, n.gen.shape); break;
      case GenSpec::ShapeFrom::Context: values[gen.value] = Array::placeholder(gen.dtype, {}); break;
      case GenSpec::ShapeFrom::Like:
        if (!shapes) shapes = node_shapes(plan, values);
        if (const auto& s = (*shapes)[n.args[0]]) values[gen.value] = Array::placeholder(gen.dtype, *s);
        break;
    }
  }
}

// The value that a loop step only copies, unchanged, into its one output; else -1.
int copied_value(const Step& st) {
  const Block& b = st.body;
  if (st.kind != Step::Kind::Loop || st.value >= 0 || st.outputs.size() != 1 || b.reads.size() != 1 ||
      b.instrs.size() != 1)
    return -1;
  const Instr& in = b.instrs[0];
  const bool copy = in.is_cast && in.compute == in.result && in.nsrc == 1 && in.src[0] == 0 && in.dst == Instr::out(0);
  return copy ? b.reads[0] : -1;
}

std::vector<Array> run_plan(const Plan& plan, const std::vector<Array>& given, const Array* out_arg) {
  const auto& names = plan.graph.input_names();
  KILN_ASSERT(given.size() == names.size());
  for (size_t i = 0; i < given.size(); ++i) {
    if (!given[i].valid()) throw Error(Status::BadArgument, "input '" + names[i] + "' is not a valid array");
    KILN_ASSERT(given[i].dtype() == plan.input_dtypes[i]);  // the plan was chosen by these dtypes
  }
  std::vector<Array> values(plan.num_values);
  std::copy(given.begin(), given.end(), values.begin());
  std::vector<Array> results(plan.outputs.size());
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& st = plan.steps[i];
    bind_generators(plan, values);
    if (st.kind == Step::Kind::Linalg) {
      if (plan.graph.node(st.linalg.nodes[0]).linalg.fn != Linalg::matmul) {
        run_lapack(plan, st, values);
        continue;
      }
      const Step* loop = st.linalg.epilogue ? &plan.steps[i + 1] : nullptr;
      if (run_matmul(plan, st, values, loop, out_arg, results)) ++i;  // it ran the loop too
    } else if (st.kind == Step::Kind::Reduce) {
      // A reduction's result wanted in `out`, unchanged: written there directly, not
      // copied by the loop step after (a pass over the result: 40 MB for rows of 2).
      const Step* next = i + 1 < plan.steps.size() ? &plan.steps[i + 1] : nullptr;
      const int copied = out_arg && out_arg->valid() && next ? copied_value(*next) : -1;
      if (run_reduce(plan, st, values, copied >= 0 ? out_arg : nullptr, copied)) {
        results[next->outputs[0]] = *out_arg;
        ++i;
      }
    } else if (st.value >= 0) {
      Shape shape = block_shape(plan, st.body, values);
      values[st.value] = Array::empty(st.result, shape);
      run_fused(plan, st.body, shape, broadcast_reads(plan, st.body, values, shape), {values[st.value]});
    } else {
      run_loop(plan, st, values, out_arg, results);
    }
  }
  // Every result is an array of its own, even when two are the same value.
  for (size_t k = 0; k < plan.outputs.size(); ++k) {
    if (plan.outputs[k].value < 0) continue;
    const Array& v = values[plan.outputs[k].value];
    bool taken = std::any_of(results.begin(), results.begin() + k, [&](const Array& r) { return r.data() == v.data(); });
    results[k] = taken ? v.copy() : v;
  }
  return results;
}

}  // namespace

Array execute(const Plan& plan, const std::vector<Array>& inputs, const Array* out) {
  KILN_ASSERT(!out || !out->valid() || plan.outputs.size() == 1);
  return run_plan(plan, inputs, out)[0];
}

std::vector<Array> execute_all(const Plan& plan, const std::vector<Array>& inputs) {
  return run_plan(plan, inputs, nullptr);
}

}  // namespace kiln
