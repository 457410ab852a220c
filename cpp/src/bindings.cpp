// The only file that knows Python: converts arrays, releases the GIL, maps errors, polls Ctrl-C.
//
// Python (python/pgfast) validates shapes and dtypes and passes C-contiguous float64 / int32 /
// uint8 arrays; every array argument here is .noconvert(), so nothing is copied on the way in.
// Outputs are NumPy arrays allocated here and filled in place with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "pgfast/estimators.hpp"
#include "pgfast/exact.hpp"
#include "pgfast/mdp.hpp"
#include "pgfast/mlp.hpp"
#include "pgfast/parallel.hpp"
#include "pgfast/policy.hpp"
#include "pgfast/returns.hpp"
#include "pgfast/rng.hpp"
#include "pgfast/rollout.hpp"

namespace py = pybind11;
using namespace pgfast;

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

// Called on the waiting thread, GIL released: run Python's signal handlers (Ctrl-C).
bool python_interrupted() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

int resolve_threads(int threads) {
  if (threads < 0 || threads > kMaxThreads)
    throw std::invalid_argument("threads must be in [1, " + std::to_string(kMaxThreads) + "] or None, got " +
                                std::to_string(threads));
  return threads == 0 ? std::min(hardware_threads(), kMaxThreads) : threads;
}

template <class T>
std::vector<T> to_vector(const carray<T>& a, const char* name, py::ssize_t expected = -1) {
  if (a.ndim() != 1) throw std::invalid_argument(std::string(name) + " must be 1-D");
  if (expected >= 0 && a.size() != expected) {
    throw std::invalid_argument(std::string(name) + " must have " + std::to_string(expected) +
                                " entries, got " + std::to_string(a.size()));
  }
  return std::vector<T>(a.data(), a.data() + a.size());
}

// A read-only NumPy view of memory owned by `owner` (kept alive by the view).
template <class T>
py::array readonly_view(const T* data, std::vector<py::ssize_t> shape, py::handle owner) {
  py::array out(py::dtype::of<T>(), std::move(shape), {}, data, owner);
  out.attr("setflags")(py::arg("write") = false);
  return out;
}

// Throws unless every entry of an index array lies in [0, upper), naming the first that does not.
void check_range(const carray<std::int32_t>& idx, py::ssize_t upper, const char* name) {
  const std::int32_t* v = idx.data();
  for (py::ssize_t k = 0; k < idx.size(); ++k) {
    if (v[k] < 0 || v[k] >= upper) {
      throw std::invalid_argument(std::string(name) + "[" + std::to_string(k) + "] = " + std::to_string(v[k]) +
                                  " is out of range [0, " + std::to_string(upper) + ")");
    }
  }
}

// Scalars every kernel assumes in range (Python checks them first; direct calls are checked here).
void check_unit(double x, const char* name) {
  if (!(x >= 0.0 && x <= 1.0)) {
    std::ostringstream os;
    os << name << " must be in [0, 1], got " << x;
    throw std::invalid_argument(os.str());
  }
}

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

// A policy table (S, A) as the samplers and solvers read it: finite entries >= 0, each row summing
// to 1 (within 1e-6). O(S A), negligible beside the O(nnz) tables built from it.
void check_policy_table(const carray<double>& probs, const char* name) {
  const double* p = probs.data();
  const py::ssize_t S = probs.shape(0), A = probs.shape(1);
  for (py::ssize_t s = 0; s < S; ++s) {
    double total = 0.0;
    for (py::ssize_t a = 0; a < A; ++a) {
      const double v = p[s * A + a];
      if (!(v >= 0.0 && v <= 1.0)) {
        std::ostringstream os;
        os << name << "[" << s << ", " << a << "] = " << v << ": probabilities must lie in [0, 1]";
        throw std::invalid_argument(os.str());
      }
      total += v;
    }
    if (!(std::abs(total - 1.0) <= 1e-6)) {
      std::ostringstream os;
      os << name << "[" << s << ", :] sums to " << total << "; each row must sum to 1";
      throw std::invalid_argument(os.str());
    }
  }
}

void require_shape2(const py::array& a, const char* name, py::ssize_t rows, py::ssize_t cols) {
  if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols) {
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(rows) + ", " +
                                std::to_string(cols) + ")");
  }
}

void bind_rng(py::module_& m) {
  m.def(
      "philox2x64",
      [](std::uint64_t c0, std::uint64_t c1, std::uint64_t key) {
        const Block2x64 b = philox2x64(c0, c1, key);
        return py::make_tuple(b.v0, b.v1);
      },
      py::arg("c0"), py::arg("c1"), py::arg("key"),
      "Philox2x64-10 block of counter (c0, c1) under key: two 64-bit words.");
  m.def(
      "stream_words",
      [](std::uint64_t seed, const std::string& domain, std::uint64_t item, std::int64_t count) {
        Domain d;
        if (domain == "rollout") {
          d = Domain::Rollout;
        } else if (domain == "policy_sample") {
          d = Domain::PolicySample;
        } else {
          throw std::invalid_argument("domain must be 'rollout' or 'policy_sample', got '" + domain + "'");
        }
        if (count < 0) throw std::invalid_argument("count must be >= 0");
        Xoroshiro128pp g = item_stream(stream_key(seed, d), item);
        std::vector<std::uint64_t> out(static_cast<std::size_t>(count));
        for (auto& w : out) w = g.next();
        return out;
      },
      py::arg("seed"), py::arg("domain"), py::arg("item"), py::arg("count"),
      "The first `count` 64-bit words of the random stream of (seed, item) in a domain.");
  m.def("stream_key", [](std::uint64_t seed, const std::string& domain) {
    if (domain == "rollout") return stream_key(seed, Domain::Rollout);
    if (domain == "policy_sample") return stream_key(seed, Domain::PolicySample);
    throw std::invalid_argument("domain must be 'rollout' or 'policy_sample'");
  });
}

