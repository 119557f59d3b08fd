// The random generators' kernels (uniform, normal, integers, bernoulli), compiled once per
// instruction set: kernel_impl.hpp includes this inside namespace kiln::simd::KILN_SIMD_NS,
// after Arch, Batch and rounded() and before make_table, which calls fill_random_kernels.
// The element formulas are GenParams's comment in kernels.hpp; the layout in short: block
// b = Philox4x32-10(counter {b, attempt = 0}, key = seed) holds words 4b..4b+3, and draw j
// (64 bits) is words 2j, 2j+1.
//
// Philox runs on xsimd batches of uint64 lanes, one block per lane and one batch per word,
// so each round's 32x32 -> 64-bit product is one mul_epu32 per lane (xsimd has no such op).
// kG batches are in flight at once: the rounds are a chain of dependent multiplies, and
// independent chains hide their latency. Every element depends on its own index alone:
// lanes never mix, the float math of normal runs in one compiled function for every kind
// of call, and partial batches are padded rather than finished by scalar code, so how a
// range is cut into calls cannot change a bit.

}  // namespace kiln::simd::KILN_SIMD_NS (reopened below: philox.hpp belongs at file scope)
#include "philox.hpp"
namespace kiln::simd::KILN_SIMD_NS {

namespace rng {

using U64 = Batch<uint64_t>;
using F64 = Batch<double>;
constexpr int64_t kW = U64::size;
// Batches per Philox call: 4 (16 words in flight) measured fastest for AVX-512 and AVX2
// (AVX2 uniform float64: 12 ms per 10^7 against 16 ms with 2), despite AVX2's 16 registers.
constexpr int kG = 4;
constexpr int64_t kTile = kW * kG;  // blocks per Philox call
// Elements per pass of a kernel through an L1-resident buffer of draws (a multiple of
// 2 * kTile, the draws of one call).
constexpr int64_t kChunk = 1024;
static_assert(kChunk % (2 * kTile) == 0);

// Word i of kW blocks. Only the low 32 bits of a lane are the word until masked(): the
// high bits of a product are left in place, as only the low ones feed the next multiply.
struct Lanes {
  U64 x[4];
};

// The 64-bit products of the lanes' low 32 bits.
inline U64 mul_lo32(U64 a, U64 b) {
#if defined(__AVX512F__)
  return _mm512_mul_epu32(a, b);
#elif defined(__AVX2__)
  return _mm256_mul_epu32(a, b);
#else
  return _mm_mul_epu32(a, b);
#endif
}

// The counters {b low, b high, 0, 0} of the blocks b in the lanes of `blocks`.
inline Lanes counters(U64 blocks) { return {{blocks, blocks >> 32, U64(uint64_t(0)), U64(uint64_t(0))}}; }

template <int G> inline void philox10(Lanes (&v)[G], random::PhiloxKey key) {
  const U64 m0(uint64_t(random::kPhiloxM0)), m1(uint64_t(random::kPhiloxM1));
  uint32_t k0 = key.k[0], k1 = key.k[1];
#pragma GCC unroll 10
  for (int r = 0; r < random::kPhiloxRounds; ++r) {
    const U64 key0(uint64_t{k0}), key1(uint64_t{k1});
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      const U64 p0 = mul_lo32(v[g].x[0], m0), p1 = mul_lo32(v[g].x[2], m1);
      v[g].x[0] = (p1 >> 32) ^ v[g].x[1] ^ key0;
      v[g].x[2] = (p0 >> 32) ^ v[g].x[3] ^ key1;
      v[g].x[1] = p1;
      v[g].x[3] = p0;
    }
    k0 += random::kPhiloxW0;
    k1 += random::kPhiloxW1;
  }
}

inline U64 masked(U64 w) { return w & U64(uint64_t(0xFFFFFFFFu)); }

// The lane order of a contiguous run of blocks: lane 2i holds block i, lane 2i + 1 block
// kW/2 + i. xsimd's zip_lo/zip_hi interleave within 128-bit pairs of lanes, so with this
// order they put the two halves of blocks 0..kW/2-1, then kW/2..kW-1, in element order.
inline U64 contiguous_lanes(int64_t b0) {
  alignas(64) uint64_t off[kW];
  for (int64_t l = 0; l < kW; ++l) off[l] = uint64_t(l % 2 == 0 ? l / 2 : kW / 2 + l / 2);
  return U64(uint64_t(b0)) + U64::load_aligned(off);
}

// Blocks b0 .. b0 + kTile - 1 through Philox, in contiguous_lanes order.
inline void philox_tile(random::PhiloxKey key, int64_t b0, Lanes (&v)[kG]) {
  for (int g = 0; g < kG; ++g) v[g] = counters(contiguous_lanes(b0 + g * kW));
  philox10(v, key);
}

// Elements first .. first + n - 1 of a stream of two elements per block, made by
// tile(b0, o), which writes the 2 kTile elements of blocks b0 .. b0 + kTile - 1 at o:
// whole tiles straight into out, a tile that starts at an odd element or runs past the
// end through a buffer.
template <class T, class Tile> inline void contiguous_tiles(int64_t first, int64_t n, T* out, Tile&& tile) {
  constexpr int64_t per = 2 * kTile;
  const int64_t end = first + n;
  for (int64_t e = first; e < end;) {
    if (e % 2 == 0 && end - e >= per) {
      tile(e / 2, out + (e - first));
      e += per;
      continue;
    }
    alignas(64) T buf[per];
    tile(e / 2, buf);
    const int64_t skip = e % 2, take = std::min(per - skip, end - e);
    std::memcpy(out + (e - first), buf + skip, size_t(take) * sizeof(T));
    e += take;
  }
}

// The two draws of each lane's block: {words 0, 1}, {words 2, 3}.
inline U64 even_draws(const Lanes& v) { return masked(v.x[0]) | (v.x[1] << 32); }
inline U64 odd_draws(const Lanes& v) { return masked(v.x[2]) | (v.x[3] << 32); }

// Draws j0 .. j0 + n - 1 into out, in order.
inline void draws_contiguous(random::PhiloxKey key, int64_t j0, int64_t n, uint64_t* out) {
  contiguous_tiles(j0, n, out, [&](int64_t b0, uint64_t* o) {
    Lanes v[kG];
    philox_tile(key, b0, v);
    for (int g = 0; g < kG; ++g) {
      xsimd::zip_lo(even_draws(v[g]), odd_draws(v[g])).store_unaligned(o + 2 * g * kW);
      xsimd::zip_hi(even_draws(v[g]), odd_draws(v[g])).store_unaligned(o + 2 * g * kW + kW);
    }
  });
}

// Draws at[0 .. n) (n <= kTile), one per lane, into out.
inline void draws_at(random::PhiloxKey key, const uint64_t* at, int64_t n, uint64_t* out) {
  alignas(64) uint64_t j[kTile];
  for (int64_t l = 0; l < kTile; ++l) j[l] = at[l < n ? l : n - 1];  // pad with a valid index
  Lanes v[kG];
  for (int g = 0; g < kG; ++g) v[g] = counters(U64::load_aligned(j + g * kW) >> 1);
  philox10(v, key);
  alignas(64) uint64_t buf[kTile];
  for (int g = 0; g < kG; ++g) {
    const auto odd_draw = (U64::load_aligned(j + g * kW) & U64(uint64_t(1))) != U64(uint64_t(0));
    xsimd::select(odd_draw, odd_draws(v[g]), even_draws(v[g])).store_aligned(buf + g * kW);
  }
  std::memcpy(out, buf, size_t(n) * sizeof(uint64_t));
}

// Calls part(k, m) over chunks of at most kChunk elements; for step 1 the chunk ends fall
// on whole tiles of the stream (2 kTile elements), so that only the first and the last
// chunk of a call start or end inside one.
template <class Part> inline void for_chunks(int64_t first, int64_t step, int64_t n, Part&& part) {
  for (int64_t k = 0; k < n;) {
    const int64_t e = first + k;
    const int64_t m = step == 1 ? std::min(n - k, e / (2 * kTile) * (2 * kTile) + kChunk - e) : std::min(n - k, kChunk);
    part(k, m);
    k += m;
  }
}

// Runs fn(d, k, m) over the chunks of a call, d[i] being draw first + (k + i) * step for
// i < m and d[m .. m + kW) zeros, so that a partial last batch can be read whole.
template <class Fn> inline void for_draws(random::PhiloxKey key, int64_t first, int64_t step, int64_t n, Fn&& fn) {
  alignas(64) uint64_t d[kChunk + kW];
  for_chunks(first, step, n, [&](int64_t k, int64_t m) {
    if (step == 1) {
      draws_contiguous(key, first + k, m, d);
    } else {
      for (int64_t i = 0; i < m; i += kTile) {
        alignas(64) uint64_t at[kTile];
        const int64_t c = std::min(kTile, m - i);
        for (int64_t l = 0; l < c; ++l) at[l] = uint64_t(first + (k + i + l) * step);
        draws_at(key, at, c, d + i);
      }
    }
    std::fill(d + m, d + m + kW, uint64_t(0));
    fn(static_cast<const uint64_t*>(d), k, m);
  });
}

// u53 = hi * 2^-32 + (lo >> 11) * 2^-53 for clean 32-bit words: each part is made exact
// by putting its bits under a fixed exponent (2^20 + hi * 2^-32, 0.5 + (lo >> 11) * 2^-53)
// and subtracting that power of two; the sum is exact too (53 bits), on every ISA.
inline F64 u53(U64 lo, U64 hi) {
  const F64 a = xsimd::bitwise_cast<F64>(hi | U64(uint64_t(0x4130000000000000))) - F64(0x1p20);
  const F64 b = xsimd::bitwise_cast<F64>((lo >> 11) | U64(uint64_t(0x3FE0000000000000))) - F64(0.5);
  return a + b;
}
inline F64 u53(U64 d) { return u53(masked(d), d >> 32); }

// The same for a 24-bit draw of a word: (w >> 8) * 2^-24 = (2^28 + that) - 2^28.
inline F64 u24(U64 w) {
  return xsimd::bitwise_cast<F64>((w >> 8) | U64(uint64_t(0x41B0000000000000))) - F64(0x1p28);
}

// Runs one(i) for i = 0, kW, ... below m, the last batch into a padded buffer: out must
// have m elements, one writes kW of them at the pointer it is given.
template <class T, class One> inline void batches(int64_t m, T* out, One&& one) {
  int64_t i = 0;
  for (; i + kW <= m; i += kW) one(i, out + i);
  if (i < m) {
    alignas(64) T pad[kW];
    one(i, pad);
    std::memcpy(out + i, pad, (m - i) * sizeof(T));  // not std::copy: see kernel_impl.hpp
  }
}

// --- uniform -------------------------------------------------------------------------

inline void uniform_f64(const GenParams& p, int64_t first, int64_t step, int64_t n, void* dst) {
  double* out = static_cast<double*>(dst);
  const random::PhiloxKey key = random::philox_key(p.seed);
  const F64 lo(p.f[0]), width(p.f[1]), below(p.f[2]);
  auto value = [&](F64 u) {
    const F64 v = lo + rounded(width * u);
    return xsimd::select(v > below, below, v);  // min(v, f[2]): never hi
  };
  if (step == 1) {
    // The hot path: values straight from Philox's registers, no buffer of draws.
    contiguous_tiles(first, n, out, [&](int64_t b0, double* o) {
      Lanes v[kG];
      philox_tile(key, b0, v);
      for (int g = 0; g < kG; ++g) {
        const F64 even = value(u53(masked(v[g].x[0]), masked(v[g].x[1])));
        const F64 odd = value(u53(masked(v[g].x[2]), masked(v[g].x[3])));
        xsimd::zip_lo(even, odd).store_unaligned(o + 2 * g * kW);
        xsimd::zip_hi(even, odd).store_unaligned(o + 2 * g * kW + kW);
      }
    });
    return;
  }
  for_draws(key, first, step, n, [&](const uint64_t* d, int64_t k, int64_t m) {
    batches(m, out + k, [&](int64_t i, double* o) { value(u53(U64::load_aligned(d + i))).store_unaligned(o); });
  });
}

// kW words of memory, each in the low half of a 64-bit lane.
inline U64 load_words(const uint32_t* w) {
#if defined(__AVX512F__)
  return _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
#elif defined(__AVX2__)
  return _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
#else
  return _mm_unpacklo_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w)), _mm_setzero_si128());
