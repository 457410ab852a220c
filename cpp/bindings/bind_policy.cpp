// Softmax policy tables: softmax, linear logits, log-probabilities, action sampling.
#include "common.hpp"
#include "pgfast/categorical.hpp"
#include "pgfast/policy.hpp"

namespace pgfast::bindings {

void bind_policy(py::module_ m) {
  m.def(
      "softmax",
      [](const carray<double>& logits) {
        if (logits.ndim() != 2) throw std::invalid_argument("logits must have shape (S, A)");
        const py::ssize_t S = logits.shape(0), A = logits.shape(1);
        carray<double> probs({S, A}), logp({S, A});
        {
          py::gil_scoped_release release;
          require_finite(logits.data(), S * A, "logits");
          softmax_rows(logits.data(), S, A, probs.mutable_data(), logp.mutable_data());
        }
        return py::make_tuple(probs, logp);
      },
      py::arg("logits").noconvert(),
      "Row-wise stable softmax of logits (S, A): returns (probs, log_probs).");

  m.def(
      "linear_logits",
      [](const carray<double>& features, const carray<double>& theta) {
        if (features.ndim() != 2) throw std::invalid_argument("features must have shape (S*A, p)");
        const py::ssize_t rows = features.shape(0), p = features.shape(1);
        if (theta.ndim() != 1 || theta.shape(0) != p) {
          throw std::invalid_argument("theta must have shape (p,) = (" + std::to_string(p) + ",)");
        }
        carray<double> out(rows);
        {
          py::gil_scoped_release release;
          require_finite(theta.data(), p, "theta");
          linear_logits(features.data(), rows, p, theta.data(), out.mutable_data());
          require_finite(out.data(), rows, "logits theta . phi(s, a) (overflow: theta or features too large)");
        }
        return out;
      },
      py::arg("features").noconvert(), py::arg("theta").noconvert(),
      "Logits theta . phi(s, a) of a linear-in-features policy; features (S*A, p).");

  m.def(
      "linear_vjp",
      [](const carray<double>& features, const carray<double>& W) {
        if (features.ndim() != 2) throw std::invalid_argument("features must have shape (S*A, p)");
        const py::ssize_t rows = features.shape(0), p = features.shape(1);
        if (W.size() != rows) throw std::invalid_argument("W must have S*A entries");
        carray<double> out(p);
        {
          py::gil_scoped_release release;
          linear_vjp(features.data(), rows, p, W.data(), out.mutable_data());
        }
        return out;
      },
      py::arg("features").noconvert(), py::arg("W").noconvert(),
      "sum_{s,a} W(s,a) phi(s,a): the parameter gradient of a linear policy from logit gradients W.");

  m.def(
      "gather_log_prob",
      [](const carray<double>& log_probs, const carray<std::int32_t>& states,
         const carray<std::int32_t>& actions) {
        if (log_probs.ndim() != 2) throw std::invalid_argument("log_probs must have shape (S, A)");
        if (states.size() != actions.size()) {
          throw std::invalid_argument("states and actions must have the same number of entries");
        }
        check_range(states, log_probs.shape(0), "states");
        check_range(actions, log_probs.shape(1), "actions");
        carray<double> out(states.size());
        {
          py::gil_scoped_release release;
          gather_log_prob(log_probs.data(), log_probs.shape(0), log_probs.shape(1), states.data(),
                          actions.data(), states.size(), out.mutable_data());
        }
        return out;
      },
      py::arg("log_probs").noconvert(), py::arg("states").noconvert(), py::arg("actions").noconvert());

  m.def(
      "sample_actions",
      [](const carray<double>& probs, const carray<std::int32_t>& states, std::uint64_t seed) {
        if (probs.ndim() != 2 || probs.shape(0) < 1 || probs.shape(1) < 1)
          throw std::invalid_argument("probs must have shape (S, A) with S, A >= 1");
        check_range(states, probs.shape(0), "states");
        check_policy_table(probs, "probs");
        carray<std::int32_t> out(states.size());
        {
          py::gil_scoped_release release;
          const CategoricalRows pi = policy_sampler(probs.data(), probs.shape(0), probs.shape(1));
          sample_actions(pi, probs.shape(0), states.data(), states.size(), seed, out.mutable_data());
        }
        return out;
      },
      py::arg("probs").noconvert(), py::arg("states").noconvert(), py::arg("seed"),
      "a_k ~ pi(.|states[k]) from the policy-sampling stream of seed (flat states).");
}

}  // namespace pgfast::bindings
