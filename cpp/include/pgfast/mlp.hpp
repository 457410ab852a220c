// Neural softmax policy (docs/theory.md, "Softmax policies and their scores"):
// pi(a|s) = softmax_a f_theta(phi(s))_a with f a multi-layer perceptron from state features
// phi(s) in R^d to A logits.
//
//   h_0 = phi(s),   h_l = act(h_{l-1} W_l + b_l)  (l = 1..L-1),   z(s, .) = h_{L-1} W_L + b_L
//   act = tanh (act' = 1 - h^2) or relu (act' = [h > 0])
//
// theta layout (one flat vector): for l = 1..L, W_l as an (n_{l-1}, n_l) row-major block, then
// b_l (n_l); n_0 = d, n_L = A.
//
// The state space is finite, so a Forward computes every state's activations and logits once per
// parameter value; the estimators and pgfast.exact then work in logit coordinates (a table
// G(s, a) of dJ/dz) and need only the vector-Jacobian product
//
//   vjp(G) = sum_{s,a} G(s,a) grad_theta z(s,a)          (backpropagation, batched over states)
//
// The score of the softmax is grad log pi(a|s) = vjp of the row e_a - pi(.|s) at state s.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgfast/parallel.hpp"
#include "pgfast/policy.hpp"
#include "pgfast/vexp.hpp"

namespace pgfast::mlp {

enum class Activation { Tanh, Relu };

// x <- tanh(x), elementwise (Eigen 3.4 evaluates a double tanh one element at a time):
//   |x| >= 1/32:  sign(x) (1 - e) / (1 + e),  e = exp(-2 |x|) in (0, 1]   (no overflow)
//   |x| <  1/32:  the Taylor series x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835, whose next term
//                 is below 1e-17 |x| there (the quotient above loses relative accuracy near 0).
//   e with y = -2|x| clamped to [-80, 0] (below, e < 1e-34 and the quotient rounds to 1) by
//                 vexp.hpp's exp.
// Error a few units in the last place; NaN stays NaN. Branch-free, so that the compiler
// vectorises the loop; an AVX2 + FMA copy runs when the CPU has them (vexp.hpp's use_avx2()), with
// the same bits (no floating-point contraction in the build).
namespace detail {
PGFAST_ALWAYS_INLINE void tanh_loop(double* __restrict x, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double a = std::fabs(v);
    double y = -2.0 * a;
    y = y < -80.0 ? -80.0 : y;  // NaN stays NaN
    const double e = pgfast::detail::exp_nonpositive(y);
    const double t = (1.0 - e) / (1.0 + e);
    const double x2 = v * v;
    const double taylor =
        v * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
    const double big = v < 0.0 ? -t : t;
    x[i] = a < 1.0 / 32.0 ? taylor : big;
  }
}
// C (m, n) += A (m, k) B (k, n): a(i, p) = A[i * a_row + p * a_col] (so A may be a transpose), B
// and C row-major with leading dimensions n. Blocks of 4 rows x 8 columns of C stay in eight
// 4-wide accumulators over the whole k loop; edges go element by element. Every entry of C is
// accumulated in the same order, c += a(i, q) b(q, j) for q = 0..k-1, by both compiled copies
// (the build turns off floating-point contraction, so the AVX2 copy's products and sums round as
// the default copy's do): the MLP's outputs are the same bits on every x86-64 CPU.
PGFAST_ALWAYS_INLINE void gemm_acc_loop(const double* A, std::int64_t a_row, std::int64_t a_col, const double* B,
                                        double* C, std::int64_t m, std::int64_t k, std::int64_t n) {
  typedef double v4d __attribute__((vector_size(32)));  // (no lambdas: they would not inherit the target)
  const std::int64_t m4 = m / 4 * 4, n8 = n / 8 * 8;
  for (std::int64_t i = 0; i < m4; i += 4) {
    for (std::int64_t j = 0; j < n8; j += 8) {
      v4d c[4][2];
      for (int r = 0; r < 4; ++r) std::memcpy(c[r], C + (i + r) * n + j, sizeof c[r]);
      for (std::int64_t q = 0; q < k; ++q) {
        v4d b0, b1;
        std::memcpy(&b0, B + q * n + j, sizeof b0);
        std::memcpy(&b1, B + q * n + j + 4, sizeof b1);
        for (int r = 0; r < 4; ++r) {
          const double a = A[(i + r) * a_row + q * a_col];
          const v4d av = {a, a, a, a};
          c[r][0] += av * b0;
          c[r][1] += av * b1;
        }
      }
      for (int r = 0; r < 4; ++r) std::memcpy(C + (i + r) * n + j, c[r], sizeof c[r]);
    }
    for (std::int64_t r = i; r < i + 4; ++r) {  // columns past the last block of 8
      for (std::int64_t j = n8; j < n; ++j) {
        double acc = C[r * n + j];
        for (std::int64_t q = 0; q < k; ++q) acc += A[r * a_row + q * a_col] * B[q * n + j];
        C[r * n + j] = acc;
      }
    }
  }
  for (std::int64_t r = m4; r < m; ++r) {  // rows past the last block of 4
    for (std::int64_t q = 0; q < k; ++q) {
      const double a = A[r * a_row + q * a_col];
      for (std::int64_t j = 0; j < n; ++j) C[r * n + j] += a * B[q * n + j];
    }
  }
}
#ifdef PGFAST_AVX2_KERNELS
__attribute__((target("avx2,fma"))) PGFAST_VECTORISABLE inline void tanh_avx2(double* x, std::int64_t n) { tanh_loop(x, n); }
__attribute__((target("avx2,fma"))) inline void gemm_acc_avx2(const double* A, std::int64_t a_row, std::int64_t a_col,
                                                              const double* B, double* C, std::int64_t m,
                                                              std::int64_t k, std::int64_t n) {
  gemm_acc_loop(A, a_row, a_col, B, C, m, k, n);
}
#else  // never called: use_avx2() is false
inline void tanh_avx2(double* x, std::int64_t n) { tanh_loop(x, n); }
inline void gemm_acc_avx2(const double*, std::int64_t, std::int64_t, const double*, double*, std::int64_t,
                          std::int64_t, std::int64_t) {}
#endif
inline void gemm_acc_default(const double* A, std::int64_t a_row, std::int64_t a_col, const double* B, double* C,
                             std::int64_t m, std::int64_t k, std::int64_t n) {
  gemm_acc_loop(A, a_row, a_col, B, C, m, k, n);
}
// gemm_acc_loop, its AVX2 + FMA copy when the CPU has them (the same bits either way).
inline void gemm_acc(const double* A, std::int64_t a_row, std::int64_t a_col, const double* B, double* C,
                     std::int64_t m, std::int64_t k, std::int64_t n) {
  (use_avx2() ? gemm_acc_avx2 : gemm_acc_default)(A, a_row, a_col, B, C, m, k, n);
}
PGFAST_VECTORISABLE inline void tanh_default(double* x, std::int64_t n) { tanh_loop(x, n); }
}  // namespace detail

