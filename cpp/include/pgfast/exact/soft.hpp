// Entropy-regularised optimal control of a finite MDP: soft value iteration (docs/theory.md,
// "Regularised objectives").
//
//   Q(s,a) = sum_s' P(s'|s,a) [R(s,a,s') + gamma alive(s') V(s')]
//   V(s)   = tau log sum_a exp(Q(s,a) / tau)        (from the largest Q(s, .), so any tau > 0 works)
//
// with V = Q = 0 on terminal states. Finite horizon: V_H = 0 and one backup per step, backwards.
// Discounted: from V = 0 until a sweep changes V by at most tol max(1, max|V|) (a gamma-contraction
// in the sup norm), at most max_iter sweeps. Overflow shows as inf / NaN (the caller checks).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "pgfast/exact/chain.hpp"
#include "pgfast/interrupt.hpp"
#include "pgfast/mdp.hpp"

namespace pgfast::exact {

struct SoftOptimal {
  double J = 0.0;
  std::vector<double> V, Q;    // (H, S) and (H, S, A) for the finite horizon, (S) and (S, A) discounted
  std::int64_t iterations = 0;  // sweeps (discounted) or H
  double change = 0.0;          // the last sweep's max |V_new - V_old| (discounted)
  bool converged = true;        // the discounted iteration reached tol within max_iter sweeps
};

// One soft backup: Q (S*A) from the next values Vn, then V (S) from Q.
inline void soft_backup(const FiniteMDP& mdp, const double* Vn, double gamma, double tau, double* Q, double* V,
                        StopToken& stop) {
  const std::int64_t S = mdp.n_states(), A = mdp.n_actions();
  const auto& indptr = mdp.indptr();
  const auto& next = mdp.next();
  const auto& prob = mdp.prob();
  const auto& rew = mdp.reward();
  const auto& term = mdp.terminal();
  for (std::int64_t s = 0; s < S; ++s) {
    if (s % kPollStates == kPollStates - 1) check_stop(stop);
    double* q = Q + s * A;
    if (term[s]) {
      std::fill(q, q + A, 0.0);
      V[s] = 0.0;
      continue;
    }
    double m = -std::numeric_limits<double>::infinity();
    for (std::int64_t a = 0; a < A; ++a) {
      const std::int64_t row = s * A + a;
      double acc = 0.0;
      for (std::int64_t e = indptr[row]; e < indptr[row + 1]; ++e)
        acc += prob[e] * (rew[e] + (term[next[e]] ? 0.0 : gamma * Vn[next[e]]));
      q[a] = acc;
      m = std::max(m, acc);
    }
    double sum = 0.0;
    for (std::int64_t a = 0; a < A; ++a) sum += std::exp((q[a] - m) / tau);
    V[s] = m + tau * std::log(sum);
  }
}

inline SoftOptimal soft_optimal_finite_horizon(const FiniteMDP& mdp, std::int64_t H, double gamma, double tau,
                                               StopToken& stop) {
  const std::int64_t S = mdp.n_states(), A = mdp.n_actions();
  SoftOptimal o;
  o.V.assign(static_cast<std::size_t>(H * S), 0.0);
  o.Q.assign(static_cast<std::size_t>(H * S * A), 0.0);
  const std::vector<double> zero(static_cast<std::size_t>(S), 0.0);
  for (std::int64_t t = H - 1; t >= 0; --t) {
    check_stop(stop);
    const double* Vn = t + 1 < H ? o.V.data() + (t + 1) * S : zero.data();
    soft_backup(mdp, Vn, gamma, tau, o.Q.data() + t * S * A, o.V.data() + t * S, stop);
  }
  for (std::int64_t s = 0; s < S; ++s) o.J += mdp.mu0()[s] * o.V[s];
  o.iterations = H;
  return o;
}

inline SoftOptimal soft_optimal_discounted(const FiniteMDP& mdp, double gamma, double tau, double tol,
                                           std::int64_t max_iter, StopToken& stop) {
  const std::int64_t S = mdp.n_states(), A = mdp.n_actions();
  SoftOptimal o;
  o.V.assign(static_cast<std::size_t>(S), 0.0);
  o.Q.assign(static_cast<std::size_t>(S * A), 0.0);
  std::vector<double> Vn(static_cast<std::size_t>(S), 0.0);
  for (;;) {
    check_stop(stop);
    soft_backup(mdp, o.V.data(), gamma, tau, o.Q.data(), Vn.data(), stop);
    double change = 0.0, size = 1.0;
    for (std::int64_t s = 0; s < S; ++s) {
      const double d = std::abs(Vn[s] - o.V[s]);
      if (!(d <= change)) change = d;  // NaN sticks
      size = std::max(size, std::abs(Vn[s]));
    }
    o.V.swap(Vn);
    ++o.iterations;
    o.change = change;
    // at most tol (relative) ends it; so does an overflow (NaN or inf, which the caller reports)
    if (!(change > tol * size)) break;
    if (o.iterations == max_iter) {
      o.converged = false;
      break;
    }
  }
  for (std::int64_t s = 0; s < S; ++s) o.J += mdp.mu0()[s] * o.V[s];
  return o;
}

}  // namespace pgfast::exact
