// Optimal control of a finite MDP (docs/theory.md, "Optimal control").
//
//   finite horizon   Q*_t(s,a) = sum_s' P(s'|s,a) [R(s,a,s') + gamma alive(s') V*_{t+1}(s')],  V*_H = 0
//                    V*_t(s) = max_a Q*_t(s,a)                                  (backward induction)
//   discounted       V* = max over deterministic policies of (I - gamma P_pi)^{-1} r_pi  (policy iteration)
//
// with a greedy optimal policy (the lowest action index among exact ties).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "pgfast/exact/chain.hpp"
#include "pgfast/exact/objectives.hpp"
#include "pgfast/interrupt.hpp"
#include "pgfast/mdp.hpp"
#include "pgfast/parallel.hpp"

namespace pgfast::exact {

struct Optimal {
  double J = 0.0;
  std::vector<double> V, Q;
  std::vector<std::int32_t> actions;
  std::int64_t iterations = 0;
};

// Finite horizon: V*_t(s) = max_a Q*_t(s,a); greedy actions (lowest index among exact ties).
inline Optimal optimal_finite_horizon(const FiniteMDP& mdp, std::int64_t H, double gamma, StopToken& stop) {
  const std::int64_t S = mdp.n_states(), A = mdp.n_actions();
  const auto& indptr = mdp.indptr();
  const auto& next = mdp.next();
  const auto& prob = mdp.prob();
  const auto& rew = mdp.reward();
  const auto& term = mdp.terminal();
  Optimal o;
  o.V.assign(static_cast<std::size_t>(H * S), 0.0);
  o.Q.assign(static_cast<std::size_t>(H * S * A), 0.0);
  o.actions.assign(static_cast<std::size_t>(H * S), 0);
  std::vector<double> Vnext(static_cast<std::size_t>(S), 0.0);
  for (std::int64_t t = H - 1; t >= 0; --t) {
    check_stop(stop);
    for (std::int64_t s = 0; s < S; ++s) {
      if (s % kPollStates == kPollStates - 1) check_stop(stop);
      if (term[s]) continue;
      double best = -std::numeric_limits<double>::infinity();
      std::int32_t arg = 0;
      for (std::int64_t a = 0; a < A; ++a) {
        const std::int64_t row = s * A + a;
        double acc = 0.0;
        for (std::int64_t e = indptr[row]; e < indptr[row + 1]; ++e)
          acc += prob[e] * (rew[e] + (term[next[e]] ? 0.0 : gamma * Vnext[next[e]]));
        o.Q[(t * S + s) * A + a] = acc;
        if (acc > best) best = acc, arg = static_cast<std::int32_t>(a);
      }
      o.V[t * S + s] = best;
      o.actions[t * S + s] = arg;
    }
    std::copy(o.V.begin() + t * S, o.V.begin() + (t + 1) * S, Vnext.begin());
  }
  o.J = 0.0;
  for (std::int64_t s = 0; s < S; ++s) o.J += mdp.mu0()[s] * Vnext[s];
  o.iterations = H;
  return o;
}

// Discounted: policy iteration (exact evaluation of each deterministic policy; an action changes
// only when it improves Q by more than a relative 1e-12, so the iteration cannot cycle).
inline Optimal optimal_discounted(const FiniteMDP& mdp, double gamma, Method method, double tol, int threads,
                                  StopToken& stop) {
  const std::int64_t S = mdp.n_states(), A = mdp.n_actions();
  const auto& term = mdp.terminal();
  Optimal o;
  std::vector<double> pi(static_cast<std::size_t>(S * A), 0.0);
  o.actions.assign(static_cast<std::size_t>(S), 0);
  const std::vector<double> r = mdp.expected_reward();
  for (std::int64_t s = 0; s < S; ++s) {
    std::int64_t best = 0;
    for (std::int64_t a = 1; a < A; ++a)
      if (r[s * A + a] > r[s * A + best]) best = a;
    o.actions[s] = static_cast<std::int32_t>(best);
  }
  const Request req{true, false, false};
  for (std::int64_t it = 1; it <= 10000; ++it) {
    std::fill(pi.begin(), pi.end(), 0.0);
    for (std::int64_t s = 0; s < S; ++s) pi[s * A + o.actions[s]] = 1.0;
    Evaluation ev = discounted(mdp, pi.data(), gamma, method, tol, req, threads, stop);
    bool changed = false;
    for (std::int64_t s = 0; s < S; ++s) {
      if (term[s]) continue;
      const std::int64_t cur = o.actions[s];
      std::int64_t best = cur;
      for (std::int64_t a = 0; a < A; ++a) {
        const double qa = ev.Q[s * A + a], qb = ev.Q[s * A + best];
        if (qa > qb + 1e-12 * std::max(1.0, std::abs(qb))) best = a;
      }
      if (best != cur) {
        o.actions[s] = static_cast<std::int32_t>(best);
        changed = true;
      }
    }
    o.iterations = it;
    if (!changed) {
      o.V = std::move(ev.V);
      o.Q = std::move(ev.Q);
      o.J = ev.J;
      return o;
    }
  }
  throw std::runtime_error("policy iteration did not converge in 10000 iterations");
}

}  // namespace pgfast::exact
