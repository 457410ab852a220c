// The score of a batch of trajectories: the likelihood-ratio policy gradient for given per-step
// weights (docs/theory.md, "The likelihood-ratio gradient" and "Softmax policies and their scores").
//
//   score       g = (1/N) sum_i sum_t w_{i,t} grad log pi(a_t|s_t)
//
// The weights come from the rewards (baselines.hpp) or are given. The score of a softmax policy is
// grad z(s,a) - sum_a' pi(a'|s) grad z(s,a') (z the logits), so a trajectory's gradient in logit
// coordinates is, per visited state s,
//
//   g_z(s, .) = c(s, .) - C(s) pi(.|s),   c(s,a) = sum of the weights of the steps (s, a), C(s) = sum_a c(s,a)
//
// and needs no per-step score vector: tabular parameters are the logits; a linear policy maps
// g_z to sum_{s,a} g_z(s,a) phi(s,a); an MLP backpropagates it (mlp.hpp).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "pgfast/estimators/baselines.hpp"
#include "pgfast/parallel.hpp"
#include "pgfast/policy.hpp"
#include "pgfast/reduce.hpp"
#include "pgfast/returns.hpp"

namespace pgfast::est {

// What the estimators need of a policy: its probability table and, for a linear policy, features;
// for any other differentiable policy (the MLP), the map from logit gradients to parameters.
struct PolicyTables {
  std::int64_t S = 0, A = 0;
  const double* probs = nullptr;     // (S, A)
  const double* features = nullptr;  // (S, A, p) for a linear policy, null otherwise
  std::int64_t p = 0;
  const LogitMap* map = nullptr;     // for a policy that is neither tabular nor linear
  std::int64_t n_params() const { return map ? map->n_params() : features ? p : S * A; }
};

// Thrown by score_batch on a step whose state or action is outside the policy's tables (it checks
// each row as it reads it); the caller then names the first bad step (the bindings' check_indices).
struct IndexOutOfRange : std::invalid_argument {
  IndexOutOfRange() : std::invalid_argument("a state or action of the batch is outside the policy's tables") {}
};

// True when 0 <= s[t] < S and 0 <= a[t] < A for every t < len: one unsigned compare per index
// (negative values wrap above the bound), or-ed over the row without branches (vectorised).
inline bool row_in_range(const std::int32_t* s, const std::int32_t* a, std::int64_t len, std::int64_t S,
                         std::int64_t A) noexcept {
  constexpr std::int64_t kMax = std::numeric_limits<std::uint32_t>::max();
  const auto uS = static_cast<std::uint32_t>(std::min(S, kMax)), uA = static_cast<std::uint32_t>(std::min(A, kMax));
  std::uint32_t bad = 0;
  for (std::int64_t t = 0; t < len; ++t) {
    bad |= static_cast<std::uint32_t>(static_cast<std::uint32_t>(s[t]) >= uS) |
           static_cast<std::uint32_t>(static_cast<std::uint32_t>(a[t]) >= uA);
  }
  return bad == 0;
}

// row_in_range() that also writes the steps' flat indices idx[t] = s[t] * A + a[t] (S * A < 2^32),
// in the same vectorised pass: a consumer that reads each index more than once (the reward-to-go
// recursion and its per-segment pass) then loads one array instead of two and multiplies once.
inline bool row_indices(const std::int32_t* s, const std::int32_t* a, std::int64_t len, std::int64_t S,
                        std::int64_t A, std::uint32_t* idx) noexcept {
  const auto uS = static_cast<std::uint32_t>(S), uA = static_cast<std::uint32_t>(A);
  std::uint32_t bad = 0;
  for (std::int64_t t = 0; t < len; ++t) {
    const auto st = static_cast<std::uint32_t>(s[t]), at = static_cast<std::uint32_t>(a[t]);
    bad |= static_cast<std::uint32_t>(st >= uS) | static_cast<std::uint32_t>(at >= uA);
    idx[t] = st * uA + at;
  }
  return bad == 0;
}

// Per-thread accumulator of per-trajectory gradients: sum, sum of squares, optional rows.
class TrajectoryScorer {
 public:
  // per_trajectory = false: only the total is needed (no standard errors), so steps are added
  // straight into one logit table and mapped to the parameters once, at the root of the reduction (to_params()).
  TrajectoryScorer(const PolicyTables& pol, bool per_trajectory = true)
      : pol_(pol),
        per_traj_(per_trajectory),
        gz_(static_cast<std::size_t>(pol.S * pol.A), 0.0),
        mark_(static_cast<std::size_t>(pol.S), 0),
        gp_(static_cast<std::size_t>(pol.map || pol.features ? pol.n_params() : 0), 0.0),
        sum(static_cast<std::size_t>(pol.n_params()), 0.0),
        sumsq(static_cast<std::size_t>(per_trajectory ? pol.n_params() : 0), 0.0) {
    if (pol.features && per_trajectory) {
      // centred features phi(s,a) - sum_a' pi(a'|s) phi(s,a'): a linear score is one row of it
      const std::int64_t A = pol.A, p = pol.p;
      centred_.assign(static_cast<std::size_t>(pol.S * A * p), 0.0);
      for (std::int64_t s = 0; s < pol.S; ++s) {
        const double* phi = pol.features + s * A * p;
        double* c = centred_.data() + s * A * p;
        for (std::int64_t j = 0; j < p; ++j) {
          double mean = 0.0;
          for (std::int64_t a = 0; a < A; ++a) mean += pol.probs[s * A + a] * phi[a * p + j];
          for (std::int64_t a = 0; a < A; ++a) c[a * p + j] = phi[a * p + j] - mean;
        }
      }
    }
  }

