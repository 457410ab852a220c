// The Markov chain of a finite MDP under a fixed policy, and the linear systems the exact
// objectives solve on it (docs/theory.md, "The three objectives"). Everything here works on the
// CSR storage of FiniteMDP and a probability table pi (S, A); nothing knows Python.
//
// Episodes (as sampled by sampling.hpp): r_t = R(s_t, a_t, s_{t+1}); entering a terminal state ends
// the episode after that reward; alive(s) = 1 - terminal(s); r(s, a) = sum_s' P(s'|s,a) R(s,a,s').
//
//   discounted       (I - gamma P_pi) V = r_pi     (P_pi(s,s') = sum_a pi P(s'|s,a) alive(s'))
//                    rho (I - gamma P_pi) = mu0    (rho(s) = sum_t gamma^t Pr(s_t = s))
//   average          continuing chain Pt_pi: entering a terminal state resets to mu0;
//                    d Pt_pi = d, sum d = 1;  (I - Pt_pi) h = r_pi - J 1, d . h = 0
//
// The stationary distribution needs a unichain (one closed class) that is aperiodic. Up to
// kDenseMaxStates states the systems are solved by dense LU, beyond by the Krylov solvers of
// linalg.hpp on the sparse chain (Method).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pgfast/interrupt.hpp"
#include "pgfast/linalg.hpp"
#include "pgfast/mdp.hpp"
#include "pgfast/parallel.hpp"

namespace pgfast::exact {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using linalg::DenseLU;
using linalg::krylov_solve;

// How a sparse solve that does not converge is reported (linalg::gmres appends it to the message).
inline constexpr const char* kKrylovAdvice =
    "the system is ill-conditioned (gamma close to 1?): method='dense' solves it directly";

// O(S) / O(nnz) passes poll the stop token every this many states (a clock read at most).
inline constexpr std::int64_t kPollStates = 1 << 14;

// ---------------------------------------------------------------------------------------------
// The policy-weighted chain: per-entry weights pi(a|s) P(s'|s,a) and the expected rewards.

struct PolicyChain {
  std::int64_t S = 0, A = 0;
  const FiniteMDP* mdp = nullptr;
  const double* pi = nullptr;   // (S, A)
  std::vector<double> r;        // r(s, a), (S * A)
  std::vector<double> r_pi;     // sum_a pi r(s, a), 0 on terminal states
  std::vector<double> w_alive;  // per entry: pi(a|s) P_e alive(next_e), 0 for terminal s
  std::vector<double> tau;      // per state: probability of entering a terminal state (1 on terminal s)

  // `poll` (optional) is polled every kPollStates states of the construction.
  PolicyChain(const FiniteMDP& m, const double* probs, StopToken* poll = nullptr)
      : S(m.n_states()), A(m.n_actions()), mdp(&m), pi(probs) {
    const auto& indptr = m.indptr();
    const auto& next = m.next();
    const auto& prob = m.prob();
    const auto& term = m.terminal();
    r = m.expected_reward();
    r_pi.assign(static_cast<std::size_t>(S), 0.0);
    w_alive.assign(prob.size(), 0.0);
    tau.assign(static_cast<std::size_t>(S), 0.0);
    for (std::int64_t s = 0; s < S; ++s) {
      if (poll && s % kPollStates == 0) check_stop(*poll);
      if (term[s]) {
        tau[s] = 1.0;
        continue;
      }
      double rs = 0.0, ts = 0.0;
      for (std::int64_t a = 0; a < A; ++a) {
        const double p = pi[s * A + a];
        rs += p * r[s * A + a];
        for (std::int64_t e = indptr[s * A + a]; e < indptr[s * A + a + 1]; ++e) {
          const double we = p * prob[e];
          if (term[next[e]]) {
            ts += we;
          } else {
            w_alive[e] = we;
          }
        }
      }
      r_pi[s] = rs;
      tau[s] = ts;
    }
  }

