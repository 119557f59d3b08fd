// Square blocks of items transposed in registers, part of kernel_impl.hpp: as many rows as
// a register holds items come in as one register each and leave as one register per
// column. The band movers (creation_impl.hpp) store the columns, in BlockReg registers;
// the reductions over short segments (fold_short_segments) fold them, in ShortReg ones.

// The band movers' items a side: 1 where this set has no such transpose (1-byte items).
template <class T> constexpr int64_t kBlock = 1;
#if defined(__AVX512F__)
template <> constexpr int64_t kBlock<uint64_t> = 8;
#elif defined(__AVX2__)
template <> constexpr int64_t kBlock<uint64_t> = 4;
#else
template <> constexpr int64_t kBlock<uint64_t> = 2;
#endif
#if defined(__AVX2__)
template <> constexpr int64_t kBlock<uint32_t> = 8;
#else
template <> constexpr int64_t kBlock<uint32_t> = 4;
#endif

// The band movers' register of one row or column: 8-byte items in this set's widest
// register, 4-byte ones in 256 bits from AVX2 on (a 16 x 16 float transpose would take
// twice the shuffles per item).
template <class T> struct BlockReg;
#if defined(__AVX512F__)
template <> struct BlockReg<uint64_t> { using type = __m512d; };
#elif defined(__AVX2__)
template <> struct BlockReg<uint64_t> { using type = __m256d; };
#else
template <> struct BlockReg<uint64_t> { using type = __m128d; };
#endif
#if defined(__AVX2__)
template <> struct BlockReg<uint32_t> { using type = __m256; };
#else
template <> struct BlockReg<uint32_t> { using type = __m128; };
#endif

// The registers of the reductions over short segments (fold_short_segments): at most 256
// bits. Over arrays in memory (10^7 items) this Zen 5 ran their 512-bit transposes and
// permutes 1.2-2x slower than 256-bit ones, though up to 1.45x faster over arrays in cache.
template <class T> struct ShortReg;
#if defined(__AVX2__)
template <> struct ShortReg<uint64_t> { using type = __m256d; using arch = xsimd::avx2; };
template <> struct ShortReg<uint32_t> { using type = __m256; using arch = xsimd::avx2; };
#else
template <> struct ShortReg<uint64_t> { using type = __m128d; using arch = xsimd::sse2; };
template <> struct ShortReg<uint32_t> { using type = __m128; using arch = xsimd::sse2; };
#endif

