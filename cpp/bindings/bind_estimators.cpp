// Score-function gradient estimators (stored batch and fused) and the log-likelihood of a batch.
#include <pybind11/native_enum.h>

#include <cstring>

#include "common.hpp"
#include "batch.hpp"
#include "pgfast/estimators/baselines.hpp"
#include "pgfast/estimators/fused.hpp"
#include "pgfast/estimators/likelihood.hpp"
#include "pgfast/estimators/score.hpp"
#include "pgfast/estimators/time_tables.hpp"
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

// The arguments of one estimate (the policy's tables, the weights, the baseline, the threads),
// built by the Python wrapper (pgfast.policy_gradient and its family).
struct EstimatorSpec {
  carray<double> probs;                            // (S, A)
  std::optional<carray<double>> features;          // (S, A, p) for a linear policy
  std::shared_ptr<mlp::Forward> net;               // for an MLP policy
  est::WeightKind weights;
  std::optional<carray<double>> explicit_weights;  // (N, H) for WeightKind::Explicit
  double gamma;
  est::BaselineKind baseline;
  std::optional<carray<double>> table;             // (H, S) for BaselineKind::Table
  int threads;
};


// Leave-one-out statistics nodes (reduce.hpp) as Python tuples (level, index, colsum, ends) and back.
py::list loo_nodes_to_python(std::vector<reduce::Part<est::LooPartial>>&& nodes) {
  py::list out;
  for (auto& p : nodes) {
    const auto H = static_cast<py::ssize_t>(p.value.colsum.size());
    carray<std::int64_t> ends(H + 1);
    std::copy(p.value.ends.begin(), p.value.ends.end(), ends.mutable_data());
    out.append(py::make_tuple(p.node.level, p.node.index, vector_to_numpy(std::move(p.value.colsum), {H}), ends));
  }
  return out;
}

std::vector<reduce::Part<est::LooPartial>> loo_nodes_from_python(const py::list& nodes, std::int64_t H) {
  std::vector<reduce::Part<est::LooPartial>> parts;
  for (const py::handle h : nodes) {
    const auto t = h.cast<py::tuple>();
    if (t.size() != 4) throw std::invalid_argument("a statistics node must have 4 fields");
    reduce::Part<est::LooPartial> part;
    part.node.level = t[0].cast<int>();
    part.node.index = t[1].cast<std::int64_t>();
    const auto colsum = t[2].cast<carray<double>>();
    const auto ends = t[3].cast<carray<std::int64_t>>();
    if (colsum.ndim() != 1 || colsum.shape(0) != H || ends.ndim() != 1 || ends.shape(0) != H + 1) {
      throw std::invalid_argument("a statistics node does not match the MDP's horizon");
    }
    part.value.colsum.assign(colsum.data(), colsum.data() + H);
    part.value.ends.assign(ends.data(), ends.data() + H + 1);
    parts.push_back(std::move(part));
  }
  return parts;
}

bool leave_one_out(const est::WeightSpec& spec) {
  return spec.baseline == est::BaselineKind::LeaveOneOutMean || spec.baseline == est::BaselineKind::LeaveOneOutTime;
}

// The weight spec of a fused estimate (no explicit weights; a baseline table of shape (H, S)).
est::WeightSpec fused_spec(const EstimatorSpec& es, const est::PolicyTables& pol, const FiniteMDP& mdp) {
  check_unit(es.gamma, "gamma");
  est::WeightSpec spec;
  spec.kind = es.weights;
  if (spec.kind == est::WeightKind::Explicit) throw std::invalid_argument("explicit weights need a stored batch");
  spec.gamma = es.gamma;
  spec.baseline = es.baseline;
  spec.S = pol.S;
  if (spec.baseline == est::BaselineKind::Table) {
    if (!es.table) throw std::invalid_argument("baseline table missing");
    require_shape2(*es.table, "baseline values", mdp.horizon(), pol.S);
    spec.table = es.table->data();
  }
  return spec;
}

// The root of the leave-one-out statistics' nodes, which must tile the grid's blocks.
est::LooPartial merge_statistics(std::vector<reduce::Part<est::LooPartial>>&& nodes, const reduce::Grid& grid) {
  return reduce::merge_nodes(std::move(nodes), grid.blocks, est::LooPartial::combine, "the leave-one-out statistics");
}

