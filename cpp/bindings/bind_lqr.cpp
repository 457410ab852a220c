// Sampling an LQR under a linear-Gaussian policy, and the fused estimator on it (lqr/sampling.hpp,
// lqr/fused.hpp).
#include "common.hpp"
#include "pgfast/estimators/baselines.hpp"
#include "pgfast/lqr/fused.hpp"
#include "pgfast/lqr/sampling.hpp"
#include "pgfast/normal.hpp"
#include "pgfast/vexp.hpp"

namespace pgfast::bindings {

namespace {

// An LQR and a linear-Gaussian policy on it, with the arrays the kernels read (the covariances'
// factors and the standard deviations computed once here, the same bits on every CPU).
struct LqrProblem {
  carray<double> A, B, Q, R, x0, W, log_std;
  std::vector<double> C0, Cw, sigma, floored;
  bool has_start_cov = false, has_noise = false;
  std::int64_t H = 0;
  double max_state = 0.0;

  lqr::Problem view() const {
    lqr::Problem p;
    p.n = A.shape(0);
    p.m = B.shape(1);
    p.H = H;
    p.A = A.data();
    p.B = B.data();
    p.Q = Q.data();
    p.R = R.data();
    p.x0 = x0.data();
    p.C0 = has_start_cov ? C0.data() : nullptr;
    p.Cw = has_noise ? Cw.data() : nullptr;
    p.max_state = max_state;
    p.W = W.data();
    p.sigma = sigma.data();
    return p;
  }
};

void require_square(const carray<double>& a, const char* name, py::ssize_t n) { require_shape2(a, name, n, n); }

LqrProblem make_problem(carray<double> A, carray<double> B, carray<double> Q, carray<double> R, carray<double> x0,
                        const std::optional<carray<double>>& x0_cov, const std::optional<carray<double>>& noise_cov,
                        double max_state, std::int64_t horizon, carray<double> W, carray<double> log_std,
                        double log_std_min) {
  if (A.ndim() != 2 || A.shape(0) != A.shape(1) || A.shape(0) < 1) throw std::invalid_argument("A must be (n, n)");
  const py::ssize_t n = A.shape(0);
  if (B.ndim() != 2 || B.shape(0) != n || B.shape(1) < 1) throw std::invalid_argument("B must be (n, m)");
  const py::ssize_t m = B.shape(1);
  require_square(Q, "Q", n);
  require_square(R, "R", m);
  if (x0.ndim() != 1 || x0.shape(0) != n) throw std::invalid_argument("x0 must have shape (n,)");
  require_shape2(W, "W", m, n);
  if (log_std.ndim() != 1 || log_std.shape(0) != m) throw std::invalid_argument("log_std must have shape (m,)");
  if (horizon < 1) throw std::invalid_argument("the horizon must be >= 1, got " + std::to_string(horizon));
  if (!(max_state > 0.0)) throw std::invalid_argument("max_state must be > 0");
  LqrProblem out;
  out.A = std::move(A);
  out.B = std::move(B);
  out.Q = std::move(Q);
  out.R = std::move(R);
  out.x0 = std::move(x0);
  out.W = std::move(W);
  out.log_std = std::move(log_std);
  out.H = horizon;
  out.max_state = max_state;
  if (x0_cov) {
    require_square(*x0_cov, "x0_cov", n);
    out.C0 = lqr::psd_factor(x0_cov->data(), n);
    out.has_start_cov = true;
  }
  if (noise_cov) {
    require_square(*noise_cov, "noise_cov", n);
    out.Cw = lqr::psd_factor(noise_cov->data(), n);
    out.has_noise = true;
  }
  out.sigma.resize(static_cast<std::size_t>(m));
  out.floored.resize(static_cast<std::size_t>(m));
  const double* ls = out.log_std.data();
  for (py::ssize_t a = 0; a < m; ++a) {
    out.floored[a] = ls[a] < log_std_min ? 1.0 : 0.0;
    out.sigma[a] = portable_exp(std::max(ls[a], log_std_min));
  }
  return out;
}

}  // namespace

void bind_lqr(py::module_ m) {
  py::class_<LqrProblem>(m, "Problem", "An LQR with a linear-Gaussian policy, as the compiled sampler reads it.")
      .def(py::init(&make_problem), py::arg("A").noconvert(), py::arg("B").noconvert(), py::arg("Q").noconvert(),
           py::arg("R").noconvert(), py::arg("x0").noconvert(), py::arg("x0_cov").noconvert(),
           py::arg("noise_cov").noconvert(), py::arg("max_state"), py::arg("horizon"), py::arg("W").noconvert(),
           py::arg("log_std").noconvert(), py::arg("log_std_min"))
      .def_property_readonly("start_factor", [](const LqrProblem& p) -> py::object {
        if (!p.has_start_cov) return py::none();
        const auto n = static_cast<py::ssize_t>(p.A.shape(0));
        return vector_to_numpy(std::vector<double>(p.C0), {n, n});
      })
      .def_property_readonly("noise_factor", [](const LqrProblem& p) -> py::object {
        if (!p.has_noise) return py::none();
        const auto n = static_cast<py::ssize_t>(p.A.shape(0));
        return vector_to_numpy(std::vector<double>(p.Cw), {n, n});
      })
      .def_property_readonly("sigma", [](const LqrProblem& p) {
        return vector_to_numpy(std::vector<double>(p.sigma), {static_cast<py::ssize_t>(p.sigma.size())});
      });

  m.def(
      "sample",
      [](const LqrProblem& prob, std::int64_t N, std::uint64_t seed, int threads) {
        if (N < 1) throw std::invalid_argument("n must be >= 1, got " + std::to_string(N));
        threads = resolve_threads(threads);
        const lqr::Problem p = prob.view();
        carray<double> states({N, p.H, p.n}), actions({N, p.H, p.m}), rewards({N, p.H});
        carray<std::int32_t> lengths(N);
        py::array_t<bool> diverged(N);
        lqr::StoreSink sink{states.mutable_data(), actions.mutable_data(), rewards.mutable_data(),
                            lengths.mutable_data(), reinterpret_cast<std::uint8_t*>(diverged.mutable_data()),
                            p.n, p.m, p.H};
        StopToken stop(python_interrupted);
        bool ok;
        {
          py::gil_scoped_release release;
          std::fill(states.mutable_data(), states.mutable_data() + states.size(), 0.0);
          std::fill(actions.mutable_data(), actions.mutable_data() + actions.size(), 0.0);
          std::fill(rewards.mutable_data(), rewards.mutable_data() + rewards.size(), 0.0);
          const reduce::Grid grid = est::estimator_grid(N);
          ok = lqr::simulate_blocks(p, grid, seed, threads, [&](int) -> lqr::StoreSink& { return sink; }, stop);
        }
        if (!ok) throw py::error_already_set();
        return py::make_tuple(states, actions, rewards, lengths, diverged);
      },
      py::arg("problem"), py::arg("n"), py::arg("seed"), py::arg("threads"),
      "Simulate n trajectories: (states, actions, rewards, lengths, diverged).");

  m.def(
      "fused_gradient",
      [](const LqrProblem& prob, std::int64_t N, std::uint64_t seed, int threads, est::WeightKind weights,
         est::BaselineKind baseline, double gamma, bool stderr_, bool per_trajectory) {
        if (N < 1) throw std::invalid_argument("n must be >= 1, got " + std::to_string(N));
        check_unit(gamma, "gamma");
        if (weights == est::WeightKind::Explicit) throw std::invalid_argument("explicit weights need a stored batch");
        if (baseline == est::BaselineKind::Table) throw std::invalid_argument("a table baseline needs finite states");
        threads = resolve_threads(threads);
        const lqr::Problem p = prob.view();
        const std::int64_t np = p.m * p.n + p.m;
        lqr::FusedSpec spec;
        spec.weights.kind = weights;
        spec.weights.gamma = gamma;
        spec.weights.baseline = baseline;
        spec.floored = prob.floored.data();
        spec.sumsq = stderr_;
        py::object rows = py::none();
        if (per_trajectory) {
          carray<double> r({N, np});
          spec.rows = r.mutable_data();
          rows = r;
        }
        StopToken stop(python_interrupted);
        lqr::Partial root;
        bool ok;
        {
          py::gil_scoped_release release;
          ok = lqr::fused_gradient(p, spec, N, seed, threads, stop, root);
        }
        if (!ok) throw py::error_already_set();
        if (!stderr_) root.sumsq.assign(static_cast<std::size_t>(np), 0.0);
        return py::make_tuple(vector_to_numpy(std::move(root.sum), {np}), vector_to_numpy(std::move(root.sumsq), {np}),
                              rows, root.return_sum, root.return_sumsq, root.steps, root.diverged);
      },
      py::arg("problem"), py::arg("n"), py::arg("seed"), py::arg("threads"), py::arg("weights"), py::arg("baseline"),
      py::arg("gamma"), py::arg("stderr"), py::arg("per_trajectory"),
      "Sample n trajectories and accumulate their gradients: (sum, sumsq, rows or None, return_sum, "
      "return_sumsq, steps, diverged).");

  m.def(
      "fused_worker_bytes",
      [](std::int64_t n, std::int64_t m_, std::int64_t H) { return lqr::fused_worker_bytes(n, m_, H); },
      py::arg("n"), py::arg("m"), py::arg("horizon"), "Working memory of one fused worker, in bytes.");

  m.def(
      "standard_normals",
      [](const carray<std::uint64_t>& words) {
        if (words.ndim() != 1 || words.size() % 2 != 0) throw std::invalid_argument("words must be 1-D of even length");
        std::vector<double> out(static_cast<std::size_t>(words.size())), scratch(out.size() / 2);
        standard_normals(words.data(), out.data(), scratch.data(), words.size() / 2);
        return vector_to_numpy(std::move(out), {words.size()});
      },
      py::arg("words").noconvert(), "Box-Muller standard normals of pairs of 64-bit words (normal.hpp).");
  m.def("log_positive", [](double x) { return detail::log_positive(x); }, py::arg("x"),
        "The portable log of normal.hpp (for tests).");
}

}  // namespace pgfast::bindings
