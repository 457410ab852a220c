// Returns and reward-to-go of a padded (N, H) batch (docs/theory.md, "The objective and
// the likelihood of a trajectory" and "REINFORCE and reward-to-go").
//
//   return          G(tau)  = sum_{t < len} gamma^t r_t
//   reward-to-go    G_t     = sum_{t <= t' < len} gamma^(t'-t) r_t'   (G_t = r_t + gamma G_{t+1})
//
// Positions t >= len are padding and stay 0 in the reward-to-go.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

namespace pgfast {

// gamma^t for t < H (at least one entry).
inline std::vector<double> powers(double gamma, std::int64_t H) {
  std::vector<double> gp(static_cast<std::size_t>(H > 1 ? H : 1));
  gp[0] = 1.0;
  for (std::int64_t t = 1; t < H; ++t) gp[t] = gp[t - 1] * gamma;
  return gp;
}

// The recursion G_t = r_t + gamma G_{t+1} of one trajectory, in the shape both its users want:
// local(t, L) is called once per step t < len with L = L_t, the recursion of t's segment started
// from 0 at the segment's end; then, from the last segment back, carry(begin, end, G_end) once per
// segment [begin, end) that is not the last, with the finished G at its end, so that
// G_t = L_t + gamma^(end - t) G_end. Returns G_0. gpow[k] = gamma^k for k < len.
//
// The recursion waits a multiply and an add per step, so a long one is cut in kSegments segments
// whose recursions run interleaved; a short one (below kMinLength) is one segment. gamma = 1
// (undiscounted episodes, the common case) takes a copy of the loops without the multiplications
// by 1, which are exact, so the result is bit for bit the same.
namespace detail {
inline constexpr std::int64_t kSegments = 4, kMinLength = 16;

template <bool kUnit, class Local, class Carry>
inline double segmented_reward_to_go(const double* r, std::int64_t len, double gamma, const double* gpow,
                                     Local&& local, Carry&& carry) {
  auto times_gamma = [gamma](double x) { return kUnit ? x : gamma * x; };
  if (len < kMinLength) {
    double acc = 0.0;
    for (std::int64_t t = len - 1; t >= 0; --t) {
      acc = r[t] + times_gamma(acc);
      local(t, acc);
    }
    return acc;
  }
  const std::int64_t m = (len + kSegments - 1) / kSegments;  // segments [k m, (k + 1) m), the last shorter
  const std::int64_t tail = len - (kSegments - 1) * m;       // 1 <= tail <= m for len >= kMinLength
  double acc[kSegments] = {};
  auto steps = [&](std::int64_t j, auto segments) {  // step j of the first `segments` recursions
    for (int k = 0; k < decltype(segments)::value; ++k) {
      const std::int64_t t = k * m + j;
      acc[k] = r[t] + times_gamma(acc[k]);
      local(t, acc[k]);
    }
  };
  for (std::int64_t j = m - 1; j >= tail; --j) steps(j, std::integral_constant<int, kSegments - 1>{});
  for (std::int64_t j = tail - 1; j >= 0; --j) steps(j, std::integral_constant<int, kSegments>{});
  double next = acc[kSegments - 1];  // G at the start of the last segment: final
  for (std::int64_t k = kSegments - 2; k >= 0; --k) {
    carry(k * m, (k + 1) * m, next);
    next = kUnit ? acc[k] + next : acc[k] + gpow[m] * next;  // G_{k m} = L_{k m} + gamma^m G_{(k+1) m}
  }
  return next;
}

// The reward-to-go of one trajectory: g[t] = G_t for t < len; returns G_0.
template <bool kUnit>
inline double suffix_returns(const double* r, std::int64_t len, double gamma, const double* gpow, double* g) {
  return segmented_reward_to_go<kUnit>(
      r, len, gamma, gpow, [g](std::int64_t t, double L) { g[t] = L; },
      [g, gpow](std::int64_t begin, std::int64_t end, double G_end) {
        if (kUnit) {
          for (std::int64_t t = begin; t < end; ++t) g[t] += G_end;  // gpow[.] = 1
        } else {
          for (std::int64_t t = begin; t < end; ++t) g[t] += gpow[end - t] * G_end;
        }
      });
}
}  // namespace detail

inline double suffix_returns(const double* r, std::int64_t len, double gamma, const double* gpow, double* g) {
  return gamma == 1.0 ? detail::suffix_returns<true>(r, len, gamma, gpow, g)
                      : detail::suffix_returns<false>(r, len, gamma, gpow, g);
}

inline void returns(const double* rewards, const std::int32_t* lengths, std::int64_t N,
                    std::int64_t H, double gamma, double* out) {
  for (std::int64_t i = 0; i < N; ++i) {
    const double* r = rewards + i * H;
    double g = 0.0;
    for (std::int64_t t = lengths[i] - 1; t >= 0; --t) g = r[t] + gamma * g;
    out[i] = g;
  }
}

inline void reward_to_go(const double* rewards, const std::int32_t* lengths, std::int64_t N,
                         std::int64_t H, double gamma, double* out) {
  const std::vector<double> gpow = powers(gamma, H);
  for (std::int64_t i = 0; i < N; ++i) {
    const double* r = rewards + i * H;
    double* g = out + i * H;
    const std::int64_t len = lengths[i];
    for (std::int64_t t = len; t < H; ++t) g[t] = 0.0;
    suffix_returns(r, len, gamma, gpow.data(), g);
  }
}

}  // namespace pgfast
