// The log-likelihood of a batch of trajectories (docs/theory.md, "The objective and the
// likelihood of a trajectory").
//
//   log p_theta(tau) = log mu0(s_0) + sum_{t < len} [log pi(a_t|s_t) + log P(s_{t+1}|s_t, a_t)]
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "pgfast/mdp.hpp"

namespace pgfast::est {

// log p_theta(tau) = log mu0(s_0) + sum_t [log pi(a_t|s_t) + log P(s_{t+1}|s_t, a_t)] per
// trajectory (s_{t+1} is the final state after the last step); dynamics = false keeps only the
// policy terms, the only ones that depend on theta.
inline void log_likelihood(const FiniteMDP& mdp, const double* log_probs, const std::int32_t* states,
                           const std::int32_t* actions, const std::int32_t* lengths, const std::int32_t* finals,
                           std::int64_t N, std::int64_t H, bool dynamics, double* out) {
  const std::int64_t A = mdp.n_actions();
  const auto& indptr = mdp.indptr();
  const auto& next = mdp.next();
  const auto& prob = mdp.prob();
  const double neg_inf = -std::numeric_limits<double>::infinity();
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int32_t* s = states + i * H;
    const std::int32_t* a = actions + i * H;
    const std::int64_t len = lengths[i];
    double acc = 0.0;
    if (dynamics) acc += len > 0 ? std::log(mdp.mu0()[s[0]]) : 0.0;
    for (std::int64_t t = 0; t < len; ++t) {
      acc += log_probs[s[t] * A + a[t]];
      if (!dynamics) continue;
      const std::int32_t sp = t + 1 < len ? s[t + 1] : finals[i];
      const std::int64_t row = s[t] * A + a[t];
      double p = 0.0;
      for (std::int64_t e = indptr[row]; e < indptr[row + 1]; ++e)
        if (next[e] == sp) p = prob[e];
      acc += p > 0.0 ? std::log(p) : neg_inf;
    }
    out[i] = acc;
  }
}

}  // namespace pgfast::est
