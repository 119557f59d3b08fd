// The creation generators' kernels (full, arange, linspace, eye; simd::GenParams has their
// formulas), part of kernel_impl.hpp: plain loops over element indices that the compiler
// vectorises under each instruction set's flags. Floats go through rounded() so that no
// path contracts first + idx * delta into a fused multiply-add: NumPy rounds twice.
// Also the memory movers: stream_store, gather and move_band.

template <class T> void gen_full(const GenParams& p, int64_t, int64_t, int64_t n, void* dst) {
  T v;
  std::memcpy(&v, p.value, sizeof(T));
  std::fill_n(static_cast<T*>(dst), n, v);
}

template <class T> void gen_arange(const GenParams& p, int64_t first, int64_t step, int64_t n, void* dst) {
  T* out = static_cast<T*>(dst);
  if constexpr (kIsFloat<T>) {
    const T start = static_cast<T>(p.f[0]), delta = static_cast<T>(p.f[1]);
    if (step == 1) {  // the common case, in batches: the scalar loop does not vectorise
      using B = Batch<T>;
      constexpr int64_t W = static_cast<int64_t>(B::size);
      alignas(64) T lane[W];
      for (int64_t j = 0; j < W; ++j) lane[j] = static_cast<T>(j);
      const B offsets = B::load_aligned(lane), vstart(start), vdelta(delta);
      int64_t k = 0;
      // Exact while indices fit the mantissa; beyond it the scalar loop's conversion.
      const int64_t exact = int64_t{1} << std::numeric_limits<T>::digits;
      for (; k + W <= n && first + k + W <= exact; k += W) {
        const B idx = B(static_cast<T>(first + k)) + offsets;
        (vstart + rounded(idx * vdelta)).store_unaligned(out + k);
      }
      for (; k < n; ++k) out[k] = start + rounded(static_cast<T>(first + k) * delta);
      return;
    }
    for (int64_t k = 0; k < n; ++k) out[k] = start + rounded(static_cast<T>(first + k * step) * delta);
  } else {
    const auto start = static_cast<uint64_t>(p.i[0]), delta = static_cast<uint64_t>(p.i[1]);
    for (int64_t k = 0; k < n; ++k) out[k] = static_cast<T>(start + static_cast<uint64_t>(first + k * step) * delta);
  }
}

template <class T> void gen_linspace(const GenParams& p, int64_t first, int64_t step, int64_t n, void* dst) {
  T* out = static_cast<T*>(dst);
  const double start = p.f[0], by = p.f[1], stop = p.f[2], div = p.f[3], delta = p.f[4];
  const int64_t last = p.i[1] && p.i[0] > 1 ? p.i[0] - 1 : -1;
  const bool underflow = p.i[2] != 0;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t idx = first + k * step;
    const double y = static_cast<double>(idx);
    double v = underflow ? rounded(rounded(y / div) * delta) + start : rounded(y * by) + start;
    if (idx == last) v = stop;
    if constexpr (kIsFloat<T>) out[k] = static_cast<T>(v);
    else if constexpr (kIsBool<T>) out[k] = v != 0;
    else out[k] = static_cast<T>(std::floor(v));
  }
}

template <class T> void gen_eye(const GenParams& p, int64_t first, int64_t step, int64_t n, void* dst) {
  T* out = static_cast<T*>(dst);
  const int64_t cols = p.i[0], k_diag = p.i[1];
  for (int64_t k = 0; k < n; ++k) {
    const int64_t idx = first + k * step;
    out[k] = static_cast<T>(idx % cols - idx / cols == k_diag ? 1 : 0);
  }
}

template <Gen G, class T> constexpr GenFn creation_kernel() {
  if constexpr (G == Gen::full) return &gen_full<T>;
  else if constexpr (G == Gen::arange) return &gen_arange<T>;
  else if constexpr (G == Gen::linspace) return &gen_linspace<T>;
  else return &gen_eye<T>;
}

template <Gen G, size_t... D> void fill_creation_dtypes(KernelTable& t, std::index_sequence<D...>) {
  ((t.generate[int(G)][D] = gen_makes(G, DType(D)) ? creation_kernel<G, typename CType<DType(D)>::type>() : nullptr), ...);
}

// Whole vectors of the widest integer register this set's flags allow, streamed past
// the caches; the unaligned head and the tail go through memcpy.
inline void stream_store(void* dst, const void* src, int64_t bytes) {
#if defined(__AVX512F__)
  constexpr int64_t kWidth = 64;
#elif defined(__AVX2__)
  constexpr int64_t kWidth = 32;
#else
  constexpr int64_t kWidth = 16;
#endif
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  int64_t head = std::min<int64_t>(bytes, (kWidth - reinterpret_cast<uintptr_t>(d) % kWidth) % kWidth);
  if (head) std::memcpy(d, s, static_cast<size_t>(head));
  int64_t i = head;
  for (; i + kWidth <= bytes; i += kWidth) {
#if defined(__AVX512F__)
    _mm512_stream_si512(reinterpret_cast<__m512i*>(d + i), _mm512_loadu_si512(s + i));
#elif defined(__AVX2__)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
#else
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
#endif
  }
  if (i < bytes) std::memcpy(d + i, s + i, static_cast<size_t>(bytes - i));
}

inline void stream_fence() { _mm_sfence(); }

