// The fused likelihood-ratio gradient of a linear-Gaussian policy on an LQR: the trajectories of
// lqr/sampling.hpp are formed and their gradients accumulated without storing the batch
// (docs/guide/continuous.md, "Sampling an LQR and the fused estimator").
//
//   g_i = sum_t w_{i,t} grad log pi(u_t|x_t),  the weights w from the rewards (estimators/baselines.hpp)
//   grad_W log pi = (eps_t / sigma) x_t',    d log pi / d log sigma_a = eps_{a,t}^2 - 1   (0 below the floor)
//
// with eps_t = (u_t - W x_t) / sigma the action noise the sampler drew. Each trajectory's steps are
// kept in a buffer while its group runs (x_t as an (H, n) matrix, eps_t as (m, H), r_t); when the
// group ends, its weights are formed exactly as the finite estimators form them
// (est::trajectory_weights) and its W block is one (m, len)(len, n) product. The sums over
// trajectories go over the estimators' block grid (est::estimator_grid), each block's trajectories
// in index order, the blocks along reduce.hpp's canonical tree: the same bits for any thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "pgfast/estimators/baselines.hpp"
#include "pgfast/lqr/sampling.hpp"
#include "pgfast/reduce.hpp"
#include "pgfast/returns.hpp"

namespace pgfast::lqr {

// The statistics of a block of trajectories.
struct Partial {
  std::vector<double> sum, sumsq;  // (n_params,): the per-trajectory gradients' sum and sum of squares
  double return_sum = 0.0, return_sumsq = 0.0;
  std::int64_t steps = 0, diverged = 0;
  static void combine(Partial& left, Partial& right) {
    for (std::size_t k = 0; k < left.sum.size(); ++k) left.sum[k] += right.sum[k];
    for (std::size_t k = 0; k < left.sumsq.size(); ++k) left.sumsq[k] += right.sumsq[k];
    left.return_sum += right.return_sum;
    left.return_sumsq += right.return_sumsq;
    left.steps += right.steps;
    left.diverged += right.diverged;
  }
};

// What the fused estimator needs besides the Problem.
struct FusedSpec {
  est::WeightSpec weights;        // kind, gamma, baseline (None, or the leave-one-out terms)
  const double* floored = nullptr;  // (m,) 1 where log_std is below the floor (its score is 0)
  bool sumsq = true;              // the sums of squares behind the standard errors
  double* rows = nullptr;         // (N, n_params) per-trajectory gradients, or null
};

// The working memory of one fused worker, in bytes (for the callers' allocation checks).
inline std::int64_t fused_worker_bytes(std::int64_t n, std::int64_t m, std::int64_t H) {
  return 8 * (kGroup * H * (n + m + 1) + H + 3 * (m * n + m)) + 8 * kGroup * (4 * n + 3 * m + 2);
}

// Buffers the steps of a group's trajectories; forms each one's gradient when the group ends.
class FusedSink {
 public:
  FusedSink(const Problem& p, const FusedSpec& spec, const double* gpow)
      : p_(p), spec_(spec), gpow_(gpow), np_(p.m * p.n + p.m),
        xh_(static_cast<std::size_t>(kGroup * p.H * p.n)), eh_(static_cast<std::size_t>(kGroup * p.m * p.H)),
        rh_(static_cast<std::size_t>(kGroup * p.H)), w_(static_cast<std::size_t>(p.H)),
        ew_(static_cast<std::size_t>(p.m * p.H)), g_(static_cast<std::size_t>(np_)), inv_sigma_(p.m) {
    for (std::int64_t a = 0; a < p.m; ++a) inv_sigma_[a] = 1.0 / p.sigma[a];
    reset();
  }

  void step(std::int64_t t, std::int64_t, std::int64_t G, const double* X, const double*, const double* E,
            const double* r, const unsigned char* alive) noexcept {
    const std::int64_t n = p_.n, m = p_.m, H = p_.H;
    for (std::int64_t j = 0; j < G; ++j) {
      if (!alive[j]) continue;
      double* xh = xh_.data() + (j * H + t) * n;
      for (std::int64_t k = 0; k < n; ++k) xh[k] = X[k * kGroup + j];
      double* eh = eh_.data() + j * m * H + t;
      for (std::int64_t a = 0; a < m; ++a) eh[a * H] = E[a * kGroup + j];
      rh_[j * H + t] = r[j];
    }
  }