#endif
}

// float32(v), then min with below (so never hi), stored as kW floats. The
// compare is on the rounded floats, as the formula says; NaN stays NaN.
inline void store_f32_below(F64 v, float below, float* out) {
#if defined(__AVX512F__)
  const __m256 f = _mm512_cvtpd_ps(v), b = _mm256_set1_ps(below);
  _mm256_storeu_ps(out, _mm256_blendv_ps(f, b, _mm256_cmp_ps(f, b, _CMP_GT_OQ)));
#elif defined(__AVX2__)
  const __m128 f = _mm256_cvtpd_ps(v), b = _mm_set1_ps(below);
  _mm_storeu_ps(out, _mm_blendv_ps(f, b, _mm_cmpgt_ps(f, b)));
#else
  const __m128 f = _mm_cvtpd_ps(v), b = _mm_set1_ps(below), gt = _mm_cmpgt_ps(f, b);
  _mm_storel_pi(reinterpret_cast<__m64*>(out), _mm_or_ps(_mm_and_ps(gt, b), _mm_andnot_ps(gt, f)));
#endif
}

// float32 uses one 32-bit word per element: element e is word e (half e % 2 of draw e / 2).
inline void uniform_f32(const GenParams& p, int64_t first, int64_t step, int64_t n, void* dst) {
  float* out = static_cast<float*>(dst);
  const random::PhiloxKey key = random::philox_key(p.seed);
  const F64 lo(p.f[0]), width(p.f[1]);
  const float below = float(p.f[2]);
  // Elements k .. k + m - 1 from their words (read kW at a time, up to kW - 1 past m).
  auto convert = [&](const uint32_t* words, int64_t k, int64_t m) {
    batches(m, out + k, [&](int64_t i, float* o) {
      store_f32_below(lo + rounded(width * u24(load_words(words + i))), below, o);
    });
  };
  if (step == 1) {
    // The draws that hold words first .. first + n - 1, read as words (little-endian: draw
    // j is words 2j, 2j + 1), less the word before `first` when it is odd.
    const int64_t j0 = first / 2;
    for_draws(key, j0, 1, (first + n + 1) / 2 - j0, [&](const uint64_t* d, int64_t k, int64_t m) {
      const int64_t from = std::max(2 * (j0 + k), first), to = std::min(2 * (j0 + k + m), first + n);
      convert(reinterpret_cast<const uint32_t*>(d) + (from - 2 * (j0 + k)), from - first, to - from);
    });
    return;
  }
  alignas(64) uint32_t w[kChunk + kW] = {};
  for (int64_t k = 0; k < n; k += kChunk) {
    const int64_t m = std::min(n - k, kChunk);
    alignas(64) uint64_t d[kChunk];
    for (int64_t i = 0; i < m; i += kTile) {
      alignas(64) uint64_t at[kTile];
      const int64_t c = std::min(kTile, m - i);
      for (int64_t l = 0; l < c; ++l) at[l] = uint64_t(first + (k + i + l) * step) / 2;
      draws_at(key, at, c, d + i);
    }
    for (int64_t i = 0; i < m; ++i) w[i] = uint32_t(d[i] >> (uint64_t(first + (k + i) * step) % 2 * 32));
    convert(w, k, m);
  }
}

