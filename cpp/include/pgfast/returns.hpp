// Returns and reward-to-go of a padded (N, H) batch (seed 000, sections 4.2-4.3).
//
//   return          G(tau)  = sum_{t < len} gamma^t r_t
//   reward-to-go    G_t     = sum_{t <= t' < len} gamma^(t'-t) r_t'   (G_t = r_t + gamma G_{t+1})
//
// Positions t >= len are padding and stay 0 in the reward-to-go.
#pragma once

#include <cstdint>

namespace pgfast {

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
  for (std::int64_t i = 0; i < N; ++i) {
    const double* r = rewards + i * H;
    double* g = out + i * H;
    const std::int64_t len = lengths[i];
    for (std::int64_t t = len; t < H; ++t) g[t] = 0.0;
    double acc = 0.0;
    for (std::int64_t t = len - 1; t >= 0; --t) {
      acc = r[t] + gamma * acc;
      g[t] = acc;
    }
  }
}

}  // namespace pgfast
