// exp of non-positive arguments, branch-free so that loops over arrays vectorise: the softmax
// (policy.hpp, y = z - max z <= 0) and tanh (mlp.hpp, y = -2|x|) are built on it.
//
//   exp(y), y clamped to [-746, 0] (below, exp(y) < 2^-1076 rounds to 0):
//     y = k ln 2 + r with k = round(y / ln 2), |r| <= ln(2) / 2 (ln 2 in two parts, the high part
//     with enough trailing zero bits that k ln2_hi is exact), exp(y) = 2^k p(r), p the degree-13
//     Taylor polynomial of exp (truncation error below 5e-18); 2^k is built in the exponent bits,
//     as 2^(k + 200) 2^-200 when 2^k is below the normal range (k < -1022: a subnormal result).
// Error a few units in the last place (glibc's exp: below one); exp(0) = 1 exactly; NaN stays
// NaN. On x86-64 a copy compiled for AVX2 + FMA runs when the CPU has them (the same bits: the build
// turns off floating-point contraction, so it rounds as the default copy does; the default build
// targets any x86-64), chosen once at run time; PGFAST_NO_AVX2=1 in the environment keeps the
// default code.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace pgfast {
namespace detail {

// GCC if-converts (and so vectorises) the loops' selects only without -ftrapping-math; the
// loops raise no floating-point exception anyone looks at.
#if defined(__GNUC__) && !defined(__clang__)
#define PGFAST_VECTORISABLE __attribute__((optimize("no-trapping-math")))
#else
#define PGFAST_VECTORISABLE
#endif
#if defined(__GNUC__)
#define PGFAST_ALWAYS_INLINE inline __attribute__((always_inline)) PGFAST_VECTORISABLE
#else
#define PGFAST_ALWAYS_INLINE inline
#endif

// exp(y) for y in [-746, 0] (the caller clamps).
PGFAST_ALWAYS_INLINE double exp_nonpositive(double y) {
  constexpr double kLog2e = 1.4426950408889634, kLn2Hi = 0.6931471803691238, kLn2Lo = 1.9082149292705877e-10;
  constexpr double kShift = 0x1.8p52;  // adding it rounds to an integer held in the low mantissa bits
  std::uint64_t shift_bits;
  std::memcpy(&shift_bits, &kShift, sizeof shift_bits);
  const double kd = y * kLog2e + kShift;
  const double k = kd - kShift;
  const double r = (y - k * kLn2Hi) - k * kLn2Lo;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  std::uint64_t kb;
  std::memcpy(&kb, &kd, sizeof kb);
  const bool tiny = k < -1022.0;  // 2^k not a normal double: scale by 2^(k + 200), then by 2^-200
  const std::uint64_t scale_bits = (kb - shift_bits + (tiny ? 1223u : 1023u)) << 52;
  double scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return (p * scale) * (tiny ? 0x1.0p-200 : 1.0);
}

// x <- exp(x) for x <= 0 (below -746: 0).
PGFAST_ALWAYS_INLINE void exp_loop(double* __restrict x, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double y = x[i] < -746.0 ? -746.0 : x[i];  // NaN stays NaN
    x[i] = exp_nonpositive(y);
  }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(_M_X64)) && !defined(__AVX2__)
#define PGFAST_AVX2_KERNELS 1
// The CPU has AVX2 and FMA, and the environment variable PGFAST_NO_AVX2 is not set (the tests
// set it to run the default code on a machine that has them).
inline bool cpu_has_avx2_fma() {
  static const bool yes =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && std::getenv("PGFAST_NO_AVX2") == nullptr;
  return yes;
}
__attribute__((target("avx2,fma"))) PGFAST_VECTORISABLE inline void exp_avx2(double* x, std::int64_t n) { exp_loop(x, n); }
#endif
PGFAST_VECTORISABLE inline void exp_default(double* x, std::int64_t n) { exp_loop(x, n); }
#ifndef PGFAST_AVX2_KERNELS
inline void exp_avx2(double* x, std::int64_t n) { exp_default(x, n); }  // never called: use_avx2() is false
#endif

using ElementwiseKernel = void (*)(double*, std::int64_t);
}  // namespace detail

// True when the AVX2 + FMA copies of the kernels run (exp here, tanh and the matrix products of
// mlp.hpp).
inline bool use_avx2() {
#ifdef PGFAST_AVX2_KERNELS
  return detail::cpu_has_avx2_fma();
#else
  return false;
#endif
}

// Runs an elementwise kernel on x[0, n): its AVX2 + FMA copy when use_avx2(), else its default.
inline void run_elementwise(detail::ElementwiseKernel avx2, detail::ElementwiseKernel fallback, double* x,
                            std::int64_t n) {
  (use_avx2() ? avx2 : fallback)(x, n);
}

// x <- exp(x) elementwise, for x <= 0 (the softmax's shifted logits).
inline void exp_nonpositive_inplace(double* x, std::int64_t n) {
  run_elementwise(detail::exp_avx2, detail::exp_default, x, n);
}

}  // namespace pgfast
