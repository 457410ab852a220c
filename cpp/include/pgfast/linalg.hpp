// Linear solvers that know nothing of the problem they solve: a dense LU factorization and Krylov
// methods on an operator op(x, y): y = A x (memory O(n) for BiCGSTAB, O(m n) for GMRES(m)).
//
//   solve A x = b to  ||b - A x|| <= tol ||b||
//   krylov_solve     BiCGSTAB from the initial guess in x, GMRES(40) from the same guess when it
//                    breaks down or stalls; the residual of the result is checked
//   DenseLU          P M = L U with partial pivoting (Eigen's PartialPivLU, the same bits), solves
//                    M x = b and M^T x = b
//
// Every solver polls a StopToken and throws Interrupted (interrupt.hpp) on Ctrl-C.
#pragma once

#include <Eigen/Core>
#include <Eigen/LU>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "pgfast/interrupt.hpp"
#include "pgfast/parallel.hpp"

namespace pgfast::linalg {

using Eigen::MatrixXd;
using Eigen::VectorXd;

struct SolveInfo {
  std::int64_t iterations = 0;
  double residual = 0.0;  // final ||b - A x|| / ||b||
};

// Solves A x = b for the operator op(x, y): y = A x, from the initial guess in x.
// Converged when ||b - A x|| <= tol ||b||; throws std::domain_error otherwise, naming `what` (the
// solution sought) and ending with the caller's `advice` (what to do about it).
template <class Op>
SolveInfo gmres(const Op& op, const VectorXd& b, VectorXd& x, double tol, std::int64_t max_iter, StopToken& stop,
                const char* what, const char* advice, int restart = 40) {
  const std::int64_t n = b.size();
  SolveInfo info;
  const double bnorm = b.norm();
  if (bnorm == 0.0) {
    x.setZero();
    return info;
  }
  const int m = static_cast<int>(std::min<std::int64_t>(restart, std::max<std::int64_t>(n, 1)));
  MatrixXd Vb(n, m + 1);
  MatrixXd Hh = MatrixXd::Zero(m + 1, m);
  VectorXd cs(m), sn(m), g(m + 1), w(n), Ax(n);
  while (true) {
    op(x.data(), Ax.data());
    VectorXd rvec = b - Ax;
    double beta = rvec.norm();
    info.residual = beta / bnorm;
    if (info.residual <= tol) return info;
    if (info.iterations >= max_iter) {
      std::ostringstream os;
      os << what << ": GMRES did not reach the relative residual " << tol << " in " << max_iter
         << " iterations (reached " << info.residual << "); " << advice;
      throw std::domain_error(os.str());  // ValueError in Python: a property of the input
    }
    Vb.col(0) = rvec / beta;
    g.setZero();
    g(0) = beta;
    Hh.setZero();
    int k = 0;
    for (; k < m && info.iterations < max_iter; ++k) {
      check_stop(stop);
      ++info.iterations;
      op(Vb.col(k).data(), w.data());
      for (int j = 0; j <= k; ++j) {  // modified Gram-Schmidt
        Hh(j, k) = Vb.col(j).dot(w);
        w -= Hh(j, k) * Vb.col(j);
      }
      Hh(k + 1, k) = w.norm();
      const bool breakdown = !(Hh(k + 1, k) > 1e-300);  // the Krylov space is invariant: exact solution
      if (!breakdown) Vb.col(k + 1) = w / Hh(k + 1, k);
      for (int j = 0; j < k; ++j) {  // apply previous rotations
        const double t = cs(j) * Hh(j, k) + sn(j) * Hh(j + 1, k);
        Hh(j + 1, k) = -sn(j) * Hh(j, k) + cs(j) * Hh(j + 1, k);
        Hh(j, k) = t;
      }
      const double den = std::hypot(Hh(k, k), Hh(k + 1, k));
      cs(k) = den == 0.0 ? 1.0 : Hh(k, k) / den;
      sn(k) = den == 0.0 ? 0.0 : Hh(k + 1, k) / den;
      Hh(k, k) = den;
      Hh(k + 1, k) = 0.0;
      g(k + 1) = -sn(k) * g(k);
      g(k) = cs(k) * g(k);
      if (std::abs(g(k + 1)) <= 0.5 * tol * bnorm || breakdown) {
        ++k;
        break;
      }
    }
    // x += V_k y, with H_k y = g_k (upper triangular)
    VectorXd y = Hh.topLeftCorner(k, k).triangularView<Eigen::Upper>().solve(g.head(k));
    x += Vb.leftCols(k) * y;
  }
}

// BiCGSTAB (van der Vorst 1992) on the operator op: two products and a few vector updates per
// iteration, no growing basis. Returns false (x left at its best iterate) on breakdown or when
// max_iter is reached, so the caller can fall back to GMRES.
template <class Op>
bool bicgstab(const Op& op, const VectorXd& b, VectorXd& x, double tol, std::int64_t max_iter, StopToken& stop,
              SolveInfo& info) {
  const std::int64_t n = b.size();
  const double bnorm = b.norm();
  if (bnorm == 0.0) {
    x.setZero();
    return true;
  }
  VectorXd r(n), rhat(n), p(n), v(n), s(n), t(n);
  op(x.data(), r.data());
  r = b - r;
  rhat = r;
  double rho = 1.0, alpha = 1.0, omega = 1.0;
  v.setZero();
  p.setZero();
  for (std::int64_t it = 0; it < max_iter; ++it) {
    info.residual = r.norm() / bnorm;
    if (info.residual <= tol) return true;
    check_stop(stop);
    ++info.iterations;
    const double rho_new = rhat.dot(r);
    if (rho_new == 0.0 || omega == 0.0) return false;
    const double beta = (rho_new / rho) * (alpha / omega);
    rho = rho_new;
    p = r + beta * (p - omega * v);
    op(p.data(), v.data());
    const double rv = rhat.dot(v);
    if (rv == 0.0) return false;
    alpha = rho / rv;
    s = r - alpha * v;
    if (s.norm() / bnorm <= tol) {
      x += alpha * p;
      info.residual = s.norm() / bnorm;
      return true;
    }
    op(s.data(), t.data());
    const double tt = t.squaredNorm();
    if (tt == 0.0) return false;
    omega = t.dot(s) / tt;
    x += alpha * p + omega * s;
    r = s - omega * t;
    if (!std::isfinite(omega) || !std::isfinite(x.squaredNorm())) return false;
  }
  info.residual = r.norm() / bnorm;
  return info.residual <= tol;
}

// The sparse solver: BiCGSTAB from x, falling back to GMRES(40) from the original guess if it
// breaks down or stalls. The result satisfies ||b - A x|| <= tol ||b|| (checked), or throws (gmres).
template <class Op>
SolveInfo krylov_solve(const Op& op, const VectorXd& b, VectorXd& x, double tol, StopToken& stop, const char* what,
                       const char* advice) {
  SolveInfo info;
  const VectorXd x0 = x;
  const std::int64_t n = b.size();
  if (bicgstab(op, b, x, tol, std::max<std::int64_t>(200, std::min<std::int64_t>(2000, n)), stop, info)) {
    VectorXd r(n);  // confirm with the true residual
    op(x.data(), r.data());
    r = b - r;
    if (r.norm() <= tol * b.norm() * 1.0000001) return info;
  }
  x = x0;
  SolveInfo g = gmres(op, b, x, tol, 100000, stop, what, advice);
  g.iterations += info.iterations;
  return g;
}

// Dense LU with partial pivoting, P M = L U, that answers Ctrl-C. It is Eigen's PartialPivLU
// (the same recursive blocking: panels of max(8, min(256, 16 floor(S / 128))) columns, each factored
// with panels of at most 16; the same kernels, so the same bits) with the stop token polled
// between column chunks of every trailing update, so a large factorization (O(S^3): about 8 s at
// S = 6000) stops within a few tens of milliseconds. It also skips the empty triangular solve that
// Eigen's panel recursion runs on a zero-column block (a reference bound to its null data pointer,
// reported by UndefinedBehaviorSanitizer for S >= 256).
class DenseLU {
 public:
  DenseLU(MatrixXd m, StopToken& stop) : lu_(std::move(m)), stop_(stop) {
    const Eigen::Index n = lu_.rows();
    std::vector<int> tr(static_cast<std::size_t>(n));
    if (n > 0) factor(lu_.data(), n, n, n, tr.data(), 256, true);
    Eigen::Transpositions<Eigen::Dynamic, Eigen::Dynamic, int> t(n);
    for (Eigen::Index i = 0; i < n; ++i) t.coeffRef(i) = tr[static_cast<std::size_t>(i)];
    p_ = t;
  }
  // x with M x = b (PartialPivLU::solve).
  VectorXd solve(const VectorXd& b) const {
    VectorXd x = p_ * b;
    lu_.triangularView<Eigen::UnitLower>().solveInPlace(x);
    lu_.triangularView<Eigen::Upper>().solveInPlace(x);
    return x;
  }
  // M^{-1}: the solves of all unit vectors at once (blocked triangular solves).
  MatrixXd inverse() const {
    MatrixXd x = p_ * MatrixXd::Identity(lu_.rows(), lu_.cols());
    lu_.triangularView<Eigen::UnitLower>().solveInPlace(x);
    lu_.triangularView<Eigen::Upper>().solveInPlace(x);
    return x;
  }
  // x with M^T x = b (PartialPivLU::transpose().solve).
  VectorXd solve_transposed(const VectorXd& b) const {
    VectorXd x = lu_.triangularView<Eigen::Upper>().transpose().solve(b);
    lu_.triangularView<Eigen::UnitLower>().transpose().solveInPlace(x);
    return p_.transpose() * x;
  }

