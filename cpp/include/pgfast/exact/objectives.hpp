// The objectives of a fixed policy on a finite MDP, evaluated exactly, and their gradients
// (docs/theory.md, "The three objectives" and "The policy gradient theorem"): values, visitation
// and stationary distributions. The chain and its linear systems: chain.hpp.
//
//   finite horizon   Q_t(s,a) = sum_s' P(s'|s,a) [R(s,a,s') + gamma alive(s') V_{t+1}(s')],  V_H = 0
//                    V_t(s) = sum_a pi(a|s) Q_t(s,a),   J = mu0 . V_0
//                    d_0 = mu0,  d_{t+1}(s') = alive(s') sum_{s,a} d_t(s) pi(a|s) P(s'|s,a)
//   discounted       (I - gamma P_pi) V = r_pi,  J = mu0 . V,  rho (I - gamma P_pi) = mu0
//   average reward   J = d . r_pi,   differential values (I - Pt_pi) h = r_pi - J 1, d . h = 0
//   average value    J = d . V_gamma
//
// Policy gradient theorem in logit coordinates: every objective's gradient with respect to the
// logits z(s, a) of a softmax policy is
//
//   dJ/dz(s,a) = w(s) pi(a|s) (Q(s,a) - V(s))            (summed over t for the finite horizon)
//
// with w the objective's state weighting (gamma^t d_t, rho, d; average value: see average_value);
// a policy maps it to its parameters with the vector-Jacobian product of its logits (tabular:
// identity; linear: Phi^T). The same gradient in the coordinates of the probability table,
// centred in each state, is prob_grad(s,a) = w(s) (Q(s,a) - V(s)) (dJ/dz = pi * prob_grad): it is
// defined where pi(a|s) = 0 too, where the logit gradient is 0 (the direct parameterisation reads it).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "pgfast/exact/chain.hpp"
#include "pgfast/interrupt.hpp"
#include "pgfast/mdp.hpp"
#include "pgfast/parallel.hpp"

