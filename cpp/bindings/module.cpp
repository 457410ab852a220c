// The extension module pgfast._core: creates the module and adds each topic's bindings to it.
#include "common.hpp"

PYBIND11_MODULE(_core, m) {
  using namespace pgfast::bindings;
  m.doc() = "pgfast's compiled core (private: use the pgfast package).";
  bind_mdp(m);
  bind_policy(m);
  bind_mlp(m);
  bind_sampling(m);
  bind_returns(m);
  bind_exact(m);
  bind_estimators(m);
  bind_off_policy(m);
  bind_info(m);
}
