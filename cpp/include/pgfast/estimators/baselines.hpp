// The weights of the likelihood-ratio estimators, formed from each trajectory's rewards, and the
// batch statistics of the leave-one-out baselines (docs/theory.md, "REINFORCE and reward-to-go"
// and "Baselines and advantages").
//
//   "return":        w_{i,t} = G_i - b_i,                   G_i = sum_t gamma^t r_t
//   "reward_to_go":  w_{i,t} = gamma^t (G_{i,t} - b_{i,t}), G_{i,t} = sum_{t'>=t} gamma^(t'-t) r_t'
//
//   baselines   none    b = 0
//               table   b_{i,t} = V_t(s_t)  (return weights: V_0(s_0))
//               mean    b_i = (sum_{j != i} G_j) / (N - 1)
//               time    b_{i,t} = (sum_{j != i, len_j > t} G_{j,t}) / (count_t - 1),  count_t = #{j : len_j > t}
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "pgfast/reduce.hpp"
#include "pgfast/returns.hpp"

namespace pgfast::est {

// The block grid of every estimator's reduction over n trajectories (reduce.hpp): blocks of at
// least 256 trajectories, at most 64 of them; it depends on n only, so the sums are the same for
// any thread count and any split of [0, n) at block boundaries.
inline reduce::Grid estimator_grid(std::int64_t n) { return reduce::Grid::make(n, 256, 64); }

// How the weight of step t of a trajectory is formed from its rewards.
enum class WeightKind { Return, RewardToGo, Explicit };
enum class BaselineKind { None, Table, LeaveOneOutMean, LeaveOneOutTime };

struct WeightSpec {
  WeightKind kind = WeightKind::RewardToGo;
  double gamma = 1.0;
  BaselineKind baseline = BaselineKind::None;
  const double* table = nullptr;  // (H, S) baseline values V_t(s) for BaselineKind::Table
  std::int64_t S = 0;
  // Leave-one-out statistics of the batch: the sum of the returns (baseline "mean") and the
  // per-t coefficients of the time baseline (LooTerms).
  double return_sum = 0.0;
  std::int64_t n = 0;
  const double* time_alpha = nullptr;  // (H,) from LooTerms
  const double* time_beta = nullptr;
  const double* time_u = nullptr;      // alpha_t / gamma^t
};

// Weights w[0..len) of one trajectory (states s, rewards r); returns its discounted return G_0.
// `gpow[t]` = gamma^t. Baselines: Table -> b_t = V_t(s_t) (return weights: V_0(s_0));
// LeaveOneOutMean -> the mean return of the other trajectories; LeaveOneOutTime -> the mean
// reward-to-go at t of the other trajectories still running at t (0 when there are none).
inline double trajectory_weights(const std::int32_t* s, const double* r, std::int64_t len, const WeightSpec& ws,
                                 const double* gpow, double* w) {
  const double G = suffix_returns(r, len, ws.gamma, gpow, w);  // reward-to-go G_t for now
  const double loo_mean = ws.n > 1 ? (ws.return_sum - G) / static_cast<double>(ws.n - 1) : 0.0;
  if (ws.kind == WeightKind::RewardToGo) {
    switch (ws.baseline) {  // one loop per kind: no branch per step
      case BaselineKind::None:
        if (ws.gamma != 1.0) {  // gamma^t = 1 otherwise
          for (std::int64_t t = 0; t < len; ++t) w[t] *= gpow[t];
        }
        break;
      case BaselineKind::Table:
        for (std::int64_t t = 0; t < len; ++t) w[t] = gpow[t] * (w[t] - ws.table[t * ws.S + s[t]]);
        break;
      case BaselineKind::LeaveOneOutMean:
        for (std::int64_t t = 0; t < len; ++t) w[t] = gpow[t] * (w[t] - loo_mean);
        break;
      case BaselineKind::LeaveOneOutTime:
        // gamma^t (G_t - (sum_t - G_t) / (count_t - 1)) = alpha_t G_t - beta_t (LooTerms)
        for (std::int64_t t = 0; t < len; ++t) w[t] = ws.time_alpha[t] * w[t] - ws.time_beta[t];
        break;
    }
  } else if (ws.kind == WeightKind::Return) {
    double b = 0.0;
    if (ws.baseline == BaselineKind::Table && len > 0) b = ws.table[s[0]];
    if (ws.baseline == BaselineKind::LeaveOneOutMean) b = loo_mean;
    for (std::int64_t t = 0; t < len; ++t) w[t] = G - b;
  }
  return G;
}

// Batch statistics for the leave-one-out baselines, by block (reduced along reduce.hpp's tree):
// per-t column sums of the rewards of the trajectories running at t, and the number of
// trajectories of each length. No trajectory's reward-to-go is formed: a trajectory that has
// ended by t has G_t = 0, so sum_i G_{i,t} = sum_{t' >= t} gamma^(t'-t) R_t' with R_t' the column
// sum at t' (LooTerms), and sum_i G_i = sum_0.
struct LooPartial {
  std::vector<double> colsum;      // (H)
  std::vector<std::int64_t> ends;  // (H + 1): trajectories per length
  explicit LooPartial(std::int64_t H = 0)
      : colsum(static_cast<std::size_t>(H), 0.0), ends(static_cast<std::size_t>(H + 1), 0) {}
  void add_step(std::int64_t t, double r) noexcept { colsum[static_cast<std::size_t>(t)] += r; }
  void end(std::int64_t len) noexcept { ++ends[static_cast<std::size_t>(len)]; }
  void add(const LooPartial& o) {
    for (std::size_t t = 0; t < colsum.size(); ++t) colsum[t] += o.colsum[t];
    for (std::size_t t = 0; t < ends.size(); ++t) ends[t] += o.ends[t];
  }
  static constexpr auto combine = [](LooPartial& left, LooPartial& right) { left.add(right); };
};

// The leave-one-out baselines' terms of a batch, from the root of its statistics. The reward-to-go
// sums and running counts are sum_t = sum_i G_{i,t} = R_t + gamma sum_{t+1} and
// count_t = #{i : len_i > t}; the time baseline is then w_t = alpha_t G_t - beta_t with
// k_t = 1 / (count_t - 1) (0 when no other trajectory runs at t), u_t = 1 + k_t,
// alpha_t = gamma^t u_t, beta_t = gamma^t sum_t k_t; the mean baseline needs sum_i G_i = sum_0.
// The terms own the arrays the WeightSpec points to.
struct LooTerms {
  std::vector<double> alpha, beta, u;

