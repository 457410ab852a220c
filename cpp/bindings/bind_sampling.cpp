// Sampling trajectories from an MDP under a policy table, and the random streams it draws from.
#include "common.hpp"
#include "pgfast/mdp.hpp"
#include "pgfast/rng.hpp"
#include "pgfast/sampling.hpp"

namespace pgfast::bindings {

void bind_sampling(py::module_ m) {
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

  // The random streams the samplers draw from (rng.hpp).
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

}  // namespace pgfast::bindings