  std::int64_t row_begin(std::int64_t s) const { return mdp->indptr()[s * A]; }
  std::int64_t row_end(std::int64_t s) const { return mdp->indptr()[(s + 1) * A]; }

  // Optional parallel matrix-vector products, the same bits for any thread count: every output
  // entry is one running sum, computed by one worker, that adds its terms in the order of the CSR
  // rows (source state, then entry); the workers' ranges only share out the work. apply() sums
  // along a row; apply_transpose() scatters the rows in order on one thread and, on more, gathers
  // over the entries grouped by successor (FiniteMDP::incoming), in the same order.
  int threads = 1;
  StopToken* stop = nullptr;
  std::vector<std::int64_t> bounds;  // source states cut in `threads` ranges of equal entry count
  static constexpr std::int64_t kParallelMinEntries = 200000;

  void parallelize(int n_threads, StopToken& token) {
    const std::int64_t nnz = static_cast<std::int64_t>(w_alive.size());
    threads = nnz >= kParallelMinEntries ? std::max(n_threads, 1) : 1;
    stop = &token;
    bounds = equal_shares([this](std::int64_t s) { return row_begin(s); }, nnz);
  }

  // threads + 1 bounds cutting the states [0, S) into ranges of about nnz / threads entries each,
  // begin(s) being the first entry of state s.
  template <class Begin>
  std::vector<std::int64_t> equal_shares(Begin&& begin, std::int64_t nnz) const {
    std::vector<std::int64_t> b(static_cast<std::size_t>(threads + 1), S);
    b[0] = 0;
    std::int64_t s = 0;
    for (int k = 1; k < threads; ++k) {
      const std::int64_t target = nnz * k / threads;
      while (s < S && begin(s) < target) ++s;
      b[k] = s;
    }
    return b;
  }

  template <class Body>  // body(s_begin, s_end) over the ranges of `by`
  void for_ranges(const std::vector<std::int64_t>& by, Body&& body) const {
    if (threads <= 1) {
      body(std::int64_t{0}, S);
      return;
    }
    const bool done = run_workers(threads, [&](int w, StopToken&) { body(by[w], by[w + 1]); }, *stop);
    if (!done) throw Interrupted{};
  }

  // For the parallel apply_transpose (made by its first call): the MDP's entries grouped by
  // successor, their weights in that order (pi(a|s) times P_e alive, the product that makes
  // w_alive), and the successors cut in equal shares.
  mutable const FiniteMDP::Incoming* in = nullptr;
  mutable std::unique_ptr<double[]> in_w;
  mutable std::vector<std::int64_t> in_bounds;

  void gather_weights() const {
    in = &mdp->incoming(stop);
    in_bounds = equal_shares([this](std::int64_t sp) { return in->ptr[sp]; }, in->ptr[S]);
    in_w.reset(new double[w_alive.size()]);
    const std::int32_t* src = in->src.data();
    const std::int32_t* action = in->action.data();
    const double* p_alive = in->p_alive.data();
    for_ranges(in_bounds, [&](std::int64_t s0, std::int64_t s1) {
      for (std::int64_t k = in->ptr[s0]; k < in->ptr[s1]; ++k) in_w[k] = pi[src[k] * A + action[k]] * p_alive[k];
    });
  }

