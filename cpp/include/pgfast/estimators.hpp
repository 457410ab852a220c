// Likelihood-ratio policy gradient estimators over a batch of trajectories (seed 000 sections
// 4.3-4.5, seed 001 sections 3-4).
//
//   score       g = (1/N) sum_i sum_t w_{i,t} grad log pi(a_t|s_t)
//   weights     "return":        w_{i,t} = G_i - b_i,               G_i = sum_t gamma^t r_t
//               "reward_to_go":  w_{i,t} = gamma^t (G_{i,t} - b_{i,t}), G_{i,t} = sum_{t'>=t} gamma^(t'-t) r_t'
//
// The score of a softmax policy is grad z(s,a) - sum_a' pi(a'|s) grad z(s,a') (z the logits), so a
// trajectory's gradient in logit coordinates is, per visited state s,
//
//   g_z(s, .) = c(s, .) - C(s) pi(.|s),   c(s,a) = sum of the weights of the steps (s, a), C(s) = sum_a c(s,a)
//
// and needs no per-step score vector: tabular parameters are the logits; a linear policy maps
// g_z to sum_{s,a} g_z(s,a) phi(s,a) (section 4.5.1).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgfast/mdp.hpp"
#include "pgfast/parallel.hpp"
#include "pgfast/policy.hpp"
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
  // straight into one logit table and mapped to the parameters once, in total().
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

  // Per worker, on its thread, after its last trajectory: total(), except for an MLP policy
  // without per-trajectory bookkeeping, whose map is a backward pass over all states: its
  // workers' logit tables are summed and mapped once instead (merge_and_map).
  void close() {
    if (!maps_later()) total();
  }
  // After the workers (each closed; null entries skipped): the deferred totals.
  static void merge_and_map(const std::vector<TrajectoryScorer*>& scorers) {
    TrajectoryScorer* first = nullptr;
    for (TrajectoryScorer* sc : scorers) {
      if (!sc || !sc->maps_later()) continue;
      if (!first) {
        first = sc;
      } else {
        for (std::size_t k = 0; k < first->gz_.size(); ++k) first->gz_[k] += sc->gz_[k];
      }
    }
    if (first) first->total();
  }
  bool maps_later() const noexcept { return !per_traj_ && pol_.map != nullptr; }

  // Without per-trajectory bookkeeping: maps the accumulated logit table to `sum`.
  void total() {
    if (per_traj_) return;
    const std::int64_t A = pol_.A;
    for (std::int64_t s = 0; s < pol_.S; ++s) {
      const double C = row_sum(s);
      for (std::int64_t a = 0; a < A; ++a) {
        const std::int64_t k = s * A + a;
        const double v = gz_[k] - C * pol_.probs[k];
        if (pol_.map || pol_.features) {
          gz_[k] = v;  // the logit gradient table, mapped below
        } else {
          sum[k] += v;
        }
      }
    }
    if (pol_.map) {
      pol_.map->vjp_all(gz_.data(), sum.data());
    } else if (pol_.features) {  // sum += Phi^T g_z, Phi the (S A, p) feature matrix (one gemv)
      using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      const Eigen::Map<const RowMajor> phi(pol_.features, pol_.S * A, pol_.p);
      Eigen::Map<Eigen::VectorXd>(sum.data(), pol_.p).noalias() +=
          phi.transpose() * Eigen::Map<const Eigen::VectorXd>(gz_.data(), pol_.S * A);
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
  // per-t coefficients of the time baseline (from the reward-to-go sums and counts, loo_statistics).
  double return_sum = 0.0;
  std::int64_t n = 0;
  const double* time_alpha = nullptr;  // (H,) from loo_time_coefficients
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
        // gamma^t (G_t - (sum_t - G_t) / (count_t - 1)) = alpha_t G_t - beta_t (loo_time_coefficients)
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

// The leave-one-out time baseline as w_t = alpha_t G_t - beta_t: with k_t = 1 / (count_t - 1)
// (0 when no other trajectory runs at t), alpha_t = gamma^t u_t with u_t = 1 + k_t, beta_t = gamma^t sum_t k_t.
inline void loo_time_coefficients(const std::vector<double>& rtg_sum, const std::vector<std::int64_t>& rtg_count,
                                  const double* gpow, std::vector<double>& alpha, std::vector<double>& beta,
                                  std::vector<double>& u) {
  const std::size_t H = rtg_sum.size();
  alpha.assign(H, 0.0);
  beta.assign(H, 0.0);
  u.assign(H, 0.0);
  for (std::size_t t = 0; t < H; ++t) {
    const std::int64_t others = rtg_count[t] - 1;
    const double k = others > 0 ? 1.0 / static_cast<double>(others) : 0.0;
    u[t] = 1.0 + k;
    alpha[t] = gpow[t] * u[t];
    beta[t] = gpow[t] * rtg_sum[t] * k;
  }
}

// Batch statistics for the leave-one-out baselines: sum of returns, per-t sums/counts of the
// reward-to-go over running trajectories. No trajectory's reward-to-go is formed: a trajectory
// that has ended by t has G_t = 0, so sum_i G_{i,t} = sum_{t' >= t} gamma^(t'-t) R_t' with
// R_t' = sum_i r_{i,t'} over the trajectories running at t' (column sums: independent adds, where
// per-trajectory recursions wait on each other), and sum_i G_i = rtg_sum[0].
inline void loo_statistics(const double* rewards, const std::int32_t* lengths, std::int64_t N, std::int64_t H,
                           double gamma, double& return_sum, std::vector<double>& rtg_sum,
                           std::vector<std::int64_t>& rtg_count) {
  rtg_sum.assign(static_cast<std::size_t>(H), 0.0);
  rtg_count.assign(static_cast<std::size_t>(H), 0);
  std::vector<std::int64_t> ends(static_cast<std::size_t>(H + 1), 0);  // trajectories per length
  double* R = rtg_sum.data();  // column sums first
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int64_t len = lengths[i];
    const double* r = rewards + i * H;
    for (std::int64_t t = 0; t < len; ++t) R[t] += r[t];
    ++ends[len];
  }
  double acc = 0.0;
  std::int64_t running = 0;  // count_t = #{i : len_i > t}
  for (std::int64_t t = H - 1; t >= 0; --t) {
    acc = R[t] + gamma * acc;
    R[t] = acc;
    running += ends[t + 1];
    rtg_count[t] = running;
  }
  return_sum = acc;
}

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
  threads = std::max(1, std::min<int>(threads, static_cast<int>((N + 63) / 64)));
  BlockQueue queue(N, 64, threads);  // static split: the same sums on every run
  // made by each worker on its own thread, so that its tables are first touched on that core
  std::vector<std::unique_ptr<TrajectoryScorer>> scorers(static_cast<std::size_t>(threads));
  std::vector<double> rsum(static_cast<std::size_t>(threads), 0.0), rsq(static_cast<std::size_t>(threads), 0.0);
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
        scorers[wk] = std::make_unique<TrajectoryScorer>(pol, sumsq);
        TrajectoryScorer& sc = *scorers[wk];
        std::vector<double> wbuf(static_cast<std::size_t>(std::max<std::int64_t>(H, 1)));
        std::vector<std::uint32_t> ibuf(rtg_totals && idx32 ? wbuf.size() : 0);
        IndexStream source(queue, st, wk);
        for (std::int64_t i; (i = source.next()) >= 0;) {
          const std::int32_t* s = states + i * H;
          const std::int32_t* a = actions + i * H;
          const std::int64_t len = lengths[i];
          const double* w = weights ? weights + i * H : wbuf.data();
          double G = 0.0;
          if (rtg_totals) {  // weights formed and added in one pass (add_reward_to_go)
            const TrajectoryScorer::TimeTerms* tt = spec.baseline == BaselineKind::None ? nullptr : &time;
            if (idx32) {
              std::uint32_t* ix = ibuf.data();
              if (!row_indices(s, a, len, pol.S, A, ix)) throw IndexOutOfRange();  // before any step is used
              G = sc.add_reward_to_go([ix](std::int64_t t) { return static_cast<std::int64_t>(ix[t]); }, rewards + i * H,
                                      len, spec.gamma, gpow.data(), tt);
            } else {
              if (!row_in_range(s, a, len, pol.S, A)) throw IndexOutOfRange();
              G = sc.add_reward_to_go([s, a, A](std::int64_t t) { return s[t] * A + a[t]; }, rewards + i * H, len,
                                      spec.gamma, gpow.data(), tt);
            }
            rsum[wk] += G;
            rsq[wk] += G * G;
            continue;
          }
          if (!row_in_range(s, a, len, pol.S, A)) throw IndexOutOfRange();  // before any of its steps is read
          if (spec.kind == WeightKind::Explicit) {
            for (std::int64_t t = len - 1; t >= 0; --t) G = rewards[i * H + t] + spec.gamma * G;
          } else {
            G = trajectory_weights(s, rewards + i * H, len, spec, gpow.data(), wbuf.data());
          }
          rsum[wk] += G;
          rsq[wk] += G * G;
          sc.add_steps(s, a, w, len);
          sc.finish(per_traj ? per_traj + i * np : nullptr);
        }
        sc.close();
      },
      stop);
  out.sum.assign(static_cast<std::size_t>(np), 0.0);
  out.sumsq.assign(static_cast<std::size_t>(np), 0.0);
  if (!ok) return false;
  std::vector<TrajectoryScorer*> all;
  for (const auto& sc : scorers) all.push_back(sc.get());
  TrajectoryScorer::merge_and_map(all);
  for (int k = 0; k < threads; ++k) {
    if (!scorers[k]) continue;
    for (std::int64_t j = 0; j < np; ++j) out.sum[j] += scorers[k]->sum[j];
    if (sumsq) {
      for (std::int64_t j = 0; j < np; ++j) out.sumsq[j] += scorers[k]->sumsq[j];
    }
    out.return_sum += rsum[k];
    out.return_sumsq += rsq[k];
  }
  return ok;
}

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
        rtg_only_(!per_trajectory && spec.kind == WeightKind::RewardToGo && spec.baseline == BaselineKind::None) {
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
                                  len, spec_.gamma, gpow_);
    } else {
      const std::int32_t* s = s_.data() + k * H_;
      G = trajectory_weights(s, r_.data() + k * H_, len, spec_, gpow_, w_.data());
      scorer.add_indexed_steps(s, sa, w_.data(), len);
      scorer.finish(nullptr);
    }
    return_sum += G;
    return_sumsq += G * G;
    steps += len;
    free_.push_back(k);
  }
  // After the worker's last trajectory, on its thread (TrajectoryScorer::close).
  void close() { scorer.close(); }

  // The sums of all workers' sinks (each closed; null entries skipped).
  struct Totals {
    std::vector<double> sum, sumsq;
    double return_sum = 0.0, return_sumsq = 0.0;
    std::int64_t steps = 0;
  };
  static Totals reduce(const std::vector<std::unique_ptr<FusedSink>>& sinks, std::int64_t n_params, bool sumsq) {
    Totals out;
    out.sum.assign(static_cast<std::size_t>(n_params), 0.0);
    out.sumsq.assign(static_cast<std::size_t>(n_params), 0.0);
    std::vector<TrajectoryScorer*> scorers;
    for (const auto& sk : sinks) scorers.push_back(sk ? &sk->scorer : nullptr);
    TrajectoryScorer::merge_and_map(scorers);
    for (const auto& sk : sinks) {
      if (!sk) continue;
      for (std::int64_t j = 0; j < n_params; ++j) out.sum[j] += sk->scorer.sum[j];
      if (sumsq) {
        for (std::int64_t j = 0; j < n_params; ++j) out.sumsq[j] += sk->scorer.sumsq[j];
      }
      out.return_sum += sk->return_sum;
      out.return_sumsq += sk->return_sumsq;
      out.steps += sk->steps;
    }
    return out;
  }

  TrajectoryScorer scorer;
  double return_sum = 0.0, return_sumsq = 0.0;
  std::int64_t steps = 0;

 private:
  const WeightSpec& spec_;
  const double* gpow_;
  std::int64_t H_, A_;
  std::vector<std::int32_t> s_;   // states of the running trajectories (empty when rtg_only_)
  std::vector<std::uint32_t> sa_;  // and their flat indices s * A + a
  std::vector<double> r_, w_;
  std::vector<int> free_;
  bool rtg_only_;  // reward-to-go without baseline, totals only: TrajectoryScorer::add_reward_to_go
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
  void close() { target->close(); }
};

