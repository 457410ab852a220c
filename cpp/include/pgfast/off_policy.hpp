// Off-policy estimation: importance sampling of trajectories from a behavior policy beta for a
// target policy pi (docs/theory.md, "Importance sampling"). The dynamics cancel in the ratios:
//
//   rho_i       = prod_{t < len_i} pi(a_t|s_t) / beta(a_t|s_t)    (trajectory ratio)
//   rho_{i,0:t} = prod_{t' <= t} pi(a_t'|s_t') / beta(a_t'|s_t')  (per-decision ratio)
//
// Everything is computed in log space (log-ratios, log-sum-exp normalisers), so ratios far below
// or above the float64 range still give finite weights.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace pgfast::off_policy {

// The per-step log-ratios lr_t = log pi(a_t|s_t) - log beta(a_t|s_t) of a batch (the terms of
// log rho: the dynamics cancel), 0 past each end. The target is a log-probability table
// (S, A); the behavior too (beta_logp, with its probabilities beta_probs: a logged action of
// probability 0 -- a log-prob that is finite only because it underflowed -- has no ratio), or
// logged log-probabilities (N, H) (beta_logp null). Returns the first step, in batch order, whose
// behavior log-prob is not finite, or exceeds 0 (logged), or {-1, -1}; out is then incomplete.
// States and actions must be in range (the caller checks).
struct StepIndex {
  std::int64_t i = -1, t = -1;
};
inline StepIndex log_ratios(const double* target_logp, const double* beta_logp, const double* beta_probs,
                            const double* logged, std::int64_t A, const std::int32_t* states,
                            const std::int32_t* actions, const std::int32_t* lengths, std::int64_t N,
                            std::int64_t H, double* out) {
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int32_t* s = states + i * H;
    const std::int32_t* a = actions + i * H;
    double* lr = out + i * H;
    const std::int64_t len = lengths[i];
    for (std::int64_t t = 0; t < len; ++t) {
      const std::int64_t k = s[t] * A + a[t];
      double lb;
      if (beta_logp) {
        lb = beta_probs[k] > 0.0 ? beta_logp[k] : -std::numeric_limits<double>::infinity();
      } else {
        lb = logged[i * H + t];
        if (lb > 1e-12) return {i, t};  // a log-probability above 0 (beyond rounding)
      }
      if (!std::isfinite(lb)) return {i, t};
      lr[t] = target_logp[k] - lb;
    }
    for (std::int64_t t = len; t < H; ++t) lr[t] = 0.0;
  }
  return {};
}