// --- normal --------------------------------------------------------------------------

// Box-Muller on kG batches of blocks: lanes of cos_out / sin_out are elements 2b / 2b + 1
// of the lanes' blocks. The one place normal's float math is compiled (noipa: never
// inlined or cloned), so every kind of call gets the same instructions, and the same
// bits, whatever the compiler would contract into fused multiply-adds.
__attribute__((noipa)) static void normal_math(const Lanes* v, double mean, double sd, F64* cos_out, F64* sin_out) {
  for (int g = 0; g < kG; ++g) {
    const F64 u1 = F64(1.0) - u53(masked(v[g].x[0]), masked(v[g].x[1]));  // (0, 1]: exact
    const F64 u2 = u53(masked(v[g].x[2]), masked(v[g].x[3]));
    const F64 r = xsimd::sqrt(F64(-2.0) * xsimd::log(u1));  // log: no subnormals, u1 >= 2^-53
    const F64 t = rounded(F64(2 * 3.141592653589793) * u2);
    // t - xi pi/2 (Cody-Waite, pi/2 in three parts): |xr| <= pi/4 or a hair above. xsimd's
    // sincos picks its own reduction for the whole batch (none if every lane is within
    // pi/4, else one step of pi/2 that leaves such lanes alone), so from here on a lane's
    // bits do not depend on its neighbours: reducing t in sincos itself would.
    const F64 xi = xsimd::nearbyint(rounded(t * xsimd::constants::twoopi<F64>()));
    F64 xr = xsimd::fnma(xi, xsimd::constants::pio2_1<F64>(), t);
    xr = xr - rounded(xi * xsimd::constants::pio2_2<F64>());
    xr = xr - rounded(xi * xsimd::constants::pio2_3<F64>());
    const auto [s, c] = xsimd::sincos(xr);
    // t = xi pi/2 + xr: quadrant xi mod 4 swaps sin and cos and sets their signs.
    const auto odd = (xi == F64(1.0)) | (xi == F64(3.0));
    const auto sin_neg = (xi == F64(2.0)) | (xi == F64(3.0));
    const auto cos_neg = (xi == F64(1.0)) | (xi == F64(2.0));
    F64 sin_t = xsimd::select(odd, c, s), cos_t = xsimd::select(odd, s, c);
    sin_t = xsimd::select(sin_neg, -sin_t, sin_t);
    cos_t = xsimd::select(cos_neg, -cos_t, cos_t);
    const F64 a = rounded(F64(sd) * r);  // mean + std * r * cos t, rounded as written
    cos_out[g] = F64(mean) + rounded(a * cos_t);
    sin_out[g] = F64(mean) + rounded(a * sin_t);
  }
}