// The per-step log-ratios lr_t = log pi(a_t|s_t) - log beta(a_t|s_t) of a batch (section 4.3's
// rho / rho_theta: the dynamics cancel), 0 past each end. The target is a log-probability table
// (S, A); the behavior too (beta_logp, with its probabilities beta_probs: a logged action of
// probability 0 -- a log-prob that is finite only because it underflowed -- has no ratio), or
// logged log-probabilities (N, H) (beta_logp null). Returns the first step, in batch order, whose
// behavior log-prob is not finite, or exceeds 0 (logged), or {-1, -1}; out is then incomplete.
// States and actions must be in range (the caller checks).
struct StepIndex {
  std::int64_t i = -1, t = -1;
};
inline StepIndex log_ratios(const double* target_logp, const double* beta_logp, const double* beta_probs,
                            const double* logged, std::int64_t A, const std::int32_t* states,
                            const std::int32_t* actions, const std::int32_t* lengths, std::int64_t N,
                            std::int64_t H, double* out) {
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int32_t* s = states + i * H;
    const std::int32_t* a = actions + i * H;
    double* lr = out + i * H;
    const std::int64_t len = lengths[i];
    for (std::int64_t t = 0; t < len; ++t) {
      const std::int64_t k = s[t] * A + a[t];
      double lb;
      if (beta_logp) {
        lb = beta_probs[k] > 0.0 ? beta_logp[k] : -std::numeric_limits<double>::infinity();
      } else {
        lb = logged[i * H + t];
        if (lb > 1e-12) return {i, t};  // a log-probability above 0 (beyond rounding)
      }
      if (!std::isfinite(lb)) return {i, t};
      lr[t] = target_logp[k] - lb;
    }
    for (std::int64_t t = len; t < H; ++t) lr[t] = 0.0;
  }
  return {};
}

