// The fused estimator's leave-one-out time baseline in one pass (reward-to-go weights, totals
// only): exact per-step tables of the batch instead of a first pass over it (fused.hpp).
//
// The weight of step t is w_t = alpha_t G_t - beta_t (LooTerms, baselines.hpp) and a step's score
// depends on its (s, a) only, so the batch's logit-level sum (TrajectoryScorer's table) is
//
//   W(s, a) = sum_t alpha_t Z_t(s, a) - beta_t C_t(s, a),
//   Z_t(s, a) = sum of G_{i,t} over the steps (s, a) at t,   C_t(s, a) = their number.
//
// alpha_t and beta_t need the whole batch; Z_t and C_t do not. Each G_{i,t} is rounded once to
// the integer round(G_{i,t} 2^q), q fixed before sampling by a bound on |G| (H max |R|, gamma <= 1)
// so that |G 2^q| < 2^61, and the tables hold sums of integers: exact, so the workers' and the
// shards' tables add up in any order to the same bits. alpha_t, beta_t (from the tables' totals
// per t) and W are then formed once, from the whole batch's tables, in one fixed order over t.
// Memory: 16 H S A bytes per worker thread, independent of n; used when H S A <= kMaxCells.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

#include "pgfast/estimators/baselines.hpp"
#include "pgfast/estimators/fused.hpp"
#include "pgfast/estimators/score.hpp"
#include "pgfast/mdp.hpp"
#include "pgfast/reduce.hpp"
#include "pgfast/returns.hpp"
#include "pgfast/rng.hpp"
#include "pgfast/sampling.hpp"

namespace pgfast::est::time_tables {

// Largest table used (cells H S A). FrozenLake 8x8 (H = 200): 51,200 cells, 0.8 MB per worker,
// which stays in the L2 cache; the random MDP of the benchmarks (400,000 cells, 6.4 MB) and Taxi
// (600,000) are faster with the two passes.
inline constexpr std::int64_t kMaxCells = std::int64_t{1} << 17;
// A cell packs C_t(s, a) into bits 96..127 and the signed sum of Z_t(s, a) into bits 0..95
// (arithmetic modulo 2^128): exact while the batch has fewer than 2^31 trajectories (each step
// adds less than 2^61 in magnitude, so |sum| < 2^92).
inline constexpr std::int64_t kMaxTrajectories = std::int64_t{1} << 31;
inline constexpr int kCountBit = 96;
using Cell = uint128_t;
__extension__ typedef __int128 Signed;  // __extension__: no -Wpedantic warning

// The fixed-point exponent q of an MDP: |G_t| <= H max |R| for gamma <= 1, doubled for the
// rounding of the recursion, is below 2^m, and q = 61 - m (|G 2^q| < 2^61); 0 when every
// reward is 0, at most 960 (2^q stays finite for tiny rewards). None when the bound overflows.
inline std::optional<int> exponent(const FiniteMDP& mdp) {
  double rmax = 0.0;
  for (const double r : mdp.reward()) rmax = std::max(rmax, std::fabs(r));
  if (rmax == 0.0) return 0;
  const double bound = 2.0 * rmax * static_cast<double>(mdp.horizon());
  if (!std::isfinite(bound)) return std::nullopt;
  int m = 0;
  std::frexp(bound, &m);  // bound < 2^m
  return std::min(61 - m, 960);
}

// The exponent q when the one-pass tables compute the estimate: reward-to-go weights with the
// time baseline, totals only (no standard errors, no per-trajectory rows), fewer than 2^31
// trajectories, H S A <= kMaxCells and a finite bound on |G|; else None (the two passes).
// Depends on the MDP, n and the options only, never on the threads or the shards.
inline std::optional<int> one_pass(const WeightSpec& spec, bool per_trajectory, std::int64_t n, const FiniteMDP& mdp) {
  const std::int64_t SA = std::int64_t{mdp.n_states()} * mdp.n_actions();
  if (per_trajectory || spec.kind != WeightKind::RewardToGo || spec.baseline != BaselineKind::LeaveOneOutTime ||
      n >= kMaxTrajectories || SA > kMaxCells || mdp.horizon() > kMaxCells / std::max<std::int64_t>(SA, 1)) {
    return std::nullopt;
  }
  return exponent(mdp);
}

// round(x) to the nearest integer, ties to even (|x| < 2^63).
inline std::int64_t round_to_int(double x) noexcept {
#if defined(__SSE2__) || defined(_M_X64)
  return _mm_cvtsd_si64(_mm_set_sd(x));
#else
  return std::llrint(x);
#endif
}

// The signed sum (bits 0..95, sign-extended) and the count (the rest) packed in a cell, or in
// the sum of cells whose count is below 2^31 and whose sum is below 2^95 in magnitude.
inline Signed cell_sum(Cell c) noexcept {
  const Cell sign = Cell{1} << (kCountBit - 1);
  const Cell low = c & ((Cell{1} << kCountBit) - 1);
  return static_cast<Signed>(low ^ sign) - static_cast<Signed>(sign);
}
inline std::int64_t cell_count(Cell c) noexcept {
  return static_cast<std::int64_t>((c - static_cast<Cell>(cell_sum(c))) >> kCountBit);
}

// Thrown when a worker's table cannot be allocated (a MemoryError in Python, with the bytes).
struct TableAllocError : std::bad_alloc {
  explicit TableAllocError(std::int64_t bytes)
      : msg("the fused time baseline's per-step tables need " + std::to_string(bytes) +
            " bytes per worker thread, more than could be allocated") {}
  const char* what() const noexcept override { return msg.c_str(); }
  std::string msg;
};

// One worker's tables, rows [0, rows()) written (t-major: cell t * S A + s * A + a); the rows
// are zeroed as the first trajectory that reaches them ends, so short episodes touch only the
// first rows of a long horizon.
class Tables {
 public:
  Tables(std::int64_t H, std::int64_t SA) : SA_(SA) {
    try {
      cells_.reset(new Cell[static_cast<std::size_t>(H * SA)]);
    } catch (const std::bad_alloc&) {
      throw TableAllocError(H * SA * static_cast<std::int64_t>(sizeof(Cell)));
    }
  }
  // Makes rows [0, len) valid (zeroing the new ones) and returns the cells.
  Cell* rows_upto(std::int64_t len) noexcept {
    if (len > rows_) {
      std::fill(cells_.get() + rows_ * SA_, cells_.get() + len * SA_, Cell{0});
      rows_ = len;
    }
    return cells_.get();
  }
  std::int64_t rows() const noexcept { return rows_; }
  const Cell* cells() const noexcept { return cells_.get(); }
  // this += o, cell by cell (exact, in any order).
  void add(const Tables& o) noexcept {
    Cell* c = rows_upto(o.rows_);
    for (std::int64_t k = 0; k < o.rows_ * SA_; ++k) c[k] += o.cells_[k];
  }

