// The exact linear-quadratic regulator (pg.exact on a pg.LQR): evaluation, optimal control.
#include "common.hpp"
#include "pgfast/exact/lqr.hpp"
#include "pgfast/interrupt.hpp"
#include "pgfast/policy.hpp"

namespace pgfast::bindings {

namespace {

using exact::lqr::Model;
using Eigen::MatrixXd;
using Eigen::VectorXd;

MatrixXd matrix_arg(const carray<double>& a, const char* name, py::ssize_t rows, py::ssize_t cols) {
  require_shape2(a, name, rows, cols);
  MatrixXd out = Eigen::Map<const RowMatrixXd>(a.data(), rows, cols);
  if (!out.allFinite()) throw std::invalid_argument(std::string(name) + " contains NaN or infinite values");
  return out;
}

// The model from row-major arrays (checked here too: Python validates first).
Model model(const carray<double>& A, const carray<double>& B, const carray<double>& Q, const carray<double>& R,
            const carray<double>& S0, const carray<double>& noise, double gamma, std::int64_t horizon) {
  if (A.ndim() != 2 || A.shape(0) != A.shape(1) || A.shape(0) < 1) throw std::invalid_argument("A must be (n, n), n >= 1");
  if (B.ndim() != 2 || B.shape(1) < 1) throw std::invalid_argument("B must be (n, m), m >= 1");
  const py::ssize_t n = A.shape(0), m = B.shape(1);
  Model mdl;
  mdl.A = matrix_arg(A, "A", n, n);
  mdl.B = matrix_arg(B, "B", n, m);
  mdl.Q = matrix_arg(Q, "Q", n, n);
  mdl.R = matrix_arg(R, "R", m, m);
  mdl.S0 = matrix_arg(S0, "S0", n, n);
  mdl.noise = matrix_arg(noise, "noise", n, n);
  if (!(gamma >= 0.0 && gamma <= 1.0)) throw std::invalid_argument("gamma must be in [0, 1]");
  if (horizon < 0) throw std::invalid_argument("horizon must be >= 0 (0: infinite)");
  if (horizon == 0 && !(gamma < 1.0)) throw std::invalid_argument("the infinite horizon needs gamma < 1");
  mdl.gamma = gamma;
  mdl.horizon = horizon;
  return mdl;
}

VectorXd vector_arg(const carray<double>& a, const char* name, py::ssize_t size) {
  if (a.ndim() != 1 || a.shape(0) != size)
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(size) + ",)");
  VectorXd out = Eigen::Map<const VectorXd>(a.data(), size);
  if (!out.allFinite()) throw std::invalid_argument(std::string(name) + " contains NaN or infinite values");
  return out;
}

template <class F>
auto run_lqr(F&& f) {
  StopToken stop(python_interrupted);
  try {
    py::gil_scoped_release release;
    return f(stop);
  } catch (const Interrupted&) {
    throw py::error_already_set();
  }
}

carray<double> row_major(const MatrixXd& X) {
  carray<double> out({static_cast<py::ssize_t>(X.rows()), static_cast<py::ssize_t>(X.cols())});
  Eigen::Map<RowMatrixXd>(out.mutable_data(), X.rows(), X.cols()) = X;
  return out;
}

carray<double> to_array(const VectorXd& v) {
  carray<double> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.data(), v.data() + v.size(), out.mutable_data());
  return out;
}

// Symmetric n x n tables (one, or one per step): the flat vector in either order.
py::object tables(std::vector<double>&& v, std::int64_t H, py::ssize_t n) {
  if (v.empty()) return py::none();
  std::vector<py::ssize_t> shape{n, n};
  if (H > 0) shape.insert(shape.begin(), static_cast<py::ssize_t>(H));
  return vector_to_numpy(std::move(v), shape);
}

}  // namespace