void bind_mdp(py::module_& m) {
  py::class_<FiniteMDP>(m, "MDP", "Sparse finite MDP (CSR over (s, a) rows); see pgfast.FiniteMDP.")
      .def(py::init([](std::int32_t S, std::int32_t A, const carray<std::int64_t>& indptr,
                       const carray<std::int32_t>& next, const carray<double>& prob,
                       const carray<double>& reward, const carray<std::uint8_t>& terminal,
                       const carray<double>& mu0, std::int64_t horizon, double gamma) {
             if (horizon > std::numeric_limits<std::int32_t>::max()) {
               throw std::invalid_argument("horizon must be < 2**31, got " + std::to_string(horizon));
             }
             return FiniteMDP(S, A, to_vector(indptr, "indptr"), to_vector(next, "next"),
                              to_vector(prob, "prob"), to_vector(reward, "reward"),
                              to_vector(terminal, "terminal"), to_vector(mu0, "mu0"), horizon, gamma);
           }),
           py::arg("n_states"), py::arg("n_actions"), py::arg("indptr").noconvert(),
           py::arg("next").noconvert(), py::arg("prob").noconvert(), py::arg("reward").noconvert(),
           py::arg("terminal").noconvert(), py::arg("mu0").noconvert(), py::arg("horizon"),
           py::arg("gamma"))
      .def_property_readonly("n_states", &FiniteMDP::n_states)
      .def_property_readonly("n_actions", &FiniteMDP::n_actions)
      .def_property_readonly("horizon", &FiniteMDP::horizon)
      .def_property_readonly("gamma", &FiniteMDP::gamma)
      .def_property_readonly("nnz", &FiniteMDP::nnz)
      .def_property_readonly("indptr", [](py::object self) {
        const auto& v = self.cast<const FiniteMDP&>().indptr();
        return readonly_view(v.data(), {static_cast<py::ssize_t>(v.size())}, self);
      })
      .def_property_readonly("next", [](py::object self) {
        const auto& v = self.cast<const FiniteMDP&>().next();
        return readonly_view(v.data(), {static_cast<py::ssize_t>(v.size())}, self);
      })
      .def_property_readonly("prob", [](py::object self) {
        const auto& v = self.cast<const FiniteMDP&>().prob();
        return readonly_view(v.data(), {static_cast<py::ssize_t>(v.size())}, self);
      })
      .def_property_readonly("reward", [](py::object self) {
        const auto& v = self.cast<const FiniteMDP&>().reward();
        return readonly_view(v.data(), {static_cast<py::ssize_t>(v.size())}, self);
      })
      .def_property_readonly("terminal", [](py::object self) {
        const auto& v = self.cast<const FiniteMDP&>().terminal();
        return readonly_view(v.data(), {static_cast<py::ssize_t>(v.size())}, self);
      })
      .def_property_readonly("mu0", [](py::object self) {
        const auto& v = self.cast<const FiniteMDP&>().mu0();
        return readonly_view(v.data(), {static_cast<py::ssize_t>(v.size())}, self);
      })
      .def("expected_reward", [](const FiniteMDP& mdp) {
        carray<double> out({static_cast<py::ssize_t>(mdp.n_states()), static_cast<py::ssize_t>(mdp.n_actions())});
        const std::vector<double> r = mdp.expected_reward();
        std::copy(r.begin(), r.end(), out.mutable_data());
        return out;
      });
}

