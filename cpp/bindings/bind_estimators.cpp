// Score-function gradient estimators (stored batch and fused) and the log-likelihood of a batch.
#include "common.hpp"
#include "batch.hpp"
#include "pgfast/estimators/baselines.hpp"
#include "pgfast/estimators/fused.hpp"
#include "pgfast/estimators/likelihood.hpp"
#include "pgfast/estimators/score.hpp"
#include "pgfast/mdp.hpp"
#include "pgfast/mlp.hpp"
#include "pgfast/returns.hpp"
#include "pgfast/sampling.hpp"

namespace pgfast::bindings {

namespace {

est::PolicyTables policy_tables(const carray<double>& probs, const std::optional<carray<double>>& features,
                                const std::shared_ptr<mlp::Forward>& net = nullptr) {
  if (probs.ndim() != 2) throw std::invalid_argument("probs must have shape (S, A)");
  est::PolicyTables pol;
  pol.S = probs.shape(0);
  pol.A = probs.shape(1);
  pol.probs = probs.data();
  if (net) {
    if (features) throw std::invalid_argument("pass features or net, not both");
    if (net->net().n_states() != pol.S || net->net().n_actions() != pol.A)
      throw std::invalid_argument("the MLP does not match the probability table's shape");
    pol.map = net.get();
  }
  if (features) {
    if (features->ndim() != 3 || features->shape(0) != pol.S || features->shape(1) != pol.A)
      throw std::invalid_argument("features must have shape (S, A, p)");
    pol.features = features->data();
    pol.p = features->shape(2);
  }
  return pol;
}

est::WeightKind parse_weights(const std::string& w) {
  if (w == "reward_to_go") return est::WeightKind::RewardToGo;
  if (w == "return") return est::WeightKind::Return;
  if (w == "explicit") return est::WeightKind::Explicit;
  throw std::invalid_argument("weights must be 'reward_to_go' or 'return', got '" + w + "'");
}

est::BaselineKind parse_baseline(const std::string& b) {
  if (b == "none") return est::BaselineKind::None;
  if (b == "table") return est::BaselineKind::Table;
  if (b == "mean") return est::BaselineKind::LeaveOneOutMean;
  if (b == "time") return est::BaselineKind::LeaveOneOutTime;
  throw std::invalid_argument("unknown baseline '" + b + "'");
}

}  // namespace

void bind_estimators(py::module_& m) {
  m.def(
      "score_batch",
      [](const carray<std::int32_t>& states, const carray<std::int32_t>& actions, const carray<double>& rewards,
         const carray<std::int32_t>& lengths, const carray<double>& probs, const std::optional<carray<double>>& features,
         const std::string& weights_kind, const std::optional<carray<double>>& weights, double gamma,
         const std::string& baseline, const std::optional<carray<double>>& table, bool per_trajectory, int threads,
         bool sumsq, const std::shared_ptr<mlp::Forward>& net) {
        check_unit(gamma, "gamma");
        const est::PolicyTables pol = policy_tables(probs, features, net);
        // Shapes here; the indices are range-checked row by row as score_batch reads them (one
        // pass over the batch instead of two), and on a bad row check_indices names the first.
        const Batch b = batch_view(states, actions, rewards, lengths);
        est::WeightSpec spec;
        spec.kind = parse_weights(weights_kind);
        spec.gamma = gamma;
        spec.baseline = parse_baseline(baseline);
        spec.S = pol.S;
        spec.n = b.N;
        const double* w = nullptr;
        if (spec.kind == est::WeightKind::Explicit) {
          if (!weights) throw std::invalid_argument("weights array missing");
          require_shape2(*weights, "weights", b.N, b.H);
          w = weights->data();
        }
        if (spec.baseline == est::BaselineKind::Table) {
          if (!table) throw std::invalid_argument("baseline table missing");
          require_shape2(*table, "baseline values", b.H, pol.S);
          spec.table = table->data();
        }
        threads = resolve_threads(threads);
        const std::int64_t np = pol.n_params();
        std::optional<carray<double>> rows;
        if (per_trajectory) rows.emplace(std::vector<py::ssize_t>{b.N, np});
        double* rows_ptr = rows ? rows->mutable_data() : nullptr;
        est::BatchResult res;
        std::vector<double> rtg_sum;
        std::vector<std::int64_t> rtg_count;
        std::vector<double> time_alpha, time_beta, time_u;
        StopToken stop(python_interrupted);
        bool ok = true, out_of_range = false;
        {
          py::gil_scoped_release release;
          if (spec.baseline == est::BaselineKind::LeaveOneOutMean || spec.baseline == est::BaselineKind::LeaveOneOutTime) {
            est::loo_statistics(b.rewards, b.lengths, b.N, b.H, gamma, spec.return_sum, rtg_sum, rtg_count);
            est::loo_time_coefficients(rtg_sum, rtg_count, powers(gamma, b.H).data(), time_alpha, time_beta, time_u);
            spec.time_alpha = time_alpha.data();
            spec.time_beta = time_beta.data();
            spec.time_u = time_u.data();
          }
          try {
            ok = est::score_batch(b.states, b.actions, b.rewards, w, b.lengths, b.N, b.H, pol, spec, threads, stop,
                                  res, rows_ptr, sumsq || per_trajectory);
          } catch (const est::IndexOutOfRange&) {
            out_of_range = true;
          }
        }
        if (out_of_range) check_indices(b, pol.S, pol.A);  // throws, naming the first bad step
        if (!ok) throw py::error_already_set();
        py::object rows_obj = rows ? py::object(*rows) : py::none();
        return py::make_tuple(vector_to_numpy(std::move(res.sum), {np}), vector_to_numpy(std::move(res.sumsq), {np}),
                              rows_obj, res.return_sum, res.return_sumsq);
      },
      py::arg("states").noconvert(), py::arg("actions").noconvert(), py::arg("rewards").noconvert(),
      py::arg("lengths").noconvert(), py::arg("probs").noconvert(), py::arg("features").noconvert(),
      py::arg("weights_kind"), py::arg("weights").noconvert(), py::arg("gamma"), py::arg("baseline"),
      py::arg("table").noconvert(), py::arg("per_trajectory"), py::arg("threads"), py::arg("sumsq") = true,
      py::arg("net") = nullptr,
      "Per-trajectory score-function gradients of a batch, reduced: (sum, sumsq, rows or None, "
      "return_sum, return_sumsq).");

  m.def(
      "fused_gradient",
      [](const FiniteMDP& mdp, const carray<double>& probs, const std::optional<carray<double>>& features,
         std::int64_t n, std::uint64_t seed, const std::string& weights_kind, double gamma, const std::string& baseline,
         const std::optional<carray<double>>& table, int threads, bool stderr_, const std::shared_ptr<mlp::Forward>& net) {
        check_unit(gamma, "gamma");
        if (n < 1) throw std::invalid_argument("n must be >= 1, got " + std::to_string(n));
        require_shape2(probs, "policy probabilities", mdp.n_states(), mdp.n_actions());
        check_policy_table(probs, "policy probabilities");
        const est::PolicyTables pol = policy_tables(probs, features, net);
        const std::int64_t H = mdp.horizon();
        est::WeightSpec spec;
        spec.kind = parse_weights(weights_kind);
        if (spec.kind == est::WeightKind::Explicit) throw std::invalid_argument("explicit weights need a stored batch");
        spec.gamma = gamma;
        spec.baseline = parse_baseline(baseline);
        spec.S = pol.S;
        if (spec.baseline == est::BaselineKind::Table) {
          if (!table) throw std::invalid_argument("baseline table missing");
          require_shape2(*table, "baseline values", H, pol.S);
          spec.table = table->data();
        }
        threads = resolve_threads(threads);
        const std::int64_t np = pol.n_params();
        const reduce::Grid grid = est::estimator_grid(n);
        StopToken stop(python_interrupted);
        bool ok;
        est::FusedSink<kLanes>::Totals res;
        std::vector<double> rtg_sum, time_alpha, time_beta, time_u;
        std::vector<std::int64_t> rtg_count;
        {
          py::gil_scoped_release release;
          ok = true;
          if (spec.baseline == est::BaselineKind::LeaveOneOutMean || spec.baseline == est::BaselineKind::LeaveOneOutTime) {
            // first pass: the batch's leave-one-out statistics (the same trajectories are drawn again)
            est::LooPartial root;
            ok = est::fused_loo_statistics(mdp, probs.data(), grid, seed, threads, stop, root);
            if (ok) {
              est::loo_finish(root, gamma, spec.return_sum, rtg_sum, rtg_count);
              est::loo_time_coefficients(rtg_sum, rtg_count, powers(gamma, H).data(), time_alpha, time_beta, time_u);
              spec.n = n;
              spec.time_alpha = time_alpha.data();
              spec.time_beta = time_beta.data();
              spec.time_u = time_u.data();
            }
          }
          std::vector<reduce::Part<est::TrajectoryScorer::Partial>> nodes;
          if (ok) ok = est::fused_nodes(mdp, pol, spec, grid, 0, grid.blocks, seed, threads, stderr_, stop, nodes);
          if (ok) res = est::fused_totals(std::move(nodes), pol, grid.blocks, stderr_);
        }
        if (!ok) throw py::error_already_set();
        return py::make_tuple(vector_to_numpy(std::move(res.sum), {np}), vector_to_numpy(std::move(res.sumsq), {np}),
                              res.return_sum, res.return_sumsq, res.steps);
      },
      py::arg("mdp"), py::arg("probs").noconvert(), py::arg("features").noconvert(), py::arg("n"), py::arg("seed"),
      py::arg("weights_kind"), py::arg("gamma"), py::arg("baseline"), py::arg("table").noconvert(), py::arg("threads"),
      py::arg("stderr"), py::arg("net") = nullptr,
      "Sample n trajectories and accumulate their gradients without storing them: (sum, sumsq, return_sum, return_sumsq, steps).");

  m.def(
      "log_likelihood",
      [](const FiniteMDP& mdp, const carray<double>& log_probs, const carray<std::int32_t>& states,
         const carray<std::int32_t>& actions, const carray<std::int32_t>& lengths, const carray<std::int32_t>& finals,
         const carray<double>& rewards, bool dynamics) {
        require_shape2(log_probs, "log_probs", mdp.n_states(), mdp.n_actions());
        const Batch b = check_trajectories(states, actions, rewards, lengths, mdp.n_states(), mdp.n_actions());
        if (finals.ndim() != 1 || finals.shape(0) != b.N) throw std::invalid_argument("final_states must have shape (N,)");
        carray<double> out(b.N);
        {
          py::gil_scoped_release release;
          est::log_likelihood(mdp, log_probs.data(), b.states, b.actions, b.lengths, finals.data(), b.N, b.H, dynamics,
                              out.mutable_data());
        }
        return out;
      },
      py::arg("mdp"), py::arg("log_probs").noconvert(), py::arg("states").noconvert(), py::arg("actions").noconvert(),
      py::arg("lengths").noconvert(), py::arg("final_states").noconvert(), py::arg("rewards").noconvert(),
      py::arg("dynamics"));
}

}  // namespace pgfast::bindings
