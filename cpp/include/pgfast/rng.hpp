// Counter-based random streams.
//
// Every random number pgfast draws is a pure function of (key, counter): draw j of trajectory i
// under seed k is Philox2x64-10(counter = (j, i), key = stream_key(k, domain)). Nothing is carried
// from one trajectory to the next, so the output never depends on how trajectories are split
// between threads, lanes or machines, and two trajectories never share a stream (the counter
// spaces are disjoint by construction, unlike seeding with `seed + i`).
//
// Philox2x64-10 is the generator of Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as
// easy as 1, 2, 3" (SC'11); its known-answer vectors are checked in tests/test_rng.py.
#pragma once

#include <cstdint>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#endif

namespace pgfast {

// 64 x 64 -> 128-bit product: returns the low half, stores the high half.
inline std::uint64_t mulhilo64(std::uint64_t a, std::uint64_t b, std::uint64_t& hi) noexcept {
#if defined(__SIZEOF_INT128__)
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
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