void bind_policy(py::module_& m) {
  m.def(
      "softmax",
      [](const carray<double>& logits) {
        if (logits.ndim() != 2) throw std::invalid_argument("logits must have shape (S, A)");
        const py::ssize_t S = logits.shape(0), A = logits.shape(1);
        carray<double> probs({S, A}), logp({S, A});
        {
          py::gil_scoped_release release;
          require_finite(logits.data(), S * A, "logits");
          softmax_rows(logits.data(), S, A, probs.mutable_data(), logp.mutable_data());
        }
        return py::make_tuple(probs, logp);
      },
      py::arg("logits").noconvert(),
      "Row-wise stable softmax of logits (S, A): returns (probs, log_probs).");

  m.def(
      "linear_logits",
      [](const carray<double>& features, const carray<double>& theta) {
        if (features.ndim() != 2) throw std::invalid_argument("features must have shape (S*A, p)");
        const py::ssize_t rows = features.shape(0), p = features.shape(1);
        if (theta.ndim() != 1 || theta.shape(0) != p) {
          throw std::invalid_argument("theta must have shape (p,) = (" + std::to_string(p) + ",)");
        }
        carray<double> out(rows);
        {
          py::gil_scoped_release release;
          require_finite(theta.data(), p, "theta");
          linear_logits(features.data(), rows, p, theta.data(), out.mutable_data());
          require_finite(out.data(), rows, "logits theta . phi(s, a) (overflow: theta or features too large)");
        }
        return out;
      },
      py::arg("features").noconvert(), py::arg("theta").noconvert(),
      "Logits theta . phi(s, a) of a linear-in-features policy; features (S*A, p).");

  m.def(
      "gather_log_prob",
      [](const carray<double>& log_probs, const carray<std::int32_t>& states,
         const carray<std::int32_t>& actions) {
        if (log_probs.ndim() != 2) throw std::invalid_argument("log_probs must have shape (S, A)");
        if (states.size() != actions.size()) {
          throw std::invalid_argument("states and actions must have the same number of entries");
        }
        check_range(states, log_probs.shape(0), "states");
        check_range(actions, log_probs.shape(1), "actions");
        carray<double> out(states.size());
        {
          py::gil_scoped_release release;
          gather_log_prob(log_probs.data(), log_probs.shape(0), log_probs.shape(1), states.data(),
                          actions.data(), states.size(), out.mutable_data());
        }
        return out;
      },
      py::arg("log_probs").noconvert(), py::arg("states").noconvert(), py::arg("actions").noconvert());

  m.def(
      "sample_actions",
      [](const carray<double>& probs, const carray<std::int32_t>& states, std::uint64_t seed) {
        if (probs.ndim() != 2 || probs.shape(0) < 1 || probs.shape(1) < 1)
          throw std::invalid_argument("probs must have shape (S, A) with S, A >= 1");
        check_range(states, probs.shape(0), "states");
        check_policy_table(probs, "probs");
        carray<std::int32_t> out(states.size());
        {
          py::gil_scoped_release release;
          const CategoricalRows pi = policy_sampler(probs.data(), probs.shape(0), probs.shape(1));
          sample_actions(pi, probs.shape(0), states.data(), states.size(), seed, out.mutable_data());
        }
        return out;
      },
      py::arg("probs").noconvert(), py::arg("states").noconvert(), py::arg("seed"),
      "a_k ~ pi(.|states[k]) from the policy-sampling stream of seed (flat states).");
}

void bind_mlp(py::module_& m) {
  using mlp::Forward;
  using mlp::Net;
  py::class_<Net, std::shared_ptr<Net>>(m, "MLPNet", "MLP architecture and state features (copied).")
      .def(py::init([](const carray<double>& features, const std::vector<std::int64_t>& hidden, std::int64_t n_actions,
                       const std::string& activation) {
             if (features.ndim() != 2) throw std::invalid_argument("state_features must have shape (S, d)");
             constexpr std::int64_t kMaxSize = std::numeric_limits<std::int32_t>::max();
             if (n_actions > kMaxSize) throw std::invalid_argument("n_actions must be < 2**31");
             for (const std::int64_t h : hidden)
               if (h > kMaxSize) throw std::invalid_argument("hidden layer sizes must be < 2**31, got " + std::to_string(h));
             mlp::Activation act;
             if (activation == "tanh") {
               act = mlp::Activation::Tanh;
             } else if (activation == "relu") {
               act = mlp::Activation::Relu;
             } else {
               throw std::invalid_argument("activation must be 'tanh' or 'relu', got '" + activation + "'");
             }
             require_finite(features.data(), features.size(), "state_features");
             return std::make_shared<Net>(features.data(), features.shape(0), features.shape(1), hidden, n_actions, act);
           }),
           py::arg("features").noconvert(), py::arg("hidden"), py::arg("n_actions"), py::arg("activation"))
      .def_property_readonly("n_params", &Net::n_params)
      .def_property_readonly("sizes", &Net::sizes)
      .def(
          "forward",
          [](const std::shared_ptr<Net>& net, const carray<double>& theta) {
            if (theta.ndim() != 1 || theta.shape(0) != net->n_params())
              throw std::invalid_argument("theta must have shape (" + std::to_string(net->n_params()) + ",)");
            require_finite(theta.data(), theta.size(), "theta");
            std::shared_ptr<Forward> f;
            StopToken stop(python_interrupted);
            try {
              py::gil_scoped_release release;
              f = std::make_shared<Forward>(net, theta.data(), &stop);
            } catch (const mlp::Interrupted&) {
              throw py::error_already_set();
            }
            return f;
          },
          py::arg("theta").noconvert(), "Activations and logits of every state at theta.");

  py::class_<Forward, std::shared_ptr<Forward>>(m, "MLPForward", "An MLP evaluated at one theta, every state.")
      .def_property_readonly("logits",
                             [](const std::shared_ptr<Forward>& f) {
                               const RowMatrixXd& z = f->logits();
                               carray<double> out({static_cast<py::ssize_t>(z.rows()), static_cast<py::ssize_t>(z.cols())});
                               std::copy(z.data(), z.data() + z.size(), out.mutable_data());
                               return out;
                             })
      .def(
          "vjp",
          [](const std::shared_ptr<Forward>& f, const carray<double>& G) {
            const Net& n = f->net();
            require_shape2(G, "W", n.n_states(), n.n_actions());
            carray<double> out(n.n_params());
            StopToken stop(python_interrupted);
            try {
              py::gil_scoped_release release;
              std::fill(out.mutable_data(), out.mutable_data() + out.size(), 0.0);
              f->vjp_all(G.data(), out.mutable_data(), &stop);
            } catch (const mlp::Interrupted&) {
              throw py::error_already_set();
            }
            return out;
          },
          py::arg("W").noconvert(), "sum_{s,a} W(s,a) grad_theta z(s,a), shape (n_params,).")
      .def(
          "scores",
          [](const std::shared_ptr<Forward>& f, const carray<double>& probs, const carray<std::int32_t>& states,
             const carray<std::int32_t>& actions) {
            const Net& n = f->net();
            require_shape2(probs, "probs", n.n_states(), n.n_actions());
            if (states.size() != actions.size()) throw std::invalid_argument("states and actions must have the same size");
            const py::ssize_t K = states.size();
            for (py::ssize_t k = 0; k < K; ++k) {
              if (states.data()[k] < 0 || states.data()[k] >= n.n_states())
                throw std::invalid_argument("states[" + std::to_string(k) + "] is out of range");
              if (actions.data()[k] < 0 || actions.data()[k] >= n.n_actions())
                throw std::invalid_argument("actions[" + std::to_string(k) + "] is out of range");
            }
            carray<double> out({K, static_cast<py::ssize_t>(n.n_params())});
            StopToken stop(python_interrupted);
            bool done;
            {
              py::gil_scoped_release release;
              done = f->scores(probs.data(), states.data(), actions.data(), K, out.mutable_data(), &stop);
            }
            if (!done) throw py::error_already_set();
            return out;
          },
          py::arg("probs").noconvert(), py::arg("states").noconvert(), py::arg("actions").noconvert(),
          "Rows grad log pi(a_k|s_k), shape (K, n_params).")
      .def(
          "weighted_scores",
          [](const std::shared_ptr<Forward>& f, const carray<double>& probs, const carray<double>& w) {
            const Net& n = f->net();
            require_shape2(probs, "probs", n.n_states(), n.n_actions());
            if (w.ndim() != 1 || w.shape(0) != n.n_states()) throw std::invalid_argument("w must have shape (S,)");
            py::ssize_t rows = 0;
            for (py::ssize_t s = 0; s < w.shape(0); ++s) rows += w.data()[s] > 0.0 ? n.n_actions() : 0;
            carray<double> out({rows, static_cast<py::ssize_t>(n.n_params())});
            StopToken stop(python_interrupted);
            std::int64_t written;
            {
              py::gil_scoped_release release;
              written = f->weighted_scores(probs.data(), w.data(), out.mutable_data(), &stop);
            }
            if (written < 0) throw py::error_already_set();
            return out;
          },
          py::arg("probs").noconvert(), py::arg("w").noconvert(),
          "M with rows sqrt(w(s) pi(a|s)) grad log pi(a|s) over the states with w(s) > 0 (Fisher = M^T M).");
}

