// Sampling a linear-quadratic regulator under a linear-Gaussian policy (docs/guide/continuous.md,
// "Sampling an LQR and the fused estimator").
//
//   x_0 = x0 + C_0 z,                 C_0 C_0' = Sigma_0  (if a Gaussian start)
//   u_t = W x_t + sigma * eps_t,      eps_t ~ N(0, I_m)
//   r_t = -(x_t' Q x_t + u_t' R u_t)
//   x_{t+1} = A x_t + B u_t + C_w xi_t,  C_w C_w' = Sigma_w  (if process noise)
//
// Trajectory i of seed k draws its normals from the stream of (k, i) (rng.hpp, domain Rollout;
// normal.hpp): ceil(n / 2) Box-Muller pairs for z when the start is Gaussian, then at every step
// ceil((m + n_w) / 2) pairs, eps_t first and xi_t after it (n_w = n with process noise, else 0; an
// odd count leaves the pair's last normal unused). A trajectory is a function of (k, i) alone.
//
// A trajectory stops at the first t whose state has an entry beyond max_state in absolute value
// (or is not a number), or whose reward is not finite (an unstable policy): length t, flagged
// diverged; the steps before t are kept, and no inf or NaN is ever returned.
//
// Speed: kGroup trajectories advance in lock-step as the columns of (dim, kGroup) row-major
// matrices, so that every step is a few small matrix products (mlp.hpp's gemm_acc, which sums each
// entry in one fixed order on every CPU) and elementwise loops over the group that vectorise.
// Every column's arithmetic is its own: a trajectory's bits do not depend on the group it shares.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgfast/interrupt.hpp"
#include "pgfast/mlp.hpp"
#include "pgfast/normal.hpp"
#include "pgfast/parallel.hpp"
#include "pgfast/reduce.hpp"
#include "pgfast/rng.hpp"

namespace pgfast::lqr {

// Trajectories per lock-step group.
inline constexpr std::int64_t kGroup = 32;

// C (n, n) row-major with C C' = S for a symmetric positive semidefinite S (row-major): Cholesky
// with diagonal pivoting, stopped when the largest remaining pivot is at most n * 2^-52 * max_i
// S_ii (the rest of S is then zero to rounding: a semidefinite S gets a factor of lower rank).
// Deterministic (no library call besides sqrt).
inline std::vector<double> psd_factor(const double* S, std::int64_t n) {
  std::vector<double> M(S, S + n * n), L(static_cast<std::size_t>(n * n), 0.0);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  double dmax = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    perm[i] = i;
    dmax = std::max(dmax, M[i * n + i]);
  }
  const double tol = static_cast<double>(n) * 0x1.0p-52 * dmax;
  for (std::int64_t k = 0; k < n; ++k) {
    std::int64_t p = k;
    for (std::int64_t i = k + 1; i < n; ++i) {
      if (M[i * n + i] > M[p * n + p]) p = i;
    }
    if (!(M[p * n + p] > tol)) break;
    if (p != k) {
      for (std::int64_t j = 0; j < n; ++j) std::swap(M[k * n + j], M[p * n + j]);
      for (std::int64_t i = 0; i < n; ++i) std::swap(M[i * n + k], M[i * n + p]);
      for (std::int64_t j = 0; j < k; ++j) std::swap(L[k * n + j], L[p * n + j]);
      std::swap(perm[k], perm[p]);
    }
    const double d = std::sqrt(M[k * n + k]);
    L[k * n + k] = d;
    for (std::int64_t i = k + 1; i < n; ++i) L[i * n + k] = M[i * n + k] / d;
    for (std::int64_t i = k + 1; i < n; ++i) {
      for (std::int64_t j = k + 1; j <= i; ++j) {
        M[i * n + j] -= L[i * n + k] * L[j * n + k];
        M[j * n + i] = M[i * n + j];
      }
    }
  }
  std::vector<double> C(static_cast<std::size_t>(n * n));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < n; ++j) C[perm[i] * n + j] = L[i * n + j];
  }
  return C;
}