  // Forms the terms from `root` and points `spec` at them (spec.return_sum, spec.n = n).
  void apply(const LooPartial& root, std::int64_t n, WeightSpec& spec) {
    const std::int64_t H = static_cast<std::int64_t>(root.colsum.size());
    const std::vector<double> gpow = powers(spec.gamma, H);
    alpha.assign(static_cast<std::size_t>(H), 0.0);
    beta.assign(static_cast<std::size_t>(H), 0.0);
    u.assign(static_cast<std::size_t>(H), 0.0);
    double acc = 0.0;          // sum_t, backwards
    std::int64_t running = 0;  // count_t
    for (std::int64_t t = H - 1; t >= 0; --t) {
      const auto k_t = static_cast<std::size_t>(t);
      acc = root.colsum[k_t] + spec.gamma * acc;
      running += root.ends[k_t + 1];
      const double k = running > 1 ? 1.0 / static_cast<double>(running - 1) : 0.0;
      u[k_t] = 1.0 + k;
      alpha[k_t] = gpow[k_t] * u[k_t];
      beta[k_t] = gpow[k_t] * acc * k;
    }
    spec.return_sum = acc;
    spec.n = n;
    spec.time_alpha = alpha.data();
    spec.time_beta = beta.data();
    spec.time_u = u.data();
  }
};

// The statistics of a stored (N, H) batch: each block's trajectories in index order, the blocks
// along the canonical tree (the fused estimator's first pass gives the same sums up to the order
// of the additions inside a block).
inline LooPartial loo_statistics(const double* rewards, const std::int32_t* lengths, std::int64_t N, std::int64_t H) {
  const reduce::Grid grid = estimator_grid(N);
  reduce::NodeStack<LooPartial> nodes;
  for (std::int64_t b = 0; b < grid.blocks; ++b) {
    LooPartial part(H);
    for (std::int64_t i = grid.begin(b); i < grid.end(b); ++i) {
      const std::int64_t len = lengths[i];
      const double* r = rewards + i * H;
      for (std::int64_t t = 0; t < len; ++t) part.add_step(t, r[t]);
      part.end(len);
    }
    nodes.push(b, std::move(part), LooPartial::combine);
  }
  return reduce::merge_nodes(std::move(nodes.parts()), grid.blocks, LooPartial::combine, "the leave-one-out statistics");
}

// The fused estimator's first pass for the leave-one-out baselines: a rollout sink that adds each
// step's reward to its block's column sums (no trajectory is stored).
class LooSink {
 public:
  explicit LooSink(std::int64_t H) : H_(H), part_(H) {}
  int begin(std::int64_t, std::int32_t) { return 0; }
  void step(int, std::int64_t, std::int64_t t, std::int32_t, std::int32_t, double r) noexcept { part_.add_step(t, r); }
  void end(int, std::int64_t, std::int64_t len, std::int32_t) noexcept { part_.end(len); }
  void block_done(std::int64_t b) {
    nodes.push(b, std::move(part_), LooPartial::combine);
    part_ = LooPartial(H_);
  }
  reduce::NodeStack<LooPartial> nodes;

 private:
  std::int64_t H_;
  LooPartial part_;
};

}  // namespace pgfast::est