// Importance-sampling weights for data from a behavior policy (section 4.3): from the per-step
// log-ratios lr_t = log pi(a_t|s_t) - log beta(a_t|s_t), in log space until the end.
//   cumulative ratio   c_t = exp(L_t), L_t = sum_{t' <= t} lr_t'   (L_t = L_{len-1} for t >= len)
//   trajectory ratio   rho = exp(L),   L = L_{len-1}
//   per_decision = false:  w_t = rho * gamma^t G_t (reward_to_go) | rho * G (return); value rho * G
//   per_decision = true:   w_t = sum_{t' >= t} gamma^t' r_t' c_t'  (reward_to_go)
//                          w_t = c_t sum_{t' < t} gamma^t' r_t' + sum_{t' >= t} gamma^t' r_t' c_t'  (return)
//                          value sum_t gamma^t r_t c_t
// Self-normalised weights divide by the batch mean of the ratios, taken in log space too: with
// `log_norm` (H,) not null, c_t = exp(L_t - log_norm[t]) (weighted per-decision importance
// sampling, log_norm from per_decision_log_norm); with `log_norm_rho` not null,
// rho = exp(L - *log_norm_rho) (log_mean_ratio). So ratios of 1e-600 self-normalise as well as
// ratios of 1. Writes weights (N, H) (0 past the end), log_rho (N,) = L and the per-trajectory
// value estimate (N,).
inline void importance_weights(const double* rewards, const double* log_ratio, const std::int32_t* lengths,
                               std::int64_t N, std::int64_t H, double gamma, bool reward_to_go, bool per_decision,
                               const double* log_norm, const double* log_norm_rho, double* weights, double* log_rho,
                               double* value) {
  std::vector<double> c(static_cast<std::size_t>(std::max<std::int64_t>(H, 1))), disc(c.size());
  for (std::int64_t i = 0; i < N; ++i) {
    const double* r = rewards + i * H;
    const double* lr = log_ratio + i * H;
    double* w = weights + i * H;
    const std::int64_t len = lengths[i];
    double acc = 0.0;
    for (std::int64_t t = 0; t < len; ++t) {
      acc += lr[t];
      c[t] = std::exp(log_norm ? acc - log_norm[t] : acc);
    }
    log_rho[i] = acc;
    for (std::int64_t t = len; t < H; ++t) w[t] = 0.0;
    if (!per_decision) {
      const double rr = std::exp(log_norm_rho ? acc - *log_norm_rho : acc);
      double G = 0.0;
      for (std::int64_t t = len - 1; t >= 0; --t) {
        G = r[t] + gamma * G;
        w[t] = G;
      }
      double gp = 1.0;
      for (std::int64_t t = 0; t < len; ++t, gp *= gamma) w[t] = reward_to_go ? rr * gp * w[t] : rr * G;
      value[i] = rr * G;
      continue;
    }
    double gp = 1.0, total = 0.0;
    for (std::int64_t t = 0; t < len; ++t, gp *= gamma) {
      disc[t] = gp * r[t];  // gamma^t r_t
      total += disc[t] * c[t];
    }
    value[i] = total;
    double suffix = 0.0;  // sum_{t' >= t} gamma^t' r_t' c_t'
    for (std::int64_t t = len - 1; t >= 0; --t) {
      suffix += disc[t] * c[t];
      w[t] = suffix;
    }
    if (!reward_to_go) {
      double prefix = 0.0;  // sum_{t' < t} gamma^t' r_t'
      for (std::int64_t t = 0; t < len; ++t) {
        w[t] += c[t] * prefix;
        prefix += disc[t];
      }
    }
  }
}