void bind_rollout(py::module_& m) {
  m.def(
      "sample",
      [](const FiniteMDP& mdp, const carray<double>& probs, std::int64_t n, std::uint64_t seed,
         int threads) {
        if (n < 1) throw std::invalid_argument("n must be >= 1, got " + std::to_string(n));
        require_shape2(probs, "policy probabilities", mdp.n_states(), mdp.n_actions());
        check_policy_table(probs, "policy probabilities");
        threads = resolve_threads(threads);
        const std::int64_t H = mdp.horizon();
        carray<std::int32_t> states({n, H}), actions({n, H}), lengths(n), finals(n);
        carray<double> rewards({n, H});
        StoreSink proto{states.mutable_data(), actions.mutable_data(), rewards.mutable_data(),
                        lengths.mutable_data(), finals.mutable_data(), H};
        StopToken stop(python_interrupted);
        bool completed;
        {
          py::gil_scoped_release release;
          completed = simulate(mdp, probs.data(), n, seed, threads, [&](int) { return proto; }, stop);
        }
        if (!completed) throw py::error_already_set();
        return py::make_tuple(states, actions, rewards, lengths, finals);
      },
      py::arg("mdp"), py::arg("probs").noconvert(), py::arg("n"), py::arg("seed"), py::arg("threads"),
      "Simulate n trajectories: (states, actions, rewards, lengths, final_states).");
}

// Checks a padded batch (rewards (N, H), lengths (N,)) before a kernel reads it.
void check_batch(const carray<double>& rewards, const carray<std::int32_t>& lengths) {
  if (rewards.ndim() != 2) throw std::invalid_argument("rewards must have shape (N, H)");
  if (lengths.ndim() != 1 || lengths.shape(0) != rewards.shape(0)) {
    throw std::invalid_argument("lengths must have shape (N,) = (" + std::to_string(rewards.shape(0)) + ",)");
  }
  const std::int32_t* len = lengths.data();
  for (py::ssize_t i = 0; i < lengths.shape(0); ++i) {
    if (len[i] < 0 || len[i] > rewards.shape(1)) {
      throw std::invalid_argument("lengths[" + std::to_string(i) + "] = " + std::to_string(len[i]) +
                                  " is out of range [0, H = " + std::to_string(rewards.shape(1)) + "]");
    }
  }
}