  // Adds the steps t < len of one trajectory with weights w[t]: to the logit table (totals, and
  // tabular or MLP rows, whose visited states are listed for finish()), or for a linear policy's
  // rows the score row times the weight (O(p) per step).
  void add_steps(const std::int32_t* s, const std::int32_t* a, const double* w, std::int64_t len) {
    const std::int64_t A = pol_.A;
    add_steps_at([s, a, A](std::int64_t t) { return s[t] * A + a[t]; }, s, w, len);
  }
  // add_steps() with the steps' flat indices sa[t] = s[t] * A + a[t] (the fused estimator stores
  // those, which saves the totals' loop a load and a multiplication per step).
  void add_indexed_steps(const std::int32_t* s, const std::uint32_t* sa, const double* w, std::int64_t len) {
    add_steps_at([sa](std::int64_t t) { return static_cast<std::int64_t>(sa[t]); }, s, w, len);
  }

  // Totals only (no per-trajectory bookkeeping): adds one trajectory's reward-to-go weights
  //   w_t = gamma^t G_t                     (time = null: no baseline), or
  //   w_t = gamma^t u_t G_t - time->beta_t  (the leave-one-out time baseline, u_t = 1 + k_t)
  // at its steps' flat indices idx(t), without writing G_t anywhere; returns G_0.
  // On returns.hpp's segmented recursion: each step adds gamma^t u_t L_t - beta_t as its segment's
  // recursion reaches it; since G_t = L_t + gamma^(e - t) G_e, each step t of a segment that is not
  // the last then still gets u_t gamma^e G_e, one constant per segment times u_t, added in a second
  // pass over the segment's indices. The recursion and the scatter share one loop (two passes
  // fewer than suffix_returns, the weights and add_steps); the sums are regrouped, so the result
  // agrees up to rounding.
  struct TimeTerms {
    const double *alpha, *u, *beta;  // alpha_t = gamma^t u_t
  };
  template <class Index>
  double add_reward_to_go(Index idx, const double* r, std::int64_t len, double gamma, const double* gpow,
                          const TimeTerms* time = nullptr) {
    if (time) {
      return gamma == 1.0 ? add_reward_to_go_impl<true, true>(idx, r, len, gamma, gpow, *time)
                          : add_reward_to_go_impl<false, true>(idx, r, len, gamma, gpow, *time);
    }
    return gamma == 1.0 ? add_reward_to_go_impl<true, false>(idx, r, len, gamma, gpow, TimeTerms{})
                        : add_reward_to_go_impl<false, false>(idx, r, len, gamma, gpow, TimeTerms{});
  }

