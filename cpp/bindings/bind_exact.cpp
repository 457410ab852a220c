// Exact evaluation, optimal control, Fisher information and natural gradients (pg.exact).
#include <pybind11/native_enum.h>

#include "common.hpp"
#include "pgfast/exact/fisher.hpp"
#include "pgfast/exact/moments.hpp"
#include "pgfast/exact/objectives.hpp"
#include "pgfast/exact/optimal.hpp"
#include "pgfast/exact/soft.hpp"
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

// The arguments of one exact evaluation, built by the Python wrapper (pgfast.exact).
struct EvaluationSpec {
  exact::Objective objective;
  double gamma;
  exact::Method method;
  double tol;
  int threads;
  exact::Request request;
};

// An evaluation and the shapes of its tables: V, Q, A, d are (H, S[, A]) for the finite horizon
// and (S[, A]) otherwise. A table that was not computed is None.
struct EvaluationResult {
  exact::Evaluation ev;
  bool finite_horizon;
  py::ssize_t S, A, H;
};

struct OptimalResult {
  exact::Optimal o;
  bool finite_horizon;
  py::ssize_t S, A, H;
};

// A writable NumPy view of a result's table (zero-copy: the result object owns the memory and is
// kept alive by the view), or None when the table was not computed.
template <class T>
py::object table_view(const py::object& self, const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  if (v.empty()) return py::none();
  return py::array_t<T>(std::move(shape), v.data(), self);
}

// Shapes (H, S, ...) for the finite horizon, (S, ...) otherwise.
template <class R>
std::vector<py::ssize_t> per_step(const R& r, std::vector<py::ssize_t> tail) {
  if (r.finite_horizon) tail.insert(tail.begin(), r.H);
  return tail;
}

}  // namespace

