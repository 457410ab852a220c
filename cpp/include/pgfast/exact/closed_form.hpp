// Runs of the closed-form policy updates of a tabular softmax policy with exact discounted
// advantages (docs/guide/optim.md): each step evaluates the current policy exactly and updates the
// logits theta (S, A) in place of the Python loop of Optimizer.step.
//
//   natural policy gradient      theta += eta / (1 - gamma) * A                         (tau = 0)
//   (Cen et al., tau > 0)        theta += -eta tau / (1 - gamma) * theta + eta / (1 - gamma) * Q_tau
//   mirror descent, KL           theta += eta_t * A
//   mirror descent, Euclidean    theta  = log max(proj_simplex(pi + eta_t * A), tiny)
//
// with eta_t = lr (constant) or lr / gamma^(t - 1) (geometric), and the values of the discounted
// chain of chain.hpp: (I - gamma P_pi) V = r_pi, Q(s,a) = r(s,a) + gamma sum_s' P alive(s') V(s'),
// A = Q - V, all 0 on terminal states; with tau > 0 the soft values of the reward
// r(s,a) - tau log pi(a|s), Q_tau leaving out the -tau log pi(a|s) of its first action.
//
// Policy evaluation: up to kRefinedMaxStates states a dense LU of I - gamma P_pi, kept from step to
// step: the next policy's values are refined from the last ones by V += LU_old^{-1} (r_pi - (I -
// gamma P_pi) V) until the residual is below kResidualTol (||r_pi|| + ||V||) in the max norm (the
// backward error of a direct solve; the error in V is at most the residual / (1 - gamma)), and the
// matrix is factorised again when a sweep shrinks the residual by less than kRefineRate. Larger chains use exact::discounted (Method::Auto) every step.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <Eigen/Dense>

#include "pgfast/exact/chain.hpp"
#include "pgfast/exact/objectives.hpp"
#include "pgfast/interrupt.hpp"
#include "pgfast/linalg.hpp"
#include "pgfast/mdp.hpp"
#include "pgfast/policy.hpp"

namespace pgfast::exact {

enum class ClosedFormKind { NaturalGradient, MirrorKL, MirrorEuclidean };

struct ClosedFormSpec {
  ClosedFormKind kind = ClosedFormKind::NaturalGradient;
  double lr = 0.1;         // eta (natural gradient) or eta_1 (mirror descent)
  double tau = 0.0;        // entropy regularisation (natural gradient only)
  bool geometric = false;  // mirror descent: eta_t = lr / gamma^(t - 1)
  std::int64_t t0 = 0;     // steps taken before this run (the first step of the run is t0 + 1)
  double gamma = 0.9;
  std::int64_t steps = 0;
  bool reuse = true;  // keep the LU between steps (false: factorise every step)
};

struct ClosedFormRun {
  std::vector<double> theta;  // (S, A) after the last step
  std::vector<double> J;      // (steps + 1): mu0 . V before the first step and after each
  std::int64_t factorizations = 0, sweeps = 0;
};

inline constexpr std::int64_t kRefinedMaxStates = 1000;
inline constexpr double kResidualTol = 1e-14;
inline constexpr double kRefineRate = 0.1;
inline constexpr int kRefineMaxSweeps = 20;
// A logit this far below its row's maximum gives probability 0 (exactly: exp(-700) < 1e-304, far
// below the rounding of the other probabilities; this keeps subnormal numbers, slow on most CPUs,
// out of the exp and the solves).
inline constexpr double kFlushLogit = 700.0;

// Euclidean projection of x (n) onto the probability simplex, in place (sort-based).
// As pgfast.optim.project_simplex: each entry first shifted by the row's maximum and raised to at
// least -2 (the projection ignores a constant added to the row and is 0 at every entry at least 1
// below the maximum), so that a row far from the simplex keeps the precision of its differences.
inline void project_simplex_row(double* x, std::int64_t n, std::vector<double>& work) {
  const double m = *std::max_element(x, x + n);
  for (std::int64_t k = 0; k < n; ++k) x[k] = std::max(x[k] - m, -2.0);
  work.assign(x, x + n);
  std::sort(work.begin(), work.end(), [](double a, double b) { return a > b; });
  double css = 0.0, shift = 0.0;
  for (std::int64_t k = 0; k < n; ++k) {
    css += work[static_cast<std::size_t>(k)];
    const double t = (css - 1.0) / static_cast<double>(k + 1);
    if (work[static_cast<std::size_t>(k)] - t > 0.0) shift = t;
  }
  for (std::int64_t k = 0; k < n; ++k) x[k] = std::max(x[k] - shift, 0.0);
}

class ClosedFormRunner {
 public:
  ClosedFormRunner(const FiniteMDP& mdp, const ClosedFormSpec& spec)
      : mdp_(mdp), spec_(spec), S_(mdp.n_states()), A_(mdp.n_actions()), r_(mdp.expected_reward()) {
    const auto& prob = mdp.prob();
    const auto& next = mdp.next();
    const auto& term = mdp.terminal();
    p_alive_.resize(prob.size());
    for (std::size_t e = 0; e < prob.size(); ++e) p_alive_[e] = term[next[e]] ? 0.0 : prob[e];
    pi_.assign(static_cast<std::size_t>(S_ * A_), 0.0);
    V_.setZero(S_);
    rpi_.setZero(S_);
    Q_.assign(static_cast<std::size_t>(S_ * A_), 0.0);
    G_.assign(static_cast<std::size_t>(S_ * A_), 0.0);
    res_.setZero(S_);
    d_.setZero(S_);
  }