void bind_returns(py::module_& m) {
  m.def(
      "returns",
      [](const carray<double>& rewards, const carray<std::int32_t>& lengths, double gamma) {
        check_unit(gamma, "gamma");
        check_batch(rewards, lengths);
        carray<double> out(rewards.shape(0));
        {
          py::gil_scoped_release release;
          returns(rewards.data(), lengths.data(), rewards.shape(0), rewards.shape(1), gamma, out.mutable_data());
        }
        return out;
      },
      py::arg("rewards").noconvert(), py::arg("lengths").noconvert(), py::arg("gamma"),
      "G = sum_{t < len} gamma^t r_t for each trajectory: (N,).");
  m.def(
      "reward_to_go",
      [](const carray<double>& rewards, const carray<std::int32_t>& lengths, double gamma) {
        check_unit(gamma, "gamma");
        check_batch(rewards, lengths);
        carray<double> out({rewards.shape(0), rewards.shape(1)});
        {
          py::gil_scoped_release release;
          reward_to_go(rewards.data(), lengths.data(), rewards.shape(0), rewards.shape(1), gamma,
                       out.mutable_data());
        }
        return out;
      },
      py::arg("rewards").noconvert(), py::arg("lengths").noconvert(), py::arg("gamma"),
      "G_t = r_t + gamma G_{t+1} over each trajectory, 0 past its end: (N, H).");
}

// Moves a vector into a NumPy array of the given shape without copying.
template <class T>
py::array_t<T> vector_to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(std::move(shape), heap->data(), owner);
}

exact::Method parse_method(const std::string& method) {
  if (method == "auto") return exact::Method::Auto;
  if (method == "dense") return exact::Method::Dense;
  if (method == "sparse") return exact::Method::Sparse;
  throw std::invalid_argument("method must be 'auto', 'dense' or 'sparse', got '" + method + "'");
}

// Runs f() with the GIL released and Ctrl-C polled; exact::Interrupted becomes KeyboardInterrupt.
template <class F>
auto run_exact(F&& f) {
  StopToken stop(python_interrupted);
  try {
    py::gil_scoped_release release;
    return f(stop);
  } catch (const exact::Interrupted&) {
    throw py::error_already_set();
  }
}

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

// Batch arrays (N, H) of one Trajectories object, checked for shape and range once.
struct Batch {
  const std::int32_t* states;
  const std::int32_t* actions;
  const double* rewards;
  const std::int32_t* lengths;
  std::int64_t N, H;
};

Batch batch_view(const carray<std::int32_t>& states, const carray<std::int32_t>& actions,
                 const carray<double>& rewards, const carray<std::int32_t>& lengths) {
  check_batch(rewards, lengths);
  const py::ssize_t N = rewards.shape(0), H = rewards.shape(1);
  require_shape2(states, "states", N, H);
  require_shape2(actions, "actions", N, H);
  return {states.data(), actions.data(), rewards.data(), lengths.data(), N, H};
}

// Throws, naming the first step (in batch order) whose state or action is outside [0, S) x [0, A).
void check_indices(const Batch& b, std::int64_t S, std::int64_t A) {
  for (std::int64_t i = 0; i < b.N; ++i) {
    const std::int32_t* s = b.states + i * b.H;
    const std::int32_t* a = b.actions + i * b.H;
    if (est::row_in_range(s, a, b.lengths[i], S, A)) continue;  // only a bad row is searched
    for (std::int64_t t = 0; t < b.lengths[i]; ++t) {
      if (s[t] < 0 || s[t] >= S || a[t] < 0 || a[t] >= A) {
        throw std::invalid_argument("trajectory " + std::to_string(i) + ", step " + std::to_string(t) + ": (state, action) = (" +
                                    std::to_string(s[t]) + ", " + std::to_string(a[t]) + ") is outside the policy's " +
                                    std::to_string(S) + " states and " + std::to_string(A) + " actions");
      }
    }
  }
}

// A batch checked for shape and range once.
Batch check_trajectories(const carray<std::int32_t>& states, const carray<std::int32_t>& actions,
                         const carray<double>& rewards, const carray<std::int32_t>& lengths, std::int64_t S,
                         std::int64_t A) {
  const Batch b = batch_view(states, actions, rewards, lengths);
  check_indices(b, S, A);
  return b;
}

est::PolicyTables policy_tables(const carray<double>& probs, const std::optional<carray<double>>& features,
                                const std::shared_ptr<mlp::Forward>& net = nullptr) {
  if (probs.ndim() != 2) throw std::invalid_argument("probs must have shape (S, A)");
  est::PolicyTables pol;
  pol.S = probs.shape(0);
  pol.A = probs.shape(1);
  pol.probs = probs.data();
  if (net) {
    if (features) throw std::invalid_argument("pass features or net, not both");
    if (net->net().n_states() != pol.S || net->net().n_actions() != pol.A)
      throw std::invalid_argument("the MLP does not match the probability table's shape");
    pol.map = net.get();
  }
  if (features) {
    if (features->ndim() != 3 || features->shape(0) != pol.S || features->shape(1) != pol.A)
      throw std::invalid_argument("features must have shape (S, A, p)");
    pol.features = features->data();
    pol.p = features->shape(2);
  }
  return pol;
}

