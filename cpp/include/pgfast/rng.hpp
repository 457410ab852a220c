// Counter-keyed random streams.
//
// Every random number of trajectory (or item) i under seed k comes from the stream of (k, i): a
// generator whose state is the counter-based Philox2x64-10 block of counter (0, i) under the key
// stream_key(k, domain). Nothing is carried from one trajectory to the next, so the output never
// depends on how trajectories are split between threads, lanes or machines, and the streams of
// different trajectories are independent (unlike seeding with `seed + i`).
//
// Philox2x64-10 is the generator of Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as
// easy as 1, 2, 3" (SC'11); its known-answer vectors are checked in tests/test_rng.py, and the
// xoroshiro128++ stream against a pure-Python transcription of its definition.
#pragma once

#include <cstdint>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#endif

namespace pgfast {

#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 uint128_t;  // __extension__: no -Wpedantic warning
#endif

// 64 x 64 -> 128-bit product: returns the low half, stores the high half.
inline std::uint64_t mulhilo64(std::uint64_t a, std::uint64_t b, std::uint64_t& hi) noexcept {
#if defined(__SIZEOF_INT128__)
  const uint128_t p = static_cast<uint128_t>(a) * b;
  hi = static_cast<std::uint64_t>(p >> 64);
  return static_cast<std::uint64_t>(p);
#elif defined(_MSC_VER)
  return _umul128(a, b, &hi);
#else
  const std::uint64_t a_lo = a & 0xffffffffu, a_hi = a >> 32;
  const std::uint64_t b_lo = b & 0xffffffffu, b_hi = b >> 32;
  const std::uint64_t p0 = a_lo * b_lo, p1 = a_lo * b_hi, p2 = a_hi * b_lo, p3 = a_hi * b_hi;
  const std::uint64_t mid = (p0 >> 32) + (p1 & 0xffffffffu) + (p2 & 0xffffffffu);
  hi = p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
  return (mid << 32) | (p0 & 0xffffffffu);
#endif
}

struct Block2x64 {
  std::uint64_t v0, v1;
};

// Philox2x64 with R rounds (R = 10 is the standard, crush-resistant choice).
template <int Rounds = 10>
inline Block2x64 philox2x64(std::uint64_t c0, std::uint64_t c1, std::uint64_t key) noexcept {
  constexpr std::uint64_t kMul = 0xD2B74407B1CE6E93ULL;
  constexpr std::uint64_t kWeyl = 0x9E3779B97F4A7C15ULL;
  for (int r = 0; r < Rounds; ++r) {
    std::uint64_t hi;
    const std::uint64_t lo = mulhilo64(kMul, c0, hi);
    c0 = hi ^ key ^ c1;
    c1 = lo;
    key += kWeyl;
  }
  return {c0, c1};
}

// xoroshiro128++ (Blackman and Vigna, "Scrambled linear pseudorandom number generators", 2021):
// 128 bits of state, period 2^128 - 1, a handful of adds, xors and rotations per 64-bit word.
class Xoroshiro128pp {
 public:
  Xoroshiro128pp() = default;
  // The state must not be all zero; the only such input is replaced by (0, 1).
  Xoroshiro128pp(std::uint64_t s0, std::uint64_t s1) noexcept : s0_(s0), s1_(s1 | ((s0 | s1) == 0)) {}

  inline std::uint64_t next() noexcept {
    const std::uint64_t a = s0_, b = s1_;
    const std::uint64_t out = rotl(a + b, 17) + a;
    const std::uint64_t c = b ^ a;
    s0_ = rotl(a, 49) ^ c ^ (c << 21);
    s1_ = rotl(c, 28);
    return out;
  }

 private:
  static inline std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s0_ = 0, s1_ = 1;
};

// The random stream of item i under key: a xoroshiro128++ whose 128-bit state is the Philox block
// of counter (0, i). Streams of different items start at independent, uniformly random points of
// a 2^128 cycle, so two streams of length L overlap with probability about L / 2^127 -- never,
// in practice -- while each step costs a few simple instructions instead of a Philox block.
inline Xoroshiro128pp item_stream(std::uint64_t key, std::uint64_t i) noexcept {
  const Block2x64 b = philox2x64(0, i, key);
  return Xoroshiro128pp(b.v0, b.v1);
}

// SplitMix64 finaliser: a bijective 64-bit mixer, used only to derive keys from seeds.
inline std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Domains keep different uses of one user seed on independent keys.
enum class Domain : std::uint64_t {
  Rollout = 0x726f6c6c6f7574ULL,       // mdp.sample / fused estimators
  PolicySample = 0x706f6c6963790aULL,  // policy.sample(states, seed)
};

// The Philox key of (seed, domain). Bijective in seed for a fixed domain.
inline std::uint64_t stream_key(std::uint64_t seed, Domain domain) noexcept {
  return splitmix64(seed ^ splitmix64(static_cast<std::uint64_t>(domain)));
}

// Uniform double in [0, 1) from the top 53 bits.
inline double to_unit(std::uint64_t x) noexcept {
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

}  // namespace pgfast