// The model and the policy, as row-major arrays the caller keeps alive.
struct Problem {
  std::int64_t n = 0, m = 0, H = 0;
  const double* A = nullptr;   // (n, n)
  const double* B = nullptr;   // (n, m)
  const double* Q = nullptr;   // (n, n), symmetric
  const double* R = nullptr;   // (m, m), symmetric
  const double* x0 = nullptr;  // (n,)
  const double* C0 = nullptr;  // (n, n) factor of the start covariance, or null (fixed start)
  const double* Cw = nullptr;  // (n, n) factor of the process noise covariance, or null
  double max_state = 1e6;
  const double* W = nullptr;      // (m, n)
  const double* sigma = nullptr;  // (m,)
};

// What the step loop reads besides the Problem: the quadratic forms' upper triangles with the
// off-diagonal entries doubled (x'Qx = sum_i x_i (Q_ii x_i + sum_{j>i} 2 Q_ij x_j)), and the
// number of normal pairs drawn at the start and per step.
struct Prepared {
  explicit Prepared(const Problem& p)
      : Q2(upper_doubled(p.Q, p.n)), R2(upper_doubled(p.R, p.m)),
        start_pairs(p.C0 ? (p.n + 1) / 2 : 0), step_normals(p.m + (p.Cw ? p.n : 0)),
        step_pairs((step_normals + 1) / 2) {}
  static std::vector<double> upper_doubled(const double* S, std::int64_t n) {
    std::vector<double> U(static_cast<std::size_t>(n * n), 0.0);
    for (std::int64_t i = 0; i < n; ++i) {
      U[i * n + i] = S[i * n + i];
      for (std::int64_t j = i + 1; j < n; ++j) U[i * n + j] = 2.0 * S[i * n + j];
    }
    return U;
  }
  std::vector<double> Q2, R2;
  std::int64_t start_pairs, step_normals, step_pairs;
};

// The per-worker buffers of the lock-step groups. The random streams of the lanes are held as
// columns (s0[j], s1[j]): the xoroshiro128++ state of rng.hpp's item_stream, advanced for all lanes
// at once (the loop vectorises; each lane's words are those of Xoroshiro128pp::next()).
struct Workspace {
  explicit Workspace(const Problem& p, const Prepared& pre)
      : X(static_cast<std::size_t>(p.n * kGroup)), Xn(X.size()), U(static_cast<std::size_t>(p.m * kGroup)),
        E(U.size()), Xi(p.Cw ? X.size() : 0), r(kGroup), ok(kGroup),
        words(static_cast<std::size_t>(2 * kGroup * std::max(pre.step_pairs, pre.start_pairs)), 0),
        normals(words.size()), scratch(words.size() / 2), s0(kGroup, 0), s1(kGroup, 1), len(kGroup), alive(kGroup) {}
  std::vector<double> X, Xn, U, E, Xi, r, ok;
  std::vector<std::uint64_t> words;
  std::vector<double> normals, scratch;
  std::vector<std::uint64_t> s0, s1;
  std::vector<std::int64_t> len;
  std::vector<unsigned char> alive;
};

