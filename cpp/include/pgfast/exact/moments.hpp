// Exact first and second moments of the single-trajectory likelihood-ratio estimators under the
// finite-horizon objective (docs/guide/exact.md, "Exact moments of the estimators"), by backward
// recursions over (t, s). The estimators are those of est::trajectory_weights (baselines.hpp):
//
//   "reward_to_go"   g = sum_t gamma^t x_t (G_t - b_t(s_t)),   G_t = sum_{t'>=t} gamma^(t'-t) r_t'
//   "return"         g = Y_0 (G_0 - b_0(s_0)),                  Y_t = sum_{t'>=t} x_t'
//
// with x_t = x(s_t, a_t) the score grad log pi(a_t|s_t) (one row of n coordinates per (s, a),
// given sparse: tabular rows have A entries). Conditioned on s_t, the suffix of g depends only on
// the future, and it is a polynomial in the suffix return G_t and the suffix score sums, so the
// conditional moments of those few quantities (per state, per coordinate) satisfy one backward
// recursion each. With F_t = sum_{t'>=t} gamma^(t'-t) x_t' (G_t' - b_t'),
//
//   G_t = r + gamma G_{t+1},   F_t = x (G_t - b_t) + gamma F_{t+1},   Y_t = x + Y_{t+1}
//
// (the primed quantities are 0 after entering a terminal state and at t + 1 = H). The reward-to-go
// estimator needs E[F], E[G F] and E[F^2]; the return estimator E[Y], E[Y G], E[Y G^2], E[Y^2],
// E[Y^2 G], E[Y^2 G^2]; both E[G] (= V_t) and E[G^2]. Second moments are kept per coordinate
// (diagonal) or, on request, for every pair of coordinates (the full matrix). Cost per step:
// O(nnz n) for the diagonal, O(nnz n^2) for the full matrix; memory 2 S (3 n) or 2 S (3 n + 3 n^2).
// The discounted objective (infinite horizon) solves the same recursions as linear systems.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "pgfast/exact/chain.hpp"
#include "pgfast/interrupt.hpp"
#include "pgfast/mdp.hpp"