  // Closes the current trajectory: adds its gradient to sum / sumsq (and writes it to `row`,
  // n_params entries, when not null), then clears the scratch.
  void finish(double* row) {
    if (!per_traj_) return;
    const std::int64_t A = pol_.A;
    if (pol_.map) {  // backpropagate each visited state's logit gradient
      u_.resize(static_cast<std::size_t>(A));
      for (const std::int32_t s : touched_) {
        const double C = row_sum(s);
        for (std::int64_t a = 0; a < A; ++a) {
          const std::int64_t k = s * A + a;
          u_[a] = gz_[k] - C * pol_.probs[k];
          gz_[k] = 0.0;
        }
        pol_.map->vjp_state(s, u_.data(), gp_.data(), scratch_);
        mark_[s] = 0;
      }
      touched_.clear();
      flush_params(row);
    } else if (!pol_.features) {
      if (row) std::fill(row, row + pol_.n_params(), 0.0);
      double* g = gz_.data();
      std::uint8_t* mark = mark_.data();
      for (const std::int32_t s : touched_) {
        const std::int64_t o = s * A;
        close_row(g + o, pol_.probs + o, sum.data() + o, sumsq.data() + o, row ? row + o : nullptr, A);
        mark[s] = 0;
      }
      touched_.clear();
    } else {
      flush_params(row);
    }
  }

  // One block's statistic, reduced over the canonical tree of reduce.hpp: in totals mode the
  // accumulated logit table (S A; mapped to the parameters once, at the root, by to_params()),
  // else the sums of the per-trajectory gradients and of their squares (n_params each); with the
  // block's return sums and step count.
  struct Partial {
    std::vector<double> table, sumsq;
    double return_sum = 0.0, return_sumsq = 0.0;
    std::int64_t steps = 0;
    // left.add(right): elementwise left + right, the only arithmetic of the reduction tree.
    void add(const Partial& o) {
      for (std::size_t k = 0; k < table.size(); ++k) table[k] += o.table[k];
      for (std::size_t k = 0; k < sumsq.size(); ++k) sumsq[k] += o.sumsq[k];
      return_sum += o.return_sum;
      return_sumsq += o.return_sumsq;
      steps += o.steps;
    }
  };
  static constexpr auto combine = [](Partial& left, Partial& right) { left.add(right); };

  // Moves the trajectories added since the last take() out as a Partial (the caller fills in its
  // return sums and steps) and starts again from zero.
  Partial take() {
    Partial p;
    if (per_traj_) {
      p.table.swap(sum);
      p.sumsq.swap(sumsq);
      sum.assign(p.table.size(), 0.0);
      sumsq.assign(p.sumsq.size(), 0.0);
    } else {
      p.table.swap(gz_);
      gz_.assign(p.table.size(), 0.0);
    }
    return p;
  }