namespace detail {

typedef double v4d __attribute__((vector_size(32)));  // (no lambdas: they would not inherit the target)
inline constexpr int kGroupVectors = static_cast<int>(kGroup / 4);

// Out (rows, kGroup) += M (rows, inner) In (inner, kGroup): entry (i, j) adds M[i, q] In[q, j] for
// q = 0..inner-1 in order, skipping the q with M[i, q] = 0 (structured matrices -- diagonal costs
// and noise, triangular factors -- cost only their non-zero entries). A row of Out stays in
// registers over the whole q loop.
PGFAST_ALWAYS_INLINE void gemm_group(const double* M, const double* In, double* Out, std::int64_t rows,
                                     std::int64_t inner) {
  for (std::int64_t i = 0; i < rows; ++i) {
    double* o = Out + i * kGroup;
    v4d acc[kGroupVectors];
    std::memcpy(acc, o, sizeof acc);
    for (std::int64_t q = 0; q < inner; ++q) {
      const double a = M[i * inner + q];
      if (a == 0.0) continue;
      const v4d av = {a, a, a, a};
      const double* x = In + q * kGroup;
      for (int c = 0; c < kGroupVectors; ++c) {
        v4d xv;
        std::memcpy(&xv, x + 4 * c, sizeof xv);
        acc[c] += av * xv;
      }
    }
    std::memcpy(o, acc, sizeof acc);
  }
}

// acc[j] -= sum_i X[i, j] (sum_{k>=i} U[i, k] X[k, j]) over the columns j < kGroup of X (d, kGroup):
// minus the quadratic form, U from Prepared::upper_doubled (zero entries skipped).
PGFAST_ALWAYS_INLINE void sub_quadratic(const double* U, const double* X, std::int64_t d, double* acc) {
  for (std::int64_t i = 0; i < d; ++i) {
    v4d tmp[kGroupVectors], xi[kGroupVectors];
    std::memcpy(xi, X + i * kGroup, sizeof xi);
    const double uii = U[i * d + i];
    const v4d dv = {uii, uii, uii, uii};
    for (int c = 0; c < kGroupVectors; ++c) tmp[c] = dv * xi[c];
    for (std::int64_t k = i + 1; k < d; ++k) {
      const double u = U[i * d + k];
      if (u == 0.0) continue;
      const v4d uv = {u, u, u, u};
      const double* xk = X + k * kGroup;
      for (int c = 0; c < kGroupVectors; ++c) {
        v4d xv;
        std::memcpy(&xv, xk + 4 * c, sizeof xv);
        tmp[c] += uv * xv;
      }
    }
    v4d a[kGroupVectors];
    std::memcpy(a, acc, sizeof a);
    for (int c = 0; c < kGroupVectors; ++c) a[c] -= xi[c] * tmp[c];
    std::memcpy(acc, a, sizeof a);
  }
}

// Draws `pairs` Box-Muller pairs for every lane: lane j's words k < 2 pairs go to
// words[k kGroup + j], and its normal k to normals[k kGroup + j] (standard_normals pairs word k with
// word k + pairs of the same lane: normals k and k + pairs are that pair's cosine and sine).
PGFAST_ALWAYS_INLINE void draw_normals(Workspace& ws, std::int64_t pairs) {
  std::uint64_t* __restrict w = ws.words.data();
  std::uint64_t* __restrict s0 = ws.s0.data();
  std::uint64_t* __restrict s1 = ws.s1.data();
  for (std::int64_t k = 0; k < 2 * pairs; ++k) {
    for (std::int64_t j = 0; j < kGroup; ++j) {  // Xoroshiro128pp::next() of each lane
      const std::uint64_t a = s0[j], b = s1[j];
      const std::uint64_t ab = a + b;
      w[k * kGroup + j] = ((ab << 17) | (ab >> 47)) + a;
      const std::uint64_t c = b ^ a;
      s0[j] = ((a << 49) | (a >> 15)) ^ c ^ (c << 21);
      s1[j] = (c << 28) | (c >> 36);
    }
  }
  standard_normals(w, ws.normals.data(), ws.scratch.data(), kGroup * pairs);
}

// The body of simulate_group (compiled twice: for any x86-64 and for AVX2, the same bits).
template <class Sink>
PGFAST_ALWAYS_INLINE bool group_loop(const Problem& p, const Prepared& pre, std::int64_t i0, std::int64_t G,
                                     Workspace& ws, Sink& sink, StopToken& stop, int worker) {
  const std::int64_t n = p.n, m = p.m, H = p.H;
  double* X = ws.X.data();
  double* Xn = ws.Xn.data();
  double* U = ws.U.data();
  double* E = ws.E.data();
  double* Xi = ws.Xi.data();
  double* r = ws.r.data();
  unsigned char* alive = ws.alive.data();
  const double* nrm = ws.normals.data();
  std::int64_t running = G;
  // The start, x0 + C_0 z (columns past G stay 0 throughout).
  std::fill(X, X + n * kGroup, 0.0);
  if (p.C0) {
    draw_normals(ws, pre.start_pairs);
    std::fill(Xn, Xn + n * kGroup, 0.0);
    for (std::int64_t k = 0; k < n; ++k) {  // z as (n, G) in Xn, then X = C_0 z
      for (std::int64_t j = 0; j < G; ++j) Xn[k * kGroup + j] = nrm[k * kGroup + j];
    }
    gemm_group(p.C0, Xn, X, n, n);
  }
  for (std::int64_t k = 0; k < n; ++k) {
    for (std::int64_t j = 0; j < G; ++j) X[k * kGroup + j] += p.x0[k];
  }
  for (std::int64_t t = 0; t < H && running > 0; ++t) {
    if ((t & 7) == 7 && stop(worker)) return false;  // a step of a wide state can take milliseconds
    draw_normals(ws, pre.step_pairs);
    // a lane whose state left the bound stops here (its column is 0 from now on)
    double* ok = ws.ok.data();  // 1 while every entry so far is within the bound (NaN is not)
    for (std::int64_t j = 0; j < kGroup; ++j) ok[j] = 1.0;
    for (std::int64_t k = 0; k < n; ++k) {
      const double* x = X + k * kGroup;
      for (std::int64_t j = 0; j < kGroup; ++j) ok[j] = std::fabs(x[j]) <= p.max_state ? ok[j] : 0.0;
    }
    for (std::int64_t j = 0; j < G; ++j) {
      if (ok[j] == 0.0 && alive[j]) {
        alive[j] = 0;
        ws.len[j] = t;
        --running;
      }
      if (!alive[j]) {
        for (std::int64_t k = 0; k < n; ++k) X[k * kGroup + j] = 0.0;
      }
    }
    // u = W x + sigma eps
    for (std::int64_t a = 0; a < m; ++a) {
      for (std::int64_t j = 0; j < G; ++j) E[a * kGroup + j] = nrm[a * kGroup + j];
      for (std::int64_t j = G; j < kGroup; ++j) E[a * kGroup + j] = 0.0;
    }
    std::fill(U, U + m * kGroup, 0.0);
    gemm_group(p.W, X, U, m, n);
    for (std::int64_t a = 0; a < m; ++a) {
      const double s = p.sigma[a];
      for (std::int64_t j = 0; j < kGroup; ++j) U[a * kGroup + j] += s * E[a * kGroup + j];
    }
    // r = -(x'Qx + u'Ru)
    std::fill(r, r + kGroup, 0.0);
    sub_quadratic(pre.Q2.data(), X, n, r);
    sub_quadratic(pre.R2.data(), U, m, r);
    for (std::int64_t j = 0; j < G; ++j) {
      if (alive[j] && !std::isfinite(r[j])) {
        alive[j] = 0;
        ws.len[j] = t;
        --running;
      }
    }
    sink.step(t, i0, G, X, U, E, r, alive);
    // x' = A x + B u + C_w xi
    std::fill(Xn, Xn + n * kGroup, 0.0);
    gemm_group(p.A, X, Xn, n, n);
    gemm_group(p.B, U, Xn, n, m);
    if (p.Cw) {
      for (std::int64_t k = 0; k < n; ++k) {
        for (std::int64_t j = 0; j < G; ++j) Xi[k * kGroup + j] = nrm[(m + k) * kGroup + j];
        for (std::int64_t j = G; j < kGroup; ++j) Xi[k * kGroup + j] = 0.0;
      }
      gemm_group(p.Cw, Xi, Xn, n, n);
    }
    std::swap(X, Xn);
  }
  sink.end(i0, G, ws.len.data(), alive);
  return true;
}

#ifdef PGFAST_AVX2_KERNELS
template <class Sink>
__attribute__((target("avx2,fma"))) PGFAST_VECTORISABLE bool group_avx2(const Problem& p, const Prepared& pre,
                                                                       std::int64_t i0, std::int64_t G, Workspace& ws,
                                                                       Sink& sink, StopToken& stop, int worker) {
  return group_loop(p, pre, i0, G, ws, sink, stop, worker);
}
#endif
template <class Sink>
PGFAST_VECTORISABLE bool group_default(const Problem& p, const Prepared& pre, std::int64_t i0, std::int64_t G,
                                       Workspace& ws, Sink& sink, StopToken& stop, int worker) {
  return group_loop(p, pre, i0, G, ws, sink, stop, worker);
}

}  // namespace detail