void bind_exact(py::module_ m) {
  py::native_enum<exact::MomentWeights>(m, "MomentWeights", "enum.Enum", "The weights of the estimator of exact moments.")
      .value("REWARD_TO_GO", exact::MomentWeights::RewardToGo)
      .value("RETURN", exact::MomentWeights::Return)
      .finalize();
  py::native_enum<exact::Objective>(m, "Objective", "enum.Enum", "The objective of an exact evaluation.")
      .value("FINITE_HORIZON", exact::Objective::FiniteHorizon)
      .value("DISCOUNTED", exact::Objective::Discounted)
      .value("AVERAGE_REWARD", exact::Objective::AverageReward)
      .value("AVERAGE_VALUE", exact::Objective::AverageValue)
      .finalize();
  py::native_enum<exact::Method>(m, "Method", "enum.Enum",
                                 "The linear solver: dense LU up to 200 states (AUTO), always (DENSE) or never (SPARSE).")
      .value("AUTO", exact::Method::Auto)
      .value("DENSE", exact::Method::Dense)
      .value("SPARSE", exact::Method::Sparse)
      .finalize();

  py::class_<EvaluationSpec>(m, "EvaluationSpec", "The arguments of one exact evaluation.")
      .def(py::init([](exact::Objective objective, double gamma, exact::Method method, double tol, int threads,
                       bool values, bool gradient, bool fisher) {
             return EvaluationSpec{objective, gamma, method, tol, threads, exact::Request{values, gradient, fisher}};
           }),
           py::kw_only(), py::arg("objective"), py::arg("gamma"), py::arg("method"), py::arg("tol"), py::arg("threads"),
           py::arg("values"), py::arg("gradient"), py::arg("fisher"))
      .def_readonly("objective", &EvaluationSpec::objective)
      .def_readonly("gamma", &EvaluationSpec::gamma)
      .def_readonly("method", &EvaluationSpec::method)
      .def_readonly("tol", &EvaluationSpec::tol)
      .def_readonly("threads", &EvaluationSpec::threads)
      .def_property_readonly("values", [](const EvaluationSpec& s) { return s.request.values; })
      .def_property_readonly("gradient", [](const EvaluationSpec& s) { return s.request.gradient; })
      .def_property_readonly("fisher", [](const EvaluationSpec& s) { return s.request.fisher; });

  py::class_<EvaluationResult>(m, "Evaluation",
                               "An exact evaluation: J and the tables V, Q, A (finite horizon only), d, visitation, "
                               "logit_grad (dJ/dz), fisher_w (the Fisher information's state weighting); None when "
                               "not computed.")
      .def_property_readonly("J", [](const EvaluationResult& r) { return r.ev.J; })
      .def_property_readonly("V", [](const py::object& self) {
        const auto& r = self.cast<const EvaluationResult&>();
        return table_view(self, r.ev.V, per_step(r, {r.S}));
      })
      .def_property_readonly("Q", [](const py::object& self) {
        const auto& r = self.cast<const EvaluationResult&>();
        return table_view(self, r.ev.Q, per_step(r, {r.S, r.A}));
      })
      .def_property_readonly("A", [](const py::object& self) {
        const auto& r = self.cast<const EvaluationResult&>();
        return table_view(self, r.ev.Adv, {r.H, r.S, r.A});
      })
      .def_property_readonly("d", [](const py::object& self) {
        const auto& r = self.cast<const EvaluationResult&>();
        return table_view(self, r.ev.d, per_step(r, {r.S}));
      })
      .def_property_readonly("visitation", [](const py::object& self) {
        const auto& r = self.cast<const EvaluationResult&>();
        return table_view(self, r.ev.visitation, {r.S});
      })
      .def_property_readonly("logit_grad", [](const py::object& self) {
        const auto& r = self.cast<const EvaluationResult&>();
        return table_view(self, r.ev.logit_grad, {r.S, r.A});
      })
      .def_property_readonly("fisher_w", [](const py::object& self) {
        const auto& r = self.cast<const EvaluationResult&>();
        return table_view(self, r.ev.fisher_w, {r.S});
      });

  py::class_<OptimalResult>(m, "Optimal", "Optimal control: J, V, Q, the greedy actions and the iterations it took.")
      .def_property_readonly("J", [](const OptimalResult& r) { return r.o.J; })
      .def_property_readonly("V", [](const py::object& self) {
        const auto& r = self.cast<const OptimalResult&>();
        return table_view(self, r.o.V, per_step(r, {r.S}));
      })
      .def_property_readonly("Q", [](const py::object& self) {
        const auto& r = self.cast<const OptimalResult&>();
        return table_view(self, r.o.Q, per_step(r, {r.S, r.A}));
      })
      .def_property_readonly("actions", [](const py::object& self) {
        const auto& r = self.cast<const OptimalResult&>();
        return table_view(self, r.o.actions, per_step(r, {r.S}));
      })
      .def_property_readonly("iterations", [](const OptimalResult& r) { return r.o.iterations; });

  m.def(
      "evaluate",
      [](const FiniteMDP& mdp, const carray<double>& probs, const EvaluationSpec& spec) {
        const double gamma = spec.gamma, tol = spec.tol;
        const exact::Method meth = spec.method;
        const exact::Request& req = spec.request;
        check_unit(gamma, "gamma");
        check_tol(tol);
        const int threads = resolve_threads(spec.threads);
        require_shape2(probs, "policy probabilities", mdp.n_states(), mdp.n_actions());
        check_policy_table(probs, "policy probabilities");
        const py::ssize_t S = mdp.n_states(), A = mdp.n_actions(), H = mdp.horizon();
        exact::Evaluation ev = run_exact([&](StopToken& stop) {
          switch (spec.objective) {
            case exact::Objective::FiniteHorizon:
              return exact::finite_horizon(mdp, probs.data(), H, gamma, req, stop);
            case exact::Objective::Discounted:
              return exact::discounted(mdp, probs.data(), gamma, meth, tol, req, threads, stop);
            case exact::Objective::AverageReward:
              return exact::average_reward(mdp, probs.data(), meth, tol, req, threads, stop);
            case exact::Objective::AverageValue:
              return exact::average_value(mdp, probs.data(), gamma, meth, tol, req, threads, stop);
          }
          throw std::invalid_argument("unknown objective");
        });
        return EvaluationResult{std::move(ev), spec.objective == exact::Objective::FiniteHorizon, S, A, H};
      },
      py::arg("mdp"), py::arg("probs").noconvert(), py::arg("spec"),
      "Exact evaluation of a policy table under one objective (an Evaluation).");

  m.def(
      "moments",
      [](const FiniteMDP& mdp, const carray<double>& probs, const carray<std::int64_t>& indptr,
         const carray<std::int32_t>& index, const carray<double>& value, std::int64_t n, double gamma,
         exact::MomentWeights weights, const carray<double>& baseline, bool full, bool discounted,
         exact::Method method, double tol, int threads, bool optimal) {
        check_unit(gamma, "gamma");
        check_tol(tol);
        threads = resolve_threads(threads);
        require_shape2(probs, "policy probabilities", mdp.n_states(), mdp.n_actions());
        check_policy_table(probs, "policy probabilities");
        const py::ssize_t S = mdp.n_states(), A = mdp.n_actions(), H = mdp.horizon();
        if (discounted && !(gamma < 1.0 && weights == exact::MomentWeights::RewardToGo))
          throw std::invalid_argument("discounted moments need gamma < 1 and reward-to-go weights");
        require_shape2(baseline, "baseline", discounted ? 1 : H, S);
        if (n < 1) throw std::invalid_argument("the score rows need n >= 1 coordinates");
        if (indptr.ndim() != 1 || indptr.shape(0) != S * A + 1 || indptr.data()[0] != 0)
          throw std::invalid_argument("indptr must have shape (S * A + 1,) and start at 0");
        const std::int64_t* ip = indptr.data();
        for (py::ssize_t k = 0; k < S * A; ++k)
          if (ip[k + 1] < ip[k]) throw std::invalid_argument("indptr must be non-decreasing");
        if (index.ndim() != 1 || value.ndim() != 1 || index.shape(0) != ip[S * A] || value.shape(0) != ip[S * A])
          throw std::invalid_argument("index and value must have shape (indptr[-1],)");
        for (py::ssize_t k = 0; k < index.shape(0); ++k)
          if (index.data()[k] < 0 || index.data()[k] >= n) throw std::invalid_argument("score index out of range");
        if (discounted && optimal) throw std::invalid_argument("the optimal baselines are of the finite horizon");
        const exact::ScoreRows rows{ip, index.data(), value.data(), n};
        std::vector<double> coord;  // per-coordinate optimal baselines
        exact::Moments mo = run_exact([&](StopToken& stop) {
          if (discounted)
            return exact::discounted_moments(mdp, probs.data(), rows, gamma, baseline.data(), full, method, tol,
                                             threads, stop);
          if (optimal) coord = exact::optimal_coordinate_baselines(mdp, probs.data(), rows, H, gamma, weights, stop);
          return exact::finite_horizon_moments(mdp, probs.data(), rows, H, gamma, weights, baseline.data(),
                                               optimal ? coord.data() : nullptr, full, stop);
        });
        carray<double> mean(n);
        std::copy(mo.mean.begin(), mo.mean.end(), mean.mutable_data());
        carray<double> second = full ? carray<double>({n, n}) : carray<double>(n);
        std::copy(mo.second.begin(), mo.second.end(), second.mutable_data());
        py::object coord_out = py::none();
        if (optimal) {
          const py::ssize_t rows_out = weights == exact::MomentWeights::RewardToGo ? H : 1;
          carray<double> c({rows_out, static_cast<py::ssize_t>(n)});
          std::copy(coord.begin(), coord.end(), c.mutable_data());
          coord_out = c;
        }
        return py::make_tuple(mean, second, mo.J, mo.G2, coord_out);
      },
      py::arg("mdp"), py::arg("probs").noconvert(), py::arg("indptr").noconvert(), py::arg("index").noconvert(),
      py::arg("value").noconvert(), py::arg("n"), py::arg("gamma"), py::arg("weights"), py::arg("baseline").noconvert(),
      py::arg("full"), py::arg("discounted"), py::arg("method"), py::arg("tol"), py::arg("threads"),
      py::arg("optimal"),
      "Exact finite-horizon (baseline (H, S)) or discounted (reward-to-go, baseline (1, S)) mean and second moments (diagonal, or the full matrix) of the single-trajectory "
      "estimator with score rows in CSR form: (mean, second, J, E[G_0^2], the per-coordinate optimal baselines or None); "
      "optimal=True adds the per-coordinate optimal baselines to the state baseline.");

  m.def(
      "optimal",
      [](const FiniteMDP& mdp, exact::Objective objective, double gamma, exact::Method method, double tol,
         int threads) {
        check_unit(gamma, "gamma");
        check_tol(tol);
        threads = resolve_threads(threads);
        const py::ssize_t S = mdp.n_states(), A = mdp.n_actions(), H = mdp.horizon();
        const bool fh = objective == exact::Objective::FiniteHorizon;
        if (!fh && objective != exact::Objective::Discounted) {
          throw std::invalid_argument("optimal control is available for the finite_horizon and discounted objectives");
        }
        exact::Optimal o = run_exact([&](StopToken& stop) {
          return fh ? exact::optimal_finite_horizon(mdp, H, gamma, stop)
                    : exact::optimal_discounted(mdp, gamma, method, tol, threads, stop);
        });
        return OptimalResult{std::move(o), fh, S, A, H};
      },
      py::arg("mdp"), py::arg("objective"), py::arg("gamma"), py::arg("method"), py::arg("tol"), py::arg("threads"),
      "Optimal control by backward induction (finite horizon) or policy iteration (discounted).");

  m.def(
      "soft_optimal",
      [](const FiniteMDP& mdp, bool finite_horizon, double gamma, double tau, double tol, std::int64_t max_iter) {
        check_unit(gamma, "gamma");
        check_tol(tol);
        if (!(std::isfinite(tau) && tau > 0.0)) throw std::invalid_argument("tau must be a finite number > 0");
        if (max_iter < 1) throw std::invalid_argument("max_iter must be >= 1");
        const py::ssize_t S = mdp.n_states(), A = mdp.n_actions(), H = mdp.horizon();
        exact::SoftOptimal o = run_exact([&](StopToken& stop) {
          return finite_horizon ? exact::soft_optimal_finite_horizon(mdp, H, gamma, tau, stop)
                                : exact::soft_optimal_discounted(mdp, gamma, tau, tol, max_iter, stop);
        });
        std::vector<py::ssize_t> vshape{S}, qshape{S, A};
        if (finite_horizon) vshape.insert(vshape.begin(), H), qshape.insert(qshape.begin(), H);
        return py::make_tuple(o.J, vector_to_numpy(std::move(o.V), vshape), vector_to_numpy(std::move(o.Q), qshape),
                              o.iterations, o.change, o.converged);
      },
      py::arg("mdp"), py::arg("finite_horizon"), py::arg("gamma"), py::arg("tau"), py::arg("tol"), py::arg("max_iter"),
      "Soft value iteration: (J, V, Q, iterations, the last sweep's change of V, converged); the backward recursion "
      "for the finite horizon.");

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
