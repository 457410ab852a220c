// Exact analysis of a finite MDP under a fixed policy (seed 000 section 4.2, seed 001 section 2):
// values, visitation and stationary distributions, the policy gradient theorem, Fisher information
// and optimal control. Everything here works on the CSR storage of FiniteMDP and a probability
// table pi (S, A); nothing knows Python.
//
// Episodes (as sampled by rollout.hpp): r_t = R(s_t, a_t, s_{t+1}); entering a terminal state ends
// the episode after that reward; alive(s) = 1 - terminal(s); r(s, a) = sum_s' P(s'|s,a) R(s,a,s').
//
//   finite horizon   Q_t(s,a) = sum_s' P(s'|s,a) [R(s,a,s') + gamma alive(s') V_{t+1}(s')],  V_H = 0
//                    V_t(s) = sum_a pi(a|s) Q_t(s,a),   J = mu0 . V_0
//                    d_0 = mu0,  d_{t+1}(s') = alive(s') sum_{s,a} d_t(s) pi(a|s) P(s'|s,a)
//   discounted       (I - gamma P_pi) V = r_pi     (P_pi(s,s') = sum_a pi P(s'|s,a) alive(s'))
//                    rho (I - gamma P_pi) = mu0    (rho(s) = sum_t gamma^t Pr(s_t = s))
//   average          continuing chain Pt_pi: entering a terminal state resets to mu0;
//                    d Pt_pi = d, sum d = 1;  (I - Pt_pi) h = r_pi - J 1, d . h = 0
//
// Policy gradient theorem in logit coordinates: every objective's gradient with respect to the
// logits z(s, a) of a softmax policy is
//
//   dJ/dz(s,a) = w(s) pi(a|s) (Q(s,a) - V(s))            (summed over t for the finite horizon)
//
// with w the objective's state weighting (gamma^t d_t, rho, d); a policy maps it to its parameters
// with the vector-Jacobian product of its logits (tabular: identity; linear: Phi^T).
#pragma once

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pgfast/mdp.hpp"
#include "pgfast/parallel.hpp"

namespace pgfast::exact {

using Eigen::MatrixXd;
using Eigen::VectorXd;

// Thrown when the StopToken reports Ctrl-C; the bindings turn it into KeyboardInterrupt.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

inline void check_stop(StopToken& stop) {
  if (stop(0)) throw Interrupted{};
}

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

  // Optional parallel matrix-vector products: states split in `threads` ranges of equal entry count.
  int threads = 1;
  StopToken* stop = nullptr;
  std::vector<std::int64_t> bounds;
  mutable std::vector<std::vector<double>> scratch;
  static constexpr std::int64_t kParallelMinEntries = 200000;

  void parallelize(int n_threads, StopToken& token) {
    const std::int64_t nnz = static_cast<std::int64_t>(w_alive.size());
    threads = nnz >= kParallelMinEntries ? std::max(n_threads, 1) : 1;
    stop = &token;
    bounds.assign(static_cast<std::size_t>(threads + 1), S);
    bounds[0] = 0;
    std::int64_t s = 0;
    for (int k = 1; k < threads; ++k) {
      const std::int64_t target = nnz * k / threads;
      while (s < S && row_begin(s) < target) ++s;
      bounds[k] = s;
    }
    scratch.assign(static_cast<std::size_t>(threads), std::vector<double>());
  }

  template <class Body>  // body(s_begin, s_end, worker)
  void for_ranges(Body&& body) const {
    if (threads <= 1) {
      body(std::int64_t{0}, S, 0);
      return;
    }
    const bool done = run_workers(threads, [&](int w, StopToken&) { body(bounds[w], bounds[w + 1], w); }, *stop);
    if (!done) throw Interrupted{};
  }

