// The exact linear-quadratic regulator (docs/theory.md, "The linear-quadratic regulator").
//
// Model: x_{t+1} = A x_t + B u_t + w_t, w_t ~ N(0, Sigma_w), E[x_0 x_0^T] = S_0, reward
// r_t = -(x_t^T Q x_t + u_t^T R u_t); policy u_t = W x_t + sigma * eps_t (D = diag(sigma^2)).
// Write L = A + B W, M = Q + W^T R W, Psi = B D B^T + Sigma_w.
//
//   finite horizon H   S_{t+1} = L S_t L^T + Psi,  P_H = 0,  P_t = M + gamma L^T P_{t+1} L
//                      J = -sum_{t<H} gamma^t [tr(M S_t) + tr(R D)]
//                      dJ/dW = -2 sum_t gamma^t (R W + gamma B^T P_{t+1} L) S_t
//                      dJ/dlog sigma_i = -2 sigma_i^2 sum_t gamma^t (R + gamma B^T P_{t+1} B)_ii
//   discounted         rho(sqrt(gamma) L) < 1;  P = M + gamma L^T P L,
//                      Sigma = S_0 + gamma / (1 - gamma) Psi + gamma L Sigma L^T (= sum_t gamma^t S_t)
//                      J = -tr(M Sigma) - tr(R D) / (1 - gamma)
//                      dJ/dW = -2 (R W + gamma B^T P L) Sigma
//                      dJ/dlog sigma_i = -2 sigma_i^2 (R + gamma B^T P B)_ii / (1 - gamma)
//   optimal            discounted: the stabilising solution of the discounted Riccati equation
//                      (structure-preserving doubling, then Hewer steps), W* = -K,
//                      K = gamma (R + gamma B^T P B)^{-1} B^T P A; finite horizon: backward Riccati
//                      recursion for the time-varying gains W*_t; the best stationary W of the finite
//                      horizon by L-BFGS on the exact gradient.
//
// Lyapunov equations X = C + F X F^T (rho(F) < 1) are solved by doubling (Smith's method):
// X_{k+1} = X_k + F_k X_k F_k^T, F_{k+1} = F_k^2, stopped when ||F_k||_F^2 <= 1e-18 (the remainder
// F_k X F_k^T is then below rounding). Everything is dense, O(n^3) per step; no Python, one thread.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "pgfast/interrupt.hpp"

namespace pgfast::exact::lqr {

using Eigen::MatrixXd;
using Eigen::VectorXd;

struct Model {
  MatrixXd A, B, Q, R;
  MatrixXd S0;     // E[x_0 x_0^T] = x0 x0^T + Sigma_0
  MatrixXd noise;  // Sigma_w (zeros: no process noise)
  double gamma = 1.0;
  std::int64_t horizon = 0;  // 0: the discounted infinite horizon (gamma < 1)

