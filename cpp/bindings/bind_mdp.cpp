// The finite MDP (pgfast.FiniteMDP's C++ side): _core.mdp.MDP.
#include "common.hpp"
#include "pgfast/mdp.hpp"

namespace pgfast::bindings {

void bind_mdp(py::module_ m) {
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
           py::kw_only(), py::arg("n_states"), py::arg("n_actions"), py::arg("indptr").noconvert(),
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

}  // namespace pgfast::bindings