// The block grid of n trajectories, after checking that [block_lo, block_hi) is a range of its
// blocks and that the policy table fits the MDP (the shard bindings).
reduce::Grid shard_grid(const EstimatorSpec& es, const FiniteMDP& mdp, std::int64_t n, std::int64_t block_lo,
                        std::int64_t block_hi) {
  if (n < 1) throw std::invalid_argument("n must be >= 1, got " + std::to_string(n));
  const reduce::Grid grid = est::estimator_grid(n);
  if (block_lo < 0 || block_hi > grid.blocks || block_lo >= block_hi) {
    throw std::invalid_argument("the blocks [" + std::to_string(block_lo) + ", " + std::to_string(block_hi) +
                                ") are not a range of the " + std::to_string(grid.blocks) + " blocks");
  }
  require_shape2(es.probs, "policy probabilities", mdp.n_states(), mdp.n_actions());
  check_policy_table(es.probs, "policy probabilities");
  return grid;
}

// The one-pass time baseline's tables (time_tables.hpp) as a flat uint64 array of 2 H S A words
// (each cell's low word, then its high word; rows the run did not reach are zero), and back
// (the sum of the shards' tables).
carray<std::uint64_t> tables_to_numpy(const est::time_tables::Tables& tables, std::int64_t H, std::int64_t SA) {
  carray<std::uint64_t> out(2 * H * SA);
  std::uint64_t* w = out.mutable_data();
  std::fill(w, w + 2 * H * SA, std::uint64_t{0});
  std::memcpy(w, tables.cells(), static_cast<std::size_t>(tables.rows() * SA) * sizeof(est::time_tables::Cell));
  return out;
}

est::time_tables::Tables tables_from_python(const py::list& arrays, std::int64_t SA) {
  if (arrays.empty()) throw std::invalid_argument("the partial results carry no per-step tables");
  std::int64_t H = -1;
  std::vector<carray<std::uint64_t>> views;
  for (const py::handle h : arrays) {
    auto a = h.cast<carray<std::uint64_t>>();
    if (a.ndim() != 1 || SA < 1 || a.shape(0) % (2 * SA) != 0 || (H >= 0 && a.shape(0) != 2 * H * SA)) {
      throw std::invalid_argument("a partial result's per-step tables do not match the policy's size");
    }
    H = a.shape(0) / (2 * SA);
    views.push_back(std::move(a));
  }
  est::time_tables::Tables tables(H, SA);
  est::time_tables::Cell* c = tables.rows_upto(H);
  for (const auto& a : views) {
    const std::uint64_t* w = a.data();
    for (std::int64_t k = 0; k < H * SA; ++k) {
      c[k] += static_cast<est::time_tables::Cell>(w[2 * k]) | (static_cast<est::time_tables::Cell>(w[2 * k + 1]) << 64);
    }
  }
  return tables;
}

}  // namespace