// log of sum_i exp(x_i) / n over x[0..n), shifted by the maximum (no overflow or underflow).
inline double log_mean_exp(const double* x, std::int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (std::int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  if (!std::isfinite(m)) return m;
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) total += std::exp(x[i] - m);
  return m + std::log(total / static_cast<double>(n));
}

// log of the mean trajectory ratio, log (1/N) sum_i exp(L_i), L_i = sum_{t < len_i} lr_{i,t}
// (self-normalised importance sampling, in log space).
inline double log_mean_ratio(const double* log_ratio, const std::int32_t* lengths, std::int64_t N, std::int64_t H) {
  std::vector<double> L(static_cast<std::size_t>(N), 0.0);
  for (std::int64_t i = 0; i < N; ++i) {
    for (std::int64_t t = 0; t < lengths[i]; ++t) L[i] += log_ratio[i * H + t];
  }
  return log_mean_exp(L.data(), N);
}

// Per step, the log of the mean cumulative ratio for weighted per-decision importance sampling:
// log_norm[t] = log (1/N) sum_i exp(L_{i,t}) (L_{i,t} = L_{i,len_i-1} past the end of trajectory i).
inline void per_decision_log_norm(const double* log_ratio, const std::int32_t* lengths, std::int64_t N,
                                  std::int64_t H, double* log_norm) {
  std::vector<double> L(static_cast<std::size_t>(N * H));  // (H, N): one row per step
  for (std::int64_t i = 0; i < N; ++i) {
    double acc = 0.0;
    for (std::int64_t t = 0; t < H; ++t) {
      if (t < lengths[i]) acc += log_ratio[i * H + t];
      L[t * N + i] = acc;
    }
  }
  for (std::int64_t t = 0; t < H; ++t) log_norm[t] = log_mean_exp(L.data() + t * N, N);
}