  // y = P_pi x  (alive part only: transitions into terminal states carry no value)
  void apply(const double* x, double* y) const {
    const auto& next = mdp->next();
    for_ranges(bounds, [&](std::int64_t s0, std::int64_t s1) {
      for (std::int64_t s = s0; s < s1; ++s) {
        double acc = 0.0;
        for (std::int64_t e = row_begin(s); e < row_end(s); ++e) acc += w_alive[e] * x[next[e]];
        y[s] = acc;
      }
    });
  }
  // y = P_pi^T x. One thread scatters the rows in order; more gather per successor. Both add the
  // terms of each y(s') from 0 in the order of the rows (a row the scatter skips because x(s) = 0
  // adds +-0 in the gather, which leaves the sum as it is), so they give the same bits.
  void apply_transpose(const double* x, double* y) const {
    if (threads <= 1) {
      const auto& next = mdp->next();
      std::fill(y, y + S, 0.0);
      for (std::int64_t s = 0; s < S; ++s) {
        const double xs = x[s];
        if (xs == 0.0) continue;
        for (std::int64_t e = row_begin(s); e < row_end(s); ++e) y[next[e]] += w_alive[e] * xs;
      }
      return;
    }
    gather_transpose(x, y);
  }
  // The parallel y = P_pi^T x: per successor s', one running sum over the transitions into s'.
  void gather_transpose(const double* x, double* y) const {
    if (!in_w) gather_weights();
    const std::int64_t* ptr = in->ptr.data();
    const std::int32_t* src = in->src.data();
    const double* w = in_w.get();
    for_ranges(in_bounds, [&](std::int64_t s0, std::int64_t s1) {
      for (std::int64_t sp = s0; sp < s1; ++sp) {
        double acc = 0.0;
        for (std::int64_t k = ptr[sp]; k < ptr[sp + 1]; ++k) acc += w[k] * x[src[k]];
        y[sp] = acc;
      }
    });
  }
  // Continuing chain with reset: y = Pt x = P_pi x + tau (mu0 . x)
  void apply_reset(const double* x, double* y) const {
    apply(x, y);
    const double m = mu0_dot(x);
    for (std::int64_t s = 0; s < S; ++s) y[s] += tau[s] * m;
  }
  // y = Pt^T x = P_pi^T x + mu0 (tau . x)
  void apply_reset_transpose(const double* x, double* y) const {
    apply_transpose(x, y);
    double t = 0.0;
    for (std::int64_t s = 0; s < S; ++s) t += tau[s] * x[s];
    const auto& mu0 = mdp->mu0();
    for (std::int64_t s = 0; s < S; ++s) y[s] += mu0[s] * t;
  }
  double mu0_dot(const double* x) const {
    const auto& mu0 = mdp->mu0();
    double m = 0.0;
    for (std::int64_t s = 0; s < S; ++s) m += mu0[s] * x[s];
    return m;
  }

  // Dense matrices (small S only).
  MatrixXd dense_alive() const {
    MatrixXd P = MatrixXd::Zero(S, S);
    const auto& next = mdp->next();
    for (std::int64_t s = 0; s < S; ++s)
      for (std::int64_t e = row_begin(s); e < row_end(s); ++e) P(s, next[e]) += w_alive[e];
    return P;
  }
  MatrixXd dense_reset() const {
    MatrixXd P = dense_alive();
    const auto& mu0 = mdp->mu0();
    for (std::int64_t s = 0; s < S; ++s)
      if (tau[s] != 0.0)
        for (std::int64_t j = 0; j < S; ++j) P(s, j) += tau[s] * mu0[j];
    return P;
  }