inline void tanh_inplace(double* x, std::int64_t n) {
  run_elementwise(detail::tanh_avx2, detail::tanh_default, x, n);
}

// The architecture and the state features (copied): everything but the parameters.
class Net {
 public:
  Net(const double* features, std::int64_t S, std::int64_t d, std::vector<std::int64_t> hidden, std::int64_t A,
      Activation act)
      : S_(S), A_(A), act_(act), X_(features, features + S * d) {
    if (S < 1 || d < 1 || A < 1) throw std::invalid_argument("an MLP needs S, d, A >= 1");
    sizes_.push_back(d);
    for (const std::int64_t h : hidden) {
      if (h < 1) throw std::invalid_argument("hidden layer sizes must be >= 1, got " + std::to_string(h));
      sizes_.push_back(h);
    }
    sizes_.push_back(A);
    for (const std::int64_t k : sizes_) max_width_ = std::max(max_width_, k);
    std::int64_t off = 0;
    for (std::size_t l = 0; l + 1 < sizes_.size(); ++l) {
      w_off_.push_back(off);
      off += sizes_[l] * sizes_[l + 1];
      b_off_.push_back(off);
      off += sizes_[l + 1];
    }
    n_params_ = off;
  }

  std::int64_t n_states() const noexcept { return S_; }
  std::int64_t n_actions() const noexcept { return A_; }
  std::int64_t n_layers() const noexcept { return static_cast<std::int64_t>(w_off_.size()); }
  std::int64_t n_params() const noexcept { return n_params_; }
  std::int64_t max_width() const noexcept { return max_width_; }  // widest layer, inputs included
  const std::vector<std::int64_t>& sizes() const noexcept { return sizes_; }
  Activation activation() const noexcept { return act_; }
  const double* features() const noexcept { return X_.data(); }
  std::int64_t w_offset(std::int64_t l) const { return w_off_[static_cast<std::size_t>(l)]; }
  std::int64_t b_offset(std::int64_t l) const { return b_off_[static_cast<std::size_t>(l)]; }

 private:
  std::int64_t S_, A_;
  Activation act_;
  std::vector<double> X_;
  std::vector<std::int64_t> sizes_, w_off_, b_off_;
  std::int64_t n_params_ = 0, max_width_ = 0;
};

// Thrown when the stop token of a forward pass reports Ctrl-C.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

