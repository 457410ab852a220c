// Softmax policies over a finite state space (docs/theory.md, "Softmax policies and
// their scores").
//
//   tabular:  pi(a|s) = exp(theta[s, a]) / sum_a' exp(theta[s, a'])
//   linear:   pi(a|s) = exp(theta . phi(s, a)) / sum_a' exp(theta . phi(s, a'))
//
// Every policy reduces to a table of logits (S, A); the softmax is computed with a stable
// log-sum-exp, so logits of +-1e6 give probabilities of exactly 0 and 1 and finite log-probs.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgfast/categorical.hpp"
#include "pgfast/rng.hpp"
#include "pgfast/vexp.hpp"

namespace pgfast {

using RowMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Throws std::invalid_argument naming `what` if any value is NaN or infinite.
inline void require_finite(const double* x, std::int64_t n, const char* what) {
  for (std::int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      std::ostringstream os;
      os << what << " contains a non-finite value (" << x[i] << " at flat index " << i << ")";
      throw std::invalid_argument(os.str());
    }
  }
}

// Row-wise stable softmax of logits (S, A): probs and/or log-probs (either may be null).
// With flush > 0, a logit more than `flush` below its row's maximum gets probability exactly 0
// and is left out of the row's sum (for flush >= 700 its exp is below 1e-304: a change below the
// rounding of the others that keeps subnormal numbers, slow on most CPUs, out of the exp and of
// what uses the probabilities); its log-probability is unchanged.
inline void softmax_rows(const double* logits, std::int64_t S, std::int64_t A, double* probs,
                         double* log_probs, double flush = 0.0) {
  // e = exp(z - max_a z) for the whole table at once (one vectorised pass of vexp.hpp's exp), in
  // probs when wanted, then per row: the sum, the log-sum-exp and the normalisation.
  std::vector<double> scratch(probs ? 0 : static_cast<std::size_t>(S * A));
  double* e = probs ? probs : scratch.data();
  std::vector<double> mx(static_cast<std::size_t>(S));
  for (std::int64_t s = 0; s < S; ++s) {
    const double* z = logits + s * A;
    double m = z[0];
    for (std::int64_t a = 1; a < A; ++a) m = std::max(m, z[a]);  // maxsd, no branch (finite logits)
    mx[s] = m;
    for (std::int64_t a = 0; a < A; ++a) e[s * A + a] = z[a] - m;
    if (flush > 0.0)
      for (std::int64_t a = 0; a < A; ++a)
        if (e[s * A + a] < -flush) e[s * A + a] = 0.0;  // exp(0), set to 0 below
  }
  exp_nonpositive_inplace(e, S * A);
  for (std::int64_t s = 0; s < S; ++s) {
    const double* z = logits + s * A;
    double* es = e + s * A;
    if (flush > 0.0)
      for (std::int64_t a = 0; a < A; ++a)
        if (z[a] - mx[s] < -flush) es[a] = 0.0;
    double sum = 0.0;
    for (std::int64_t a = 0; a < A; ++a) sum += es[a];
    const double log_sum = std::log(sum), inv = 1.0 / sum;
    if (log_probs) {  // (z - max) - log sum: exact at any scale of the logits, where z - (max + log sum) rounds
      for (std::int64_t a = 0; a < A; ++a) log_probs[s * A + a] = (z[a] - mx[s]) - log_sum;
    }
    if (probs) {
      for (std::int64_t a = 0; a < A; ++a) es[a] *= inv;
    }
  }
}

// Logits of a linear-in-features policy: features (S*A, p) row-major times theta (p).
inline void linear_logits(const double* features, std::int64_t rows, std::int64_t p,
                          const double* theta, double* logits) {
  Eigen::Map<const RowMatrixXd> phi(features, rows, p);
  Eigen::Map<const Eigen::VectorXd> th(theta, p);
  Eigen::Map<Eigen::VectorXd> out(logits, rows);
  out.noalias() = phi * th;
}

// Parameter gradient of a linear policy from logit gradients: out = Phi^T W = sum_{s,a} W(s,a) phi(s,a).
inline void linear_vjp(const double* features, std::int64_t rows, std::int64_t p, const double* W, double* out) {
  Eigen::Map<const RowMatrixXd> phi(features, rows, p);
  Eigen::Map<const Eigen::VectorXd> w(W, rows);
  Eigen::Map<Eigen::VectorXd>(out, p).noalias() = phi.transpose() * w;
}

// A policy whose logits z(s, .) are a differentiable function of theta (e.g. the MLP of mlp.hpp):
// the estimators and pgfast.exact work with dJ/dz tables and map them to theta through this.
class LogitMap {
 public:
  virtual ~LogitMap() = default;
  virtual std::int64_t n_params() const = 0;
  // out += sum_{s,a} G(s,a) grad_theta z(s,a), G (S, A) row-major.
  virtual void vjp_all(const double* G, double* out) const = 0;
  // out += sum_a u[a] grad_theta z(s,a) for one state s; `scratch` is reused by the caller.
  virtual void vjp_state(std::int64_t s, const double* u, double* out, std::vector<double>& scratch) const = 0;
};

// Categorical rows of a policy table (S, A) for sampling.
inline CategoricalRows policy_sampler(const double* probs, std::int64_t S, std::int64_t A) {
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(S + 1));
  for (std::int64_t s = 0; s <= S; ++s) offsets[s] = s * A;
  return CategoricalRows(std::move(offsets), probs);
}

// log pi(actions[k] | states[k]) for k < n, from a log-prob table (S, A).
inline void gather_log_prob(const double* log_probs, std::int64_t S, std::int64_t A,
                            const std::int32_t* states, const std::int32_t* actions, std::int64_t n,
                            double* out) {
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int32_t s = states[k], a = actions[k];
    if (s < 0 || s >= S) {
      throw std::invalid_argument("states[" + std::to_string(k) + "] = " + std::to_string(s) +
                                  " is out of range [0, " + std::to_string(S) + ")");
    }
    if (a < 0 || a >= A) {
      throw std::invalid_argument("actions[" + std::to_string(k) + "] = " + std::to_string(a) +
                                  " is out of range [0, " + std::to_string(A) + ")");
    }
    out[k] = log_probs[static_cast<std::int64_t>(s) * A + a];
  }
}

// a_k ~ pi(.|states[k]); draw k uses the first word of item_stream(policy-sampling key of seed, k).
inline void sample_actions(const CategoricalRows& pi, std::int64_t S, const std::int32_t* states,
                           std::int64_t n, std::uint64_t seed, std::int32_t* out) {
  const std::uint64_t key = stream_key(seed, Domain::PolicySample);
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int32_t s = states[k];
    if (s < 0 || s >= S) {
      throw std::invalid_argument("states[" + std::to_string(k) + "] = " + std::to_string(s) +
                                  " is out of range [0, " + std::to_string(S) + ")");
    }
    out[k] = static_cast<std::int32_t>(pi.draw(s, item_stream(key, static_cast<std::uint64_t>(k)).next()));
  }
}

}  // namespace pgfast