  // The root of the reduction as parameter-space sums: `sum` and `sumsq` (n_params; sumsq zero in
  // totals mode). In totals mode the logit table is centred per state and mapped once.
  static void to_params(const PolicyTables& pol, bool per_trajectory, Partial& root, std::vector<double>& sum,
                        std::vector<double>& sumsq) {
    const std::int64_t np = pol.n_params();
    if (per_trajectory) {
      sum = std::move(root.table);
      sumsq = std::move(root.sumsq);
      return;
    }
    sum.assign(static_cast<std::size_t>(np), 0.0);
    sumsq.assign(static_cast<std::size_t>(np), 0.0);
    double* gz = root.table.data();
    const std::int64_t A = pol.A;
    for (std::int64_t s = 0; s < pol.S; ++s) {
      const double C = sum_of(gz + s * A, A);
      for (std::int64_t a = 0; a < A; ++a) {
        const std::int64_t k = s * A + a;
        const double v = gz[k] - C * pol.probs[k];
        if (pol.map || pol.features) {
          gz[k] = v;  // the logit gradient table, mapped below
        } else {
          sum[k] += v;
        }
      }
    }
    if (pol.map) {
      pol.map->vjp_all(gz, sum.data());
    } else if (pol.features) {  // sum += Phi^T g_z, Phi the (S A, p) feature matrix (one gemv)
      using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      const Eigen::Map<const RowMajor> phi(pol.features, pol.S * A, pol.p);
      Eigen::Map<Eigen::VectorXd>(sum.data(), pol.p).noalias() +=
          phi.transpose() * Eigen::Map<const Eigen::VectorXd>(gz, pol.S * A);
    }
  }

 private:
  // Adds the per-trajectory parameter gradient gp_ to sum / sumsq (and row), then clears it.
  void flush_params(double* row) {
    const std::int64_t np = pol_.n_params();
    for (std::int64_t j = 0; j < np; ++j) {
      sum[j] += gp_[j];
      sumsq[j] += gp_[j] * gp_[j];
      if (row) row[j] = gp_[j];
      gp_[j] = 0.0;
    }
  }

  const PolicyTables& pol_;
  bool per_traj_;

  template <bool kUnit, bool kTime, class Index>
  double add_reward_to_go_impl(Index idx, const double* r, std::int64_t len, double gamma, const double* gpow,
                               const TimeTerms& tt) {
    double* g = gz_.data();
    return detail::segmented_reward_to_go<kUnit>(
        r, len, gamma, gpow,
        [&](std::int64_t t, double L) {  // gamma^t u_t L - beta_t
          if constexpr (kTime) {
            g[idx(t)] += tt.alpha[t] * L - tt.beta[t];
          } else {
            g[idx(t)] += kUnit ? L : gpow[t] * L;
          }
        },
        [&](std::int64_t begin, std::int64_t end, double G_end) {
          const double c = kUnit ? G_end : gpow[end] * G_end;  // gamma^end G_end
          if constexpr (kTime) {
            for (std::int64_t t = begin; t < end; ++t) g[idx(t)] += tt.u[t] * c;
          } else {
            for (std::int64_t t = begin; t < end; ++t) g[idx(t)] += c;
          }
        });
  }

  // C(s) = sum_a c(s, a), summed when a row is closed (not kept per step: one store less per step).
  // add_steps() with the flat index of step t from idx(t); pointers held locally (no reloads per
  // step), one loop per kind of row.
  template <class Index>
  void add_steps_at(Index idx, const std::int32_t* s, const double* w, std::int64_t len) {
    double* g = gz_.data();
    if (!per_traj_) {  // the hot loop of the totals
      for (std::int64_t t = 0; t < len; ++t) g[idx(t)] += w[t];
      return;
    }
    if (pol_.features && !pol_.map) {
      for (std::int64_t t = 0; t < len; ++t) add_linear(idx(t), w[t]);
      return;
    }
    std::uint8_t* mark = mark_.data();
    for (std::int64_t t = 0; t < len; ++t) {
      g[idx(t)] += w[t];
      if (!mark[s[t]]) {
        mark[s[t]] = 1;
        touched_.push_back(s[t]);
      }
    }
  }

  // A linear policy's step (s, a) with flat index k = s * A + a: gp += w (phi(s,a) - E_pi phi(s,.)).
  void add_linear(std::int64_t k, double w) noexcept { axpy(gp_.data(), w, centred_.data() + k * pol_.p, pol_.p); }
  // y += w x over n entries, distinct arrays (restrict: vectorised without overlap checks).
  static void axpy(double* __restrict y, double w, const double* __restrict x, std::int64_t n) noexcept {
    for (std::int64_t j = 0; j < n; ++j) y[j] += w * x[j];
  }