est::WeightKind parse_weights(const std::string& w) {
  if (w == "reward_to_go") return est::WeightKind::RewardToGo;
  if (w == "return") return est::WeightKind::Return;
  if (w == "explicit") return est::WeightKind::Explicit;
  throw std::invalid_argument("weights must be 'reward_to_go' or 'return', got '" + w + "'");
}

est::BaselineKind parse_baseline(const std::string& b) {
  if (b == "none") return est::BaselineKind::None;
  if (b == "table") return est::BaselineKind::Table;
  if (b == "mean") return est::BaselineKind::LeaveOneOutMean;
  if (b == "time") return est::BaselineKind::LeaveOneOutTime;
  throw std::invalid_argument("unknown baseline '" + b + "'");
}

void bind_estimators(py::module_& m) {
  m.def(
      "score_batch",
      [](const carray<std::int32_t>& states, const carray<std::int32_t>& actions, const carray<double>& rewards,
         const carray<std::int32_t>& lengths, const carray<double>& probs, const std::optional<carray<double>>& features,
         const std::string& weights_kind, const std::optional<carray<double>>& weights, double gamma,
         const std::string& baseline, const std::optional<carray<double>>& table, bool per_trajectory, int threads,
         bool sumsq, const std::shared_ptr<mlp::Forward>& net) {
        check_unit(gamma, "gamma");
        const est::PolicyTables pol = policy_tables(probs, features, net);
        // Shapes here; the indices are range-checked row by row as score_batch reads them (one
        // pass over the batch instead of two), and on a bad row check_indices names the first.
        const Batch b = batch_view(states, actions, rewards, lengths);
        est::WeightSpec spec;
        spec.kind = parse_weights(weights_kind);
        spec.gamma = gamma;
        spec.baseline = parse_baseline(baseline);
        spec.S = pol.S;
        spec.n = b.N;
        const double* w = nullptr;
        if (spec.kind == est::WeightKind::Explicit) {
          if (!weights) throw std::invalid_argument("weights array missing");
          require_shape2(*weights, "weights", b.N, b.H);
          w = weights->data();
        }
        if (spec.baseline == est::BaselineKind::Table) {
          if (!table) throw std::invalid_argument("baseline table missing");
          require_shape2(*table, "baseline values", b.H, pol.S);
          spec.table = table->data();
        }
        threads = resolve_threads(threads);
        const std::int64_t np = pol.n_params();
        std::optional<carray<double>> rows;
        if (per_trajectory) rows.emplace(std::vector<py::ssize_t>{b.N, np});
        double* rows_ptr = rows ? rows->mutable_data() : nullptr;
        est::BatchResult res;
        std::vector<double> rtg_sum;
        std::vector<std::int64_t> rtg_count;
        std::vector<double> time_alpha, time_beta, time_u;
        StopToken stop(python_interrupted);
        bool ok = true, out_of_range = false;
        {
          py::gil_scoped_release release;
          if (spec.baseline == est::BaselineKind::LeaveOneOutMean || spec.baseline == est::BaselineKind::LeaveOneOutTime) {
            est::loo_statistics(b.rewards, b.lengths, b.N, b.H, gamma, spec.return_sum, rtg_sum, rtg_count);
            est::loo_time_coefficients(rtg_sum, rtg_count, powers(gamma, b.H).data(), time_alpha, time_beta, time_u);
            spec.time_alpha = time_alpha.data();
            spec.time_beta = time_beta.data();
            spec.time_u = time_u.data();
          }
          try {
            ok = est::score_batch(b.states, b.actions, b.rewards, w, b.lengths, b.N, b.H, pol, spec, threads, stop,
                                  res, rows_ptr, sumsq || per_trajectory);
          } catch (const est::IndexOutOfRange&) {
            out_of_range = true;
          }
        }
        if (out_of_range) check_indices(b, pol.S, pol.A);  // throws, naming the first bad step
        if (!ok) throw py::error_already_set();
        py::object rows_obj = rows ? py::object(*rows) : py::none();
        return py::make_tuple(vector_to_numpy(std::move(res.sum), {np}), vector_to_numpy(std::move(res.sumsq), {np}),
                              rows_obj, res.return_sum, res.return_sumsq);
      },
      py::arg("states").noconvert(), py::arg("actions").noconvert(), py::arg("rewards").noconvert(),
      py::arg("lengths").noconvert(), py::arg("probs").noconvert(), py::arg("features").noconvert(),
      py::arg("weights_kind"), py::arg("weights").noconvert(), py::arg("gamma"), py::arg("baseline"),
      py::arg("table").noconvert(), py::arg("per_trajectory"), py::arg("threads"), py::arg("sumsq") = true,
      py::arg("net") = nullptr,
      "Per-trajectory score-function gradients of a batch, reduced: (sum, sumsq, rows or None, "
      "return_sum, return_sumsq).");

  m.def(
      "fused_gradient",
      [](const FiniteMDP& mdp, const carray<double>& probs, const std::optional<carray<double>>& features,
         std::int64_t n, std::uint64_t seed, const std::string& weights_kind, double gamma, const std::string& baseline,
         const std::optional<carray<double>>& table, int threads, bool stderr_, const std::shared_ptr<mlp::Forward>& net) {
        check_unit(gamma, "gamma");
        if (n < 1) throw std::invalid_argument("n must be >= 1, got " + std::to_string(n));
        require_shape2(probs, "policy probabilities", mdp.n_states(), mdp.n_actions());
        check_policy_table(probs, "policy probabilities");
        const est::PolicyTables pol = policy_tables(probs, features, net);
        const std::int64_t H = mdp.horizon();
        est::WeightSpec spec;
        spec.kind = parse_weights(weights_kind);
        if (spec.kind == est::WeightKind::Explicit) throw std::invalid_argument("explicit weights need a stored batch");
        spec.gamma = gamma;
        spec.baseline = parse_baseline(baseline);
        if (spec.baseline != est::BaselineKind::None && spec.baseline != est::BaselineKind::Table)
          throw std::invalid_argument("the fused estimator takes baseline None, 'exact' or a ValueBaseline");
        spec.S = pol.S;
        if (spec.baseline == est::BaselineKind::Table) {
          if (!table) throw std::invalid_argument("baseline table missing");
          require_shape2(*table, "baseline values", H, pol.S);
          spec.table = table->data();
        }
        threads = resolve_threads(threads);
        const std::int64_t np = pol.n_params();
        const std::int64_t blocks = (n + kTrajectoryBlock - 1) / kTrajectoryBlock;
        if (threads > blocks) threads = static_cast<int>(blocks);
        const std::vector<double> gpow = powers(gamma, H);
        using Sink = est::FusedSink<kLanes>;
        // Each worker makes its own sink, so that its buffers and tables are first touched (and
        // cached) on the core that fills them; the sinks outlive the run for the reduction.
        std::vector<std::unique_ptr<Sink>> sinks(static_cast<std::size_t>(threads));
        StopToken stop(python_interrupted);
        bool ok;
        Sink::Totals res;
        {
          py::gil_scoped_release release;
          ok = simulate(
              mdp, probs.data(), n, seed, threads,
              [&](int w) {
                sinks[w] = std::make_unique<Sink>(pol, spec, gpow.data(), H, stderr_);
                return est::SinkRef<Sink>{sinks[w].get()};
              },
              stop, /*static_split=*/true);
          if (ok) res = Sink::reduce(sinks, np, stderr_);
        }
        if (!ok) throw py::error_already_set();
        return py::make_tuple(vector_to_numpy(std::move(res.sum), {np}), vector_to_numpy(std::move(res.sumsq), {np}),
                              res.return_sum, res.return_sumsq, res.steps);
      },
      py::arg("mdp"), py::arg("probs").noconvert(), py::arg("features").noconvert(), py::arg("n"), py::arg("seed"),
      py::arg("weights_kind"), py::arg("gamma"), py::arg("baseline"), py::arg("table").noconvert(), py::arg("threads"),
      py::arg("stderr"), py::arg("net") = nullptr,
      "Sample n trajectories and accumulate their gradients without storing them: (sum, sumsq, return_sum, return_sumsq, steps).");

  m.def(
      "log_ratios",
      [](const carray<double>& target_logp, const std::optional<carray<double>>& beta_logp,
         const std::optional<carray<double>>& beta_probs, const std::optional<carray<double>>& logged,
         const carray<std::int32_t>& states, const carray<std::int32_t>& actions, const carray<double>& rewards,
         const carray<std::int32_t>& lengths) {
        if (target_logp.ndim() != 2) throw std::invalid_argument("target log-probabilities must have shape (S, A)");
        const std::int64_t S = target_logp.shape(0), A = target_logp.shape(1);
        const Batch b = check_trajectories(states, actions, rewards, lengths, S, A);
        if (beta_logp) {
          require_shape2(*beta_logp, "behavior log-probabilities", S, A);
          if (!beta_probs) throw std::invalid_argument("behavior probabilities missing");
          require_shape2(*beta_probs, "behavior probabilities", S, A);
        } else {
          if (!logged) throw std::invalid_argument("behavior missing");
          require_shape2(*logged, "behavior", b.N, b.H);
        }
        carray<double> out({b.N, b.H});
        est::StepIndex bad;
        {
          py::gil_scoped_release release;
          bad = est::log_ratios(target_logp.data(), beta_logp ? beta_logp->data() : nullptr,
                                beta_probs ? beta_probs->data() : nullptr, logged ? logged->data() : nullptr, A,
                                b.states, b.actions, b.lengths, b.N, b.H, out.mutable_data());
        }
        if (bad.i >= 0) {
          const std::string where = "trajectory " + std::to_string(bad.i) + ", step " + std::to_string(bad.t);
          if (!beta_logp && logged->data()[bad.i * b.H + bad.t] > 0.0) {
            throw std::invalid_argument("behavior log-probabilities must be <= 0, got " +
                                        std::to_string(logged->data()[bad.i * b.H + bad.t]) + " at " + where);
          }
          const double v = beta_logp ? -std::numeric_limits<double>::infinity() : logged->data()[bad.i * b.H + bad.t];
          std::ostringstream msg;
          msg << (beta_logp ? "the behavior policy" : "the logged behavior log-probabilities")
              << " gives zero probability (log-prob " << v << ") to the logged action of " << where
              << ": the importance ratio is undefined";
          throw std::invalid_argument(msg.str());
        }
        return out;
      },
      py::arg("target_logp").noconvert(), py::arg("beta_logp").noconvert(), py::arg("beta_probs").noconvert(),
      py::arg("logged").noconvert(), py::arg("states").noconvert(), py::arg("actions").noconvert(),
      py::arg("rewards").noconvert(), py::arg("lengths").noconvert(),
      "Per-step log pi(a_t|s_t) - log beta(a_t|s_t) of a batch, 0 past each end: (N, H).");

  m.def(
      "importance_weights",
      [](const carray<double>& rewards, const carray<double>& log_ratio, const carray<std::int32_t>& lengths,
         double gamma, bool reward_to_go, bool per_decision, bool self_normalized) {
        check_unit(gamma, "gamma");
        check_batch(rewards, lengths);
        const py::ssize_t N = rewards.shape(0), H = rewards.shape(1);
        require_shape2(log_ratio, "log_ratio", N, H);
        if (self_normalized && N == 0) throw std::invalid_argument("self-normalised weights need at least one trajectory");
        carray<double> w({N, H}), log_rho(N), value(N);
        {
          py::gil_scoped_release release;
          std::vector<double> log_norm;
          double log_norm_rho = 0.0;
          if (self_normalized && per_decision) {
            log_norm.assign(static_cast<std::size_t>(H), 0.0);
            est::per_decision_log_norm(log_ratio.data(), lengths.data(), N, H, log_norm.data());
          }
          if (self_normalized && !per_decision) log_norm_rho = est::log_mean_ratio(log_ratio.data(), lengths.data(), N, H);
          est::importance_weights(rewards.data(), log_ratio.data(), lengths.data(), N, H, gamma, reward_to_go,
                                  per_decision, log_norm.empty() ? nullptr : log_norm.data(),
                                  self_normalized && !per_decision ? &log_norm_rho : nullptr, w.mutable_data(),
                                  log_rho.mutable_data(), value.mutable_data());
        }
        return py::make_tuple(w, log_rho, value);
      },
      py::arg("rewards").noconvert(), py::arg("log_ratio").noconvert(), py::arg("lengths").noconvert(),
      py::arg("gamma"), py::arg("reward_to_go"), py::arg("per_decision"), py::arg("self_normalized"));

  m.def(
      "log_likelihood",
      [](const FiniteMDP& mdp, const carray<double>& log_probs, const carray<std::int32_t>& states,
         const carray<std::int32_t>& actions, const carray<std::int32_t>& lengths, const carray<std::int32_t>& finals,
         const carray<double>& rewards, bool dynamics) {
        require_shape2(log_probs, "log_probs", mdp.n_states(), mdp.n_actions());
        const Batch b = check_trajectories(states, actions, rewards, lengths, mdp.n_states(), mdp.n_actions());
        if (finals.ndim() != 1 || finals.shape(0) != b.N) throw std::invalid_argument("final_states must have shape (N,)");
        carray<double> out(b.N);
        {
          py::gil_scoped_release release;
          est::log_likelihood(mdp, log_probs.data(), b.states, b.actions, b.lengths, finals.data(), b.N, b.H, dynamics,
                              out.mutable_data());
        }
        return out;
      },
      py::arg("mdp"), py::arg("log_probs").noconvert(), py::arg("states").noconvert(), py::arg("actions").noconvert(),
      py::arg("lengths").noconvert(), py::arg("final_states").noconvert(), py::arg("rewards").noconvert(),
      py::arg("dynamics"));
}