  std::int64_t n() const { return A.rows(); }
  std::int64_t m() const { return B.cols(); }
};

struct Evaluation {
  double J = 0.0;
  MatrixXd grad_W;            // dJ/dW, (m, n)
  VectorXd grad_log_sigma;    // dJ/dlog sigma, (m,)
  double spectral_radius = 0.0;  // rho(sqrt(gamma) (A + B W))
  // With tables: finite horizon S_t and P_t for t < H (H n^2 each, t-major); discounted Sigma and P.
  std::vector<double> S, P;
};

// The spectral radius of a square matrix (largest eigenvalue modulus).
inline double spectral_radius(const MatrixXd& F) {
  if (F.size() == 0) return 0.0;
  Eigen::EigenSolver<MatrixXd> es(F, false);
  if (es.info() != Eigen::Success) throw std::domain_error("the eigenvalue iteration did not converge");
  return es.eigenvalues().cwiseAbs().maxCoeff();
}

inline void symmetrise(MatrixXd& X) { X = 0.5 * (X + X.transpose()).eval(); }

// X = C + F X F^T for rho(F) < 1, by doubling. False when it does not converge in 64 doublings
// (2^64 terms) or overflows.
inline bool lyapunov(const MatrixXd& F, const MatrixXd& C, MatrixXd& X, StopToken& stop) {
  X = C;
  MatrixXd Fk = F;
  for (int k = 0; k < 64; ++k) {
    check_stop(stop);
    if (Fk.squaredNorm() <= 1e-18) return X.allFinite();
    X += Fk * X * Fk.transpose();
    symmetrise(X);
    Fk = (Fk * Fk).eval();
    if (!X.allFinite() || !Fk.allFinite()) return false;
  }
  return false;
}

inline std::string not_stabilising(double gamma, double rho, const char* what) {
  std::ostringstream os;
  os << what << " is not stabilising for gamma = " << gamma << ": J = -inf; the spectral radius of sqrt(gamma) (A + B W) is "
     << rho << " (it must be < 1)";
  return os.str();
}

// J, dJ/dW and dJ/dlog sigma of the policy u = W x + sigma * eps. With `tables`, also S_t and P_t
// (finite horizon) or Sigma and P (discounted). Throws std::domain_error when W does not stabilise
// the discounted problem.
inline Evaluation evaluate(const Model& mdl, const MatrixXd& W, const VectorXd& sigma, bool tables, StopToken& stop) {
  const std::int64_t n = mdl.n(), H = mdl.horizon;
  const double g = mdl.gamma;
  const MatrixXd L = mdl.A + mdl.B * W;
  const MatrixXd M = mdl.Q + W.transpose() * mdl.R * W;
  const VectorXd D = sigma.cwiseAbs2();
  const MatrixXd Psi = mdl.B * D.asDiagonal() * mdl.B.transpose() + mdl.noise;
  const double trRD = mdl.R.diagonal().dot(D);
  const MatrixXd RW = mdl.R * W;
  Evaluation ev;
  ev.spectral_radius = spectral_radius(std::sqrt(g) * L);
  if (H == 0) {  // discounted infinite horizon
    if (!(ev.spectral_radius < 1.0)) throw std::domain_error(not_stabilising(g, ev.spectral_radius, "W"));
    const MatrixXd F = std::sqrt(g) * L;
    MatrixXd P, Sigma;
    if (!lyapunov(F.transpose(), M, P, stop) || !lyapunov(F, mdl.S0 + (g / (1.0 - g)) * Psi, Sigma, stop))
      throw std::domain_error(not_stabilising(g, ev.spectral_radius, "W (numerically)"));
    ev.J = -(M.cwiseProduct(Sigma).sum()) - trRD / (1.0 - g);
    ev.grad_W = -2.0 * (RW + g * mdl.B.transpose() * P * L) * Sigma;
    const VectorXd diag = (mdl.R + g * mdl.B.transpose() * P * mdl.B).diagonal();
    ev.grad_log_sigma = (-2.0 / (1.0 - g)) * D.cwiseProduct(diag);
    if (tables) {
      ev.S.assign(Sigma.data(), Sigma.data() + n * n);  // symmetric: the same in either order
      ev.P.assign(P.data(), P.data() + n * n);
    }
    return ev;
  }
  // Finite horizon: P_t backward (stored), then S_t forward with the sums of J and the gradient.
  const std::size_t nn = static_cast<std::size_t>(n * n);
  std::vector<double> Ps(static_cast<std::size_t>(H + 1) * nn, 0.0);  // P_0 .. P_H (P_H = 0)
  MatrixXd Pn = MatrixXd::Zero(n, n);
  for (std::int64_t t = H - 1; t >= 0; --t) {
    if (t % 256 == 0) check_stop(stop);
    MatrixXd Pt = M + g * L.transpose() * Pn * L;
    symmetrise(Pt);
    std::copy(Pt.data(), Pt.data() + nn, Ps.begin() + static_cast<std::ptrdiff_t>(t * n * n));
    Pn = std::move(Pt);
  }
  if (tables) ev.S.assign(static_cast<std::size_t>(H) * nn, 0.0);
  MatrixXd S = mdl.S0;
  MatrixXd gradW = MatrixXd::Zero(W.rows(), W.cols());
  VectorXd diag = VectorXd::Zero(W.rows());
  double J = 0.0, disc = 1.0;
  for (std::int64_t t = 0; t < H; ++t) {
    if (t % 256 == 0) check_stop(stop);
    const Eigen::Map<const MatrixXd> Pnext(Ps.data() + (t + 1) * n * n, n, n);
    const MatrixXd BP = mdl.B.transpose() * Pnext;  // (m, n)
    J -= disc * (M.cwiseProduct(S).sum() + trRD);
    gradW += disc * (RW + g * BP * L) * S;
    diag += disc * (mdl.R + g * BP * mdl.B).diagonal();
    if (tables) std::copy(S.data(), S.data() + nn, ev.S.begin() + static_cast<std::ptrdiff_t>(t * n * n));
    if (t + 1 < H) {
      MatrixXd Sn = L * S * L.transpose() + Psi;
      symmetrise(Sn);
      S = std::move(Sn);
    }
    disc *= g;
  }
  ev.J = J;
  ev.grad_W = -2.0 * gradW;
  ev.grad_log_sigma = -2.0 * D.cwiseProduct(diag);
  if (tables) {
    Ps.resize(static_cast<std::size_t>(H) * nn);  // drop P_H = 0
    ev.P = std::move(Ps);
  }
  return ev;
}

struct Optimal {
  double J = 0.0;          // the optimal J (no action noise)
  std::vector<double> W;   // discounted: W* (m, n) column-major; finite: W*_t (H of them)
  std::vector<double> P;   // discounted: P (n, n); finite: P_t for t < H
  std::int64_t iterations = 0;  // doubling + Hewer steps (discounted), H (finite)
  double spectral_radius = 0.0;  // rho(sqrt(gamma) (A + B W*)) (discounted)
};

// The stabilising solution of the discounted Riccati equation
//   P = Q + gamma A^T P A - gamma^2 A^T P B (R + gamma B^T P B)^{-1} B^T P A
// by the structure-preserving doubling algorithm on (sqrt(gamma) A, sqrt(gamma) B), polished by
// Hewer steps (policy evaluation by a Lyapunov solve, then the greedy gain). Throws
// std::domain_error when there is no stabilising solution.
inline Optimal optimal_discounted(const Model& mdl, StopToken& stop) {
  const std::int64_t n = mdl.n();
  const double g = mdl.gamma;
  const MatrixXd I = MatrixXd::Identity(n, n);
  const Eigen::LLT<MatrixXd> Rllt(mdl.R);
  MatrixXd Ak = std::sqrt(g) * mdl.A;
  MatrixXd G = g * mdl.B * Rllt.solve(mdl.B.transpose());
  symmetrise(G);
  MatrixXd Hk = mdl.Q;
  Optimal o;
  const char* advice =
      "the discounted Riccati equation has no stabilising solution for gamma = ";
  auto fail = [&](double rho) {
    std::ostringstream os;
    os << advice << g << " ((sqrt(gamma) A, B) must be stabilisable and (sqrt(gamma) A, Q) detectable)";
    if (rho >= 0.0) os << "; the spectral radius of sqrt(gamma) (A + B W) at the solution found is " << rho;
    throw std::domain_error(os.str());
  };
  bool converged = false;
  for (int k = 0; k < 100 && !converged; ++k) {
    check_stop(stop);
    ++o.iterations;
    const Eigen::PartialPivLU<MatrixXd> lu(I + G * Hk);
    const MatrixXd V1 = lu.solve(Ak), V2 = lu.solve(G);
    MatrixXd Gn = G + Ak * V2 * Ak.transpose();
    MatrixXd Hn = Hk + Ak.transpose() * Hk * V1;
    MatrixXd An = Ak * V1;
    symmetrise(Gn);
    symmetrise(Hn);
    if (!Hn.allFinite() || !Gn.allFinite() || !An.allFinite()) fail(-1.0);
    converged = (Hn - Hk).norm() <= 1e-15 * std::max(Hn.norm(), std::numeric_limits<double>::min());
    Ak = std::move(An), G = std::move(Gn), Hk = std::move(Hn);
  }
  if (!converged) fail(-1.0);
  auto gain = [&](const MatrixXd& P) -> MatrixXd {
    const MatrixXd BP = mdl.B.transpose() * P;
    return -g * (mdl.R + g * BP * mdl.B).llt().solve(BP * mdl.A);  // W = -K
  };
  MatrixXd P = Hk, W = gain(P);
  double rho = spectral_radius(std::sqrt(g) * (mdl.A + mdl.B * W));
  if (!(rho < 1.0)) fail(rho);
  for (int k = 0; k < 5; ++k) {  // Hewer: P_W by its Lyapunov equation, then the greedy gain
    const MatrixXd F = std::sqrt(g) * (mdl.A + mdl.B * W);
    MatrixXd Pw;
    if (!lyapunov(F.transpose(), mdl.Q + W.transpose() * mdl.R * W, Pw, stop)) fail(rho);
    const MatrixXd Wn = gain(Pw);
    const double change = (Wn - W).norm();
    const double rn = spectral_radius(std::sqrt(g) * (mdl.A + mdl.B * Wn));
    if (!(rn < 1.0)) break;
    ++o.iterations;
    P = std::move(Pw), W = Wn, rho = rn;
    if (change <= 1e-15 * std::max(W.norm(), 1.0)) break;
  }
  // P of the final W (its own Lyapunov solution, so that evaluate(W) gives the same J).
  {
    const MatrixXd F = std::sqrt(g) * (mdl.A + mdl.B * W);
    if (!lyapunov(F.transpose(), mdl.Q + W.transpose() * mdl.R * W, P, stop)) fail(rho);
  }
  o.J = -(P.cwiseProduct(mdl.S0).sum()) - (g / (1.0 - g)) * P.cwiseProduct(mdl.noise).sum();
  o.W.assign(W.data(), W.data() + W.size());
  o.P.assign(P.data(), P.data() + P.size());
  o.spectral_radius = rho;
  return o;
}

// The optimal time-varying gains of the finite horizon (backward Riccati recursion):
//   K_t = gamma (R + gamma B^T P_{t+1} B)^{-1} B^T P_{t+1} A,  W*_t = -K_t,
//   P_t = Q + K_t^T R K_t + gamma (A - B K_t)^T P_{t+1} (A - B K_t),  P_H = 0,
//   J* = -tr(P_0 S_0) - sum_{t<H} gamma^{t+1} tr(P_{t+1} Sigma_w).
inline Optimal optimal_finite_horizon(const Model& mdl, StopToken& stop) {
  const std::int64_t n = mdl.n(), m = mdl.m(), H = mdl.horizon;
  const double g = mdl.gamma;
  Optimal o;
  o.W.assign(static_cast<std::size_t>(H * m * n), 0.0);
  o.P.assign(static_cast<std::size_t>(H * n * n), 0.0);
  MatrixXd Pn = MatrixXd::Zero(n, n);
  double c = 0.0;  // sum_{s>t} gamma^{s-t} tr(P_s Sigma_w)
  for (std::int64_t t = H - 1; t >= 0; --t) {
    if (t % 256 == 0) check_stop(stop);
    c = g * (Pn.cwiseProduct(mdl.noise).sum() + c);
    const MatrixXd BP = mdl.B.transpose() * Pn;
    const MatrixXd K = g * (mdl.R + g * BP * mdl.B).llt().solve(BP * mdl.A);
    const MatrixXd Lk = mdl.A - mdl.B * K;
    MatrixXd Pt = mdl.Q + K.transpose() * mdl.R * K + g * Lk.transpose() * Pn * Lk;
    symmetrise(Pt);
    const MatrixXd Wt = -K;
    std::copy(Wt.data(), Wt.data() + m * n, o.W.begin() + static_cast<std::ptrdiff_t>(t * m * n));
    std::copy(Pt.data(), Pt.data() + n * n, o.P.begin() + static_cast<std::ptrdiff_t>(t * n * n));
    Pn = std::move(Pt);
  }
  o.J = -(Pn.cwiseProduct(mdl.S0).sum()) - c;
  o.iterations = H;
  return o;
}

struct Stationary {
  MatrixXd W;
  Evaluation ev;  // at W (no tables)
  std::int64_t iterations = 0;
  bool converged = false;
};

// The best stationary gain of the finite horizon: a local maximum of J(W) (action noise sigma held
// fixed) by L-BFGS (10 pairs, Armijo backtracking) on the exact gradient from W_start; converged
// when ||dJ/dW||_F max(||W||_F, 1) <= tol |J|. Where J changes by less than its rounding (1e-13
// relative) a step is also taken when it makes the gradient smaller. Stops after max_iter
// iterations, or when no step along the gradient is taken.
inline Stationary best_stationary(const Model& mdl, const MatrixXd& W_start, const VectorXd& sigma, double tol,
                                  std::int64_t max_iter, StopToken& stop) {
  Stationary st;
  st.W = W_start;
  st.ev = evaluate(mdl, st.W, sigma, false, stop);
  auto vec = [](const MatrixXd& X) { return Eigen::Map<const VectorXd>(X.data(), X.size()); };
  auto done = [&]() {
    return st.ev.grad_W.norm() * std::max(st.W.norm(), 1.0) <= tol * std::abs(st.ev.J);
  };
  std::deque<std::pair<VectorXd, VectorXd>> pairs;  // (s, y) of the minimised f = -J
  VectorXd x = vec(st.W), grad = -vec(st.ev.grad_W);
  while (!(st.converged = done()) && st.iterations < max_iter) {
    check_stop(stop);
    // two-loop recursion: d = -H grad
    VectorXd q = grad;
    std::vector<double> alpha(pairs.size());
    for (std::size_t i = pairs.size(); i-- > 0;) {
      const auto& [s, y] = pairs[i];
      alpha[i] = s.dot(q) / y.dot(s);
      q -= alpha[i] * y;
    }
    if (!pairs.empty()) {
      const auto& [s, y] = pairs.back();
      q *= s.dot(y) / y.squaredNorm();
    } else {
      q *= std::max(vec(st.W).norm(), 1.0) / std::max(grad.norm(), std::numeric_limits<double>::min());
    }
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      const auto& [s, y] = pairs[i];
      const double beta = y.dot(q) / y.dot(s);
      q += (alpha[i] - beta) * s;
    }
    VectorXd d = -q;
    double slope = grad.dot(d);
    if (!(slope < 0.0)) {  // not a descent direction: restart from the gradient
      pairs.clear();
      d = -grad * (std::max(x.norm(), 1.0) / std::max(grad.norm(), std::numeric_limits<double>::min()));
      slope = grad.dot(d);
    }
    const double f0 = -st.ev.J;
    double step = 1.0;
    bool moved = false;
    for (int ls = 0; ls < 60; ++ls) {
      const VectorXd xn = x + step * d;
      const MatrixXd Wn = Eigen::Map<const MatrixXd>(xn.data(), st.W.rows(), st.W.cols());
      Evaluation evn = evaluate(mdl, Wn, sigma, false, stop);
      if (!(std::isfinite(evn.J) && evn.grad_W.allFinite())) {
        step *= 0.5;
        continue;
      }
      const VectorXd gn = -vec(evn.grad_W);
      // Armijo, or (near the optimum, where f changes below its rounding) a smaller gradient at an
      // f equal to rounding.
      const bool armijo = -evn.J <= f0 + 1e-4 * step * slope && -evn.J < f0;
      const bool flat = std::abs(evn.J + f0) <= 1e-13 * std::abs(f0) && gn.norm() < grad.norm();
      if (armijo || flat) {
        const VectorXd s = xn - x, y = gn - grad;
        if (s.dot(y) > 1e-300) {
          pairs.emplace_back(s, y);
          if (pairs.size() > 10) pairs.pop_front();
        }
        x = xn, grad = gn, st.W = Wn, st.ev = std::move(evn);
        moved = true;
        break;
      }
      step *= 0.5;
    }
    ++st.iterations;
    if (!moved) {
      if (pairs.empty()) break;  // not even the gradient direction improves J: rounding
      pairs.clear();             // retry along the gradient
    }
  }
  return st;
}

}  // namespace pgfast::exact::lqr
