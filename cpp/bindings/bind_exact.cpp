// Exact evaluation, optimal control, Fisher information and natural gradients (pg.exact).
#include "common.hpp"
#include "pgfast/exact/fisher.hpp"
#include "pgfast/exact/objectives.hpp"
#include "pgfast/exact/optimal.hpp"
#include "pgfast/interrupt.hpp"
#include "pgfast/mdp.hpp"
#include "pgfast/policy.hpp"

namespace pgfast::bindings {

namespace {

// Scalars the exact solvers assume in range (Python checks them first; direct calls are checked here).
void check_tol(double tol) {
  if (!(tol > 0.0 && tol < 1.0)) {
    std::ostringstream os;
    os << "tol must be in (0, 1), got " << tol;
    throw std::invalid_argument(os.str());
  }
}

void check_damping_rcond(double damping, double rcond) {
  if (!(std::isfinite(damping) && damping >= 0.0)) {
    std::ostringstream os;
    os << "damping must be a finite number >= 0, got " << damping;
    throw std::invalid_argument(os.str());
  }
  if (!(rcond >= 0.0 && rcond < 1.0)) {
    std::ostringstream os;
    os << "rcond must be in [0, 1), got " << rcond;
    throw std::invalid_argument(os.str());
  }
}

exact::Method parse_method(const std::string& method) {
  if (method == "auto") return exact::Method::Auto;
  if (method == "dense") return exact::Method::Dense;
  if (method == "sparse") return exact::Method::Sparse;
  throw std::invalid_argument("method must be 'auto', 'dense' or 'sparse', got '" + method + "'");
}

// Runs f() with the GIL released and Ctrl-C polled; Interrupted becomes KeyboardInterrupt.
template <class F>
auto run_exact(F&& f) {
  StopToken stop(python_interrupted);
  try {
    py::gil_scoped_release release;
    return f(stop);
  } catch (const Interrupted&) {
    throw py::error_already_set();
  }
}

}  // namespace

void bind_exact(py::module_& m) {
  m.def(
      "exact_evaluate",
      [](const FiniteMDP& mdp, const carray<double>& probs, const std::string& objective, double gamma,
         const std::string& method, double tol, bool values, bool gradient, bool fisher, int threads) {
        check_unit(gamma, "gamma");
        check_tol(tol);
        threads = resolve_threads(threads);
        require_shape2(probs, "policy probabilities", mdp.n_states(), mdp.n_actions());
        check_policy_table(probs, "policy probabilities");
        const exact::Method meth = parse_method(method);
        const exact::Request req{values, gradient, fisher};
        const py::ssize_t S = mdp.n_states(), A = mdp.n_actions(), H = mdp.horizon();
        exact::Evaluation ev = run_exact([&](StopToken& stop) {
          if (objective == "finite_horizon") return exact::finite_horizon(mdp, probs.data(), H, gamma, req, stop);
          if (objective == "discounted") return exact::discounted(mdp, probs.data(), gamma, meth, tol, req, threads, stop);
          if (objective == "average_reward") return exact::average_reward(mdp, probs.data(), meth, tol, req, threads, stop);
          if (objective == "average_value")
            return exact::average_value(mdp, probs.data(), gamma, meth, tol, req, threads, stop);
          throw std::invalid_argument("unknown objective '" + objective + "'");
        });
        const bool fh = objective == "finite_horizon";
        py::dict out;
        out["J"] = ev.J;
        if (!ev.V.empty()) out["V"] = vector_to_numpy(std::move(ev.V), fh ? std::vector<py::ssize_t>{H, S} : std::vector<py::ssize_t>{S});
        if (!ev.Q.empty())
          out["Q"] = vector_to_numpy(std::move(ev.Q), fh ? std::vector<py::ssize_t>{H, S, A} : std::vector<py::ssize_t>{S, A});
        if (!ev.Adv.empty()) out["A"] = vector_to_numpy(std::move(ev.Adv), {H, S, A});
        if (!ev.d.empty()) out["d"] = vector_to_numpy(std::move(ev.d), fh ? std::vector<py::ssize_t>{H, S} : std::vector<py::ssize_t>{S});
        if (!ev.visitation.empty()) out["visitation"] = vector_to_numpy(std::move(ev.visitation), {S});
        if (!ev.logit_grad.empty()) out["logit_grad"] = vector_to_numpy(std::move(ev.logit_grad), {S, A});
        if (!ev.fisher_w.empty()) out["fisher_w"] = vector_to_numpy(std::move(ev.fisher_w), {S});
        return out;
      },
      py::arg("mdp"), py::arg("probs").noconvert(), py::arg("objective"), py::arg("gamma"), py::arg("method"),
      py::arg("tol"), py::arg("values"), py::arg("gradient"), py::arg("fisher"), py::arg("threads"),
      "Exact evaluation of a policy table under one objective: dict of J, V, Q, d, visitation, "
      "logit_grad (dJ/dz), fisher_w (state weighting of the Fisher information).");

  m.def(
      "exact_optimal",
      [](const FiniteMDP& mdp, const std::string& objective, double gamma, const std::string& method, double tol,
         int threads) {
        check_unit(gamma, "gamma");
        check_tol(tol);
        threads = resolve_threads(threads);
        const exact::Method meth = parse_method(method);
        const py::ssize_t S = mdp.n_states(), A = mdp.n_actions(), H = mdp.horizon();
        const bool fh = objective == "finite_horizon";
        if (!fh && objective != "discounted") {
          throw std::invalid_argument("optimal control is available for objective='finite_horizon' or "
                                      "'discounted', got '" + objective + "'");
        }
        exact::Optimal o = run_exact([&](StopToken& stop) {
          return fh ? exact::optimal_finite_horizon(mdp, H, gamma, stop)
                    : exact::optimal_discounted(mdp, gamma, meth, tol, threads, stop);
        });
        py::dict out;
        out["J"] = o.J;
        out["V"] = vector_to_numpy(std::move(o.V), fh ? std::vector<py::ssize_t>{H, S} : std::vector<py::ssize_t>{S});
        out["Q"] = vector_to_numpy(std::move(o.Q), fh ? std::vector<py::ssize_t>{H, S, A} : std::vector<py::ssize_t>{S, A});
        out["actions"] = vector_to_numpy(std::move(o.actions), fh ? std::vector<py::ssize_t>{H, S} : std::vector<py::ssize_t>{S});
        out["iterations"] = o.iterations;
        return out;
      },
      py::arg("mdp"), py::arg("objective"), py::arg("gamma"), py::arg("method"), py::arg("tol"), py::arg("threads"));

  m.def(
      "fisher_tabular",
      [](const carray<double>& probs, const carray<double>& w) {
        if (probs.ndim() != 2) throw std::invalid_argument("probs must have shape (S, A)");
        const py::ssize_t S = probs.shape(0), A = probs.shape(1);
        if (w.ndim() != 1 || w.shape(0) != S) throw std::invalid_argument("w must have shape (S,)");
        carray<double> F({S * A, S * A});
        {
          py::gil_scoped_release release;
          exact::fisher_tabular(probs.data(), w.data(), S, A, F.mutable_data());
        }
        return F;
      },
      py::arg("probs").noconvert(), py::arg("w").noconvert());

  m.def(
      "fisher_linear",
      [](const carray<double>& probs, const carray<double>& w, const carray<double>& features) {
        if (probs.ndim() != 2) throw std::invalid_argument("probs must have shape (S, A)");
        const py::ssize_t S = probs.shape(0), A = probs.shape(1);
        if (w.ndim() != 1 || w.shape(0) != S) throw std::invalid_argument("w must have shape (S,)");
        if (features.ndim() != 3 || features.shape(0) != S || features.shape(1) != A)
          throw std::invalid_argument("features must have shape (S, A, p)");
        const py::ssize_t p = features.shape(2);
        carray<double> F({p, p});
        run_exact([&](StopToken& stop) {
          exact::fisher_linear(probs.data(), w.data(), features.data(), S, A, p, F.mutable_data(), &stop);
          return 0;
        });
        return F;
      },
      py::arg("probs").noconvert(), py::arg("w").noconvert(), py::arg("features").noconvert());

  m.def(
      "linear_vjp",
      [](const carray<double>& features, const carray<double>& W) {
        if (features.ndim() != 2) throw std::invalid_argument("features must have shape (S*A, p)");
        const py::ssize_t rows = features.shape(0), p = features.shape(1);
        if (W.size() != rows) throw std::invalid_argument("W must have S*A entries");
        carray<double> out(p);
        {
          py::gil_scoped_release release;
          linear_vjp(features.data(), rows, p, W.data(), out.mutable_data());
        }
        return out;
      },
      py::arg("features").noconvert(), py::arg("W").noconvert(),
      "sum_{s,a} W(s,a) phi(s,a): the parameter gradient of a linear policy from logit gradients W.");

  m.def(
      "solve_fisher",
      [](const carray<double>& F, const carray<double>& g, double damping, double rcond) {
        check_damping_rcond(damping, rcond);
        if (F.ndim() != 2 || F.shape(0) != F.shape(1) || g.ndim() != 1 || g.shape(0) != F.shape(0))
          throw std::invalid_argument("F must be (n, n) and g (n,)");
        const py::ssize_t n = g.shape(0);
        carray<double> out(n);
        {
          py::gil_scoped_release release;
          Eigen::Map<const RowMatrixXd> Fm(F.data(), n, n);
          Eigen::Map<Eigen::VectorXd>(out.mutable_data(), n) =
              exact::solve_fisher(Eigen::MatrixXd(Fm), Eigen::Map<const Eigen::VectorXd>(g.data(), n), damping, rcond);
        }
        return out;
      },
      py::arg("F").noconvert(), py::arg("g").noconvert(), py::arg("damping"), py::arg("rcond"));

  m.def(
      "natural_gradient_tabular",
      [](const carray<double>& probs, const carray<double>& w, const carray<double>& g, double damping, double rcond) {
        check_damping_rcond(damping, rcond);
        if (probs.ndim() != 2) throw std::invalid_argument("probs must have shape (S, A)");
        const py::ssize_t S = probs.shape(0), A = probs.shape(1);
        if (w.ndim() != 1 || w.shape(0) != S) throw std::invalid_argument("w must have shape (S,)");
        require_shape2(g, "g", S, A);
        carray<double> out({S, A});
        run_exact([&](StopToken& stop) {
          exact::natural_gradient_tabular(probs.data(), w.data(), g.data(), S, A, damping, rcond, out.mutable_data(), &stop);
          return 0;
        });
        return out;
      },
      py::arg("probs").noconvert(), py::arg("w").noconvert(), py::arg("g").noconvert(), py::arg("damping"),
      py::arg("rcond"));
}

}  // namespace pgfast::bindings