// log p_theta(tau) = log mu0(s_0) + sum_t [log pi(a_t|s_t) + log P(s_{t+1}|s_t, a_t)] per
// trajectory (s_{t+1} is the final state after the last step); dynamics = false keeps only the
// policy terms, the only ones that depend on theta.
inline void log_likelihood(const FiniteMDP& mdp, const double* log_probs, const std::int32_t* states,
                           const std::int32_t* actions, const std::int32_t* lengths, const std::int32_t* finals,
                           std::int64_t N, std::int64_t H, bool dynamics, double* out) {
  const std::int64_t A = mdp.n_actions();
  const auto& indptr = mdp.indptr();
  const auto& next = mdp.next();
  const auto& prob = mdp.prob();
  const double neg_inf = -std::numeric_limits<double>::infinity();
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int32_t* s = states + i * H;
    const std::int32_t* a = actions + i * H;
    const std::int64_t len = lengths[i];
    double acc = 0.0;
    if (dynamics) acc += len > 0 ? std::log(mdp.mu0()[s[0]]) : 0.0;
    for (std::int64_t t = 0; t < len; ++t) {
      acc += log_probs[s[t] * A + a[t]];
      if (!dynamics) continue;
      const std::int32_t sp = t + 1 < len ? s[t + 1] : finals[i];
      const std::int64_t row = s[t] * A + a[t];
      double p = 0.0;
      for (std::int64_t e = indptr[row]; e < indptr[row + 1]; ++e)
        if (next[e] == sp) p = prob[e];
      acc += p > 0.0 ? std::log(p) : neg_inf;
    }
    out[i] = acc;
  }
}

}  // namespace pgfast::est