  // y = P_pi x  (alive part only: transitions into terminal states carry no value)
  void apply(const double* x, double* y) const {
    const auto& next = mdp->next();
    for_ranges([&](std::int64_t s0, std::int64_t s1, int) {
      for (std::int64_t s = s0; s < s1; ++s) {
        double acc = 0.0;
        for (std::int64_t e = row_begin(s); e < row_end(s); ++e) acc += w_alive[e] * x[next[e]];
        y[s] = acc;
      }
    });
  }
  // y = P_pi^T x  (each worker scatters into its own buffer; the buffers are then summed)
  void apply_transpose(const double* x, double* y) const {
    const auto& next = mdp->next();
    for_ranges([&](std::int64_t s0, std::int64_t s1, int w) {
      double* out = y;
      if (w > 0) {
        scratch[w].assign(static_cast<std::size_t>(S), 0.0);
        out = scratch[w].data();
      } else {
        std::fill(y, y + S, 0.0);
      }
      for (std::int64_t s = s0; s < s1; ++s) {
        const double xs = x[s];
        if (xs == 0.0) continue;
        for (std::int64_t e = row_begin(s); e < row_end(s); ++e) out[next[e]] += w_alive[e] * xs;
      }
    });
    for (int w = 1; w < threads; ++w)
      for (std::int64_t s = 0; s < S; ++s) y[s] += scratch[w][s];
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

// ---------------------------------------------------------------------------------------------
// Linear solvers: dense LU, and restarted GMRES(m) on an operator (memory O(m S)).

struct SolveInfo {
  std::int64_t iterations = 0;
  double residual = 0.0;  // final ||b - A x|| / ||b||
};

// Solves A x = b for the operator op(x, y): y = A x, from the initial guess in x.
// Converged when ||b - A x|| <= tol ||b||; throws std::runtime_error otherwise.
template <class Op>
SolveInfo gmres(const Op& op, const VectorXd& b, VectorXd& x, double tol, std::int64_t max_iter, StopToken& stop,
                const char* what, int restart = 40) {
  const std::int64_t n = b.size();
  SolveInfo info;
  const double bnorm = b.norm();
  if (bnorm == 0.0) {
    x.setZero();
    return info;
  }
  const int m = static_cast<int>(std::min<std::int64_t>(restart, std::max<std::int64_t>(n, 1)));
  MatrixXd Vb(n, m + 1);
  MatrixXd Hh = MatrixXd::Zero(m + 1, m);
  VectorXd cs(m), sn(m), g(m + 1), w(n), Ax(n);
  while (true) {
    op(x.data(), Ax.data());
    VectorXd rvec = b - Ax;
    double beta = rvec.norm();
    info.residual = beta / bnorm;
    if (info.residual <= tol) return info;
    if (info.iterations >= max_iter) {
      std::ostringstream os;
      os << what << ": GMRES did not reach the relative residual " << tol << " in " << max_iter
         << " iterations (reached " << info.residual << "); the system is ill-conditioned (gamma close to 1?): "
         << "method='dense' solves it directly";
      throw std::domain_error(os.str());  // ValueError in Python: a property of the input
    }
    Vb.col(0) = rvec / beta;
    g.setZero();
    g(0) = beta;
    Hh.setZero();
    int k = 0;
    for (; k < m && info.iterations < max_iter; ++k) {
      check_stop(stop);
      ++info.iterations;
      op(Vb.col(k).data(), w.data());
      for (int j = 0; j <= k; ++j) {  // modified Gram-Schmidt
        Hh(j, k) = Vb.col(j).dot(w);
        w -= Hh(j, k) * Vb.col(j);
      }
      Hh(k + 1, k) = w.norm();
      const bool breakdown = !(Hh(k + 1, k) > 1e-300);  // the Krylov space is invariant: exact solution
      if (!breakdown) Vb.col(k + 1) = w / Hh(k + 1, k);
      for (int j = 0; j < k; ++j) {  // apply previous rotations
        const double t = cs(j) * Hh(j, k) + sn(j) * Hh(j + 1, k);
        Hh(j + 1, k) = -sn(j) * Hh(j, k) + cs(j) * Hh(j + 1, k);
        Hh(j, k) = t;
      }
      const double den = std::hypot(Hh(k, k), Hh(k + 1, k));
      cs(k) = den == 0.0 ? 1.0 : Hh(k, k) / den;
      sn(k) = den == 0.0 ? 0.0 : Hh(k + 1, k) / den;
      Hh(k, k) = den;
      Hh(k + 1, k) = 0.0;
      g(k + 1) = -sn(k) * g(k);
      g(k) = cs(k) * g(k);
      if (std::abs(g(k + 1)) <= 0.5 * tol * bnorm || breakdown) {
        ++k;
        break;
      }
    }
    // x += V_k y, with H_k y = g_k (upper triangular)
    VectorXd y = Hh.topLeftCorner(k, k).triangularView<Eigen::Upper>().solve(g.head(k));
    x += Vb.leftCols(k) * y;
  }
}

// BiCGSTAB (van der Vorst 1992) on the operator op: two products and a few vector updates per
// iteration, no growing basis. Returns false (x left at its best iterate) on breakdown or when
// max_iter is reached, so the caller can fall back to GMRES.
template <class Op>
bool bicgstab(const Op& op, const VectorXd& b, VectorXd& x, double tol, std::int64_t max_iter, StopToken& stop,
              SolveInfo& info) {
  const std::int64_t n = b.size();
  const double bnorm = b.norm();
  if (bnorm == 0.0) {
    x.setZero();
    return true;
  }
  VectorXd r(n), rhat(n), p(n), v(n), s(n), t(n);
  op(x.data(), r.data());
  r = b - r;
  rhat = r;
  double rho = 1.0, alpha = 1.0, omega = 1.0;
  v.setZero();
  p.setZero();
  for (std::int64_t it = 0; it < max_iter; ++it) {
    info.residual = r.norm() / bnorm;
    if (info.residual <= tol) return true;
    check_stop(stop);
    ++info.iterations;
    const double rho_new = rhat.dot(r);
    if (rho_new == 0.0 || omega == 0.0) return false;
    const double beta = (rho_new / rho) * (alpha / omega);
    rho = rho_new;
    p = r + beta * (p - omega * v);
    op(p.data(), v.data());
    const double rv = rhat.dot(v);
    if (rv == 0.0) return false;
    alpha = rho / rv;
    s = r - alpha * v;
    if (s.norm() / bnorm <= tol) {
      x += alpha * p;
      info.residual = s.norm() / bnorm;
      return true;
    }
    op(s.data(), t.data());
    const double tt = t.squaredNorm();
    if (tt == 0.0) return false;
    omega = t.dot(s) / tt;
    x += alpha * p + omega * s;
    r = s - omega * t;
    if (!std::isfinite(omega) || !std::isfinite(x.squaredNorm())) return false;
  }
  info.residual = r.norm() / bnorm;
  return info.residual <= tol;
}

// The sparse solver: BiCGSTAB from x, falling back to GMRES(40) from the original guess if it
// breaks down or stalls. The result satisfies ||b - A x|| <= tol ||b|| (checked), or throws.
template <class Op>
SolveInfo krylov_solve(const Op& op, const VectorXd& b, VectorXd& x, double tol, StopToken& stop, const char* what) {
  SolveInfo info;
  const VectorXd x0 = x;
  const std::int64_t n = b.size();
  if (bicgstab(op, b, x, tol, std::max<std::int64_t>(200, std::min<std::int64_t>(2000, n)), stop, info)) {
    VectorXd r(n);  // confirm with the true residual
    op(x.data(), r.data());
    r = b - r;
    if (r.norm() <= tol * b.norm() * 1.0000001) return info;
  }
  x = x0;
  SolveInfo g = gmres(op, b, x, tol, 100000, stop, what);
  g.iterations += info.iterations;
  return g;
}

// Dense LU with partial pivoting, P M = L U, that answers Ctrl-C. It is Eigen's PartialPivLU
// (the same recursive blocking: panels of max(8, min(256, 16 floor(S / 128))) columns, each factored
// with panels of at most 16; the same kernels, so the same bits) with the stop token polled
// between column chunks of every trailing update, so a large factorization (O(S^3): about 8 s at
// S = 6000) stops within a few tens of milliseconds. It also skips the empty triangular solve that
// Eigen's panel recursion runs on a zero-column block (a reference bound to its null data pointer,
// reported by UndefinedBehaviorSanitizer for S >= 256).
class DenseLU {
 public:
  DenseLU(MatrixXd m, StopToken& stop) : lu_(std::move(m)), stop_(stop) {
    const Eigen::Index n = lu_.rows();
    std::vector<int> tr(static_cast<std::size_t>(n));
    if (n > 0) factor(lu_.data(), n, n, n, tr.data(), 256, true);
    Eigen::Transpositions<Eigen::Dynamic, Eigen::Dynamic, int> t(n);
    for (Eigen::Index i = 0; i < n; ++i) t.coeffRef(i) = tr[static_cast<std::size_t>(i)];
    p_ = t;
  }
  // x with M x = b (PartialPivLU::solve).
  VectorXd solve(const VectorXd& b) const {
    VectorXd x = p_ * b;
    lu_.triangularView<Eigen::UnitLower>().solveInPlace(x);
    lu_.triangularView<Eigen::Upper>().solveInPlace(x);
    return x;
  }
  // x with M^T x = b (PartialPivLU::transpose().solve).
  VectorXd solve_transposed(const VectorXd& b) const {
    VectorXd x = lu_.triangularView<Eigen::Upper>().transpose().solve(b);
    lu_.triangularView<Eigen::UnitLower>().transpose().solveInPlace(x);
    return p_.transpose() * x;
  }

 private:
  using Impl = Eigen::internal::partial_lu_impl<double, Eigen::ColMajor, int>;
  using Mat = Eigen::Map<MatrixXd, 0, Eigen::OuterStride<>>;
  static constexpr Eigen::Index kChunk = 256;  // trailing-update columns between polls

  // Eigen's partial_lu_impl::blocked_lu on the (rows x cols) column-major block at `data`.
  void factor(double* data, Eigen::Index rows, Eigen::Index cols, Eigen::Index stride, int* tr,
              Eigen::Index max_block, bool poll) {
    const Eigen::Index size = std::min(rows, cols);
    int nb = 0;
    if (size <= Impl::UnBlockedBound) {
      Impl::blocked_lu(rows, cols, data, stride, tr, nb, max_block);  // unblocked at this size
      return;
    }
    const Eigen::Index block = std::min(std::max<Eigen::Index>((size / 8) / 16 * 16, 8), max_block);
    Mat lu(data, rows, cols, Eigen::OuterStride<>(stride));
    for (Eigen::Index k = 0; k < size; k += block) {
      const Eigen::Index bs = std::min(size - k, block), trows = rows - k - bs, tsize = size - k - bs;
      factor(&lu.coeffRef(k, k), trows + bs, bs, stride, tr + k, 16, false);
      for (Eigen::Index i = k; i < k + bs; ++i) {
        const Eigen::Index piv = (tr[i] += static_cast<int>(k));
        if (k > 0) lu.block(0, 0, rows, k).row(i).swap(lu.block(0, 0, rows, k).row(piv));
      }
      if (trows == 0 || tsize == 0) continue;
      auto A11 = lu.block(k, k, bs, bs);
      auto A21 = lu.block(k + bs, k, trows, bs);
      for (Eigen::Index j = 0; j < tsize; j += poll ? kChunk : tsize) {
        const Eigen::Index w = std::min(tsize - j, poll ? kChunk : tsize);
        auto A_2 = lu.block(0, k + bs + j, rows, w);
        for (Eigen::Index i = k; i < k + bs; ++i) A_2.row(i).swap(A_2.row(tr[i]));
        auto A12 = lu.block(k, k + bs + j, bs, w);
        A11.triangularView<Eigen::UnitLower>().solveInPlace(A12);
        lu.block(k + bs, k + bs + j, trows, w).noalias() -= A21 * A12;
        if (poll) check_stop(stop_);
      }
    }
  }

  MatrixXd lu_;
  StopToken& stop_;
  Eigen::PermutationMatrix<Eigen::Dynamic, Eigen::Dynamic, int> p_;
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
  krylov_solve(op, VectorXd(rpi), out.V, tol, stop, "discounted values");
  if (want_rho) {
    out.rho = mu0;
    krylov_solve(opT, VectorXd(mu0), out.rho, tol, stop, "discounted visitation");
  }
  if (start2) {
    out.rho2 = *start2;
    krylov_solve(opT, *start2, out.rho2, tol, stop, "discounted visitation");
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
    krylov_solve(op, b, d, tol, stop, "stationary distribution");
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
    krylov_solve(op, b, g, tol, stop, "differential values");
  }
  return g;
}

// ---------------------------------------------------------------------------------------------
// Objectives. Each fills an Evaluation; `logit_grad` (S*A) and `fisher_w` (S) when requested.

enum class Objective { FiniteHorizon, Discounted, AverageReward, AverageValue };

struct Evaluation {
  double J = 0.0;
  std::vector<double> V, Q, d, visitation;  // shapes depend on the objective (see module comment)
  std::vector<double> Adv;                  // Q - V (finite horizon only; elsewhere formed by the caller)
  std::vector<double> logit_grad;           // dJ/dz(s,a), (S*A)
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
  if (req.gradient) ev.logit_grad.assign(static_cast<std::size_t>(S * A), 0.0);
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

inline void advantage_weights(const std::vector<double>& Q, const std::vector<double>& V, const VectorXd& w,
                              const double* pi, std::int64_t S, std::int64_t A, std::vector<double>& out) {
  out.assign(static_cast<std::size_t>(S * A), 0.0);
  for (std::int64_t s = 0; s < S; ++s) {
    if (w(s) == 0.0) continue;
    for (std::int64_t a = 0; a < A; ++a) out[s * A + a] = w(s) * pi[s * A + a] * (Q[s * A + a] - V[s]);
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
  if (req.gradient) advantage_weights(ev.Q, ev.V, sol.rho, pi, S, A, ev.logit_grad);
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
    if (req.gradient) advantage_weights(ev.Q, ev.V, d, pi, S, A, ev.logit_grad);
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
    for (std::int64_t s = 0; s < S; ++s) {
      double gbar = 0.0;
      for (std::int64_t a = 0; a < A; ++a) gbar += pi[s * A + a] * G[s * A + a];
      const double rd = std::max(sol.rho2(s), 0.0);
      for (std::int64_t a = 0; a < A; ++a) {
        const std::int64_t k = s * A + a;
        ev.logit_grad[k] = pi[k] * (rd * (ev.Q[k] - ev.V[s]) + d(s) * (G[k] - gbar));
      }
    }
  }
  if (req.fisher) ev.fisher_w = ev.d;
  return ev;
}

// ---------------------------------------------------------------------------------------------
// Fisher information and natural gradient.
//
//   F = sum_s w(s) sum_a pi(a|s) psi(s,a) psi(s,a)^T,   psi = grad log pi = J_s^T (e_a - pi(s))
//
// with J_s the Jacobian of the logits of state s: tabular -> block diagonal
// w(s) (diag pi_s - pi_s pi_s^T); linear -> sum_s w(s) sum_a pi (phi - phibar)(phi - phibar)^T.

inline void fisher_tabular(const double* pi, const double* w, std::int64_t S, std::int64_t A, double* F) {
  const std::int64_t n = S * A;
  std::fill(F, F + n * n, 0.0);
  for (std::int64_t s = 0; s < S; ++s) {
    if (w[s] == 0.0) continue;
    for (std::int64_t a = 0; a < A; ++a)
      for (std::int64_t b = 0; b < A; ++b) {
        const double pa = pi[s * A + a], pb = pi[s * A + b];
        F[(s * A + a) * n + s * A + b] = w[s] * ((a == b ? pa : 0.0) - pa * pb);
      }
  }
}

// `stop` (optional) is polled once per state (each costs O(A p^2)); throws Interrupted.
inline void fisher_linear(const double* pi, const double* w, const double* phi, std::int64_t S, std::int64_t A,
                          std::int64_t p, double* F, StopToken* stop = nullptr) {
  using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<RowMat> out(F, p, p);
  out.setZero();
  RowMat C(A, p);
  for (std::int64_t s = 0; s < S; ++s) {
    if (w[s] == 0.0) continue;
    if (stop) check_stop(*stop);
    Eigen::Map<const RowMat> Phi(phi + s * A * p, A, p);
    Eigen::Map<const VectorXd> ps(pi + s * A, A);
    const Eigen::RowVectorXd mean = ps.transpose() * Phi;
    C = Phi.rowwise() - mean;
    out.noalias() += C.transpose() * ((w[s] * ps).asDiagonal() * C);
  }
}

// x = argmin ||x|| over least-squares solutions of F x = g (eigenvalues below rcond * max dropped),
// or (F + damping I)^{-1} g when damping > 0.
inline VectorXd solve_fisher(const MatrixXd& F, const VectorXd& g, double damping, double rcond) {
  if (damping > 0.0) {
    MatrixXd M = F;
    M.diagonal().array() += damping;
    return M.ldlt().solve(g);
  }
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(F);
  const VectorXd& lam = es.eigenvalues();
  const double cut = rcond * std::max(lam.cwiseAbs().maxCoeff(), std::numeric_limits<double>::min());
  VectorXd c = es.eigenvectors().transpose() * g;
  for (Eigen::Index i = 0; i < c.size(); ++i) c(i) = lam(i) > cut ? c(i) / lam(i) : 0.0;
  return es.eigenvectors() * c;
}

// Tabular natural gradient block by block (F is block diagonal): x_s solves w(s) (diag pi - pi pi^T) x_s = g_s.
// `stop` (optional) is polled once per state (each costs O(A^3)); throws Interrupted.
inline void natural_gradient_tabular(const double* pi, const double* w, const double* g, std::int64_t S, std::int64_t A,
                                     double damping, double rcond, double* x, StopToken* stop = nullptr) {
  // Global eigenvalue cut-off, as for the dense solve.
  std::vector<Eigen::SelfAdjointEigenSolver<MatrixXd>> blocks(static_cast<std::size_t>(S));
  double lmax = 0.0;
  MatrixXd B(A, A);
  for (std::int64_t s = 0; s < S; ++s) {
    if (stop) check_stop(*stop);
    Eigen::Map<const VectorXd> ps(pi + s * A, A);
    B = w[s] * (MatrixXd(ps.asDiagonal()) - ps * ps.transpose());
    if (damping > 0.0) {
      B.diagonal().array() += damping;
      Eigen::Map<VectorXd>(x + s * A, A) = B.ldlt().solve(Eigen::Map<const VectorXd>(g + s * A, A));
      continue;
    }
    blocks[s].compute(B);
    lmax = std::max(lmax, blocks[s].eigenvalues().cwiseAbs().maxCoeff());
  }
  if (damping > 0.0) return;
  const double cut = rcond * std::max(lmax, std::numeric_limits<double>::min());
  for (std::int64_t s = 0; s < S; ++s) {
    const auto& es = blocks[s];
    VectorXd c = es.eigenvectors().transpose() * Eigen::Map<const VectorXd>(g + s * A, A);
    for (Eigen::Index i = 0; i < c.size(); ++i) c(i) = es.eigenvalues()(i) > cut ? c(i) / es.eigenvalues()(i) : 0.0;
    Eigen::Map<VectorXd>(x + s * A, A) = es.eigenvectors() * c;
  }
}

// ---------------------------------------------------------------------------------------------
// Optimal control.

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