// Elements first + k * step, k < n <= kChunk, as float64, into out.
inline void normal_part(random::PhiloxKey key, double mean, double sd, int64_t first, int64_t step, int64_t n,
                        double* out) {
  if (step == 1) {
    contiguous_tiles(first, n, out, [&](int64_t b0, double* o) {
      Lanes v[kG];
      philox_tile(key, b0, v);
      F64 c[kG], s[kG];
      normal_math(v, mean, sd, c, s);
      for (int g = 0; g < kG; ++g) {
        xsimd::zip_lo(c[g], s[g]).store_unaligned(o + 2 * g * kW);
        xsimd::zip_hi(c[g], s[g]).store_unaligned(o + 2 * g * kW + kW);
      }
    });
    return;
  }
  for (int64_t k = 0; k < n; k += kTile) {
    // One element per lane: its block, then the cos or sin half.
    const int64_t c = std::min(kTile, n - k);
    alignas(64) uint64_t e[kTile];
    for (int64_t l = 0; l < kTile; ++l) e[l] = uint64_t(first + (k + std::min(l, c - 1)) * step);
    Lanes v[kG];
    for (int g = 0; g < kG; ++g) v[g] = counters(U64::load_aligned(e + g * kW) >> 1);
    philox10(v, key);
    F64 cs[kG], sn[kG];
    normal_math(v, mean, sd, cs, sn);
    alignas(64) double buf[kTile];
    for (int g = 0; g < kG; ++g) {
      const auto odd = (U64::load_aligned(e + g * kW) & U64(uint64_t(1))) != U64(uint64_t(0));
      const U64 pick = xsimd::select(odd, xsimd::bitwise_cast<U64>(sn[g]), xsimd::bitwise_cast<U64>(cs[g]));
      xsimd::bitwise_cast<F64>(pick).store_aligned(buf + g * kW);
    }
    std::memcpy(out + k, buf, c * sizeof(buf[0]));  // not std::copy: see kernel_impl.hpp
  }
}