// Simulates trajectories [i0, i0 + G) (G <= kGroup) of the stream key in lock-step. The sink sees
//   sink.step(t, i0, G, X, U, E, r, alive)  after step t's action and reward (X (n, kGroup),
//                                            U and E (m, kGroup): actions and their eps, lane j in
//                                            column j; r (kGroup,); alive[j]: lane j takes step t)
//   sink.end(i0, G, len, alive)             once all lanes are done (alive[j]: lane j ran to H,
//                                            otherwise it diverged at len[j])
// Returns false if stopped (then end() is not called). Runs the AVX2 copy when the CPU has it.
template <class Sink>
bool simulate_group(const Problem& p, const Prepared& pre, std::uint64_t key, std::int64_t i0, std::int64_t G,
                    Workspace& ws, Sink& sink, StopToken& stop, int worker) {
  for (std::int64_t j = 0; j < kGroup; ++j) {
    if (j < G) {  // rng.hpp's item_stream(key, i0 + j)
      const Block2x64 b = philox2x64(0, static_cast<std::uint64_t>(i0 + j), key);
      ws.s0[j] = b.v0;
      ws.s1[j] = b.v1 | static_cast<std::uint64_t>((b.v0 | b.v1) == 0);
    } else {
      ws.s0[j] = 0;
      ws.s1[j] = 1;
    }
    ws.alive[j] = j < G ? 1 : 0;
    ws.len[j] = p.H;
  }
#ifdef PGFAST_AVX2_KERNELS
  if (use_avx2()) return detail::group_avx2(p, pre, i0, G, ws, sink, stop, worker);
#endif
  return detail::group_default(p, pre, i0, G, ws, sink, stop, worker);
}