// Importance-sampling weights for data from a behavior policy: from the per-step
// log-ratios lr_t = log pi(a_t|s_t) - log beta(a_t|s_t), in log space until the end.
//   cumulative ratio   c_t = exp(L_t), L_t = sum_{t' <= t} lr_t'   (L_t = L_{len-1} for t >= len)
//   trajectory ratio   rho = exp(L),   L = L_{len-1}
//   per_decision = false:  w_t = rho * gamma^t G_t (reward_to_go) | rho * G (return); value rho * G
//   per_decision = true:   w_t = sum_{t' >= t} gamma^t' r_t' c_t'  (reward_to_go)
//                          w_t = c_t sum_{t' < t} gamma^t' r_t' + sum_{t' >= t} gamma^t' r_t' c_t'  (return)
//                          value sum_t gamma^t r_t c_t
// Self-normalised weights divide by the batch mean of the ratios, taken in log space too: with
// `log_norm` (H,) not null, c_t = exp(L_t - log_norm[t]) (weighted per-decision importance
// sampling, log_norm from per_decision_log_norm); with `log_norm_rho` not null,
// rho = exp(L - *log_norm_rho) (log_mean_ratio). So ratios of 1e-600 self-normalise as well as
// ratios of 1. Writes weights (N, H) (0 past the end), log_rho (N,) = L and the per-trajectory
// value estimate (N,).
inline void importance_weights(const double* rewards, const double* log_ratio, const std::int32_t* lengths,
                               std::int64_t N, std::int64_t H, double gamma, bool reward_to_go, bool per_decision,
                               const double* log_norm, const double* log_norm_rho, double* weights, double* log_rho,
                               double* value) {
  std::vector<double> c(static_cast<std::size_t>(std::max<std::int64_t>(H, 1))), disc(c.size());
  for (std::int64_t i = 0; i < N; ++i) {
    const double* r = rewards + i * H;
    const double* lr = log_ratio + i * H;
    double* w = weights + i * H;
    const std::int64_t len = lengths[i];
    double acc = 0.0;
    for (std::int64_t t = 0; t < len; ++t) {
      acc += lr[t];
      c[t] = std::exp(log_norm ? acc - log_norm[t] : acc);
    }
    log_rho[i] = acc;
    for (std::int64_t t = len; t < H; ++t) w[t] = 0.0;
    if (!per_decision) {
      const double rr = std::exp(log_norm_rho ? acc - *log_norm_rho : acc);
      double G = 0.0;
      for (std::int64_t t = len - 1; t >= 0; --t) {
        G = r[t] + gamma * G;
        w[t] = G;
      }
      double gp = 1.0;
      for (std::int64_t t = 0; t < len; ++t, gp *= gamma) w[t] = reward_to_go ? rr * gp * w[t] : rr * G;
      value[i] = rr * G;
      continue;
    }
    double gp = 1.0, total = 0.0;
    for (std::int64_t t = 0; t < len; ++t, gp *= gamma) {
      disc[t] = gp * r[t];  // gamma^t r_t
      total += disc[t] * c[t];
    }
    value[i] = total;
    double suffix = 0.0;  // sum_{t' >= t} gamma^t' r_t' c_t'
    for (std::int64_t t = len - 1; t >= 0; --t) {
      suffix += disc[t] * c[t];
      w[t] = suffix;
    }
    if (!reward_to_go) {
      double prefix = 0.0;  // sum_{t' < t} gamma^t' r_t'
      for (std::int64_t t = 0; t < len; ++t) {
        w[t] += c[t] * prefix;
        prefix += disc[t];
      }
    }
  }
}

// log of sum_i exp(x_i) / n over x[0..n), shifted by the maximum (no overflow or underflow).
inline double log_mean_exp(const double* x, std::int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (std::int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  if (!std::isfinite(m)) return m;
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) total += std::exp(x[i] - m);
  return m + std::log(total / static_cast<double>(n));
}

// log of the mean trajectory ratio, log (1/N) sum_i exp(L_i), L_i = sum_{t < len_i} lr_{i,t}
// (self-normalised importance sampling, in log space).
inline double log_mean_ratio(const double* log_ratio, const std::int32_t* lengths, std::int64_t N, std::int64_t H) {
  std::vector<double> L(static_cast<std::size_t>(N), 0.0);
  for (std::int64_t i = 0; i < N; ++i) {
    for (std::int64_t t = 0; t < lengths[i]; ++t) L[i] += log_ratio[i * H + t];
  }
  return log_mean_exp(L.data(), N);
}

// Per step, the log of the mean cumulative ratio for weighted per-decision importance sampling:
// log_norm[t] = log (1/N) sum_i exp(L_{i,t}) (L_{i,t} = L_{i,len_i-1} past the end of trajectory i).
inline void per_decision_log_norm(const double* log_ratio, const std::int32_t* lengths, std::int64_t N,
                                  std::int64_t H, double* log_norm) {
  std::vector<double> L(static_cast<std::size_t>(N * H));  // (H, N): one row per step
  for (std::int64_t i = 0; i < N; ++i) {
    double acc = 0.0;
    for (std::int64_t t = 0; t < H; ++t) {
      if (t < lengths[i]) acc += log_ratio[i * H + t];
      L[t * N + i] = acc;
    }
  }
  for (std::int64_t t = 0; t < H; ++t) log_norm[t] = log_mean_exp(L.data() + t * N, N);
}

}  // namespace pgfast::off_policy