  // One visited state's row of a trajectory's tabular gradient: v(a) = c(a) - C pi(a) with
  // C = sum_a c(a), added to sum and sumsq (and written to row when not null); c is cleared.
  // The arrays are distinct, and saying so (restrict parameters) lets the loops vectorise without
  // the run-time overlap checks, which cost more than the loop itself for A = 8 (callgrind: ~190
  // instructions per visited state before).
  static void close_row(double* __restrict c, const double* __restrict pi, double* __restrict sum,
                        double* __restrict sumsq, double* __restrict row, std::int64_t A) noexcept {
    const double C = sum_of(c, A);
    if (row) {
      for (std::int64_t a = 0; a < A; ++a) {
        const double v = c[a] - C * pi[a];
        sum[a] += v;
        sumsq[a] += v * v;
        row[a] = v;
        c[a] = 0.0;
      }
    } else {
      for (std::int64_t a = 0; a < A; ++a) {
        const double v = c[a] - C * pi[a];
        sum[a] += v;
        sumsq[a] += v * v;
        c[a] = 0.0;
      }
    }
  }

  // C(s) of the accumulated logit table.
  double row_sum(std::int64_t s) const { return sum_of(gz_.data() + s * pol_.A, pol_.A); }
  // sum_a c[a] as four interleaved partial sums (c[0] + c[4] + ..., c[1] + c[5] + ..., ...) added
  // pairwise: the per-trajectory path closes a row per visited state, and one running sum over
  // A = 8 actions was a chain of eight dependent additions per row.
  static double sum_of(const double* c, std::int64_t A) noexcept {
    double p0 = 0.0, p1 = 0.0, p2 = 0.0, p3 = 0.0;
    std::int64_t a = 0;
    for (; a + 4 <= A; a += 4) {
      p0 += c[a];
      p1 += c[a + 1];
      p2 += c[a + 2];
      p3 += c[a + 3];
    }
    for (; a < A; ++a) p0 += c[a];
    return (p0 + p1) + (p2 + p3);
  }

  std::vector<double> gz_, u_, scratch_;
  std::vector<std::uint8_t> mark_;
  std::vector<std::int32_t> touched_;
  std::vector<double> gp_, centred_;

