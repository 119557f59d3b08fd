// Philox4x32-10, scalar: the counter-based generator of Salmon, Moraes, Dror and Shaw,
// "Parallel random numbers: as easy as 1, 2, 3" (SC'11). A 128-bit counter and a 64-bit
// key give 128 random bits; the same (counter, key) always gives the same bits, so any
// element of a stream can be computed on its own, by any thread, in any order.
//
// The SIMD kernels (random_impl.hpp) run the same rounds on batches of blocks; this file
// is their scalar twin (rejection redraws, the tests). Everything here has internal
// linkage: the per-instruction-set kernel files include it, and a shared inline symbol
// would let the linker keep one copy, perhaps AVX-512 code, for all of them.
#pragma once
#include <cstdint>

namespace kiln::random {

// The round multipliers and the Weyl sequence that bumps the key between rounds.
static constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
static constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
static constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
static constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1
static constexpr int kPhiloxRounds = 10;

struct PhiloxBlock {
  uint32_t w[4];
};
struct PhiloxKey {
  uint32_t k[2];
};

// One round: two 32x32 -> 64-bit products; their high halves, mixed with the other two
// words and the key, and their low halves become the new words.
static constexpr PhiloxBlock philox_round(PhiloxBlock x, PhiloxKey key) {
  const uint64_t p0 = uint64_t(kPhiloxM0) * x.w[0];
  const uint64_t p1 = uint64_t(kPhiloxM1) * x.w[2];
  return {{uint32_t(p1 >> 32) ^ x.w[1] ^ key.k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ x.w[3] ^ key.k[1],
           uint32_t(p0)}};
}

static constexpr PhiloxBlock philox4x32_10(PhiloxBlock counter, PhiloxKey key) {
  for (int r = 0; r < kPhiloxRounds; ++r) {
    counter = philox_round(counter, key);
    key.k[0] += kPhiloxW0;  // unsigned: wraps mod 2^32
    key.k[1] += kPhiloxW1;
  }
  return counter;
}

// kiln's stream layout (kernels.hpp, GenParams): key = the seed's two halves; block b
// (counter {b low, b high, attempt, 0}) holds words 4b..4b+3; draw j is words 2j and 2j+1.
static constexpr PhiloxKey philox_key(uint64_t seed) { return {{uint32_t(seed), uint32_t(seed >> 32)}}; }

static constexpr PhiloxBlock philox_block(PhiloxKey key, uint64_t block, uint32_t attempt = 0) {
  return philox4x32_10({{uint32_t(block), uint32_t(block >> 32), attempt, 0}}, key);
}

// The 64-bit draw d(j): words 2j | 2j+1 << 32, i.e. one half of block j / 2.
static constexpr uint64_t philox_draw(PhiloxKey key, uint64_t j, uint32_t attempt = 0) {
  const PhiloxBlock b = philox_block(key, j / 2, attempt);
  const int h = int(j % 2) * 2;
  return uint64_t(b.w[h]) | uint64_t(b.w[h + 1]) << 32;
}

}  // namespace kiln::random