  ClosedFormRun run(std::vector<double> theta, StopToken& stop) {
    ClosedFormRun out;
    out.J.reserve(static_cast<std::size_t>(spec_.steps + 1));
    const double g = spec_.gamma;
    std::vector<double> work;
    for (std::int64_t k = 0; k <= spec_.steps; ++k) {
      check_stop(stop);
      policy_probs(theta);
      evaluate(stop);
      double J = 0.0;
      for (std::int64_t s = 0; s < S_; ++s) J += mdp_.mu0()[s] * V_(s);
      out.J.push_back(J);
      if (k == spec_.steps) break;
      const std::int64_t t = spec_.t0 + k + 1;
      const double eta = spec_.kind == ClosedFormKind::NaturalGradient || !spec_.geometric
                             ? spec_.lr
                             : spec_.lr / std::pow(g, static_cast<double>(t - 1));
      if (!std::isfinite(eta)) fail(t, "the step size overflowed");
      const auto& term = mdp_.terminal();
      for (std::int64_t s = 0; s < S_; ++s) {
        double* th = theta.data() + s * A_;
        const double* q = Q_.data() + s * A_;
        const double v = V_(s);
        switch (spec_.kind) {
          case ClosedFormKind::NaturalGradient: {
            const double e = spec_.lr / (1.0 - g);
            if (spec_.tau > 0.0) {
              const double c = -spec_.lr * spec_.tau / (1.0 - g);
              for (std::int64_t a = 0; a < A_; ++a) th[a] += c * th[a] + e * q[a];
            } else {
              for (std::int64_t a = 0; a < A_; ++a) th[a] += e * (q[a] - v);
            }
            break;
          }
          case ClosedFormKind::MirrorKL:
            for (std::int64_t a = 0; a < A_; ++a) th[a] += eta * (q[a] - v);
            break;
          case ClosedFormKind::MirrorEuclidean: {
            row_.resize(static_cast<std::size_t>(A_));
            if (term[s]) {  // advantages 0: the projection of pi(.|s) is pi(.|s)
              for (std::int64_t a = 0; a < A_; ++a) row_[static_cast<std::size_t>(a)] = pi_[s * A_ + a];
            } else {
              for (std::int64_t a = 0; a < A_; ++a) row_[static_cast<std::size_t>(a)] = pi_[s * A_ + a] + eta * (q[a] - v);
            }
            for (std::int64_t a = 0; a < A_; ++a)
              if (!std::isfinite(row_[static_cast<std::size_t>(a)])) fail(t, "pi + step is not finite");
            project_simplex_row(row_.data(), A_, work);
            const double tiny = std::numeric_limits<double>::min();
            for (std::int64_t a = 0; a < A_; ++a) th[a] = std::log(std::max(row_[static_cast<std::size_t>(a)], tiny));
            break;
          }
        }
        for (std::int64_t a = 0; a < A_; ++a)
          if (!std::isfinite(th[a])) fail(t, "theta left the float64 range");
      }
    }
    out.theta = std::move(theta);
    out.factorizations = factorizations_;
    out.sweeps = sweeps_;
    return out;
  }

 private:
  [[noreturn]] static void fail(std::int64_t t, const char* what) {
    std::ostringstream os;
    os << "step " << t << ": " << what << "; lower lr (theta is left as it was before the run)";
    throw std::invalid_argument(os.str());
  }

  // pi = softmax(theta) (policy.hpp's, probabilities e^-kFlushLogit below the row's largest taken
  // as 0), log pi when tau > 0.
  void policy_probs(const std::vector<double>& theta) {
    if (spec_.tau > 0.0) logpi_.resize(pi_.size());
    softmax_rows(theta.data(), S_, A_, pi_.data(), spec_.tau > 0.0 ? logpi_.data() : nullptr, kFlushLogit);
  }

  // r_pi(s) = sum_a pi(a|s) r(s,a) (minus tau sum_a pi log pi), 0 on terminal states.
  void reward_of_policy() {
    const auto& term = mdp_.terminal();
    for (std::int64_t s = 0; s < S_; ++s) {
      double rs = 0.0;
      if (!term[s]) {
        for (std::int64_t a = 0; a < A_; ++a) {
          const std::int64_t row = s * A_ + a;
          const double p = pi_[row];
          double ra = r_[row];
          if (spec_.tau > 0.0 && p > 0.0) ra -= spec_.tau * logpi_[row];
          rs += p * ra;
        }
      }
      rpi_(s) = rs;
    }
  }