 public:
  std::vector<double> sum, sumsq;  // sumsq is empty without per-trajectory bookkeeping
};

struct BatchResult {
  std::vector<double> sum, sumsq;  // over trajectories of the per-trajectory gradient (n_params)
  double return_sum = 0.0, return_sumsq = 0.0;
};

// Per-trajectory gradients of a stored (N, H) batch, reduced over trajectories (each row's states
// and actions are range-checked as it is read: IndexOutOfRange, after which nothing is returned); `per_traj`
// (N, n_params) is written when not null. With `sumsq` = false only the sum is formed (no
// per-trajectory bookkeeping; out.sumsq stays 0), which needs per_traj == null. Weights come from the rewards (WeightSpec), or from
// `weights` (N, H) when spec.kind == Explicit.
inline bool score_batch(const std::int32_t* states, const std::int32_t* actions, const double* rewards,
                        const double* weights, const std::int32_t* lengths, std::int64_t N, std::int64_t H,
                        const PolicyTables& pol, const WeightSpec& spec, int threads, StopToken& stop,
                        BatchResult& out, double* per_traj, bool sumsq = true) {
  const std::int64_t np = pol.n_params();
  if (per_traj && !sumsq) throw std::invalid_argument("per-trajectory rows need the per-trajectory mode");
  const reduce::Grid grid = estimator_grid(N);
  threads = std::max(1, std::min<int>(threads, static_cast<int>(grid.blocks)));
  // each worker's nodes of the canonical tree over its contiguous share of the blocks
  std::vector<reduce::NodeStack<TrajectoryScorer::Partial>> nodes(static_cast<std::size_t>(threads));
  const std::vector<double> gpow = powers(spec.gamma, H);
  // Totals of reward-to-go weights without a baseline or with the time baseline: no weights array.
  const bool rtg_totals = !sumsq && spec.kind == WeightKind::RewardToGo &&
                          (spec.baseline == BaselineKind::None || spec.baseline == BaselineKind::LeaveOneOutTime);
  const TrajectoryScorer::TimeTerms time{spec.time_alpha, spec.time_u, spec.time_beta};
  const std::int64_t A = pol.A;
  const bool idx32 = pol.S * A <= static_cast<std::int64_t>(std::numeric_limits<std::uint32_t>::max());
  const bool ok = run_workers(
      threads,
      [&](int wk, StopToken& st) {
        // made by each worker on its own thread, so that its tables are first touched on that core
        TrajectoryScorer sc(pol, sumsq);
        std::vector<double> wbuf(static_cast<std::size_t>(std::max<std::int64_t>(H, 1)));
        std::vector<std::uint32_t> ibuf(rtg_totals && idx32 ? wbuf.size() : 0);
        const auto [b0, b1] = reduce::share(0, grid.blocks, wk, threads);
        for (std::int64_t b = b0; b < b1; ++b) {
          double rsum = 0.0, rsq = 0.0;
          std::int64_t steps = 0;
          for (std::int64_t i = grid.begin(b); i < grid.end(b); ++i) {
            if (((i - grid.begin(b)) & 63) == 0 && st(wk)) return;
            const std::int32_t* s = states + i * H;
            const std::int32_t* a = actions + i * H;
            const std::int64_t len = lengths[i];
            const double* w = weights ? weights + i * H : wbuf.data();
            double G = 0.0;
            steps += len;
            if (rtg_totals) {  // weights formed and added in one pass (add_reward_to_go)
              const TrajectoryScorer::TimeTerms* tt = spec.baseline == BaselineKind::None ? nullptr : &time;
              if (idx32) {
                std::uint32_t* ix = ibuf.data();
                if (!row_indices(s, a, len, pol.S, A, ix)) throw IndexOutOfRange();  // before any step is used
                G = sc.add_reward_to_go([ix](std::int64_t t) { return static_cast<std::int64_t>(ix[t]); },
                                        rewards + i * H, len, spec.gamma, gpow.data(), tt);
              } else {
                if (!row_in_range(s, a, len, pol.S, A)) throw IndexOutOfRange();
                G = sc.add_reward_to_go([s, a, A](std::int64_t t) { return s[t] * A + a[t]; }, rewards + i * H, len,
                                        spec.gamma, gpow.data(), tt);
              }
              rsum += G;
              rsq += G * G;
              continue;
            }
            if (!row_in_range(s, a, len, pol.S, A)) throw IndexOutOfRange();  // before any of its steps is read
            if (spec.kind == WeightKind::Explicit) {
              for (std::int64_t t = len - 1; t >= 0; --t) G = rewards[i * H + t] + spec.gamma * G;
            } else {
              G = trajectory_weights(s, rewards + i * H, len, spec, gpow.data(), wbuf.data());
            }
            rsum += G;
            rsq += G * G;
            sc.add_steps(s, a, w, len);
            sc.finish(per_traj ? per_traj + i * np : nullptr);
          }
          TrajectoryScorer::Partial part = sc.take();
          part.return_sum = rsum;
          part.return_sumsq = rsq;
          part.steps = steps;
          nodes[static_cast<std::size_t>(wk)].push(b, std::move(part), TrajectoryScorer::combine);
        }
      },
      stop);
  if (!ok) return false;
  std::vector<reduce::Part<TrajectoryScorer::Partial>> parts;
  for (auto& ns : nodes) {
    for (auto& p : ns.parts()) parts.push_back(std::move(p));
  }
  TrajectoryScorer::Partial root = reduce::merge_nodes(std::move(parts), grid.blocks, TrajectoryScorer::combine, "score");
  TrajectoryScorer::to_params(pol, sumsq, root, out.sum, out.sumsq);
  out.return_sum = root.return_sum;
  out.return_sumsq = root.return_sumsq;
  return true;
}

}  // namespace pgfast::est
