// Neural (MLP) softmax policies: _core.mlp.MLPNet and _core.mlp.MLPForward.
#include <pybind11/native_enum.h>

#include "common.hpp"
#include "pgfast/mlp.hpp"

namespace pgfast::bindings {

void bind_mlp(py::module_ m) {
  using mlp::Forward;
  using mlp::Net;
  py::native_enum<mlp::Activation>(m, "Activation", "enum.Enum", "The hidden layers' activation.")
      .value("TANH", mlp::Activation::Tanh)
      .value("RELU", mlp::Activation::Relu)
      .finalize();
  py::class_<Net, std::shared_ptr<Net>>(m, "MLPNet", "MLP architecture and state features (copied).")
      .def(py::init([](const carray<double>& features, const std::vector<std::int64_t>& hidden, std::int64_t n_actions,
                       mlp::Activation activation) {
             if (features.ndim() != 2) throw std::invalid_argument("state_features must have shape (S, d)");
             constexpr std::int64_t kMaxSize = std::numeric_limits<std::int32_t>::max();
             if (n_actions > kMaxSize) throw std::invalid_argument("n_actions must be < 2**31");
             for (const std::int64_t h : hidden)
               if (h > kMaxSize) throw std::invalid_argument("hidden layer sizes must be < 2**31, got " + std::to_string(h));
             require_finite(features.data(), features.size(), "state_features");
             return std::make_shared<Net>(features.data(), features.shape(0), features.shape(1), hidden, n_actions, activation);
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

}  // namespace pgfast::bindings
