// Returns and rewards-to-go of a padded batch.
#include "common.hpp"
#include "pgfast/returns.hpp"

namespace pgfast::bindings {

void bind_returns(py::module_ m) {
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

}  // namespace pgfast::bindings