namespace pgfast::exact {

enum class MomentWeights { RewardToGo, Return };

// The score rows x(s, a) in CSR form over the rows s * A + a, n coordinates.
struct ScoreRows {
  const std::int64_t* indptr = nullptr;  // (S * A + 1)
  const std::int32_t* index = nullptr;   // (nnz)
  const double* value = nullptr;         // (nnz)
  std::int64_t n = 0;
};

struct Moments {
  std::vector<double> mean;    // E[g], (n)
  std::vector<double> second;  // E[g_k^2] (n), or E[g g^T] (n * n, row-major) when full
  double J = 0.0;              // E[G_0]
  double G2 = 0.0;             // E[G_0^2]
  // Return weights without per-coordinate baselines: E[Y_k^2 G_0] and E[Y_k^2], (n)
  std::vector<double> yyg, yy;
};

namespace detail {

// Adds to M (diagonal: n; full: n x n) the symmetric product c (x y^T + y x^T) of the sparse x
// (indices idx, values val, nz entries) and the dense y.
inline void add_sym(double* M, bool full, std::int64_t n, const std::int32_t* idx, const double* val, std::int64_t nz,
                    const double* y, double c) {
  for (std::int64_t j = 0; j < nz; ++j) {
    const std::int64_t k = idx[j];
    const double v = c * val[j];
    if (!full) {
      M[k] += 2.0 * v * y[k];
      continue;
    }
    double* row = M + k * n;
    for (std::int64_t l = 0; l < n; ++l) {
      row[l] += v * y[l];
      M[l * n + k] += v * y[l];
    }
  }
}

// Adds c x x^T (diagonal: c x_k^2) for the sparse x.
inline void add_outer(double* M, bool full, std::int64_t n, const std::int32_t* idx, const double* val, std::int64_t nz,
                      double c) {
  for (std::int64_t j = 0; j < nz; ++j) {
    if (!full) {
      M[idx[j]] += c * val[j] * val[j];
      continue;
    }
    for (std::int64_t i = 0; i < nz; ++i) M[static_cast<std::int64_t>(idx[j]) * n + idx[i]] += c * val[j] * val[i];
  }
}

// out += c * x for the sparse x.
inline void add_sparse(double* out, const std::int32_t* idx, const double* val, std::int64_t nz, double c) {
  for (std::int64_t j = 0; j < nz; ++j) out[idx[j]] += c * val[j];
}

inline void axpy(double* out, const double* x, std::int64_t m, double c) {
  for (std::int64_t i = 0; i < m; ++i) out[i] += c * x[i];
}

}  // namespace detail

// The layout of the per-state moments: first-order channels (reward-to-go: F, GF; return: Y, YG,
// YGG) of n entries each, then second-order channels (reward-to-go: FF; return: YY, YYG, YYGG) of
// m2 = n (diagonal) or n * n (full) entries each, and the scalar moments E[G], E[G^2] apart.
struct MomentLayout {
  std::int64_t n, K1, K2, m2, block;
  bool rtg, full;
  MomentLayout(std::int64_t n_, MomentWeights w, bool full_)
      : n(n_),
        K1(w == MomentWeights::RewardToGo ? 2 : 3),
        K2(w == MomentWeights::RewardToGo ? 1 : 3),
        m2(full_ ? n_ * n_ : n_),
        block(K1 * n_ + K2 * m2),
        rtg(w == MomentWeights::RewardToGo),
        full(full_) {}
};

// One step of the recursions: the moments `cur` (S * block), `mG_c`, `mGG_c` (S) at a step from
// those of the next step (`nxt`, `mG_n`, `mGG_n`; ignored when `last`), with the baseline b(s)
// of this step (`b_row`, S) plus, for the reward-to-go weights, a per-coordinate baseline c_k of
// this step (`c_row`, n; nullptr for none): coordinate k's weight is gamma^t (G_t - b(s_t) - c_k).
inline void moment_step(const FiniteMDP& mdp, const double* pi, const ScoreRows& X, double gamma,
                        const MomentLayout& L, const double* b_row, const double* c_row, bool last,
                        const std::vector<double>& nxt,
                        const std::vector<double>& mG_n, const std::vector<double>& mGG_n, std::vector<double>& cur,
                        std::vector<double>& mG_c, std::vector<double>& mGG_c, StopToken& stop) {
  using detail::add_outer;
  using detail::add_sparse;
  using detail::add_sym;
  using detail::axpy;
  const std::int64_t S = mdp.n_states(), A = mdp.n_actions(), n = L.n, m2 = L.m2, block = L.block;
  const bool rtg = L.rtg, full = L.full;
  const auto& indptr = mdp.indptr();
  const auto& next = mdp.next();
  const auto& prob = mdp.prob();
  const auto& rew = mdp.reward();
  const auto& term = mdp.terminal();
  // Per action: the next-state blocks weighted by p alive, p alive r and p alive r^2.
  std::vector<double> W0(static_cast<std::size_t>(block)), W1(static_cast<std::size_t>(block)),
      W2(static_cast<std::size_t>(block)), T(static_cast<std::size_t>(n));
  const double g2 = gamma * gamma;
  std::fill(cur.begin(), cur.end(), 0.0);
  // a state costs O(nnz(row) block): poll every state when that is large
  const std::int64_t poll = block >= 1024 ? 1 : kPollStates;
  for (std::int64_t s = 0; s < S; ++s) {
    if (s % poll == poll - 1) check_stop(stop);
    mG_c[s] = mGG_c[s] = 0.0;
    if (term[s]) continue;
    const double b = b_row[s];
    double* out = cur.data() + s * block;
    for (std::int64_t a = 0; a < A; ++a) {
      const std::int64_t row = s * A + a;
      const double pa = pi[row];
      if (pa == 0.0) continue;
      double EG = 0.0, EG2 = 0.0, A1 = 0.0, A2 = 0.0, A3 = 0.0, psum = 0.0;
      std::fill(W0.begin(), W0.end(), 0.0);
      std::fill(W1.begin(), W1.end(), 0.0);
      std::fill(W2.begin(), W2.end(), 0.0);
      for (std::int64_t e = indptr[row]; e < indptr[row + 1]; ++e) {
        const double p = prob[e], r = rew[e], rho = r - b;
        const bool alive = !term[next[e]] && !last;
        const double g1 = alive ? gamma * mG_n[next[e]] : 0.0, gg = alive ? g2 * mGG_n[next[e]] : 0.0;
        EG += p * (r + g1);
        EG2 += p * (r * r + 2.0 * r * g1 + gg);
        A1 += p * (rho + g1);
        A2 += p * (rho * rho + 2.0 * rho * g1 + gg);
        A3 += p * (r * rho + g1 * (r + rho) + gg);
        psum += p;
        if (!alive) continue;
        const double* m = nxt.data() + static_cast<std::int64_t>(next[e]) * block;
        axpy(W0.data(), m, block, p);
        if (rtg) {
          axpy(W1.data(), m, n, p * r);  // only F's W1 is used
        } else {
          axpy(W1.data(), m, block, p * r);
          axpy(W2.data(), m, block, p * r * r);
        }
      }
      mG_c[s] += pa * EG;
      mGG_c[s] += pa * EG2;
      const std::int64_t beg = X.indptr[row], nz = X.indptr[row + 1] - beg;
      const std::int32_t* idx = X.index + beg;
      const double* val = X.value + beg;
      if (rtg) {
        double *F = out, *GF = out + n, *FF = out + 2 * n;
        const double *W0F = W0.data(), *W0GF = W0.data() + n, *W0FF = W0.data() + 2 * n, *W1F = W1.data();
        // F = x (G - b) + gamma F'
        axpy(F, W0F, n, pa * gamma);
        axpy(GF, W1F, n, pa * gamma);
        axpy(GF, W0GF, n, pa * g2);
        axpy(FF, W0FF, m2, pa * g2);
        if (c_row == nullptr) {
          add_sparse(F, idx, val, nz, pa * A1);
          // G F = x G (G - b) + gamma (r F' + gamma G' F')
          add_sparse(GF, idx, val, nz, pa * A3);
          // F^2 = x^2 (G - b)^2 + 2 x gamma ((r - b) F' + gamma G' F') + gamma^2 F'^2
          add_outer(FF, full, n, idx, val, nz, pa * A2);
          for (std::int64_t k = 0; k < n; ++k) T[k] = gamma * (W1F[k] - b * W0F[k]) + g2 * W0GF[k];
          add_sym(FF, full, n, idx, val, nz, T.data(), pa);
        } else {
          // the same with b + c_k in coordinate k: (G - b - c_k) = (G - b) - c_k
          for (std::int64_t j = 0; j < nz; ++j) {
            const std::int64_t k = idx[j];
            const double ck = c_row[k], v = pa * val[j];
            F[k] += v * (A1 - ck * psum);
            GF[k] += v * (A3 - ck * EG);
            if (!full) {
              FF[k] += v * val[j] * (A2 - 2.0 * ck * A1 + ck * ck * psum);
            } else {
              for (std::int64_t i = 0; i < nz; ++i) {
                const double cl = c_row[idx[i]];
                FF[k * n + idx[i]] += v * val[i] * (A2 - (ck + cl) * A1 + ck * cl * psum);
              }
            }
          }
          // 2 x_k gamma ((r - b - c_k) F'_l + gamma G' F'_l), symmetrised: the c_k part is that of k
          for (std::int64_t k = 0; k < n; ++k) T[k] = gamma * (W1F[k] - b * W0F[k]) + g2 * W0GF[k];
          add_sym(FF, full, n, idx, val, nz, T.data(), pa);
          for (std::int64_t j = 0; j < nz; ++j) {
            const std::int64_t k = idx[j];
            const double v = -pa * val[j] * gamma * c_row[k];
            if (!full) {
              FF[k] += 2.0 * v * W0F[k];
              continue;
            }
            for (std::int64_t l = 0; l < n; ++l) {
              FF[k * n + l] += v * W0F[l];
              FF[l * n + k] += v * W0F[l];
            }
          }
        }
      } else {
        double *Y = out, *YG = out + n, *YGG = out + 2 * n;
        double *YY = out + 3 * n, *YYG = YY + m2, *YYGG = YYG + m2;
        const double *W0Y = W0.data(), *W0YG = W0Y + n, *W0YGG = W0YG + n;
        const double *W0YY = W0.data() + 3 * n, *W0YYG = W0YY + m2, *W0YYGG = W0YYG + m2;
        const double *W1Y = W1.data(), *W1YG = W1Y + n, *W1YY = W1.data() + 3 * n, *W1YYG = W1YY + m2;
        const double *W2Y = W2.data(), *W2YY = W2.data() + 3 * n;
        // Y = x + Y'
        axpy(Y, W0Y, n, pa);
        add_sparse(Y, idx, val, nz, pa);
        // Y G = x G + r Y' + gamma Y' G'
        for (std::int64_t k = 0; k < n; ++k) T[k] = W1Y[k] + gamma * W0YG[k];
        axpy(YG, T.data(), n, pa);
        add_sparse(YG, idx, val, nz, pa * EG);
        // Y^2 G = x^2 G + 2 x (r Y' + gamma Y' G') + r Y'^2 + gamma Y'^2 G'
        add_outer(YYG, full, n, idx, val, nz, pa * EG);
        add_sym(YYG, full, n, idx, val, nz, T.data(), pa);
        axpy(YYG, W1YY, m2, pa);
        axpy(YYG, W0YYG, m2, pa * gamma);
        // Y G^2 = x G^2 + r^2 Y' + 2 gamma r Y' G' + gamma^2 Y' G'^2
        for (std::int64_t k = 0; k < n; ++k) T[k] = W2Y[k] + 2.0 * gamma * W1YG[k] + g2 * W0YGG[k];
        axpy(YGG, T.data(), n, pa);
        add_sparse(YGG, idx, val, nz, pa * EG2);
        // Y^2 G^2 = x^2 G^2 + 2 x (Y G^2)' terms + r^2 Y'^2 + 2 gamma r Y'^2 G' + gamma^2 Y'^2 G'^2
        add_outer(YYGG, full, n, idx, val, nz, pa * EG2);
        add_sym(YYGG, full, n, idx, val, nz, T.data(), pa);
        axpy(YYGG, W2YY, m2, pa);
        axpy(YYGG, W1YYG, m2, pa * 2.0 * gamma);
        axpy(YYGG, W0YYGG, m2, pa * g2);
        // Y^2 = x^2 + 2 x Y' + Y'^2
        add_outer(YY, full, n, idx, val, nz, pa);
        add_sym(YY, full, n, idx, val, nz, W0Y, pa);
        axpy(YY, W0YY, m2, pa);
      }
    }
  }
}

// The moments of the estimator from those of its first step: the average over s0 ~ mu0 (terminal
// starts contribute 0); the return estimator subtracts b(s0) = baseline[s0], plus c_k in
// coordinate k when `c` (n) is given.
inline Moments start_moments(const FiniteMDP& mdp, const MomentLayout& L, const double* baseline,
                             const double* c, const std::vector<double>& first, const std::vector<double>& mG,
                             const std::vector<double>& mGG) {
  using detail::axpy;
  const std::int64_t S = mdp.n_states(), n = L.n, m2 = L.m2, block = L.block;
  const auto& term = mdp.terminal();
  Moments out;
  out.mean.assign(static_cast<std::size_t>(n), 0.0);
  out.second.assign(static_cast<std::size_t>(m2), 0.0);
  if (!L.rtg) {
    out.yyg.assign(static_cast<std::size_t>(n), 0.0);
    out.yy.assign(static_cast<std::size_t>(n), 0.0);
  }
  const auto& mu0 = mdp.mu0();
  for (std::int64_t s = 0; s < S; ++s) {
    if (mu0[s] == 0.0 || term[s]) continue;
    const double* m = first.data() + s * block;
    out.J += mu0[s] * mG[s];
    out.G2 += mu0[s] * mGG[s];
    if (L.rtg) {
      axpy(out.mean.data(), m, n, mu0[s]);
      axpy(out.second.data(), m + 2 * n, m2, mu0[s]);
    } else if (c == nullptr) {
      const double b = baseline[s];
      const double *Y = m, *YG = m + n, *YY = m + 3 * n, *YYG = YY + m2, *YYGG = YYG + m2;
      const std::int64_t diag = L.full ? n + 1 : 1;
      for (std::int64_t k = 0; k < n; ++k) {
        out.yyg[k] += mu0[s] * YYG[k * diag];
        out.yy[k] += mu0[s] * YY[k * diag];
      }
      axpy(out.mean.data(), YG, n, mu0[s]);
      axpy(out.mean.data(), Y, n, -mu0[s] * b);
      axpy(out.second.data(), YYGG, m2, mu0[s]);
      axpy(out.second.data(), YYG, m2, -2.0 * mu0[s] * b);
      axpy(out.second.data(), YY, m2, mu0[s] * b * b);
    } else {
      // E[Y_k Y_l (G - b_k)(G - b_l)] with b_k = baseline[s] + c_k
      const double *Y = m, *YG = m + n, *YY = m + 3 * n, *YYG = YY + m2, *YYGG = YYG + m2;
      for (std::int64_t k = 0; k < n; ++k) {
        const double bk = baseline[s] + c[k];
        out.mean[k] += mu0[s] * (YG[k] - bk * Y[k]);
        if (!L.full) {
          out.second[k] += mu0[s] * (YYGG[k] - 2.0 * bk * YYG[k] + bk * bk * YY[k]);
          continue;
        }
        for (std::int64_t l = 0; l < n; ++l) {
          const double bl = baseline[s] + c[l];
          const std::int64_t i = k * n + l;
          out.second[i] += mu0[s] * (YYGG[i] - (bk + bl) * YYG[i] + bk * bl * YY[i]);
        }
      }
    }
  }
  return out;
}


// The moments of the estimator for the finite horizon H. `baseline` is the (H, S) table b_t(s)
// (the return estimator reads b_0(s_0)); `coord_baseline` (optional) adds a per-coordinate
// baseline: (H, n) c_{t,k} for the reward-to-go weights, c_{0,k} for the return weights; `full`
// asks for the full second-moment matrix.
inline Moments finite_horizon_moments(const FiniteMDP& mdp, const double* pi, const ScoreRows& X, std::int64_t H,
                                      double gamma, MomentWeights weights, const double* baseline,
                                      const double* coord_baseline, bool full, StopToken& stop) {
  const std::int64_t S = mdp.n_states();
  const MomentLayout L(X.n, weights, full);
  std::vector<double> nxt(static_cast<std::size_t>(S * L.block), 0.0), cur(nxt.size(), 0.0);
  std::vector<double> mG_n(static_cast<std::size_t>(S), 0.0), mGG_n(mG_n), mG_c(mG_n), mGG_c(mG_n);
  for (std::int64_t t = H - 1; t >= 0; --t) {
    check_stop(stop);
    const double* c_row = coord_baseline != nullptr && L.rtg ? coord_baseline + t * L.n : nullptr;
    moment_step(mdp, pi, X, gamma, L, baseline + t * S, c_row, t + 1 == H, nxt, mG_n, mGG_n, cur, mG_c, mGG_c, stop);
    std::swap(nxt, cur);
    std::swap(mG_n, mG_c);
    std::swap(mGG_n, mGG_c);
  }
  return start_moments(mdp, L, baseline, L.rtg ? nullptr : coord_baseline, nxt, mG_n, mGG_n);
}

// The per-coordinate "optimal" baselines (Peters & Schaal 2008; Greensmith, Bartlett & Baxter 2004)
// of the finite horizon, as coordinate baselines of finite_horizon_moments:
//
//   return weights: b_k = E[Y_k^2 G_0] / E[Y_k^2]            (one row, n), the constant that
//                   minimises Var[Y_k (G_0 - b)];
//   reward-to-go:   the per-step form of G(PO)MDP, g = sum_h Z_h (gamma^h r_h - gamma^h bt_h) with
//                   Z_h = sum_{t <= h} psi_t (up to the episode's end) and
//                   bt_{h,k} = E[Z_{h,k}^2 r_h] / E[Z_{h,k}^2], each step's term's second moment
//                   minimised on its own; as a reward-to-go baseline c_{t,k} = sum_{h>=t}
//                   gamma^(h-t) bt_{h,k} (H, n), since sum_h gamma^h bt_h Z_h = sum_t gamma^t psi_t c_t.
//
// E[Z_h^2] = sum_{t<=h} E[psi_t^2; alive at t] (the cross terms have mean 0); E[Z_h^2 r_h] by a
// forward recursion of u_h(s) = E[Z_{h-1}^2; s_h = s], v_h(s) = E[Z_{h-1}; s_h = s] and d_h(s).
// A coordinate with E[Z^2] = 0 gets 0. O(H nnz n).
inline std::vector<double> optimal_coordinate_baselines(const FiniteMDP& mdp, const double* pi, const ScoreRows& X,
                                                        std::int64_t H, double gamma, MomentWeights weights,
                                                        StopToken& stop) {
  const std::int64_t S = mdp.n_states(), A = mdp.n_actions(), n = X.n;
  if (weights == MomentWeights::Return) {
    const std::vector<double> zero(static_cast<std::size_t>(H * S), 0.0);
    const Moments m = finite_horizon_moments(mdp, pi, X, H, gamma, weights, zero.data(), nullptr, false, stop);
    std::vector<double> b(static_cast<std::size_t>(n), 0.0);
    for (std::int64_t k = 0; k < n; ++k) b[k] = m.yy[k] > 0.0 ? m.yyg[k] / m.yy[k] : 0.0;
    return b;
  }
  const auto& indptr = mdp.indptr();
  const auto& next = mdp.next();
  const auto& prob = mdp.prob();
  const auto& term = mdp.terminal();
  const std::vector<double> rexp = mdp.expected_reward();
  std::vector<double> d(mdp.mu0()), dn(static_cast<std::size_t>(S));
  for (std::int64_t s = 0; s < S; ++s)
    if (term[s]) d[s] = 0.0;
  std::vector<double> u(static_cast<std::size_t>(S * n), 0.0), v(u), un(u), vn(u);
  std::vector<double> den(static_cast<std::size_t>(n), 0.0), num(static_cast<std::size_t>(n)),
      z1(static_cast<std::size_t>(n)), z2(static_cast<std::size_t>(n));
  std::vector<double> bt(static_cast<std::size_t>(H * n), 0.0);
  const std::int64_t poll = n >= 1024 ? 1 : kPollStates;
  for (std::int64_t h = 0; h < H; ++h) {
    check_stop(stop);
    std::fill(num.begin(), num.end(), 0.0);
    std::fill(dn.begin(), dn.end(), 0.0);
    std::fill(un.begin(), un.end(), 0.0);
    std::fill(vn.begin(), vn.end(), 0.0);
    for (std::int64_t s = 0; s < S; ++s) {
      if (s % poll == poll - 1) check_stop(stop);
      if (term[s] || d[s] == 0.0) continue;  // d = 0 implies u = v = 0
      const double* us = u.data() + s * n;
      const double* vs = v.data() + s * n;
      for (std::int64_t a = 0; a < A; ++a) {
        const std::int64_t row = s * A + a;
        const double pa = pi[row];
        if (pa == 0.0) continue;
        const std::int64_t beg = X.indptr[row], nz = X.indptr[row + 1] - beg;
        const std::int32_t* idx = X.index + beg;
        const double* val = X.value + beg;
        // Z_h = Z_{h-1} + x: z2 = E[Z_h^2; s, a] / pa, z1 = E[Z_h; s, a] / pa
        std::copy(us, us + n, z2.begin());
        std::copy(vs, vs + n, z1.begin());
        for (std::int64_t j = 0; j < nz; ++j) {
          const std::int64_t k = idx[j];
          z2[k] += 2.0 * val[j] * vs[k] + val[j] * val[j] * d[s];
          z1[k] += val[j] * d[s];
          den[k] += pa * d[s] * val[j] * val[j];
        }
        detail::axpy(num.data(), z2.data(), n, pa * rexp[row]);
        if (h + 1 == H) continue;
        for (std::int64_t e = indptr[row]; e < indptr[row + 1]; ++e) {
          if (term[next[e]]) continue;
          const double w = pa * prob[e];
          dn[next[e]] += w * d[s];
          detail::axpy(un.data() + static_cast<std::int64_t>(next[e]) * n, z2.data(), n, w);
          detail::axpy(vn.data() + static_cast<std::int64_t>(next[e]) * n, z1.data(), n, w);
        }
      }
    }
    for (std::int64_t k = 0; k < n; ++k) bt[h * n + k] = den[k] > 0.0 ? num[k] / den[k] : 0.0;
    std::swap(d, dn);
    std::swap(u, un);
    std::swap(v, vn);
  }
  for (std::int64_t h = H - 2; h >= 0; --h)
    for (std::int64_t k = 0; k < n; ++k) bt[h * n + k] += gamma * bt[(h + 1) * n + k];
  return bt;
}

// Discounted objective (infinite horizon, gamma < 1), reward-to-go weights, a baseline b(s) (S):
// the moments are the fixed point of moment_step. Each unknown enters its own equation only through
// its next-step value, so they are solved in turn, E[G], E[G^2], F, GF, FF, each from
// (I - c P_alive) m = rhs with c = gamma (E[G], F) or gamma^2 (the others); the right-hand side is
// moment_step's output while that unknown (and the later ones) are still zero. P_alive is
// P_pi restricted to non-terminal successors (chain.hpp); dense LU or a Krylov solve per column.
inline Moments discounted_moments(const FiniteMDP& mdp, const double* pi, const ScoreRows& X, double gamma,
                                  const double* baseline, bool full, Method method, double tol, int threads,
                                  StopToken& stop) {
  const std::int64_t S = mdp.n_states();
  const MomentLayout L(X.n, MomentWeights::RewardToGo, full);
  PolicyChain chain(mdp, pi, &stop);
  chain.parallelize(threads, stop);
  const bool dense = use_dense(method, S);
  std::unique_ptr<DenseLU> lu1, lu2;  // I - gamma P_alive, I - gamma^2 P_alive
  if (dense) {
    const MatrixXd P = chain.dense_alive();
    lu1 = std::make_unique<DenseLU>(MatrixXd(MatrixXd::Identity(S, S) - gamma * P), stop);
    lu2 = std::make_unique<DenseLU>(MatrixXd(MatrixXd::Identity(S, S) - gamma * gamma * P), stop);
  }
  auto solve = [&](const VectorXd& b, bool squared) -> VectorXd {
    if (dense) return (squared ? lu2 : lu1)->solve(b);
    const double c = squared ? gamma * gamma : gamma;
    auto op = [&](const double* x, double* y) {
      chain.apply(x, y);
      for (std::int64_t i = 0; i < S; ++i) y[i] = x[i] - c * y[i];
    };
    VectorXd x = b;
    if (b.norm() > 0.0) krylov_solve(op, b, x, tol, stop, "exact moments", kKrylovAdvice);
    return x;
  };
  std::vector<double> known(static_cast<std::size_t>(S * L.block), 0.0), cur(known.size(), 0.0);
  std::vector<double> mG(static_cast<std::size_t>(S), 0.0), mGG(mG), rG(mG), rGG(mG);
  auto step = [&] { moment_step(mdp, pi, X, gamma, L, baseline, nullptr, false, known, mG, mGG, cur, rG, rGG, stop); };
  // Solves the columns [off, off + width) of the channel block in place.
  auto solve_columns = [&](std::int64_t off, std::int64_t width, bool squared) {
    VectorXd b(S);
    for (std::int64_t k = 0; k < width; ++k) {
      check_stop(stop);
      for (std::int64_t s = 0; s < S; ++s) b(s) = cur[s * L.block + off + k];
      const VectorXd x = solve(b, squared);
      for (std::int64_t s = 0; s < S; ++s) known[s * L.block + off + k] = x(s);
    }
  };
  step();
  {
    const VectorXd x = solve(Eigen::Map<const VectorXd>(rG.data(), S), false);
    std::copy(x.data(), x.data() + S, mG.begin());
  }
  step();
  {
    const VectorXd x = solve(Eigen::Map<const VectorXd>(rGG.data(), S), true);
    std::copy(x.data(), x.data() + S, mGG.begin());
  }
  step();
  solve_columns(0, L.n, false);  // F
  step();
  solve_columns(L.n, L.n, true);  // G F
  step();
  solve_columns(2 * L.n, L.m2, true);  // F^2
  return start_moments(mdp, L, baseline, nullptr, known, mG, mGG);
}

}  // namespace pgfast::exact