  void end(std::int64_t i0, std::int64_t G, const std::int64_t* len, const unsigned char* alive) {
    const std::int64_t n = p_.n, m = p_.m, H = p_.H;
    for (std::int64_t j = 0; j < G; ++j) {
      const std::int64_t L = len[j];
      const double G0 = est::trajectory_weights(nullptr, rh_.data() + j * H, L, spec_.weights, gpow_, w_.data());
      // W block: (m, L) weighted eps / sigma times the (L, n) states
      const double* eh = eh_.data() + j * m * H;
      for (std::int64_t a = 0; a < m; ++a) {
        const double is = inv_sigma_[a];
        for (std::int64_t t = 0; t < L; ++t) ew_[a * H + t] = (w_[t] * eh[a * H + t]) * is;
      }
      std::fill(g_.begin(), g_.end(), 0.0);
      if (L > 0) mlp::detail::gemm_acc(ew_.data(), H, 1, xh_.data() + j * H * n, g_.data(), m, L, n);
      for (std::int64_t a = 0; a < m; ++a) {
        double acc = 0.0;
        if (!spec_.floored[a]) {
          for (std::int64_t t = 0; t < L; ++t) acc += w_[t] * (eh[a * H + t] * eh[a * H + t] - 1.0);
        }
        g_[m * n + a] = acc;
      }
      double* sum = part_.sum.data();
      for (std::int64_t k = 0; k < np_; ++k) sum[k] += g_[k];
      if (spec_.sumsq) {
        double* sq = part_.sumsq.data();
        for (std::int64_t k = 0; k < np_; ++k) sq[k] += g_[k] * g_[k];
      }
      if (spec_.rows) std::copy(g_.begin(), g_.end(), spec_.rows + (i0 + j) * np_);
      part_.return_sum += G0;
      part_.return_sumsq += G0 * G0;
      part_.steps += L;
      part_.diverged += alive[j] ? 0 : 1;
    }
  }

  void block_done(std::int64_t b) {
    nodes.push(b, std::move(part_), Partial::combine);
    reset();
  }

  reduce::NodeStack<Partial> nodes;

 private:
  void reset() {
    part_ = Partial{};
    part_.sum.assign(static_cast<std::size_t>(np_), 0.0);
    if (spec_.sumsq) part_.sumsq.assign(static_cast<std::size_t>(np_), 0.0);
  }

  const Problem& p_;
  const FusedSpec& spec_;
  const double* gpow_;
  std::int64_t np_;
  std::vector<double> xh_, eh_, rh_, w_, ew_, g_, inv_sigma_;
  Partial part_;
};

// The leave-one-out baselines' first pass: per block, the per-t column sums of the rewards and the
// lengths (est::LooPartial).
class LooSink {
 public:
  explicit LooSink(std::int64_t H) : H_(H), part_(H) {}
  void step(std::int64_t t, std::int64_t, std::int64_t G, const double*, const double*, const double*, const double* r,
            const unsigned char* alive) noexcept {
    for (std::int64_t j = 0; j < G; ++j) {
      if (alive[j]) part_.add_step(t, r[j]);
    }
  }
  void end(std::int64_t, std::int64_t G, const std::int64_t* len, const unsigned char*) noexcept {
    for (std::int64_t j = 0; j < G; ++j) part_.end(len[j]);
  }
  void block_done(std::int64_t b) {
    nodes.push(b, std::move(part_), est::LooPartial::combine);
    part_ = est::LooPartial(H_);
  }
  reduce::NodeStack<est::LooPartial> nodes;

 private:
  std::int64_t H_;
  est::LooPartial part_;
};

// Runs simulate_blocks into one Sink per worker (made on the worker's thread by make()) and merges
// their nodes along the canonical tree into `root`. Returns false if interrupted.
template <class Sink, class P, class Make, class Combine>
bool reduce_blocks(const Problem& p, const reduce::Grid& grid, std::uint64_t seed, int threads, StopToken& stop,
                   Make&& make, Combine&& combine, P& root, const char* what) {
  threads = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, grid.blocks)));
  std::vector<std::unique_ptr<Sink>> sinks(static_cast<std::size_t>(threads));
  const bool ok = simulate_blocks(
      p, grid, seed, threads,
      [&](int w) -> Sink& {
        sinks[w] = make();
        return *sinks[w];
      },
      stop);
  if (!ok) return false;
  std::vector<reduce::Part<P>> parts;
  for (const auto& sk : sinks) {
    if (!sk) continue;
    for (auto& part : sk->nodes.parts()) parts.push_back(std::move(part));
  }
  root = reduce::merge_nodes(std::move(parts), grid.blocks, combine, what);
  return true;
}

// The fused estimate over trajectories 0..N-1 (the root Partial). With a leave-one-out baseline a
// first pass draws the batch for its statistics (est::LooTerms), the second the same trajectories
// again. Returns false if interrupted.
inline bool fused_gradient(const Problem& p, FusedSpec& spec, std::int64_t N, std::uint64_t seed, int threads,
                           StopToken& stop, Partial& out) {
  const reduce::Grid grid = est::estimator_grid(N);
  est::LooTerms loo;
  const est::BaselineKind b = spec.weights.baseline;
  if (b == est::BaselineKind::LeaveOneOutMean || b == est::BaselineKind::LeaveOneOutTime) {
    est::LooPartial stats;
    const std::int64_t H = p.H;
    if (!reduce_blocks<LooSink>(p, grid, seed, threads, stop, [H] { return std::make_unique<LooSink>(H); },
                                est::LooPartial::combine, stats, "the leave-one-out statistics")) {
      return false;
    }
    loo.apply(stats, N, spec.weights);
  }
  const std::vector<double> gpow = powers(spec.weights.gamma, p.H);
  return reduce_blocks<FusedSink>(
      p, grid, seed, threads, stop, [&] { return std::make_unique<FusedSink>(p, spec, gpow.data()); },
      Partial::combine, out, "the fused LQR estimator");
}

}  // namespace pgfast::lqr