void bind_estimators(py::module_ m) {
  py::native_enum<est::WeightKind>(m, "WeightKind", "enum.Enum", "How the weight of each step is formed.")
      .value("RETURN", est::WeightKind::Return)
      .value("REWARD_TO_GO", est::WeightKind::RewardToGo)
      .value("EXPLICIT", est::WeightKind::Explicit)
      .finalize();
  py::native_enum<est::BaselineKind>(m, "BaselineKind", "enum.Enum", "The baseline subtracted from the weights.")
      .value("NONE", est::BaselineKind::None)
      .value("TABLE", est::BaselineKind::Table)
      .value("LEAVE_ONE_OUT_MEAN", est::BaselineKind::LeaveOneOutMean)
      .value("LEAVE_ONE_OUT_TIME", est::BaselineKind::LeaveOneOutTime)
      .finalize();

  py::class_<EstimatorSpec>(m, "EstimatorSpec", "The arguments of one estimate: policy tables, weights, baseline, threads.")
      .def(py::init([](const carray<double>& probs, const std::optional<carray<double>>& features,
                       const std::shared_ptr<mlp::Forward>& net, est::WeightKind weights,
                       const std::optional<carray<double>>& explicit_weights, double gamma, est::BaselineKind baseline,
                       const std::optional<carray<double>>& table, int threads) {
             return EstimatorSpec{probs, features, net, weights, explicit_weights, gamma, baseline, table, threads};
           }),
           py::kw_only(), py::arg("probs").noconvert(), py::arg("features").noconvert(), py::arg("net"),
           py::arg("weights"), py::arg("explicit_weights").noconvert(), py::arg("gamma"), py::arg("baseline"),
           py::arg("table").noconvert(), py::arg("threads"))
      .def_readonly("probs", &EstimatorSpec::probs)
      .def_readonly("features", &EstimatorSpec::features)
      .def_readonly("net", &EstimatorSpec::net)
      .def_readonly("weights", &EstimatorSpec::weights)
      .def_readonly("explicit_weights", &EstimatorSpec::explicit_weights)
      .def_readonly("gamma", &EstimatorSpec::gamma)
      .def_readonly("baseline", &EstimatorSpec::baseline)
      .def_readonly("table", &EstimatorSpec::table)
      .def_readonly("threads", &EstimatorSpec::threads);

  m.def(
      "score_batch",
      [](const EstimatorSpec& es, const carray<std::int32_t>& states, const carray<std::int32_t>& actions,
         const carray<double>& rewards, const carray<std::int32_t>& lengths, bool per_trajectory, bool sumsq) {
        const double gamma = es.gamma;
        const auto& weights = es.explicit_weights;
        const auto& table = es.table;
        check_unit(gamma, "gamma");
        const est::PolicyTables pol = policy_tables(es.probs, es.features, es.net);
        // Shapes here; the indices are range-checked row by row as score_batch reads them (one
        // pass over the batch instead of two), and on a bad row check_indices names the first.
        const Batch b = batch_view(states, actions, rewards, lengths);
        est::WeightSpec spec;
        spec.kind = es.weights;
        spec.gamma = gamma;
        spec.baseline = es.baseline;
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
        const int threads = resolve_threads(es.threads);
        const std::int64_t np = pol.n_params();
        std::optional<carray<double>> rows;
        if (per_trajectory) rows.emplace(std::vector<py::ssize_t>{b.N, np});
        double* rows_ptr = rows ? rows->mutable_data() : nullptr;
        est::BatchResult res;
        est::LooTerms loo;
        StopToken stop(python_interrupted);
        bool ok = true, out_of_range = false;
        {
          py::gil_scoped_release release;
          if (leave_one_out(spec)) loo.apply(est::loo_statistics(b.rewards, b.lengths, b.N, b.H), b.N, spec);
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
      py::arg("spec"), py::arg("states").noconvert(), py::arg("actions").noconvert(), py::arg("rewards").noconvert(),
      py::arg("lengths").noconvert(), py::arg("per_trajectory"), py::arg("sumsq") = true,
      "Per-trajectory score-function gradients of a batch, reduced: (sum, sumsq, rows or None, "
      "return_sum, return_sumsq).");

  m.def(
      "fused_gradient",
      [](const EstimatorSpec& es, const FiniteMDP& mdp, std::int64_t n, std::uint64_t seed, bool stderr_) {
        if (n < 1) throw std::invalid_argument("n must be >= 1, got " + std::to_string(n));
        require_shape2(es.probs, "policy probabilities", mdp.n_states(), mdp.n_actions());
        check_policy_table(es.probs, "policy probabilities");
        const est::PolicyTables pol = policy_tables(es.probs, es.features, es.net);
        est::WeightSpec spec = fused_spec(es, pol, mdp);
        const int threads = resolve_threads(es.threads);
        const std::int64_t np = pol.n_params();
        const reduce::Grid grid = est::estimator_grid(n);
        StopToken stop(python_interrupted);
        bool ok = true;
        est::FusedSink<kLanes>::Totals res;
        est::LooTerms loo;
        if (const auto q = est::time_tables::one_pass(spec, stderr_, n, mdp)) {  // exact per-step tables
          {
            py::gil_scoped_release release;
            std::vector<reduce::Part<est::TrajectoryScorer::Partial>> nodes;
            std::unique_ptr<est::time_tables::Tables> tables;
            ok = est::time_tables::simulate(mdp, es.probs.data(), spec.gamma, *q, grid, 0, grid.blocks, seed, threads,
                                            stop, nodes, tables);
            if (ok) res = est::time_tables::totals(std::move(nodes), *tables, pol, spec.gamma, *q, grid.blocks);
          }
          if (!ok) throw py::error_already_set();
          return py::make_tuple(vector_to_numpy(std::move(res.sum), {np}),
                                vector_to_numpy(std::move(res.sumsq), {np}), res.return_sum, res.return_sumsq,
                                res.steps);
        }
        {
          py::gil_scoped_release release;
          if (leave_one_out(spec)) {  // first pass: the batch's statistics (the same trajectories are drawn again)
            std::vector<reduce::Part<est::LooPartial>> stats;
            ok = est::fused_loo_nodes(mdp, es.probs.data(), grid, 0, grid.blocks, seed, threads, stop, stats);
            if (ok) loo.apply(merge_statistics(std::move(stats), grid), n, spec);
          }
          std::vector<reduce::Part<est::TrajectoryScorer::Partial>> nodes;
          if (ok) ok = est::fused_nodes(mdp, pol, spec, grid, 0, grid.blocks, seed, threads, stderr_, stop, nodes);
          if (ok) res = est::fused_totals(std::move(nodes), pol, grid.blocks, stderr_);
        }
        if (!ok) throw py::error_already_set();
        return py::make_tuple(vector_to_numpy(std::move(res.sum), {np}), vector_to_numpy(std::move(res.sumsq), {np}),
                              res.return_sum, res.return_sumsq, res.steps);
      },
      py::arg("spec"), py::arg("mdp"), py::arg("n"), py::arg("seed"), py::arg("stderr"),
      "Sample n trajectories and accumulate their gradients without storing them: (sum, sumsq, return_sum, return_sumsq, steps).");

  m.def(
      "estimator_grid",
      [](std::int64_t n) {
        if (n < 1) throw std::invalid_argument("n must be >= 1, got " + std::to_string(n));
        const reduce::Grid grid = est::estimator_grid(n);
        return py::make_tuple(grid.block, grid.blocks);
      },
      py::arg("n"), "The estimators' block grid for n trajectories: (block, blocks).");

  m.def(
      "fused_partial",
      [](const EstimatorSpec& es, const FiniteMDP& mdp, std::int64_t n, std::uint64_t seed, bool stderr_,
         std::int64_t block_lo, std::int64_t block_hi, const std::optional<py::list>& statistics) {
        const reduce::Grid grid = shard_grid(es, mdp, n, block_lo, block_hi);
        const est::PolicyTables pol = policy_tables(es.probs, es.features, es.net);
        est::WeightSpec spec = fused_spec(es, pol, mdp);
        est::LooTerms loo;
        if (leave_one_out(spec)) {  // the batch's statistics, merged from the shards' nodes
          if (!statistics) throw std::invalid_argument("the leave-one-out baselines need the whole batch's statistics");
          loo.apply(merge_statistics(loo_nodes_from_python(*statistics, mdp.horizon()), grid), n, spec);
        }
        const int threads = resolve_threads(es.threads);
        StopToken stop(python_interrupted);
        std::vector<reduce::Part<est::TrajectoryScorer::Partial>> nodes;
        bool ok;
        const std::optional<int> q = est::time_tables::one_pass(spec, stderr_, n, mdp);
        std::unique_ptr<est::time_tables::Tables> tables;
        {
          py::gil_scoped_release release;
          if (q) {  // the statistics are not needed: the shard's tables add up exactly
            ok = est::time_tables::simulate(mdp, es.probs.data(), spec.gamma, *q, grid, block_lo, block_hi, seed,
                                            threads, stop, nodes, tables);
          } else {
            ok = est::fused_nodes(mdp, pol, spec, grid, block_lo, block_hi, seed, threads, stderr_, stop, nodes);
          }
          if (ok) nodes = reduce::combine_siblings(std::move(nodes), est::TrajectoryScorer::combine);
        }
        if (!ok) throw py::error_already_set();
        py::object tables_obj = py::none(), exponent_obj = py::none();
        if (q) {
          tables_obj = tables_to_numpy(*tables, mdp.horizon(), pol.S * pol.A);
          exponent_obj = py::int_(*q);
        }
        py::list out;
        for (auto& p : nodes) {
          const auto nt = static_cast<py::ssize_t>(p.value.table.size());
          const auto nq = static_cast<py::ssize_t>(p.value.sumsq.size());
          out.append(py::make_tuple(p.node.level, p.node.index, vector_to_numpy(std::move(p.value.table), {nt}),
                                    vector_to_numpy(std::move(p.value.sumsq), {nq}), p.value.return_sum,
                                    p.value.return_sumsq, p.value.steps));
        }
        return py::make_tuple(out, tables_obj, exponent_obj);
      },
      py::arg("spec"), py::arg("mdp"), py::arg("n"), py::arg("seed"), py::arg("stderr"), py::arg("block_lo"),
      py::arg("block_hi"), py::arg("statistics") = py::none(),
      "The fused estimator's tree nodes for the blocks [block_lo, block_hi): (nodes, tables, exponent), nodes a list "
      "of (level, index, table, sumsq, return_sum, return_sumsq, steps); with the one-pass time baseline the nodes' "
      "tables are empty and `tables` holds the shard's exact per-step tables (uint64 words) with the fixed-point "
      "`exponent`, else both are None.");

  m.def(
      "fused_loo_partial",
      [](const EstimatorSpec& es, const FiniteMDP& mdp, std::int64_t n, std::uint64_t seed, std::int64_t block_lo,
         std::int64_t block_hi) {
        const reduce::Grid grid = shard_grid(es, mdp, n, block_lo, block_hi);
        const int threads = resolve_threads(es.threads);
        StopToken stop(python_interrupted);
        std::vector<reduce::Part<est::LooPartial>> nodes;
        bool ok;
        {
          py::gil_scoped_release release;
          ok = est::fused_loo_nodes(mdp, es.probs.data(), grid, block_lo, block_hi, seed, threads, stop, nodes);
          if (ok) nodes = reduce::combine_siblings(std::move(nodes), est::LooPartial::combine);
        }
        if (!ok) throw py::error_already_set();
        return loo_nodes_to_python(std::move(nodes));
      },
      py::arg("spec"), py::arg("mdp"), py::arg("n"), py::arg("seed"), py::arg("block_lo"), py::arg("block_hi"),
      "The leave-one-out statistics' tree nodes for the blocks [block_lo, block_hi): a list of (level, index, "
      "colsum, ends).");

  m.def(
      "merge_partials",
      [](const EstimatorSpec& es, const py::list& nodes, std::int64_t blocks, bool stderr_,
         const std::optional<py::list>& tables, int exponent) {
        const est::PolicyTables pol = policy_tables(es.probs, es.features, es.net);
        const std::int64_t table_size = tables ? 0 : stderr_ ? pol.n_params() : pol.S * pol.A;
        const std::int64_t sumsq_size = stderr_ ? pol.n_params() : 0;
        std::vector<reduce::Part<est::TrajectoryScorer::Partial>> parts;
        for (const py::handle h : nodes) {
          const auto t = h.cast<py::tuple>();
          if (t.size() != 7) throw std::invalid_argument("a partial result's node must have 7 fields");
          reduce::Part<est::TrajectoryScorer::Partial> part;
          part.node.level = t[0].cast<int>();
          part.node.index = t[1].cast<std::int64_t>();
          const auto table = t[2].cast<carray<double>>();
          const auto sumsq = t[3].cast<carray<double>>();
          if (table.ndim() != 1 || table.shape(0) != table_size || sumsq.ndim() != 1 || sumsq.shape(0) != sumsq_size) {
            throw std::invalid_argument("a partial result's node does not match the policy's size");
          }
          part.value.table.assign(table.data(), table.data() + table_size);
          part.value.sumsq.assign(sumsq.data(), sumsq.data() + sumsq_size);
          part.value.return_sum = t[4].cast<double>();
          part.value.return_sumsq = t[5].cast<double>();
          part.value.steps = t[6].cast<std::int64_t>();
          parts.push_back(std::move(part));
        }
        est::FusedSink<kLanes>::Totals res;
        if (tables) {  // the one-pass time baseline: the shards' tables, summed exactly
          if (stderr_ || exponent < -1000 || exponent > 1000) {
            throw std::invalid_argument("per-step tables need stderr=False and a fixed-point exponent in [-1000, 1000]");
          }
          const est::time_tables::Tables sum = tables_from_python(*tables, pol.S * pol.A);
          py::gil_scoped_release release;
          res = est::time_tables::totals(std::move(parts), sum, pol, es.gamma, exponent, blocks);
        } else {
          py::gil_scoped_release release;
          res = est::fused_totals(std::move(parts), pol, blocks, stderr_);
        }
        const std::int64_t np = pol.n_params();
        return py::make_tuple(vector_to_numpy(std::move(res.sum), {np}), vector_to_numpy(std::move(res.sumsq), {np}),
                              res.return_sum, res.return_sumsq, res.steps);
      },
      py::arg("spec"), py::arg("nodes"), py::arg("blocks"), py::arg("stderr"), py::arg("tables") = py::none(),
      py::arg("exponent") = 0,
      "Merge the nodes of partial results that tile the blocks [0, blocks): (sum, sumsq, return_sum, return_sumsq, "
      "steps); `tables`, the shards' per-step tables of the one-pass time baseline, with their `exponent`.");

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