// Writes the padded batch: states (N, H, n), actions (N, H, m), rewards (N, H) (zero-filled by the
// caller: steps past a trajectory's end stay 0), lengths (N,) and diverged (N,) flags.
struct StoreSink {
  double* states;
  double* actions;
  double* rewards;
  std::int32_t* lengths;
  std::uint8_t* diverged;
  std::int64_t n, m, H;

  void step(std::int64_t t, std::int64_t i0, std::int64_t G, const double* X, const double* U, const double*,
            const double* r, const unsigned char* alive) noexcept {
    for (std::int64_t j = 0; j < G; ++j) {
      if (!alive[j]) continue;
      const std::int64_t o = (i0 + j) * H + t;
      double* xs = states + o * n;
      double* us = actions + o * m;
      for (std::int64_t k = 0; k < n; ++k) xs[k] = X[k * kGroup + j];
      for (std::int64_t a = 0; a < m; ++a) us[a] = U[a * kGroup + j];
      rewards[o] = r[j];
    }
  }
  void end(std::int64_t i0, std::int64_t G, const std::int64_t* len, const unsigned char* alive) noexcept {
    for (std::int64_t j = 0; j < G; ++j) {
      lengths[i0 + j] = static_cast<std::int32_t>(len[j]);
      diverged[i0 + j] = alive[j] ? 0 : 1;
    }
  }
  void block_done(std::int64_t) noexcept {}
};

// Simulates the trajectories of the grid's blocks on `threads` workers: worker w takes its
// contiguous share of the blocks (reduce::share), each block's trajectories in index order, and
// calls sink.block_done(b) after block b; sink_of(w) gives worker w's sink (a reference, made on the
// worker's thread). Returns false if the run was interrupted.
template <class SinkOf>
bool simulate_blocks(const Problem& p, const reduce::Grid& grid, std::uint64_t seed, int threads, SinkOf&& sink_of,
                     StopToken& stop) {
  const Prepared pre(p);
  const std::uint64_t key = stream_key(seed, Domain::Rollout);
  threads = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, grid.blocks)));
  return run_workers(
      threads,
      [&](int w, StopToken& st) {
        auto& sink = sink_of(w);
        Workspace ws(p, pre);
        const auto [b0, b1] = reduce::share(0, grid.blocks, w, threads);
        for (std::int64_t b = b0; b < b1; ++b) {
          for (std::int64_t i = grid.begin(b); i < grid.end(b); i += kGroup) {
            if (st(w)) return;
            const std::int64_t G = std::min(kGroup, grid.end(b) - i);
            if (!simulate_group(p, pre, key, i, G, ws, sink, st, w)) return;
          }
          sink.block_done(b);
        }
      },
      stop);
}

}  // namespace pgfast::lqr