 private:
  using Impl = Eigen::internal::partial_lu_impl<double, Eigen::ColMajor, int>;
  using Mat = Eigen::Map<MatrixXd, 0, Eigen::OuterStride<>>;
  static constexpr Eigen::Index kChunk = 256;  // trailing-update columns between polls

  // Eigen's partial_lu_impl::blocked_lu on the (rows x cols) column-major block at `data`.
  void factor(double* data, Eigen::Index rows, Eigen::Index cols, Eigen::Index stride, int* tr,
              Eigen::Index max_block, bool poll) {
    const Eigen::Index size = std::min(rows, cols);
    int nb = 0;
    if (size <= Impl::UnBlockedBound) {
      Impl::blocked_lu(rows, cols, data, stride, tr, nb, max_block);  // unblocked at this size
      return;
    }
    const Eigen::Index block = std::min(std::max<Eigen::Index>((size / 8) / 16 * 16, 8), max_block);
    Mat lu(data, rows, cols, Eigen::OuterStride<>(stride));
    for (Eigen::Index k = 0; k < size; k += block) {
      const Eigen::Index bs = std::min(size - k, block), trows = rows - k - bs, tsize = size - k - bs;
      factor(&lu.coeffRef(k, k), trows + bs, bs, stride, tr + k, 16, false);
      for (Eigen::Index i = k; i < k + bs; ++i) {
        const Eigen::Index piv = (tr[i] += static_cast<int>(k));
        if (k > 0) lu.block(0, 0, rows, k).row(i).swap(lu.block(0, 0, rows, k).row(piv));
      }
      if (trows == 0 || tsize == 0) continue;
      auto A11 = lu.block(k, k, bs, bs);
      auto A21 = lu.block(k + bs, k, trows, bs);
      for (Eigen::Index j = 0; j < tsize; j += poll ? kChunk : tsize) {
        const Eigen::Index w = std::min(tsize - j, poll ? kChunk : tsize);
        auto A_2 = lu.block(0, k + bs + j, rows, w);
        for (Eigen::Index i = k; i < k + bs; ++i) A_2.row(i).swap(A_2.row(tr[i]));
        auto A12 = lu.block(k, k + bs + j, bs, w);
        A11.triangularView<Eigen::UnitLower>().solveInPlace(A12);
        lu.block(k + bs, k + bs + j, trows, w).noalias() -= A21 * A12;
        if (poll) check_stop(stop_);
      }
    }
  }

  MatrixXd lu_;
  StopToken& stop_;
  Eigen::PermutationMatrix<Eigen::Dynamic, Eigen::Dynamic, int> p_;
};

}  // namespace pgfast::linalg
