// The fused estimator: the likelihood-ratio gradient of score.hpp formed while the trajectories
// are sampled (sampling.hpp), without storing the (N, H) batch (docs/theory.md, "The
// likelihood-ratio gradient").
//
//   g = (1/N) sum_i sum_t w_{i,t} grad log pi(a_t|s_t),   w from the rewards (baselines.hpp)
//
// Each trajectory's weights are formed when it ends. The leave-one-out baselines ("mean", "time")
// need statistics of the whole batch: a first pass simulates the batch into LooSink (the per-t
// column sums of the rewards and the lengths: O(H) memory), and the second pass, the same
// trajectories again (counter-based streams), forms the weights as the stored path does. The
// time baseline without standard errors, where its tables are small, runs in one pass instead
// (time_tables.hpp).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "pgfast/estimators/baselines.hpp"
#include "pgfast/estimators/score.hpp"
#include "pgfast/reduce.hpp"
#include "pgfast/sampling.hpp"

namespace pgfast::est {

// Fused estimator: a rollout sink that keeps each running trajectory in a slot buffer and, when
// it ends, forms its weights and adds its gradient. Memory O(kLanes H + n_params) per worker.
//
// The buffers are written at every step of the rollout's tight loop and share the L1 cache with
// the logit table the finished trajectories are added to, so they are kept small: flat indices
// s * A + a as 32 bits, and the states only where the weights need them (not for reward-to-go
// totals without a baseline). Random MDP, N = 1024: 0.86 -> 0.76 ms per call.
template <int Lanes>
class FusedSink {
 public:
  FusedSink(const PolicyTables& pol, const WeightSpec& spec, const double* gpow, std::int64_t H, bool per_trajectory)
      : scorer(pol, per_trajectory), spec_(spec), gpow_(gpow), H_(H), A_(pol.A),
        rtg_only_(!per_trajectory && spec.kind == WeightKind::RewardToGo &&
                  (spec.baseline == BaselineKind::None || spec.baseline == BaselineKind::LeaveOneOutTime)),
        time_{spec.time_alpha, spec.time_u, spec.time_beta} {
    if (pol.S * pol.A > static_cast<std::int64_t>(std::numeric_limits<std::uint32_t>::max())) {
      throw std::invalid_argument("the fused estimator needs n_states * n_actions < 2^32");
    }
    if (!rtg_only_) s_.resize(static_cast<std::size_t>(Lanes * H));
    sa_.resize(static_cast<std::size_t>(Lanes * H));
    r_.resize(static_cast<std::size_t>(Lanes * H));
    w_.resize(static_cast<std::size_t>(H));
    for (int k = Lanes - 1; k >= 0; --k) free_.push_back(k);
  }
  int begin(std::int64_t, std::int32_t) {
    const int k = free_.back();
    free_.pop_back();
    return k;
  }
  void step(int k, std::int64_t, std::int64_t t, std::int32_t s, std::int32_t a, double r) {
    const std::int64_t o = k * H_ + t;
    if (!rtg_only_) s_[o] = s;
    sa_[o] = static_cast<std::uint32_t>(s * A_ + a);
    r_[o] = r;
  }
  void end(int k, std::int64_t, std::int64_t len, std::int32_t) {
    const std::uint32_t* sa = sa_.data() + k * H_;
    double G;
    if (rtg_only_) {
      G = scorer.add_reward_to_go([sa](std::int64_t t) { return static_cast<std::int64_t>(sa[t]); }, r_.data() + k * H_,
                                  len, spec_.gamma, gpow_,
                                  spec_.baseline == BaselineKind::LeaveOneOutTime ? &time_ : nullptr);
    } else {
      const std::int32_t* s = s_.data() + k * H_;
      G = trajectory_weights(s, r_.data() + k * H_, len, spec_, gpow_, w_.data());
      scorer.add_indexed_steps(s, sa, w_.data(), len);
      scorer.finish(nullptr);
    }
    return_sum_ += G;
    return_sumsq_ += G * G;
    steps_ += len;
    free_.push_back(k);
  }
  // After block b (reduce.hpp): its statistic joins this worker's nodes of the canonical tree.
  void block_done(std::int64_t b) {
    TrajectoryScorer::Partial part = scorer.take();
    part.return_sum = return_sum_;
    part.return_sumsq = return_sumsq_;
    part.steps = steps_;
    return_sum_ = return_sumsq_ = 0.0;
    steps_ = 0;
    nodes.push(b, std::move(part), TrajectoryScorer::combine);
  }

  // The parameter-space sums of a run (fused_totals).
  struct Totals {
    std::vector<double> sum, sumsq;
    double return_sum = 0.0, return_sumsq = 0.0;
    std::int64_t steps = 0;
  };

  TrajectoryScorer scorer;
  reduce::NodeStack<TrajectoryScorer::Partial> nodes;

