// Standard normal draws from the counter-keyed streams of rng.hpp, the same bits on every x86-64 CPU.
//
// Box-Muller: two 64-bit words w1, w2 of a stream give the pair
//
//   z1 = r cos(2 pi u2),  z2 = r sin(2 pi u2),   r = sqrt(-2 log u1),
//   u1 = 2 - 1.m(w1) in (0, 1],  u2 = 1.m(w2) - 1 in [0, 1)
//
// where 1.m(w) is the double in [1, 2) whose 52 mantissa bits are the top 52 bits of w (built in
// the bits, no integer-to-float conversion, so the loop vectorises). The smallest u1 is 2^-52, so
// |z| <= 8.49 (a tail of probability 2e-17 is cut).
//
// log, sin and cos are computed here, not by the C library (glibc picks FMA or non-FMA variants of
// them at run time, whose last bits may differ): log by the exponent split and the series
// log(1 + f) = 2 atanh(f / (2 + f)); sin and cos of 2 pi u2 by the exact reduction u2 = q/4 + f/4
// (q = round(4 u2), |f| <= 1/2) to an angle in [-pi/4, pi/4], their Taylor polynomials (truncation
// below 3e-18) and the quadrant q. sqrt is correctly rounded (IEEE). Errors a few units in the
// last place. Branch-free; an AVX2 + FMA copy runs when the CPU has them, with the same bits (the
// build turns off floating-point contraction; vexp.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "pgfast/rng.hpp"
#include "pgfast/vexp.hpp"