// One run of a strided read into a dense register (simd::KernelTable::gather). memcpy per
// item: wrapped user memory may be misaligned for T. At most AVX2's width: AVX-512's
// shuffles measured no faster from the caches and far slower from memory (see
// sse2_gather in engine/execute.cpp).
template <class T>
[[gnu::target("prefer-vector-width=256")]] void gather_run(T* d, const char* src, int64_t n, int64_t stride) {
  if (stride == static_cast<int64_t>(sizeof(T))) {
    std::memcpy(d, src, static_cast<size_t>(n) * sizeof(T));
  } else if (stride == 0) {
    T v;
    std::memcpy(&v, src, sizeof(T));
    std::fill_n(d, n, v);
  } else if (stride == static_cast<int64_t>(2 * sizeof(T))) {
    // Every other item (a[::2], the real parts of pairs): a known stride the compiler
    // turns into shuffles, where a variable one costs a load and a store per item.
    for (int64_t i = 0; i < n; ++i) std::memcpy(d + i, src + 2 * i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  } else {
    for (int64_t i = 0; i < n; ++i) std::memcpy(d + i, src + i * stride, sizeof(T));
  }
}

// The same width here: gather_run is inlined into it.
[[gnu::target("prefer-vector-width=256")]] inline void gather(void* dst, const void* src, size_t item, int64_t n,
                                                              int64_t stride) {
  const auto* s = static_cast<const char*>(src);
  switch (item) {
    case 1: gather_run(static_cast<uint8_t*>(dst), s, n, stride); break;
    case 4: gather_run(static_cast<uint32_t*>(dst), s, n, stride); break;
    default: gather_run(static_cast<uint64_t*>(dst), s, n, stride); break;
  }
}

// The band movers' loops each start on a 64-byte line, wherever the code before them ends:
// the float32 item copy starting 48 bytes into one, so crossing into the next, made a.T + b
// at 4000^2 1.25x slower than starting on one. (On every function: GCC does not always
// inline them into move_band.)
#define KILN_LINE_ALIGNED_LOOPS gnu::aligned(64), gnu::optimize("align-loops=64")

// Items [e0, e1) of rows [k0, k1) of a band (simd::BandFn), one at a time.
template <class T>
[[KILN_LINE_ALIGNED_LOOPS]] void band_items(bool into_tile, char* tile, size_t pitch, char* at, int64_t across,
                                            int64_t along, int64_t k0, int64_t k1, int64_t e0, int64_t e1) {
  constexpr auto size = static_cast<int64_t>(sizeof(T));
  for (int64_t k = k0; k < k1; ++k) {
    char* row = at + k * across;
    char* tile_row = tile + k * static_cast<int64_t>(pitch);
    for (int64_t e = e0; e < e1; ++e) {
      if (into_tile) std::memcpy(tile_row + e * size, row + e * along, sizeof(T));
      else std::memcpy(row + e * along, tile_row + e * size, sizeof(T));
    }
  }
}

// A band (simd::BandFn). Rows an item apart in ascending order (a transposed view) of 4-
// or 8-byte items go a block at a time: kBlock rows by kBlock items, transposed in
// registers, against a load and a store per item. A block loads a piece of kBlock lines
// of memory; where it is narrower than a line, the next group of rows uses the rest of
// those lines a sweep of the piece later, from L1 (a piece's lines fit there). Other
// bands, 1-byte items, and the items and rows past the last whole block go an item at a
// time.
template <class T>
[[KILN_LINE_ALIGNED_LOOPS]] void band_run(bool into_tile, char* tile, size_t pitch, char* at, int64_t across,
                                          int64_t along, int64_t count, int64_t n) {
  constexpr int64_t B = kBlock<T>, size = static_cast<int64_t>(sizeof(T));
  if constexpr (B > 1) {
    if (across == size && count >= B && n >= B) {
      const auto p = static_cast<int64_t>(pitch);
      const int64_t rows = count / B * B, items = n / B * B;
      for (int64_t k = 0; k < rows; k += B) {
        for (int64_t e = 0; e < items; e += B) {
          char* mem = at + k * size + e * along;
          char* t = tile + k * p + e * size;
          if (into_tile) transpose_block<T>(mem, along, t, p);
          else transpose_block<T>(t, p, mem, along);
        }
      }
      band_items<T>(into_tile, tile, pitch, at, across, along, 0, rows, items, n);
      band_items<T>(into_tile, tile, pitch, at, across, along, rows, count, 0, n);
      return;
    }
  }
  band_items<T>(into_tile, tile, pitch, at, across, along, 0, count, 0, n);
}

[[KILN_LINE_ALIGNED_LOOPS]] inline void move_band(bool into_tile, char* tile, size_t pitch, char* at, size_t item,
                                                  int64_t across, int64_t along, int64_t count, int64_t n) {
  switch (item) {
    case 1: band_run<uint8_t>(into_tile, tile, pitch, at, across, along, count, n); break;
    case 4: band_run<uint32_t>(into_tile, tile, pitch, at, across, along, count, n); break;
    default: band_run<uint64_t>(into_tile, tile, pitch, at, across, along, count, n); break;
  }
}
#undef KILN_LINE_ALIGNED_LOOPS

inline void fill_creation_kernels(KernelTable& t) {
  t.stream_store = &stream_store;
  t.stream_fence = &stream_fence;
  t.gather = &gather;
  t.move_band = &move_band;
  fill_creation_dtypes<Gen::full>(t, AllDTypes{});
  fill_creation_dtypes<Gen::arange>(t, AllDTypes{});
  fill_creation_dtypes<Gen::linspace>(t, AllDTypes{});
  fill_creation_dtypes<Gen::eye>(t, AllDTypes{});
}