 private:
  double return_sum_ = 0.0, return_sumsq_ = 0.0;
  std::int64_t steps_ = 0;
  const WeightSpec& spec_;
  const double* gpow_;
  std::int64_t H_, A_;
  std::vector<std::int32_t> s_;   // states of the running trajectories (empty when rtg_only_)
  std::vector<std::uint32_t> sa_;  // and their flat indices s * A + a
  std::vector<double> r_, w_;
  std::vector<int> free_;
  bool rtg_only_;  // reward-to-go totals without a baseline or with the time baseline: add_reward_to_go
  TrajectoryScorer::TimeTerms time_;
};

// Forwards a Sink's calls to an object that outlives the rollout (simulate() copies its sinks).
template <class T>
struct SinkRef {
  T* target;
  int begin(std::int64_t i, std::int32_t s0) { return target->begin(i, s0); }
  void step(int k, std::int64_t i, std::int64_t t, std::int32_t s, std::int32_t a, double r) {
    target->step(k, i, t, s, a, r);
  }
  void end(int k, std::int64_t i, std::int64_t len, std::int32_t f) { target->end(k, i, len, f); }
  void block_done(std::int64_t b) { target->block_done(b); }
};

// Simulates the blocks [block_lo, block_hi) of the grid into one sink per worker, made by
// make(worker) on the worker's thread (so that its buffers and tables are first touched, and
// cached, on the core that fills them), and moves the workers' tree nodes (their `nodes` stacks)
// to `nodes` (and the sinks to `keep` when not null). Returns false if the run was interrupted
// (the nodes are then incomplete).
template <class Sink, class P, class Make>
bool simulate_to_nodes(const FiniteMDP& mdp, const double* probs, const reduce::Grid& grid, std::int64_t block_lo,
                       std::int64_t block_hi, std::uint64_t seed, int threads, StopToken& stop, Make&& make,
                       std::vector<reduce::Part<P>>& nodes, std::vector<std::unique_ptr<Sink>>* keep = nullptr) {
  threads = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, block_hi - block_lo)));
  std::vector<std::unique_ptr<Sink>> sinks(static_cast<std::size_t>(threads));
  const bool ok = simulate_blocks(
      mdp, probs, grid, seed, threads,
      [&](int w) {
        sinks[w] = make();
        return SinkRef<Sink>{sinks[w].get()};
      },
      stop, block_lo, block_hi);
  if (!ok) return false;
  for (const auto& sk : sinks) {
    if (!sk) continue;
    for (auto& p : sk->nodes.parts()) nodes.push_back(std::move(p));
  }
  if (keep) *keep = std::move(sinks);
  return true;
}

// The fused estimator's tree nodes for the blocks [block_lo, block_hi) of the grid of n = grid.n
// trajectories: a shard's partial result, or all of them. With a leave-one-out baseline, `spec`
// must already hold the whole batch's terms (LooTerms of fused_loo_nodes' root).
inline bool fused_nodes(const FiniteMDP& mdp, const PolicyTables& pol, const WeightSpec& spec,
                        const reduce::Grid& grid, std::int64_t block_lo, std::int64_t block_hi, std::uint64_t seed,
                        int threads, bool per_trajectory, StopToken& stop,
                        std::vector<reduce::Part<TrajectoryScorer::Partial>>& nodes) {
  using Sink = FusedSink<kLanes>;
  const std::int64_t H = mdp.horizon();
  const std::vector<double> gpow = powers(spec.gamma, H);
  return simulate_to_nodes<Sink>(
      mdp, pol.probs, grid, block_lo, block_hi, seed, threads, stop,
      [&] { return std::make_unique<Sink>(pol, spec, gpow.data(), H, per_trajectory); }, nodes);
}

// The first pass of a fused estimator with a leave-one-out baseline: the tree nodes of the batch's
// per-t column sums of the rewards and its lengths (O(H) per worker) for the blocks
// [block_lo, block_hi).
inline bool fused_loo_nodes(const FiniteMDP& mdp, const double* probs, const reduce::Grid& grid,
                            std::int64_t block_lo, std::int64_t block_hi, std::uint64_t seed, int threads,
                            StopToken& stop, std::vector<reduce::Part<LooPartial>>& nodes) {
  const std::int64_t H = mdp.horizon();
  return simulate_to_nodes<LooSink>(mdp, probs, grid, block_lo, block_hi, seed, threads, stop,
                                    [H] { return std::make_unique<LooSink>(H); }, nodes);
}

// The nodes of the whole batch (or of shards that tile it) as parameter-space sums.
inline FusedSink<kLanes>::Totals fused_totals(std::vector<reduce::Part<TrajectoryScorer::Partial>>&& nodes,
                                             const PolicyTables& pol, std::int64_t blocks, bool per_trajectory) {
  TrajectoryScorer::Partial root =
      reduce::merge_nodes(std::move(nodes), blocks, TrajectoryScorer::combine, "the fused estimator");
  FusedSink<kLanes>::Totals out;
  TrajectoryScorer::to_params(pol, per_trajectory, root, out.sum, out.sumsq);
  out.return_sum = root.return_sum;
  out.return_sumsq = root.return_sumsq;
  out.steps = root.steps;
  return out;
}

}  // namespace pgfast::est