void bind_info(py::module_& m) {
  m.def("hardware_threads", &hardware_threads);
  m.attr("MAX_THREADS") = kMaxThreads;
  m.def("pooled_threads_max", [] { return WorkerPool::get().max_pooled(); },
        "The most worker threads the pool keeps between calls (usable CPUs - 1, at least 1).");
  m.def(
      "wake_workers",
      [](int threads) {
        if (threads > 1) {
          py::gil_scoped_release nogil;
          WorkerPool::get().poke(threads - 1);
        }
      },
      py::arg("threads"),
      "Wake threads - 1 pool threads ahead of a parallel call (they spin for a few ms).");
  m.def("build_info", [] {
    py::dict d;
    d["version"] = PGFAST_VERSION_INFO;
    d["compiler"] = PGFAST_COMPILER_INFO;
    d["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                 std::to_string(EIGEN_MINOR_VERSION);
    d["eigen_simd"] = Eigen::SimdInstructionSetsInUse();
#ifdef PGFAST_NATIVE_BUILD
    d["native"] = true;
#else
    d["native"] = false;
#endif
#ifdef PGFAST_SANITIZE_BUILD
    d["sanitize"] = true;
#else
    d["sanitize"] = false;
#endif
#ifdef NDEBUG
    d["debug"] = false;
#else
    d["debug"] = true;
#endif
    d["lanes"] = kLanes;
    d["trajectory_block"] = kTrajectoryBlock;
    return d;
  });
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pgfast's compiled core (private: use the pgfast package).";
  bind_rng(m);
  bind_mdp(m);
  bind_policy(m);
  bind_mlp(m);
  bind_rollout(m);
  bind_returns(m);
  bind_exact(m);
  bind_estimators(m);
  bind_info(m);
}
