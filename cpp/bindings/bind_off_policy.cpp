// Off-policy estimation: per-step log importance ratios and importance weights.
#include "common.hpp"
#include "batch.hpp"
#include "pgfast/off_policy.hpp"

namespace pgfast::bindings {

void bind_off_policy(py::module_ m) {
  m.def(
      "log_ratios",
      [](const carray<double>& target_logp, const std::optional<carray<double>>& beta_logp,
         const std::optional<carray<double>>& beta_probs, const std::optional<carray<double>>& logged,
         const carray<std::int32_t>& states, const carray<std::int32_t>& actions, const carray<double>& rewards,
         const carray<std::int32_t>& lengths) {
        if (target_logp.ndim() != 2) throw std::invalid_argument("target log-probabilities must have shape (S, A)");
        const std::int64_t S = target_logp.shape(0), A = target_logp.shape(1);
        const Batch b = check_trajectories(states, actions, rewards, lengths, S, A);
        if (beta_logp) {
          require_shape2(*beta_logp, "behavior log-probabilities", S, A);
          if (!beta_probs) throw std::invalid_argument("behavior probabilities missing");
          require_shape2(*beta_probs, "behavior probabilities", S, A);
        } else {
          if (!logged) throw std::invalid_argument("behavior missing");
          require_shape2(*logged, "behavior", b.N, b.H);
        }
        carray<double> out({b.N, b.H});
        off_policy::StepIndex bad;
        {
          py::gil_scoped_release release;
          bad = off_policy::log_ratios(target_logp.data(), beta_logp ? beta_logp->data() : nullptr,
                                beta_probs ? beta_probs->data() : nullptr, logged ? logged->data() : nullptr, A,
                                b.states, b.actions, b.lengths, b.N, b.H, out.mutable_data());
        }
        if (bad.i >= 0) {
          const std::string where = "trajectory " + std::to_string(bad.i) + ", step " + std::to_string(bad.t);
          if (!beta_logp && logged->data()[bad.i * b.H + bad.t] > 0.0) {
            throw std::invalid_argument("behavior log-probabilities must be <= 0, got " +
                                        std::to_string(logged->data()[bad.i * b.H + bad.t]) + " at " + where);
          }
          const double v = beta_logp ? -std::numeric_limits<double>::infinity() : logged->data()[bad.i * b.H + bad.t];
          std::ostringstream msg;
          msg << (beta_logp ? "the behavior policy" : "the logged behavior log-probabilities")
              << " gives zero probability (log-prob " << v << ") to the logged action of " << where
              << ": the importance ratio is undefined";
          throw std::invalid_argument(msg.str());
        }
        return out;
      },
      py::arg("target_logp").noconvert(), py::arg("beta_logp").noconvert(), py::arg("beta_probs").noconvert(),
      py::arg("logged").noconvert(), py::arg("states").noconvert(), py::arg("actions").noconvert(),
      py::arg("rewards").noconvert(), py::arg("lengths").noconvert(),
      "Per-step log pi(a_t|s_t) - log beta(a_t|s_t) of a batch, 0 past each end: (N, H).");

  m.def(
      "importance_weights",
      [](const carray<double>& rewards, const carray<double>& log_ratio, const carray<std::int32_t>& lengths,
         double gamma, bool reward_to_go, bool per_decision, bool self_normalized) {
        check_unit(gamma, "gamma");
        check_batch(rewards, lengths);
        const py::ssize_t N = rewards.shape(0), H = rewards.shape(1);
        require_shape2(log_ratio, "log_ratio", N, H);
        if (self_normalized && N == 0) throw std::invalid_argument("self-normalised weights need at least one trajectory");
        carray<double> w({N, H}), log_rho(N), value(N);
        {
          py::gil_scoped_release release;
          std::vector<double> log_norm;
          double log_norm_rho = 0.0;
          if (self_normalized && per_decision) {
            log_norm.assign(static_cast<std::size_t>(H), 0.0);
            off_policy::per_decision_log_norm(log_ratio.data(), lengths.data(), N, H, log_norm.data());
          }
          if (self_normalized && !per_decision) log_norm_rho = off_policy::log_mean_ratio(log_ratio.data(), lengths.data(), N, H);
          off_policy::importance_weights(rewards.data(), log_ratio.data(), lengths.data(), N, H, gamma, reward_to_go,
                                  per_decision, log_norm.empty() ? nullptr : log_norm.data(),
                                  self_normalized && !per_decision ? &log_norm_rho : nullptr, w.mutable_data(),
                                  log_rho.mutable_data(), value.mutable_data());
        }
        return py::make_tuple(w, log_rho, value);
      },
      py::arg("rewards").noconvert(), py::arg("log_ratio").noconvert(), py::arg("lengths").noconvert(),
      py::arg("gamma"), py::arg("reward_to_go"), py::arg("per_decision"), py::arg("self_normalized"));
}

}  // namespace pgfast::bindings