#if defined(__SSE2__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace pgfast {
namespace detail {

// vexp.hpp's PGFAST_VECTORISABLE, and no errno for sqrt (its argument is never negative here), so
// that the loop's sqrt vectorises.
#if defined(__GNUC__) && !defined(__clang__)
#define PGFAST_NORMALS_VECTORISABLE __attribute__((optimize("no-trapping-math", "no-math-errno")))
#else
#define PGFAST_NORMALS_VECTORISABLE
#endif
#if defined(__GNUC__)
#define PGFAST_NORMALS_INLINE inline __attribute__((always_inline)) PGFAST_NORMALS_VECTORISABLE
#else
#define PGFAST_NORMALS_INLINE inline
#endif

PGFAST_NORMALS_INLINE double bits_to_double(std::uint64_t b) {
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}

PGFAST_NORMALS_INLINE std::uint64_t double_to_bits(double d) {
  std::uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}

// log(x) for a normal x > 0 (here x in [2^-52, 1]). Integer-to-float conversions and 64-bit
// integer compares are avoided (x86-64 has no vector instruction for them before AVX-512).
PGFAST_NORMALS_INLINE double log_positive(double x) {
  constexpr double kLn2Hi = 0.6931471803691238, kLn2Lo = 1.9082149292705877e-10;
  constexpr double kSqrt2 = 1.4142135623730951;
  constexpr double kShift = 0x1.8p52;
  const std::uint64_t b = double_to_bits(x);
  // x = 2^e m, m in [sqrt(1/2), sqrt(2))
  const double m1 = bits_to_double((b & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL);  // [1, 2)
  const double biased = bits_to_double(double_to_bits(kShift) + ((b >> 52) & 0x7FF)) - kShift;  // exact
  const bool high = m1 >= kSqrt2;  // halve m: exact
  const double m = high ? 0.5 * m1 : m1;
  const double ed = (biased - 1023.0) + (high ? 1.0 : 0.0);
  const double f = m - 1.0;
  const double s = f / (2.0 + f);  // |s| <= 0.1716
  const double z = s * s;
  // 2 atanh(s) = 2 s (1 + z/3 + z^2/5 + ... + z^11/23), next term below 1e-17 relative
  double p = 1.0 / 23.0;
  p = p * z + 1.0 / 21.0;
  p = p * z + 1.0 / 19.0;
  p = p * z + 1.0 / 17.0;
  p = p * z + 1.0 / 15.0;
  p = p * z + 1.0 / 13.0;
  p = p * z + 1.0 / 11.0;
  p = p * z + 1.0 / 9.0;
  p = p * z + 1.0 / 7.0;
  p = p * z + 1.0 / 5.0;
  p = p * z + 1.0 / 3.0;
  return (ed * kLn2Hi + (2.0 * s + 2.0 * s * (z * p))) + ed * kLn2Lo;
}

// The angle part of a Box-Muller pair: rr = -2 log u1, and cos, sin of 2 pi u2.
PGFAST_NORMALS_INLINE void box_muller_parts(std::uint64_t w1, std::uint64_t w2, double& rr, double& c, double& s) {
  constexpr std::uint64_t kOne = 0x3FF0000000000000ULL;
  constexpr double kHalfPi = 1.5707963267948966;
  constexpr double kShift = 0x1.8p52;
  const double u1 = 2.0 - bits_to_double(kOne | (w1 >> 12));  // (0, 1]
  const double u2 = bits_to_double(kOne | (w2 >> 12)) - 1.0;  // [0, 1)
  rr = -2.0 * log_positive(u1);
  const double v = 4.0 * u2;                    // exact
  const double qd = (v + kShift) - kShift;       // round(v), 0..4
  const double f = v - qd;                       // exact, in [-1/2, 1/2]
  const std::int64_t q = static_cast<std::int64_t>(double_to_bits(v + kShift) & 3u);  // the quadrant, mod 4
  const double a = f * kHalfPi;                  // in [-pi/4, pi/4]
  const double a2 = a * a;
  double sp = -1.0 / 121645100408832000.0;  // -1/19!
  sp = sp * a2 + 1.0 / 355687428096000.0;
  sp = sp * a2 - 1.0 / 1307674368000.0;
  sp = sp * a2 + 1.0 / 6227020800.0;
  sp = sp * a2 - 1.0 / 39916800.0;
  sp = sp * a2 + 1.0 / 362880.0;
  sp = sp * a2 - 1.0 / 5040.0;
  sp = sp * a2 + 1.0 / 120.0;
  sp = sp * a2 - 1.0 / 6.0;
  const double sn = a + a * (a2 * sp);
  double cp = 1.0 / 6402373705728000.0;  // 1/18!
  cp = cp * a2 - 1.0 / 20922789888000.0;
  cp = cp * a2 + 1.0 / 87178291200.0;
  cp = cp * a2 - 1.0 / 479001600.0;
  cp = cp * a2 + 1.0 / 3628800.0;
  cp = cp * a2 - 1.0 / 40320.0;
  cp = cp * a2 + 1.0 / 720.0;
  cp = cp * a2 - 1.0 / 24.0;
  cp = cp * a2 + 0.5;
  const double cs = 1.0 - a2 * cp;
  // angle q pi/2 + a: cos = c, -s, -c, s and sin = s, c, -s, -c for q = 0, 1, 2, 3
  const bool odd = (q & 1) != 0;
  const double x = odd ? sn : cs;
  const double y = odd ? cs : sn;
  c = ((q + 1) & 2) != 0 ? -x : x;
  s = (q & 2) != 0 ? -y : y;
}

// out[k], out[pairs + k] = the pair of words[k], words[pairs + k], for k < pairs; r (pairs) is
// scratch. Three passes, so that the first and the last vectorise (sqrt with its errno check
// would not: the middle pass takes the SIMD square root, correctly rounded like any IEEE sqrt).
PGFAST_NORMALS_INLINE void box_muller_angles(const std::uint64_t* __restrict words, double* __restrict out,
                                            double* __restrict r, std::int64_t pairs) {
  const std::uint64_t* __restrict w2 = words + pairs;
  double* __restrict out2 = out + pairs;
  for (std::int64_t k = 0; k < pairs; ++k) box_muller_parts(words[k], w2[k], r[k], out[k], out2[k]);
}
PGFAST_NORMALS_INLINE void box_muller_scale(double* __restrict out, const double* __restrict r, std::int64_t pairs) {
  double* __restrict out2 = out + pairs;
  for (std::int64_t k = 0; k < pairs; ++k) {
    out[k] *= r[k];
    out2[k] *= r[k];
  }
}

#ifdef PGFAST_AVX2_KERNELS
__attribute__((target("avx2,fma"))) PGFAST_NORMALS_VECTORISABLE inline void box_muller_avx2(
    const std::uint64_t* words, double* out, double* r, std::int64_t pairs) {
  box_muller_angles(words, out, r, pairs);
  std::int64_t k = 0;
  for (; k + 4 <= pairs; k += 4) _mm256_storeu_pd(r + k, _mm256_sqrt_pd(_mm256_loadu_pd(r + k)));
  for (; k < pairs; ++k) _mm_store_sd(r + k, _mm_sqrt_sd(_mm_setzero_pd(), _mm_load_sd(r + k)));
  box_muller_scale(out, r, pairs);
}
#endif
PGFAST_NORMALS_VECTORISABLE inline void box_muller_default(const std::uint64_t* words, double* out, double* r,
                                                          std::int64_t pairs) {
  box_muller_angles(words, out, r, pairs);
#if defined(__SSE2__) || defined(_M_X64)
  std::int64_t k = 0;
  for (; k + 2 <= pairs; k += 2) _mm_storeu_pd(r + k, _mm_sqrt_pd(_mm_loadu_pd(r + k)));
  for (; k < pairs; ++k) _mm_store_sd(r + k, _mm_sqrt_sd(_mm_setzero_pd(), _mm_load_sd(r + k)));
#else
  for (std::int64_t k = 0; k < pairs; ++k) r[k] = std::sqrt(r[k]);
#endif
  box_muller_scale(out, r, pairs);
}
#ifndef PGFAST_AVX2_KERNELS
inline void box_muller_avx2(const std::uint64_t* words, double* out, double* r, std::int64_t pairs) {
  box_muller_default(words, out, r, pairs);  // never called: use_avx2() is false
}
#endif

}  // namespace detail

// 2 * pairs standard normals from 2 * pairs words (Box-Muller, see above: out[k] and out[pairs + k]
// come from words[k] and words[pairs + k]), the same bits on every CPU; scratch holds `pairs` doubles.
inline void standard_normals(const std::uint64_t* words, double* out, double* scratch, std::int64_t pairs) {
  (use_avx2() ? detail::box_muller_avx2 : detail::box_muller_default)(words, out, scratch, pairs);
}

// exp(y) for any finite y, from vexp.hpp's exp of non-positive arguments (1 / exp(-y) above 0):
// the same bits on every CPU. Overflows to inf above about 709.
inline double portable_exp(double y) {
  if (y <= 0.0) return detail::exp_nonpositive(y < -746.0 ? -746.0 : y);
  const double e = detail::exp_nonpositive(-y < -746.0 ? -746.0 : -y);
  return e == 0.0 ? HUGE_VAL : 1.0 / e;
}

}  // namespace pgfast