// col[c] = item c of every row, as many rows and items as the register holds. One
// overload per register type; load_row and store_row move a row.
#if defined(__AVX512F__)
inline void load_row(const char* src, __m512d& v) { v = _mm512_loadu_pd(src); }
[[gnu::always_inline]] inline void transpose(const __m512d* row, __m512d* col) {
  const __m512d r0 = row[0], r1 = row[1], r2 = row[2], r3 = row[3], r4 = row[4], r5 = row[5], r6 = row[6], r7 = row[7];
  // Pairs of rows interleaved, then pairs of pairs, then the 256-bit halves.
  const __m512d t0 = _mm512_unpacklo_pd(r0, r1), t1 = _mm512_unpackhi_pd(r0, r1);
  const __m512d t2 = _mm512_unpacklo_pd(r2, r3), t3 = _mm512_unpackhi_pd(r2, r3);
  const __m512d t4 = _mm512_unpacklo_pd(r4, r5), t5 = _mm512_unpackhi_pd(r4, r5);
  const __m512d t6 = _mm512_unpacklo_pd(r6, r7), t7 = _mm512_unpackhi_pd(r6, r7);
  const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0), hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  const __m512d u0 = _mm512_permutex2var_pd(t0, lo, t2), u1 = _mm512_permutex2var_pd(t1, lo, t3);
  const __m512d u2 = _mm512_permutex2var_pd(t0, hi, t2), u3 = _mm512_permutex2var_pd(t1, hi, t3);
  const __m512d u4 = _mm512_permutex2var_pd(t4, lo, t6), u5 = _mm512_permutex2var_pd(t5, lo, t7);
  const __m512d u6 = _mm512_permutex2var_pd(t4, hi, t6), u7 = _mm512_permutex2var_pd(t5, hi, t7);
  col[0] = _mm512_shuffle_f64x2(u0, u4, 0x44);
  col[1] = _mm512_shuffle_f64x2(u1, u5, 0x44);
  col[2] = _mm512_shuffle_f64x2(u2, u6, 0x44);
  col[3] = _mm512_shuffle_f64x2(u3, u7, 0x44);
  col[4] = _mm512_shuffle_f64x2(u0, u4, 0xEE);
  col[5] = _mm512_shuffle_f64x2(u1, u5, 0xEE);
  col[6] = _mm512_shuffle_f64x2(u2, u6, 0xEE);
  col[7] = _mm512_shuffle_f64x2(u3, u7, 0xEE);
}
inline void store_row(char* dst, __m512d v) { _mm512_storeu_pd(dst, v); }
#endif
#if defined(__AVX2__)
inline void load_row(const char* src, __m256d& v) { v = _mm256_loadu_pd(reinterpret_cast<const double*>(src)); }
[[gnu::always_inline]] inline void transpose(const __m256d* row, __m256d* col) {
  const __m256d r0 = row[0], r1 = row[1], r2 = row[2], r3 = row[3];
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  col[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
  col[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
  col[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
  col[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}
#endif
inline void load_row(const char* src, __m128d& v) { v = _mm_loadu_pd(reinterpret_cast<const double*>(src)); }
[[gnu::always_inline]] inline void transpose(const __m128d* row, __m128d* col) {
  col[0] = _mm_unpacklo_pd(row[0], row[1]);
  col[1] = _mm_unpackhi_pd(row[0], row[1]);
}

#if defined(__AVX2__)
inline void store_row(char* dst, __m256d v) { _mm256_storeu_pd(reinterpret_cast<double*>(dst), v); }
inline void load_row(const char* src, __m256& v) { v = _mm256_loadu_ps(reinterpret_cast<const float*>(src)); }
[[gnu::always_inline]] inline void transpose(const __m256* row, __m256* col) {
  const __m256 r0 = row[0], r1 = row[1], r2 = row[2], r3 = row[3], r4 = row[4], r5 = row[5], r6 = row[6], r7 = row[7];
  // Within each 128-bit half: pairs of rows interleaved, then 4 x 4 blocks; then the halves.
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  col[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  col[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  col[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  col[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  col[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  col[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  col[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  col[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}
inline void store_row(char* dst, __m256 v) { _mm256_storeu_ps(reinterpret_cast<float*>(dst), v); }
#endif
inline void load_row(const char* src, __m128& v) { v = _mm_loadu_ps(reinterpret_cast<const float*>(src)); }
[[gnu::always_inline]] inline void transpose(const __m128* row, __m128* col) {
  __m128 r0 = row[0], r1 = row[1], r2 = row[2], r3 = row[3];
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  col[0] = r0;
  col[1] = r1;
  col[2] = r2;
  col[3] = r3;
}
inline void store_row(char* dst, __m128 v) { _mm_storeu_ps(reinterpret_cast<float*>(dst), v); }
inline void store_row(char* dst, __m128d v) { _mm_storeu_pd(reinterpret_cast<double*>(dst), v); }

// The rows of a square block of registers of type Reg, row r from src + r * src_stride.
template <class Reg, int64_t N> [[gnu::always_inline]] inline void load_rows(const char* src, int64_t src_stride, Reg* row) {
  for (int64_t r = 0; r < N; ++r) load_row(src + r * src_stride, row[r]);
}

// A block transposed through registers: row c of dst (dst + c * dst_stride) is column c of
// src's rows (src + r * src_stride).
template <class T> void transpose_block(const char* src, int64_t src_stride, char* dst, int64_t dst_stride) {
  typename BlockReg<T>::type row[kBlock<T>], col[kBlock<T>];
  load_rows<typename BlockReg<T>::type, kBlock<T>>(src, src_stride, row);
  transpose(row, col);
  for (int64_t c = 0; c < kBlock<T>; ++c) store_row(dst + c * dst_stride, col[c]);
}