  // Q(s, a) = r(s,a) + c sum_e P_e v~(next_e), where v~ = v on live successors and `on_terminal`
  // on terminal ones (without the r(s, a) term when with_reward is false); 0 on terminal states.
  void q_from_values(const double* v, double c, double on_terminal, double* Q, bool with_reward = true) const {
    const auto& indptr = mdp->indptr();
    const auto& next = mdp->next();
    const auto& prob = mdp->prob();
    const auto& term = mdp->terminal();
    for (std::int64_t s = 0; s < S; ++s) {
      for (std::int64_t a = 0; a < A; ++a) {
        const std::int64_t row = s * A + a;
        if (term[s]) {
          Q[row] = 0.0;
          continue;
        }
        double acc = 0.0;
        for (std::int64_t e = indptr[row]; e < indptr[row + 1]; ++e) {
          acc += prob[e] * (term[next[e]] ? on_terminal : v[next[e]]);
        }
        Q[row] = (with_reward ? r[row] : 0.0) + c * acc;
      }
    }
  }
};

enum class Method { Auto, Dense, Sparse };
inline constexpr std::int64_t kDenseMaxStates = 200;

inline bool use_dense(Method m, std::int64_t S) {
  return m == Method::Dense || (m == Method::Auto && S <= kDenseMaxStates);
}

// Discounted values: (I - gamma P_pi) V = r_pi.  Also the visitation rho (I - gamma P_pi) = mu0
// when rho != nullptr, and for any extra start distribution `start2` (rho2 (I - gamma P_pi) = start2).
struct DiscountedSolution {
  VectorXd V, rho, rho2;
};

inline DiscountedSolution solve_discounted(const PolicyChain& c, double gamma, Method method, double tol,
                                           bool want_rho, const VectorXd* start2, StopToken& stop) {
  const std::int64_t S = c.S;
  DiscountedSolution out;
  Eigen::Map<const VectorXd> rpi(c.r_pi.data(), S);
  Eigen::Map<const VectorXd> mu0(c.mdp->mu0().data(), S);
  if (use_dense(method, S)) {
    MatrixXd M = MatrixXd::Identity(S, S) - gamma * c.dense_alive();
    const DenseLU lu(std::move(M), stop);
    out.V = lu.solve(rpi);
    if (want_rho) out.rho = lu.solve_transposed(mu0);
    if (start2) out.rho2 = lu.solve_transposed(*start2);
    return out;
  }
  auto op = [&](const double* x, double* y) {
    c.apply(x, y);
    for (std::int64_t i = 0; i < S; ++i) y[i] = x[i] - gamma * y[i];
  };
  auto opT = [&](const double* x, double* y) {
    c.apply_transpose(x, y);
    for (std::int64_t i = 0; i < S; ++i) y[i] = x[i] - gamma * y[i];
  };
  out.V = rpi;  // initial guess
  krylov_solve(op, VectorXd(rpi), out.V, tol, stop, "discounted values", kKrylovAdvice);
  if (want_rho) {
    out.rho = mu0;
    krylov_solve(opT, VectorXd(mu0), out.rho, tol, stop, "discounted visitation", kKrylovAdvice);
  }
  if (start2) {
    out.rho2 = *start2;
    krylov_solve(opT, *start2, out.rho2, tol, stop, "discounted visitation", kKrylovAdvice);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Structure of the continuing chain: closed classes and period (for the stationary distribution).

struct ChainStructure {
  std::vector<std::uint8_t> recurrent;  // per state: in the (unique) closed class
};

// Support graph of Pt_pi with a virtual "reset" node S: s -> next_e (live successors with weight
// > 0), s -> S when tau(s) > 0, S -> supp(mu0). Edges into the reset node have length 1, edges out
// of it length 0, so cycle lengths are numbers of steps of the chain.
inline ChainStructure analyse_chain(const PolicyChain& c, StopToken& stop) {
  const std::int64_t S = c.S, Nn = S + 1;
  const auto& next = c.mdp->next();
  const auto& mu0 = c.mdp->mu0();
  // adjacency (CSR) with lengths
  std::vector<std::int64_t> start(static_cast<std::size_t>(Nn + 1), 0);
  std::vector<std::int32_t> to;
  std::vector<std::uint8_t> len;
  to.reserve(c.w_alive.size() + static_cast<std::size_t>(S));
  for (std::int64_t s = 0; s < S; ++s) {
    if (s % kPollStates == 0) check_stop(stop);
    for (std::int64_t e = c.row_begin(s); e < c.row_end(s); ++e) {
      if (c.w_alive[e] > 0.0) {
        to.push_back(next[e]);
        len.push_back(1);
      }
    }
    if (c.tau[s] > 0.0) {
      to.push_back(static_cast<std::int32_t>(S));
      len.push_back(1);
    }
    start[s + 1] = static_cast<std::int64_t>(to.size());
  }
  for (std::int64_t s = 0; s < S; ++s) {
    if (mu0[s] > 0.0) {
      to.push_back(static_cast<std::int32_t>(s));
      len.push_back(0);
    }
  }
  start[Nn] = static_cast<std::int64_t>(to.size());

  // Tarjan's strongly connected components, iterative.
  std::vector<std::int64_t> index(static_cast<std::size_t>(Nn), -1), low(static_cast<std::size_t>(Nn), 0),
      comp(static_cast<std::size_t>(Nn), -1), edge_pos(static_cast<std::size_t>(Nn), 0);
  std::vector<std::int64_t> stack, call;
  std::vector<std::uint8_t> on_stack(static_cast<std::size_t>(Nn), 0);
  std::int64_t counter = 0, n_comp = 0;
  std::int64_t steps = 0;
  for (std::int64_t root = 0; root < Nn; ++root) {
    if (index[root] >= 0) continue;
    call.push_back(root);
    index[root] = low[root] = counter++;
    edge_pos[root] = start[root];
    stack.push_back(root);
    on_stack[root] = 1;
    while (!call.empty()) {
      if (++steps % kPollStates == 0) check_stop(stop);
      const std::int64_t v = call.back();
      if (edge_pos[v] < start[v + 1]) {
        const std::int64_t u = to[edge_pos[v]++];
        if (index[u] < 0) {
          index[u] = low[u] = counter++;
          edge_pos[u] = start[u];
          stack.push_back(u);
          on_stack[u] = 1;
          call.push_back(u);
        } else if (on_stack[u]) {
          low[v] = std::min(low[v], index[u]);
        }
      } else {
        call.pop_back();
        if (!call.empty()) low[call.back()] = std::min(low[call.back()], low[v]);
        if (low[v] == index[v]) {
          while (true) {
            const std::int64_t u = stack.back();
            stack.pop_back();
            on_stack[u] = 0;
            comp[u] = n_comp;
            if (u == v) break;
          }
          ++n_comp;
        }
      }
    }
  }
  // Closed components: no edge leaves them. The reset node alone is never closed (mu0 has support).
  std::vector<std::uint8_t> closed(static_cast<std::size_t>(n_comp), 1);
  for (std::int64_t v = 0; v < Nn; ++v) {
    if (v % kPollStates == 0) check_stop(stop);
    for (std::int64_t k = start[v]; k < start[v + 1]; ++k)
      if (comp[to[k]] != comp[v]) closed[comp[v]] = 0;
  }
  std::vector<std::int64_t> closed_ids;
  for (std::int64_t k = 0; k < n_comp; ++k)
    if (closed[k]) closed_ids.push_back(k);
  auto members = [&](std::int64_t k) {
    std::ostringstream os;
    os << "{";
    int shown = 0;
    std::int64_t total = 0;
    for (std::int64_t s = 0; s < S; ++s) {
      if (comp[s] != k) continue;
      if (shown < 6) os << (shown ? ", " : "") << s, ++shown;
      ++total;
    }
    if (total > shown) os << ", ... (" << total << " states)";
    os << "}";
    return os.str();
  };
  if (closed_ids.size() != 1) {
    std::ostringstream os;
    os << "the Markov chain of this policy is not unichain: it has " << closed_ids.size()
       << " closed classes (" << members(closed_ids[0]) << " and " << members(closed_ids[1])
       << "), so its stationary distribution is not unique and the average-reward objectives are not "
          "defined";
    throw std::invalid_argument(os.str());
  }
  const std::int64_t cls = closed_ids[0];
  // Period of the closed class: gcd over its edges of level(u) + len - level(v), levels from a
  // search tree rooted in the class.
  std::vector<std::int64_t> level(static_cast<std::size_t>(Nn), -1);
  std::int64_t root = 0;
  while (comp[root] != cls) ++root;
  std::vector<std::int64_t> queue{root};
  level[root] = 0;
  std::int64_t period = 0;
  for (std::size_t qi = 0; qi < queue.size(); ++qi) {
    if (static_cast<std::int64_t>(qi) % kPollStates == 0) check_stop(stop);
    const std::int64_t v = queue[qi];
    for (std::int64_t k = start[v]; k < start[v + 1]; ++k) {
      const std::int64_t u = to[k];
      if (comp[u] != cls) continue;
      if (level[u] < 0) {
        level[u] = level[v] + len[k];
        queue.push_back(u);
      } else {
        period = std::gcd(period, std::abs(level[v] + len[k] - level[u]));
      }
    }
  }
  if (period != 1) {
    std::ostringstream os;
    os << "the Markov chain of this policy is periodic (period " << period << " on its closed class "
       << members(cls) << "): the state distribution does not converge to a stationary distribution, "
       << "so the average-reward objectives are not defined here";
    throw std::invalid_argument(os.str());
  }
  ChainStructure out;
  out.recurrent.assign(static_cast<std::size_t>(S), 0);
  for (std::int64_t s = 0; s < S; ++s) out.recurrent[s] = comp[s] == cls;
  return out;
}

// Stationary distribution d of the continuing chain (d Pt_pi = d, sum d = 1); zero off the closed class.
inline VectorXd stationary(const PolicyChain& c, Method method, double tol, StopToken& stop) {
  const ChainStructure st = analyse_chain(c, stop);
  const std::int64_t S = c.S;
  VectorXd d;
  if (use_dense(method, S)) {
    // d (I - Pt) = 0 with one (redundant) equation replaced by sum d = 1.
    MatrixXd M = (MatrixXd::Identity(S, S) - c.dense_reset()).transpose();
    M.row(S - 1).setOnes();
    VectorXd rhs = VectorXd::Zero(S);
    rhs(S - 1) = 1.0;
    d = DenseLU(std::move(M), stop).solve(rhs);
  } else {
    // d (I - Pt + 1 u^T) = u^T with u uniform: nonsingular for a unichain.
    const double u = 1.0 / static_cast<double>(S);
    auto op = [&](const double* x, double* y) {
      c.apply_reset_transpose(x, y);
      double sum = 0.0;
      for (std::int64_t i = 0; i < S; ++i) sum += x[i];
      for (std::int64_t i = 0; i < S; ++i) y[i] = x[i] - y[i] + u * sum;
    };
    VectorXd b = VectorXd::Constant(S, u);
    d = b;
    krylov_solve(op, b, d, tol, stop, "stationary distribution", kKrylovAdvice);
  }
  for (std::int64_t s = 0; s < S; ++s)
    if (!st.recurrent[s] || d(s) < 0.0) d(s) = 0.0;
  d /= d.sum();
  return d;
}

// Poisson equation of the continuing chain: (I - Pt) g = f - (d . f) 1 with d . g = 0.
inline VectorXd poisson(const PolicyChain& c, const VectorXd& d, const VectorXd& f, Method method, double tol,
                        StopToken& stop) {
  const std::int64_t S = c.S;
  const double Jf = d.dot(f);
  VectorXd b = f.array() - Jf;
  VectorXd g;
  if (use_dense(method, S)) {
    MatrixXd M = MatrixXd::Identity(S, S) - c.dense_reset();
    M += VectorXd::Ones(S) * d.transpose();
    g = DenseLU(std::move(M), stop).solve(b);
  } else {
    auto op = [&](const double* x, double* y) {
      c.apply_reset(x, y);
      double dx = 0.0;
      for (std::int64_t i = 0; i < S; ++i) dx += d(i) * x[i];
      for (std::int64_t i = 0; i < S; ++i) y[i] = x[i] - y[i] + dx;
    };
    g = b;
    krylov_solve(op, b, g, tol, stop, "differential values", kKrylovAdvice);
  }
  return g;
}

}  // namespace pgfast::exact