  void factorize(StopToken& stop) {
    const auto& indptr = mdp_.indptr();
    const auto& next = mdp_.next();
    const auto& term = mdp_.terminal();
    Eigen::MatrixXd M = Eigen::MatrixXd::Identity(S_, S_);
    for (std::int64_t s = 0; s < S_; ++s) {
      if (term[s]) continue;
      for (std::int64_t a = 0; a < A_; ++a) {
        const std::int64_t row = s * A_ + a;
        const double gp = spec_.gamma * pi_[row];
        for (std::int64_t e = indptr[row]; e < indptr[row + 1]; ++e) M(s, next[e]) -= gp * p_alive_[e];
      }
    }
    lu_ = std::make_unique<linalg::DenseLU>(std::move(M), stop);
    // the refinement sweeps multiply by the inverse (one matrix-vector product, faster than the
    // two triangular solves it replaces; its accuracy only sets how fast the sweeps converge)
    if (spec_.reuse) inverse_ = lu_->inverse();
    ++factorizations_;
  }

  // G(s,a) = sum_s' P(s'|s,a) alive(s') V(s') at the current V (0 on terminal states), and the
  // residual r_pi - (I - gamma P_pi) V = r_pi - V + gamma sum_a pi(a|s) G(s,a); returns its max norm.
  double gather(Eigen::VectorXd& res) {
    const auto& indptr = mdp_.indptr();
    const auto& next = mdp_.next();
    const auto& term = mdp_.terminal();
    double norm = 0.0;
    for (std::int64_t s = 0; s < S_; ++s) {
      double acc = 0.0;
      for (std::int64_t a = 0; a < A_; ++a) {
        const std::int64_t row = s * A_ + a;
        double g = 0.0;
        if (!term[s])
          for (std::int64_t e = indptr[row]; e < indptr[row + 1]; ++e) g += p_alive_[e] * V_(next[e]);
        G_[row] = g;
        acc += pi_[row] * g;
      }
      res(s) = term[s] ? 0.0 : rpi_(s) - V_(s) + spec_.gamma * acc;
      norm = std::max(norm, std::abs(res(s)));
    }
    return norm;
  }

  void evaluate(StopToken& stop) {
    if (S_ > kRefinedMaxStates) {
      const Evaluation ev = discounted(mdp_, pi_.data(), spec_.gamma, Method::Auto, 1e-12, Request{true, false, false},
                                       1, stop);
      V_ = Eigen::Map<const Eigen::VectorXd>(ev.V.data(), S_);
      // ev.Q = r(s,a) + gamma E V: the unregularised values (closed_form_run refuses tau > 0 here)
      Q_ = ev.Q;
      return;
    }
    reward_of_policy();
    const double scale = rpi_.lpNorm<Eigen::Infinity>();
    last_ = V_;  // the previous step's values (zero before the first)
    bool solved = false;
    if (lu_ && spec_.reuse) {
      // start from the line through the last two values (the policy moves smoothly); accept V once
      // its residual is below kResidualTol (||r_pi|| + ||V||), else correct V += M_old^{-1} res
      if (have_older_) V_ = 2.0 * last_ - older_;
      double prev = std::numeric_limits<double>::infinity();
      for (int k = 0; k <= kRefineMaxSweeps; ++k) {
        const double rn = gather(res_);
        if (!std::isfinite(rn)) break;
        if (rn <= kResidualTol * (scale + V_.lpNorm<Eigen::Infinity>())) {
          solved = true;
          break;
        }
        if (rn > kRefineRate * prev || k == kRefineMaxSweeps) break;
        prev = rn;
        d_.noalias() = inverse_ * res_;
        V_ += d_;
        ++sweeps_;
      }
    }
    if (!solved) {
      factorize(stop);
      V_ = lu_->solve(rpi_);
      gather(res_);
    }
    older_ = last_;
    have_older_ = have_last_;
    have_last_ = true;
    const auto& term = mdp_.terminal();
    for (std::int64_t s = 0; s < S_; ++s)
      for (std::int64_t a = 0; a < A_; ++a) {
        const std::int64_t row = s * A_ + a;
        Q_[row] = term[s] ? 0.0 : r_[row] + spec_.gamma * G_[row];
      }
  }

  const FiniteMDP& mdp_;
  ClosedFormSpec spec_;
  std::int64_t S_, A_;
  std::vector<double> r_, p_alive_, pi_, logpi_, G_, Q_, row_;
  Eigen::MatrixXd inverse_;
  Eigen::VectorXd V_, last_, older_, rpi_, res_, d_;
  bool have_last_ = false, have_older_ = false;
  std::unique_ptr<linalg::DenseLU> lu_;
  std::int64_t factorizations_ = 0, sweeps_ = 0;
};

inline ClosedFormRun closed_form_run(const FiniteMDP& mdp, std::vector<double> theta, const ClosedFormSpec& spec,
                                     StopToken& stop) {
  if (spec.tau > 0.0 && mdp.n_states() > kRefinedMaxStates)
    throw std::invalid_argument("the entropy-regularised run needs at most 1000 states");
  ClosedFormRunner runner(mdp, spec);
  return runner.run(std::move(theta), stop);
}

}  // namespace pgfast::exact