// All states' activations and logits at one parameter vector (copied), and the backward passes.
class Forward final : public LogitMap {
 public:
  // With the AVX2 kernel each layer is computed in blocks of kStopRows states, `stop` (optional)
  // polled between blocks (the blocks are multiples of the kernel's 4 rows: the same bits).
  static constexpr std::int64_t kStopRows = 512;
  Forward(std::shared_ptr<const Net> net, const double* theta, StopToken* stop = nullptr)
      : net_(std::move(net)), theta_(theta, theta + net_->n_params()) {
    const Net& n = *net_;
    const std::int64_t S = n.n_states(), L = n.n_layers();
    Eigen::Map<const RowMatrixXd> X(n.features(), S, n.sizes()[0]);
    acts_.resize(static_cast<std::size_t>(L - 1));
    for (std::int64_t l = 0; l < L; ++l) {
      RowMatrixXd& out = l + 1 < L ? acts_[l] : logits_;
      const double* in = l == 0 ? X.data() : acts_[l - 1].data();
      const std::int64_t nin = n.sizes()[l], nout = n.sizes()[l + 1];
      out.resize(S, nout);  // out = bias in every row, then += in W
      out.rowwise() = bias(l).transpose();
      for (std::int64_t r = 0; r < S; r += kStopRows) {
        if (stop && (*stop)(0)) throw Interrupted{};
        detail::gemm_acc(in + r * nin, nin, 1, theta_.data() + n.w_offset(l), out.data() + r * nout,
                         std::min(kStopRows, S - r), nin, nout);
      }
      if (l + 1 < L) {
        if (n.activation() == Activation::Tanh) {
          tanh_inplace(out.data(), out.size());
        } else {
          out = out.array().max(0.0);
        }
      }
    }
    require_finite(logits_.data(), logits_.size(), "MLP logits (overflow: theta or features too large)");
  }

  const Net& net() const noexcept { return *net_; }
  const RowMatrixXd& logits() const noexcept { return logits_; }
  std::int64_t n_params() const override { return net_->n_params(); }

  // out += sum_{s,a} G(s,a) grad z(s,a); G is (S, A) row-major.
  void vjp_all(const double* G, double* out) const override { vjp_all(G, out, nullptr); }

  // The same with `stop` polled every kStopRows states (AVX2 kernel; the kernel accumulates each
  // entry in state order, so blocks over states give the same bits). Throws Interrupted.
  void vjp_all(const double* G, double* out, StopToken* stop) const {
    const Net& n = *net_;
    const std::int64_t S = n.n_states(), L = n.n_layers();
    Eigen::Map<const RowMatrixXd> X(n.features(), S, n.sizes()[0]);
    RowMatrixXd delta = Eigen::Map<const RowMatrixXd>(G, S, n.n_actions());
    for (std::int64_t l = L - 1; l >= 0; --l) {
      const std::int64_t nin = n.sizes()[l], nout = n.sizes()[l + 1];
      Eigen::Map<RowMatrixXd> gW(out + n.w_offset(l), nin, nout);
      Eigen::Map<Eigen::VectorXd> gb(out + n.b_offset(l), nout);
      const double* in = l == 0 ? X.data() : acts_[l - 1].data();
      // gW += in^T delta; back = delta W^T (W^T copied: row-major for the kernel)
      for (std::int64_t r = 0; r < S; r += kStopRows) {
        if (stop && (*stop)(0)) throw Interrupted{};
        detail::gemm_acc(in + r * nin, 1, nin, delta.data() + r * nout, gW.data(), nin, std::min(kStopRows, S - r), nout);
      }
      gb += delta.colwise().sum().transpose();
      if (l > 0) {
        RowMatrixXd back;
        const RowMatrixXd wt = weight(l).transpose();
        back.setZero(S, nin);
        for (std::int64_t r = 0; r < S; r += kStopRows) {
          if (stop && (*stop)(0)) throw Interrupted{};
          detail::gemm_acc(delta.data() + r * nout, nout, 1, wt.data(), back.data() + r * nin, std::min(kStopRows, S - r),
                           nout, nin);
        }
        apply_derivative(acts_[l - 1].data(), back.data(), back.size());
        delta.swap(back);
      }
    }
  }