 private:
  std::int64_t SA_, rows_ = 0;
  std::unique_ptr<Cell[]> cells_;
};

// The rollout sink of the one-pass time baseline: keeps each running trajectory's flat indices
// and rewards (as FusedSink), and when it ends adds round(G_t 2^q) and a count to its cell of
// row t; its block's return sums and steps go along reduce.hpp's tree (empty logit tables).
class Sink {
 public:
  Sink(std::int64_t H, std::int64_t S, std::int64_t A, double gamma, const double* gpow, int q)
      : tables(H, S * A), H_(H), A_(A), SA_(S * A), gamma_(gamma), gpow_(gpow), scale_(std::ldexp(1.0, q)) {
    sa_.resize(static_cast<std::size_t>(kLanes * H));
    r_.resize(static_cast<std::size_t>(kLanes * H));
    g_.resize(static_cast<std::size_t>(H));
    for (int k = kLanes - 1; k >= 0; --k) free_.push_back(k);
  }
  int begin(std::int64_t, std::int32_t) {
    const int k = free_.back();
    free_.pop_back();
    return k;
  }
  void step(int k, std::int64_t, std::int64_t t, std::int32_t s, std::int32_t a, double r) {
    const std::int64_t o = k * H_ + t;
    sa_[o] = static_cast<std::uint32_t>(s * A_ + a);
    r_[o] = r;
  }
  void end(int k, std::int64_t, std::int64_t len, std::int32_t) {
    const std::uint32_t* sa = sa_.data() + k * H_;
    const double G = suffix_returns(r_.data() + k * H_, len, gamma_, gpow_, g_.data());
    Cell* cells = tables.rows_upto(len);
    const double* g = g_.data();
    const double scale = scale_;
    const std::int64_t SA = SA_;
    constexpr Cell kOne = Cell{1} << kCountBit;
    for (std::int64_t t = 0; t < len; ++t) {
      cells[t * SA + sa[t]] += static_cast<Cell>(round_to_int(g[t] * scale)) + kOne;  // sign-extended sum
    }
    return_sum_ += G;
    return_sumsq_ += G * G;
    steps_ += len;
    free_.push_back(k);
  }
  void block_done(std::int64_t b) {
    TrajectoryScorer::Partial part;
    part.return_sum = return_sum_;
    part.return_sumsq = return_sumsq_;
    part.steps = steps_;
    return_sum_ = return_sumsq_ = 0.0;
    steps_ = 0;
    nodes.push(b, std::move(part), TrajectoryScorer::combine);
  }

  Tables tables;
  reduce::NodeStack<TrajectoryScorer::Partial> nodes;

