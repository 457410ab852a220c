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

namespace pgfast {
namespace detail {

PGFAST_ALWAYS_INLINE double bits_to_double(std::uint64_t b) {
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}

PGFAST_ALWAYS_INLINE std::uint64_t double_to_bits(double d) {
  std::uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}

// log(x) for a normal x > 0 (here x in [2^-52, 1]).
PGFAST_ALWAYS_INLINE double log_positive(double x) {
  constexpr double kLn2Hi = 0.6931471803691238, kLn2Lo = 1.9082149292705877e-10;
  const std::uint64_t b = double_to_bits(x);
  // x = 2^e m, m in [sqrt(1/2), sqrt(2)): the mantissa's top bits decide (0x6A09E is sqrt(2)'s)
  const std::uint64_t mant = b & 0x000FFFFFFFFFFFFFULL;
  const std::uint64_t high = mant >= 0x6A09E667F3BCDULL ? 1u : 0u;  // m >= sqrt(2): halve it
  const std::int64_t e = static_cast<std::int64_t>((b >> 52) & 0x7FF) - 1023 + static_cast<std::int64_t>(high);
  const double m = bits_to_double(mant | ((1023 - high) << 52));
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
  const double ed = static_cast<double>(e);
  return (ed * kLn2Hi + (2.0 * s + 2.0 * s * (z * p))) + ed * kLn2Lo;
}

// One Box-Muller pair from two words.
PGFAST_ALWAYS_INLINE void box_muller(std::uint64_t w1, std::uint64_t w2, double& z1, double& z2) {
  constexpr std::uint64_t kOne = 0x3FF0000000000000ULL;
  constexpr double kHalfPi = 1.5707963267948966;
  constexpr double kShift = 0x1.8p52;
  const double u1 = 2.0 - bits_to_double(kOne | (w1 >> 12));  // (0, 1]
  const double u2 = bits_to_double(kOne | (w2 >> 12)) - 1.0;  // [0, 1)
  const double r = std::sqrt(-2.0 * log_positive(u1));
  const double v = 4.0 * u2;                    // exact
  const double qd = (v + kShift) - kShift;       // round(v), 0..4
  const double f = v - qd;                       // exact, in [-1/2, 1/2]
  const std::uint64_t q = double_to_bits(v + kShift) & 3u;  // the quadrant, mod 4
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
  const bool odd = (q & 1u) != 0;
  const double x = odd ? sn : cs;
  const double y = odd ? cs : sn;
  const double c = ((q + 1u) & 2u) != 0 ? -x : x;
  const double s = (q & 2u) != 0 ? -y : y;
  z1 = r * c;
  z2 = r * s;
}

// out[2k], out[2k + 1] = the pair of words[2k], words[2k + 1], for k < pairs.
PGFAST_ALWAYS_INLINE void box_muller_loop(const std::uint64_t* __restrict words, double* __restrict out,
                                          std::int64_t pairs) {
  for (std::int64_t k = 0; k < pairs; ++k) box_muller(words[2 * k], words[2 * k + 1], out[2 * k], out[2 * k + 1]);
}

#ifdef PGFAST_AVX2_KERNELS
__attribute__((target("avx2,fma"))) PGFAST_VECTORISABLE inline void box_muller_avx2(const std::uint64_t* words,
                                                                                     double* out, std::int64_t pairs) {
  box_muller_loop(words, out, pairs);
}
#else  // never called: use_avx2() is false
inline void box_muller_avx2(const std::uint64_t* words, double* out, std::int64_t pairs) {
  box_muller_loop(words, out, pairs);
}
#endif
PGFAST_VECTORISABLE inline void box_muller_default(const std::uint64_t* words, double* out, std::int64_t pairs) {
  box_muller_loop(words, out, pairs);
}

}  // namespace detail

// 2 * pairs standard normals from 2 * pairs words (Box-Muller, see above), the same bits on every CPU.
inline void standard_normals(const std::uint64_t* words, double* out, std::int64_t pairs) {
  (use_avx2() ? detail::box_muller_avx2 : detail::box_muller_default)(words, out, pairs);
}

// exp(y) for any finite y, from vexp.hpp's exp of non-positive arguments (1 / exp(-y) above 0):
// the same bits on every CPU. Overflows to inf above about 709.
inline double portable_exp(double y) {
  if (y <= 0.0) return detail::exp_nonpositive(y < -746.0 ? -746.0 : y);
  const double e = detail::exp_nonpositive(-y < -746.0 ? -746.0 : -y);
  return e == 0.0 ? HUGE_VAL : 1.0 / e;
}

// The standard normals of item i's stream (rng.hpp), `pairs` at a time.
class NormalStream {
 public:
  explicit NormalStream(Xoroshiro128pp g) : g_(g) {}
  void words(std::uint64_t* w, std::int64_t pairs) noexcept {
    for (std::int64_t k = 0; k < 2 * pairs; ++k) w[k] = g_.next();
  }

 private:
  Xoroshiro128pp g_;
};

}  // namespace pgfast