  // out += sum_a u[a] grad z(s,a) for one state (backpropagation of one row).
  void vjp_state(std::int64_t s, const double* u, double* out, std::vector<double>& scratch) const override {
    const Net& n = *net_;
    const std::int64_t L = n.n_layers();
    const std::int64_t width = n.max_width();
    scratch.resize(static_cast<std::size_t>(2 * width));
    double* delta = scratch.data();
    double* back = scratch.data() + width;
    std::copy(u, u + n.n_actions(), delta);
    for (std::int64_t l = L - 1; l >= 0; --l) {
      const std::int64_t nin = n.sizes()[l], nout = n.sizes()[l + 1];
      const double* h = l == 0 ? n.features() + s * nin : acts_[l - 1].data() + s * nin;
      double* gW = out + n.w_offset(l);
      double* gb = out + n.b_offset(l);
      for (std::int64_t j = 0; j < nout; ++j) gb[j] += delta[j];
      for (std::int64_t i = 0; i < nin; ++i) {  // rank-one update; zero inputs (one-hot, relu) skipped
        const double hi = h[i];
        if (hi == 0.0) continue;
        double* row = gW + i * nout;
        for (std::int64_t j = 0; j < nout; ++j) row[j] += hi * delta[j];
      }
      if (l > 0) {
        const double* W = theta_.data() + n.w_offset(l);
        for (std::int64_t i = 0; i < nin; ++i) {
          const double* wr = W + i * nout;
          double acc = 0.0;
          for (std::int64_t j = 0; j < nout; ++j) acc += wr[j] * delta[j];
          back[i] = acc;
        }
        apply_derivative(h, back, nin);
        std::swap(delta, back);
      }
    }
  }

  // Rows of the softmax score grad log pi(a_k|s_k), k < K, into out (K, n_params), from probs (S, A).
  // Returns false when `stop` (polled once per row) asks to stop.
  bool scores(const double* probs, const std::int32_t* states, const std::int32_t* actions, std::int64_t K,
              double* out, StopToken* stop = nullptr) const {
    const std::int64_t A = net_->n_actions(), np = n_params();
    std::vector<double> u(static_cast<std::size_t>(A)), scratch;
    for (std::int64_t k = 0; k < K; ++k) {
      if (stop && (*stop)(0)) return false;
      const std::int64_t s = states[k];
      for (std::int64_t a = 0; a < A; ++a) u[a] = (a == actions[k] ? 1.0 : 0.0) - probs[s * A + a];
      double* row = out + k * np;
      std::fill(row, row + np, 0.0);
      vjp_state(s, u.data(), row, scratch);
    }
    return true;
  }

  // The centred, weighted Jacobian behind the Fisher information (one row per (s, a) with w(s) > 0):
  // row(s, a) = sqrt(w(s) pi(a|s)) grad log pi(a|s), so that sum_s w(s) sum_a pi psi psi^T = M^T M.
  // Returns the number of rows written into out (at most S*A rows of n_params), or -1 when `stop`
  // (polled once per state) asks to stop.
  std::int64_t weighted_scores(const double* probs, const double* w, double* out, StopToken* stop = nullptr) const {
    const std::int64_t S = net_->n_states(), A = net_->n_actions(), np = n_params();
    std::vector<double> u(static_cast<std::size_t>(A)), scratch;
    std::int64_t rows = 0;
    for (std::int64_t s = 0; s < S; ++s) {
      if (!(w[s] > 0.0)) continue;
      if (stop && (*stop)(0)) return -1;
      for (std::int64_t a = 0; a < A; ++a) {
        const double c = std::sqrt(w[s] * probs[s * A + a]);
        double* row = out + rows * np;
        ++rows;
        std::fill(row, row + np, 0.0);
        if (c == 0.0) continue;
        for (std::int64_t b = 0; b < A; ++b) u[b] = c * ((b == a ? 1.0 : 0.0) - probs[s * A + b]);
        vjp_state(s, u.data(), row, scratch);
      }
    }
    return rows;
  }

 private:
  Eigen::Map<const RowMatrixXd> weight(std::int64_t l) const {
    return Eigen::Map<const RowMatrixXd>(theta_.data() + net_->w_offset(l), net_->sizes()[l], net_->sizes()[l + 1]);
  }
  Eigen::Map<const Eigen::VectorXd> bias(std::int64_t l) const {
    return Eigen::Map<const Eigen::VectorXd>(theta_.data() + net_->b_offset(l), net_->sizes()[l + 1]);
  }
  // g[i] *= act'(pre-activation) written in terms of the activation h[i].
  void apply_derivative(const double* h, double* g, std::int64_t n) const {
    if (net_->activation() == Activation::Tanh) {
      for (std::int64_t i = 0; i < n; ++i) g[i] *= 1.0 - h[i] * h[i];
    } else {
      for (std::int64_t i = 0; i < n; ++i) g[i] = h[i] > 0.0 ? g[i] : 0.0;
    }
  }

  std::shared_ptr<const Net> net_;
  std::vector<double> theta_;
  std::vector<RowMatrixXd> acts_;  // hidden activations, (S, n_l) for l = 1..L-1
  RowMatrixXd logits_;
};

}  // namespace pgfast::mlp