 private:
  double return_sum_ = 0.0, return_sumsq_ = 0.0;
  std::int64_t steps_ = 0;
  std::int64_t H_, A_, SA_;
  double gamma_;
  const double* gpow_;
  double scale_;
  std::vector<std::uint32_t> sa_;
  std::vector<double> r_, g_;
  std::vector<int> free_;
};

// Simulates the blocks [block_lo, block_hi) of the grid with the one-pass sinks: their tree nodes
// (return sums and steps) are moved to `nodes` and their tables added up into `out` (null before).
// Returns false if the run was interrupted.
inline bool simulate(const FiniteMDP& mdp, const double* probs, double gamma, int q, const reduce::Grid& grid,
                     std::int64_t block_lo, std::int64_t block_hi, std::uint64_t seed, int threads, StopToken& stop,
                     std::vector<reduce::Part<TrajectoryScorer::Partial>>& nodes, std::unique_ptr<Tables>& out) {
  const std::int64_t H = mdp.horizon(), S = mdp.n_states(), A = mdp.n_actions();
  const std::vector<double> gpow = powers(gamma, H);
  std::vector<std::unique_ptr<Sink>> sinks;
  const bool ok = simulate_to_nodes<Sink>(
      mdp, probs, grid, block_lo, block_hi, seed, threads, stop,
      [&] { return std::make_unique<Sink>(H, S, A, gamma, gpow.data(), q); }, nodes, &sinks);
  if (!ok) return false;
  for (auto& sk : sinks) {
    if (!sk) continue;
    if (!out) {
      out = std::make_unique<Tables>(std::move(sk->tables));
    } else {
      out->add(sk->tables);
    }
  }
  return true;
}

// v as a double, rounded to nearest (as static_cast<double>(v)) for |v| < 2^111: the two parts
// v = hi 2^48 + lo, 0 <= lo < 2^48, are exact doubles, and their sum is rounded once.
inline double to_double(Signed v) noexcept {
  const auto hi = static_cast<std::int64_t>(v >> 48);
  const auto lo = static_cast<std::int64_t>(static_cast<std::uint64_t>(v) & ((std::uint64_t{1} << 48) - 1));
  return static_cast<double>(hi) * 0x1p48 + static_cast<double>(lo);
}

// The batch's logit-level sums W(s, a) (S A) from its tables, row by row: alpha_t and beta_t
// from the row's total (its count is count_t, its sum sum_i G_{i,t} 2^q) as LooTerms forms
// them, then W += alpha_t Z_t - beta_t C_t, over t = 0, 1, ... for every cell.
inline std::vector<double> logits(const Tables& tables, std::int64_t SA, double gamma, int q) {
  const std::int64_t rows = tables.rows();
  const Cell* cells = tables.cells();
  const std::vector<double> gpow = powers(gamma, std::max<std::int64_t>(rows, 1));
  const double unscale = std::ldexp(1.0, -q);
  std::vector<double> W(static_cast<std::size_t>(SA), 0.0);
  double* w = W.data();
  for (std::int64_t t = 0; t < rows; ++t) {
    const Cell* row = cells + t * SA;
    Cell total = 0;
    for (std::int64_t k = 0; k < SA; ++k) total += row[k];
    const std::int64_t count = cell_count(total);
    const double kt = count > 1 ? 1.0 / static_cast<double>(count - 1) : 0.0;
    const double gt = gpow[static_cast<std::size_t>(t)];
    const double alpha = gt * (1.0 + kt), beta = gt * (to_double(cell_sum(total)) * unscale) * kt;
    for (std::int64_t k = 0; k < SA; ++k) {
      const Cell c = row[k];
      if (c == 0) continue;  // adds +0
      w[k] += alpha * (to_double(cell_sum(c)) * unscale) - beta * static_cast<double>(cell_count(c));
    }
  }
  return W;
}

// The estimate's parameter-space sums from the tree nodes (return sums and steps) and the tables
// of the whole batch (or of shards that tile it).
inline FusedSink<kLanes>::Totals totals(std::vector<reduce::Part<TrajectoryScorer::Partial>>&& nodes,
                                        const Tables& tables, const PolicyTables& pol, double gamma, int q,
                                        std::int64_t blocks) {
  TrajectoryScorer::Partial root =
      reduce::merge_nodes(std::move(nodes), blocks, TrajectoryScorer::combine, "the fused estimator");
  root.table = logits(tables, pol.S * pol.A, gamma, q);
  FusedSink<kLanes>::Totals out;
  TrajectoryScorer::to_params(pol, false, root, out.sum, out.sumsq);
  out.return_sum = root.return_sum;
  out.return_sumsq = root.return_sumsq;
  out.steps = root.steps;
  return out;
}

}  // namespace pgfast::est::time_tables