void bind_lqr_exact(py::module_ m) {
  m.def(
      "evaluate",
      [](const carray<double>& A, const carray<double>& B, const carray<double>& Q, const carray<double>& R,
         const carray<double>& S0, const carray<double>& noise, double gamma, std::int64_t horizon,
         const carray<double>& W, const carray<double>& sigma, bool tables_) {
        const Model mdl = model(A, B, Q, R, S0, noise, gamma, horizon);
        const MatrixXd w = matrix_arg(W, "W", mdl.m(), mdl.n());
        const VectorXd s = vector_arg(sigma, "sigma", mdl.m());
        exact::lqr::Evaluation ev =
            run_lqr([&](StopToken& stop) { return exact::lqr::evaluate(mdl, w, s, tables_, stop); });
        const py::ssize_t n = mdl.n();
        return py::make_tuple(ev.J, row_major(ev.grad_W), to_array(ev.grad_log_sigma),
                              tables(std::move(ev.S), horizon, n), tables(std::move(ev.P), horizon, n),
                              ev.spectral_radius);
      },
      py::arg("A").noconvert(), py::arg("B").noconvert(), py::arg("Q").noconvert(), py::arg("R").noconvert(),
      py::arg("S0").noconvert(), py::arg("noise").noconvert(), py::arg("gamma"), py::arg("horizon"),
      py::arg("W").noconvert(), py::arg("sigma").noconvert(), py::arg("tables"),
      "J, dJ/dW (m, n), dJ/dlog sigma (m,), the state second moments (H, n, n) or their discounted sum (n, n) "
      "(None without tables), the value matrices likewise, and the spectral radius of sqrt(gamma) (A + B W); "
      "horizon 0 is the discounted infinite horizon.");

  m.def(
      "optimal",
      [](const carray<double>& A, const carray<double>& B, const carray<double>& Q, const carray<double>& R,
         const carray<double>& S0, const carray<double>& noise, double gamma, std::int64_t horizon) {
        const Model mdl = model(A, B, Q, R, S0, noise, gamma, horizon);
        exact::lqr::Optimal o = run_lqr([&](StopToken& stop) {
          return horizon == 0 ? exact::lqr::optimal_discounted(mdl, stop)
                              : exact::lqr::optimal_finite_horizon(mdl, stop);
        });
        const py::ssize_t n = mdl.n(), mm = mdl.m(), steps = horizon == 0 ? 1 : horizon;
        carray<double> W({steps, mm, n});
        for (py::ssize_t t = 0; t < steps; ++t)  // column-major (m, n) blocks to row-major
          Eigen::Map<RowMatrixXd>(W.mutable_data() + t * mm * n, mm, n) =
              Eigen::Map<const MatrixXd>(o.W.data() + t * mm * n, mm, n);
        py::object Wout = W;
        if (horizon == 0) Wout = W.attr("reshape")(mm, n);
        return py::make_tuple(o.J, Wout, tables(std::move(o.P), horizon, n), o.iterations, o.spectral_radius);
      },
      py::arg("A").noconvert(), py::arg("B").noconvert(), py::arg("Q").noconvert(), py::arg("R").noconvert(),
      py::arg("S0").noconvert(), py::arg("noise").noconvert(), py::arg("gamma"), py::arg("horizon"),
      "Optimal control: (J*, W* (m, n) or the gains (H, m, n), P (n, n) or (H, n, n), iterations, spectral "
      "radius of the closed loop (discounted; 0 for the finite horizon)).");

  m.def(
      "best_stationary",
      [](const carray<double>& A, const carray<double>& B, const carray<double>& Q, const carray<double>& R,
         const carray<double>& S0, const carray<double>& noise, double gamma, std::int64_t horizon,
         const carray<double>& W_start, const carray<double>& sigma, double tol, std::int64_t max_iter) {
        const Model mdl = model(A, B, Q, R, S0, noise, gamma, horizon);
        if (horizon < 1) throw std::invalid_argument("the best stationary gain is of a finite horizon (horizon >= 1)");
        if (!(tol >= 0.0 && tol < 1.0)) throw std::invalid_argument("tol must be in [0, 1)");
        if (max_iter < 0) throw std::invalid_argument("max_iter must be >= 0");
        const MatrixXd w = matrix_arg(W_start, "W_start", mdl.m(), mdl.n());
        const VectorXd s = vector_arg(sigma, "sigma", mdl.m());
        exact::lqr::Stationary st = run_lqr(
            [&](StopToken& stop) { return exact::lqr::best_stationary(mdl, w, s, tol, max_iter, stop); });
        return py::make_tuple(row_major(st.W), st.ev.J, row_major(st.ev.grad_W), to_array(st.ev.grad_log_sigma),
                              st.iterations, st.converged);
      },
      py::arg("A").noconvert(), py::arg("B").noconvert(), py::arg("Q").noconvert(), py::arg("R").noconvert(),
      py::arg("S0").noconvert(), py::arg("noise").noconvert(), py::arg("gamma"), py::arg("horizon"),
      py::arg("W_start").noconvert(), py::arg("sigma").noconvert(), py::arg("tol"), py::arg("max_iter"),
      "The best stationary gain of the finite horizon by L-BFGS on the exact gradient from W_start: (W, J, dJ/dW, "
      "dJ/dlog sigma, iterations, converged).");
}

}  // namespace pgfast::bindings
