// The extension module pgfast._core: one submodule per topic, _core.<topic>, filled by the topic's
// bind_<topic>.cpp (and typed by python/pgfast/_core/<topic>.pyi).
#include "common.hpp"

PYBIND11_MODULE(_core, m) {
  using namespace pgfast::bindings;
  m.doc() = "pgfast's compiled core (private: use the pgfast package).";
  bind_mdp(m.def_submodule("mdp", "The finite MDP (pgfast.FiniteMDP's C++ side)."));
  bind_policy(m.def_submodule("policy", "Softmax policy tables: softmax, linear logits, log-probabilities, actions."));
  bind_mlp(m.def_submodule("mlp", "Neural (MLP) softmax policies."));
  bind_sampling(m.def_submodule("sampling", "Sampling trajectories, and the random streams it draws from."));
  bind_returns(m.def_submodule("returns", "Returns and rewards-to-go of a padded batch."));
  bind_exact(m.def_submodule("exact", "Exact evaluation, optimal control, Fisher information, natural gradients."));
  bind_estimators(m.def_submodule("estimators", "Likelihood-ratio gradient estimators and the log-likelihood."));
  bind_off_policy(m.def_submodule("off_policy", "Importance sampling: log-ratios and importance weights."));
  bind_info(m.def_submodule("info", "Build and thread information, and the worker pool."));
  bind_lqr(m.def_submodule("lqr", "Sampling an LQR under a linear-Gaussian policy, and the fused estimator on it."));
  bind_lqr_exact(m.def_submodule("lqr_exact", "The exact linear-quadratic regulator: J, gradients, Riccati gains."));
}
