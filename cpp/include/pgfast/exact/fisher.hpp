// Fisher information and natural gradient of a softmax policy (docs/theory.md, "The natural
// gradient").
//
//   F = sum_s w(s) sum_a pi(a|s) psi(s,a) psi(s,a)^T,   psi = grad log pi = J_s^T (e_a - pi(s))
//
// with J_s the Jacobian of the logits of state s: tabular -> block diagonal
// w(s) (diag pi_s - pi_s pi_s^T); linear -> sum_s w(s) sum_a pi (phi - phibar)(phi - phibar)^T.
// The state weighting w is the objective's (Evaluation::fisher_w, objectives.hpp).
//
//   natural gradient   x = F^+ g (eigenvalues below rcond * max dropped),  x = (F + damping I)^{-1} g
#pragma once

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "pgfast/interrupt.hpp"
#include "pgfast/parallel.hpp"

namespace pgfast::exact {

using Eigen::MatrixXd;
using Eigen::VectorXd;

inline void fisher_tabular(const double* pi, const double* w, std::int64_t S, std::int64_t A, double* F) {
  const std::int64_t n = S * A;
  std::fill(F, F + n * n, 0.0);
  for (std::int64_t s = 0; s < S; ++s) {
    if (w[s] == 0.0) continue;
    for (std::int64_t a = 0; a < A; ++a)
      for (std::int64_t b = 0; b < A; ++b) {
        const double pa = pi[s * A + a], pb = pi[s * A + b];
        F[(s * A + a) * n + s * A + b] = w[s] * ((a == b ? pa : 0.0) - pa * pb);
      }
  }
}

// `stop` (optional) is polled once per state (each costs O(A p^2)); throws Interrupted.
inline void fisher_linear(const double* pi, const double* w, const double* phi, std::int64_t S, std::int64_t A,
                          std::int64_t p, double* F, StopToken* stop = nullptr) {
  using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<RowMat> out(F, p, p);
  out.setZero();
  RowMat C(A, p);
  for (std::int64_t s = 0; s < S; ++s) {
    if (w[s] == 0.0) continue;
    if (stop) check_stop(*stop);
    Eigen::Map<const RowMat> Phi(phi + s * A * p, A, p);
    Eigen::Map<const VectorXd> ps(pi + s * A, A);
    const Eigen::RowVectorXd mean = ps.transpose() * Phi;
    C = Phi.rowwise() - mean;
    out.noalias() += C.transpose() * ((w[s] * ps).asDiagonal() * C);
  }
}

// x = argmin ||x|| over least-squares solutions of F x = g (eigenvalues below rcond * max dropped),
// or (F + damping I)^{-1} g when damping > 0.
inline VectorXd solve_fisher(const MatrixXd& F, const VectorXd& g, double damping, double rcond) {
  if (damping > 0.0) {
    MatrixXd M = F;
    M.diagonal().array() += damping;
    return M.ldlt().solve(g);
  }
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(F);
  const VectorXd& lam = es.eigenvalues();
  const double cut = rcond * std::max(lam.cwiseAbs().maxCoeff(), std::numeric_limits<double>::min());
  VectorXd c = es.eigenvectors().transpose() * g;
  for (Eigen::Index i = 0; i < c.size(); ++i) c(i) = lam(i) > cut ? c(i) / lam(i) : 0.0;
  return es.eigenvectors() * c;
}

// Tabular natural gradient block by block (F is block diagonal): x_s solves w(s) (diag pi - pi pi^T) x_s = g_s.
// `stop` (optional) is polled once per state (each costs O(A^3)); throws Interrupted.
inline void natural_gradient_tabular(const double* pi, const double* w, const double* g, std::int64_t S, std::int64_t A,
                                     double damping, double rcond, double* x, StopToken* stop = nullptr) {
  // Global eigenvalue cut-off, as for the dense solve.
  std::vector<Eigen::SelfAdjointEigenSolver<MatrixXd>> blocks(static_cast<std::size_t>(S));
  double lmax = 0.0;
  MatrixXd B(A, A);
  for (std::int64_t s = 0; s < S; ++s) {
    if (stop) check_stop(*stop);
    Eigen::Map<const VectorXd> ps(pi + s * A, A);
    B = w[s] * (MatrixXd(ps.asDiagonal()) - ps * ps.transpose());
    if (damping > 0.0) {
      B.diagonal().array() += damping;
      Eigen::Map<VectorXd>(x + s * A, A) = B.ldlt().solve(Eigen::Map<const VectorXd>(g + s * A, A));
      continue;
    }
    blocks[s].compute(B);
    lmax = std::max(lmax, blocks[s].eigenvalues().cwiseAbs().maxCoeff());
  }
  if (damping > 0.0) return;
  const double cut = rcond * std::max(lmax, std::numeric_limits<double>::min());
  for (std::int64_t s = 0; s < S; ++s) {
    const auto& es = blocks[s];
    VectorXd c = es.eigenvectors().transpose() * Eigen::Map<const VectorXd>(g + s * A, A);
    for (Eigen::Index i = 0; i < c.size(); ++i) c(i) = es.eigenvalues()(i) > cut ? c(i) / es.eigenvalues()(i) : 0.0;
    Eigen::Map<VectorXd>(x + s * A, A) = es.eigenvectors() * c;
  }
}

}  // namespace pgfast::exact