inline void normal_f64(const GenParams& p, int64_t first, int64_t step, int64_t n, void* dst) {
  double* out = static_cast<double*>(dst);
  const random::PhiloxKey key = random::philox_key(p.seed);
  for_chunks(first, step, n, [&](int64_t k, int64_t m) {
    normal_part(key, p.f[0], p.f[1], first + k * step, step, m, out + k);
  });
}

inline void normal_f32(const GenParams& p, int64_t first, int64_t step, int64_t n, void* dst) {
  float* out = static_cast<float*>(dst);
  const random::PhiloxKey key = random::philox_key(p.seed);
  alignas(64) double buf[kChunk];
  for_chunks(first, step, n, [&](int64_t k, int64_t m) {
    normal_part(key, p.f[0], p.f[1], first + k * step, step, m, buf);
    for (int64_t i = 0; i < m; ++i) out[k + i] = float(buf[i]);  // the float64 value rounded
  });
}

// --- integers ------------------------------------------------------------------------

// Lemire's nearly divisionless method: the high half of d * range is the value unless
// the low half falls below 2^64 mod range, where some values would get one more d than
// others; such a draw is replaced by the same half of block {b, attempt} for attempt
// 1, 2, ... A range of 0 stands for 2^64 (every value once), for which no draw is refused.
template <class T> inline void integers(const GenParams& p, int64_t first, int64_t step, int64_t n, void* dst) {
  T* out = static_cast<T*>(dst);
  const random::PhiloxKey key = random::philox_key(p.seed);
  const uint64_t lo = uint64_t(p.i[0]), range = uint64_t(p.i[1]);
  const uint64_t threshold = range == 0 ? 0 : (0 - range) % range;
  for_draws(key, first, step, n, [&](const uint64_t* d, int64_t k, int64_t m) {
    for (int64_t i = 0; i < m; ++i) {
      unsigned __int128 x = range == 0 ? (unsigned __int128)d[i] << 64 : (unsigned __int128)d[i] * range;
      if (uint64_t(x) < threshold) [[unlikely]] {
        const uint64_t j = uint64_t(first + (k + i) * step);
        for (uint32_t attempt = 1; uint64_t(x) < threshold; ++attempt)
          x = (unsigned __int128)random::philox_draw(key, j, attempt) * range;
      }
      out[k + i] = T(lo + uint64_t(x >> 64));  // wraps as int64; int32 ranges fit
    }
  });
}