namespace pgfast::exact {

// Objectives. Each fills an Evaluation; `logit_grad` (S*A) and `fisher_w` (S) when requested.

enum class Objective { FiniteHorizon, Discounted, AverageReward, AverageValue };

struct Evaluation {
  double J = 0.0;
  std::vector<double> V, Q, d, visitation;  // shapes depend on the objective (see module comment)
  std::vector<double> Adv;                  // Q - V (finite horizon only; elsewhere formed by the caller)
  std::vector<double> logit_grad;           // dJ/dz(s,a), (S*A)
  std::vector<double> prob_grad;            // the centred dJ/dpi(s,a), (S*A): logit_grad = pi * prob_grad
  std::vector<double> fisher_w;             // state weighting of the Fisher information, (S)
};

struct Request {
  bool values = true;    // fill V, Q, d (finite horizon: the (H, ...) tables)
  bool gradient = false;
  bool fisher = false;
};

// Finite horizon: backward induction over the CSR rows, O(H nnz).
inline Evaluation finite_horizon(const FiniteMDP& mdp, const double* pi, std::int64_t H, double gamma,
                                 const Request& req, StopToken& stop) {
  const std::int64_t S = mdp.n_states(), A = mdp.n_actions();
  const auto& indptr = mdp.indptr();
  const auto& next = mdp.next();
  const auto& prob = mdp.prob();
  const auto& term = mdp.terminal();
  Evaluation ev;
  // Per entry: P(s'|s,a) alive(s'), so the inner loops are plain gathers / scatters.
  const std::int64_t nnz = mdp.nnz();
  std::vector<double> pa(static_cast<std::size_t>(nnz));
  for (std::int64_t e = 0; e < nnz; ++e) pa[e] = term[next[e]] ? 0.0 : prob[e];
  const std::vector<double> rexp = mdp.expected_reward();
  // Forward: d_t, (H, S), pulled: d_{t+1}(s') = sum over the entries e into s' of
  // d_t(s_e) pi(a_e|s_e) P(s'|s_e,a_e) alive(s'), over the entries grouped by successor (a counting
  // sort of this call's policy-weighted entries), so each d_{t+1}(s') is one running sum of
  // gathers instead of scattered read-modify-writes. Terminal states' rows weigh 0.
  std::vector<std::int64_t> in_ptr(static_cast<std::size_t>(S + 1), 0);
  std::vector<std::int32_t> in_src(static_cast<std::size_t>(nnz));
  std::vector<double> in_w(static_cast<std::size_t>(nnz));
  {
    const std::int32_t* action = mdp.entry_action().data();
    for (std::int64_t e = 0; e < nnz; ++e) ++in_ptr[next[e] + 1];
    for (std::int64_t k = 0; k < S; ++k) in_ptr[k + 1] += in_ptr[k];
    std::vector<std::int64_t> fill(in_ptr.begin(), in_ptr.end() - 1);
    for (std::int64_t s = 0; s < S; ++s) {
      for (std::int64_t e = indptr[s * A]; e < indptr[(s + 1) * A]; ++e) {
        const std::int64_t k = fill[next[e]]++;
        in_src[k] = static_cast<std::int32_t>(s);
        in_w[k] = term[s] ? 0.0 : pi[s * A + action[e]] * pa[e];
      }
    }
  }
  std::vector<double> d(static_cast<std::size_t>(H * S), 0.0);
  std::copy(mdp.mu0().begin(), mdp.mu0().end(), d.begin());
  for (std::int64_t t = 0; t + 1 < H; ++t) {
    check_stop(stop);
    const double* dt = d.data() + t * S;
    double* dn = d.data() + (t + 1) * S;
    for (std::int64_t sp = 0; sp < S; ++sp) {
      if (sp % kPollStates == kPollStates - 1) check_stop(stop);
      double acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0;  // four chains of additions, not one
      std::int64_t k = in_ptr[sp];
      const std::int64_t end = in_ptr[sp + 1];
      for (; k + 4 <= end; k += 4) {
        acc0 += dt[in_src[k]] * in_w[k];
        acc1 += dt[in_src[k + 1]] * in_w[k + 1];
        acc2 += dt[in_src[k + 2]] * in_w[k + 2];
        acc3 += dt[in_src[k + 3]] * in_w[k + 3];
      }
      for (; k < end; ++k) acc0 += dt[in_src[k]] * in_w[k];
      dn[sp] = (acc0 + acc1) + (acc2 + acc3);
    }
  }
  // Backward: Q_t, V_t, and the gradient / Fisher weights on the way.
  std::vector<double> Vnext(static_cast<std::size_t>(S), 0.0), Vcur(static_cast<std::size_t>(S), 0.0),
      q(static_cast<std::size_t>(A));
  if (req.values) {
    ev.V.assign(static_cast<std::size_t>(H * S), 0.0);
    ev.Q.assign(static_cast<std::size_t>(H * S * A), 0.0);
    ev.Adv.assign(static_cast<std::size_t>(H * S * A), 0.0);
  }
  if (req.gradient) {
    ev.logit_grad.assign(static_cast<std::size_t>(S * A), 0.0);
    ev.prob_grad.assign(static_cast<std::size_t>(S * A), 0.0);
  }
  std::vector<double> gpow(static_cast<std::size_t>(H));
  for (std::int64_t t = 0; t < H; ++t) gpow[t] = t == 0 ? 1.0 : gpow[t - 1] * gamma;
  for (std::int64_t t = H - 1; t >= 0; --t) {
    check_stop(stop);
    const double* dt = d.data() + t * S;
    for (std::int64_t s = 0; s < S; ++s) {
      if (s % kPollStates == kPollStates - 1) check_stop(stop);
      if (term[s]) {
        Vcur[s] = 0.0;
        continue;
      }
      double v = 0.0;
      for (std::int64_t a = 0; a < A; ++a) {
        const std::int64_t row = s * A + a;
        double acc = 0.0;
        for (std::int64_t e = indptr[row]; e < indptr[row + 1]; ++e) acc += pa[e] * Vnext[next[e]];
        acc = rexp[row] + gamma * acc;
        q[a] = acc;
        v += pi[row] * acc;
      }
      Vcur[s] = v;
      if (req.values) {
        ev.V[t * S + s] = v;
        for (std::int64_t a = 0; a < A; ++a) {
          ev.Q[(t * S + s) * A + a] = q[a];
          ev.Adv[(t * S + s) * A + a] = q[a] - v;
        }
      }
      if (req.gradient && dt[s] != 0.0) {
        const double c = gpow[t] * dt[s];
        for (std::int64_t a = 0; a < A; ++a) ev.logit_grad[s * A + a] += c * pi[s * A + a] * (q[a] - v);
        for (std::int64_t a = 0; a < A; ++a) ev.prob_grad[s * A + a] += c * (q[a] - v);
      }
    }
    std::swap(Vnext, Vcur);
  }
  double J = 0.0;
  for (std::int64_t s = 0; s < S; ++s) J += mdp.mu0()[s] * Vnext[s];
  ev.J = J;
  if (req.values || req.fisher) {
    ev.visitation.assign(static_cast<std::size_t>(S), 0.0);
    for (std::int64_t t = 0; t < H; ++t)
      for (std::int64_t s = 0; s < S; ++s) ev.visitation[s] += d[t * S + s];
  }
  if (req.fisher) ev.fisher_w = ev.visitation;
  if (req.values) ev.d = std::move(d);
  return ev;
}

// out = dJ/dz(s,a) = w(s) pi(a|s) (Q(s,a) - V(s)) and prob = w(s) (Q(s,a) - V(s)).
inline void advantage_weights(const std::vector<double>& Q, const std::vector<double>& V, const VectorXd& w,
                              const double* pi, std::int64_t S, std::int64_t A, std::vector<double>& out,
                              std::vector<double>& prob) {
  out.assign(static_cast<std::size_t>(S * A), 0.0);
  prob.assign(static_cast<std::size_t>(S * A), 0.0);
  for (std::int64_t s = 0; s < S; ++s) {
    if (w(s) == 0.0) continue;
    for (std::int64_t a = 0; a < A; ++a) {
      out[s * A + a] = w(s) * pi[s * A + a] * (Q[s * A + a] - V[s]);
      prob[s * A + a] = w(s) * (Q[s * A + a] - V[s]);
    }
  }
}

inline std::vector<double> to_std(const VectorXd& v) { return std::vector<double>(v.data(), v.data() + v.size()); }

inline Evaluation discounted(const FiniteMDP& mdp, const double* pi, double gamma, Method method, double tol,
                             const Request& req, int threads, StopToken& stop) {
  PolicyChain c(mdp, pi, &stop);
  c.parallelize(threads, stop);
  const std::int64_t S = c.S, A = c.A;
  const bool need_rho = req.values || req.gradient || req.fisher;
  DiscountedSolution sol = solve_discounted(c, gamma, method, tol, need_rho, nullptr, stop);
  Evaluation ev;
  ev.V = to_std(sol.V);
  ev.Q.assign(static_cast<std::size_t>(S * A), 0.0);
  c.q_from_values(ev.V.data(), gamma, 0.0, ev.Q.data());
  ev.J = c.mu0_dot(ev.V.data());
  if (need_rho) {
    for (std::int64_t s = 0; s < S; ++s)
      if (sol.rho(s) < 0.0) sol.rho(s) = 0.0;  // round-off of the iterative solve
    ev.visitation = to_std(sol.rho);
    const double total = sol.rho.sum();
    ev.d = to_std(sol.rho / total);
  }
  if (req.gradient) advantage_weights(ev.Q, ev.V, sol.rho, pi, S, A, ev.logit_grad, ev.prob_grad);
  if (req.fisher) ev.fisher_w = ev.visitation;
  return ev;
}

inline Evaluation average_reward(const FiniteMDP& mdp, const double* pi, Method method, double tol,
                                 const Request& req, int threads, StopToken& stop) {
  PolicyChain c(mdp, pi, &stop);
  c.parallelize(threads, stop);
  const std::int64_t S = c.S, A = c.A;
  const VectorXd d = stationary(c, method, tol, stop);
  Eigen::Map<const VectorXd> rpi(c.r_pi.data(), S);
  Evaluation ev;
  ev.J = d.dot(rpi);
  ev.d = to_std(d);
  ev.visitation = ev.d;
  if (req.values || req.gradient) {
    const VectorXd h = poisson(c, d, VectorXd(rpi), method, tol, stop);
    ev.V = to_std(h);
    ev.Q.assign(static_cast<std::size_t>(S * A), 0.0);
    c.q_from_values(h.data(), 1.0, c.mu0_dot(h.data()), ev.Q.data());
    for (auto& q : ev.Q) q -= ev.J;
    const auto& term = mdp.terminal();
    for (std::int64_t s = 0; s < S; ++s)
      if (term[s])
        for (std::int64_t a = 0; a < A; ++a) ev.Q[s * A + a] = ev.V[s];  // reset row: Q = h
    if (req.gradient) advantage_weights(ev.Q, ev.V, d, pi, S, A, ev.logit_grad, ev.prob_grad);
  }
  if (req.fisher) ev.fisher_w = ev.d;
  return ev;
}

// J_avV = d . V_gamma with d the stationary distribution of the continuing chain and V_gamma the
// discounted values. Its gradient has two parts:
//   d . grad V  = sum_s rho_d(s) sum_a grad pi(a|s) Q_gamma(s,a),   rho_d (I - gamma P_pi) = d
//   grad d . V  = sum_s d(s) sum_a grad pi(a|s) G(s,a),   G(s,a) = sum_s' Pt(s'|s,a) g(s'),
//                 (I - Pt) g = V_gamma - J_avV 1, d . g = 0            (Poisson equation for V_gamma)
// In logit coordinates: dJ/dz(s,a) = pi(a|s) [rho_d(s) (Q_gamma - V_gamma)(s,a) + d(s) (G(s,a) - sum_b pi(b|s) G(s,b))].
inline Evaluation average_value(const FiniteMDP& mdp, const double* pi, double gamma, Method method, double tol,
                                const Request& req, int threads, StopToken& stop) {
  PolicyChain c(mdp, pi, &stop);
  c.parallelize(threads, stop);
  const std::int64_t S = c.S, A = c.A;
  const VectorXd d = stationary(c, method, tol, stop);
  DiscountedSolution sol = solve_discounted(c, gamma, method, tol, false, req.gradient ? &d : nullptr, stop);
  Evaluation ev;
  ev.V = to_std(sol.V);
  ev.J = d.dot(sol.V);
  ev.d = to_std(d);
  ev.visitation = ev.d;
  ev.Q.assign(static_cast<std::size_t>(S * A), 0.0);
  c.q_from_values(ev.V.data(), gamma, 0.0, ev.Q.data());
  if (req.gradient) {
    const VectorXd g = poisson(c, d, sol.V, method, tol, stop);
    std::vector<double> G(static_cast<std::size_t>(S * A), 0.0);
    c.q_from_values(g.data(), 1.0, c.mu0_dot(g.data()), G.data(), false);  // G(s,a) = sum_s' Pt(s'|s,a) g(s')
    ev.logit_grad.assign(static_cast<std::size_t>(S * A), 0.0);
    ev.prob_grad.assign(static_cast<std::size_t>(S * A), 0.0);
    for (std::int64_t s = 0; s < S; ++s) {
      double gbar = 0.0;
      for (std::int64_t a = 0; a < A; ++a) gbar += pi[s * A + a] * G[s * A + a];
      const double rd = std::max(sol.rho2(s), 0.0);
      for (std::int64_t a = 0; a < A; ++a) {
        const std::int64_t k = s * A + a;
        ev.prob_grad[k] = rd * (ev.Q[k] - ev.V[s]) + d(s) * (G[k] - gbar);
        ev.logit_grad[k] = pi[k] * ev.prob_grad[k];
      }
    }
  }
  if (req.fisher) ev.fisher_w = ev.d;
  return ev;
}

}  // namespace pgfast::exact