// --- bernoulli -----------------------------------------------------------------------

// u53 < p with u53 = (d >> 11) 2^-53 is, in integers, (d >> 11) < ceil(p 2^53): p 2^53 is
// exact, and an integer is below a real exactly when it is below its ceiling. p <= 0 or
// NaN: never; p >= 1: always.
inline void bernoulli(const GenParams& p, int64_t first, int64_t step, int64_t n, void* dst) {
  bool* out = static_cast<bool*>(dst);
  const double prob = p.f[0];
  const uint64_t below = !(prob > 0) ? 0 : prob >= 1 ? uint64_t(1) << 53 : uint64_t(std::ceil(prob * 0x1p53));
  for_draws(random::philox_key(p.seed), first, step, n, [&](const uint64_t* d, int64_t k, int64_t m) {
    for (int64_t i = 0; i < m; ++i) out[k + i] = (d[i] >> 11) < below;
  });
}

}  // namespace rng

inline void fill_random_kernels(KernelTable& t) {
  auto set = [&](Gen g, DType d, GenFn f) { t.generate[static_cast<int>(g)][static_cast<int>(d)] = f; };
  set(Gen::uniform, DType::Float32, &rng::uniform_f32);
  set(Gen::uniform, DType::Float64, &rng::uniform_f64);
  set(Gen::normal, DType::Float32, &rng::normal_f32);
  set(Gen::normal, DType::Float64, &rng::normal_f64);
  set(Gen::integers, DType::Int32, &rng::integers<int32_t>);
  set(Gen::integers, DType::Int64, &rng::integers<int64_t>);
  set(Gen::bernoulli, DType::Bool, &rng::bernoulli);
}
