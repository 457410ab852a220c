// A batch of trajectories as the estimator and off-policy bindings read it: its (N, H) arrays,
// checked for shape and range once.
#pragma once

#include <cstdint>
#include <string>

#include "common.hpp"
#include "pgfast/estimators/score.hpp"

namespace pgfast::bindings {

// Batch arrays (N, H) of one Trajectories object, checked for shape and range once.
struct Batch {
  const std::int32_t* states;
  const std::int32_t* actions;
  const double* rewards;
  const std::int32_t* lengths;
  std::int64_t N, H;
};

inline Batch batch_view(const carray<std::int32_t>& states, const carray<std::int32_t>& actions,
                        const carray<double>& rewards, const carray<std::int32_t>& lengths) {
  check_batch(rewards, lengths);
  const py::ssize_t N = rewards.shape(0), H = rewards.shape(1);
  require_shape2(states, "states", N, H);
  require_shape2(actions, "actions", N, H);
  return {states.data(), actions.data(), rewards.data(), lengths.data(), N, H};
}

// Throws, naming the first step (in batch order) whose state or action is outside [0, S) x [0, A).
inline void check_indices(const Batch& b, std::int64_t S, std::int64_t A) {
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
inline Batch check_trajectories(const carray<std::int32_t>& states, const carray<std::int32_t>& actions,
                                const carray<double>& rewards, const carray<std::int32_t>& lengths, std::int64_t S,
                                std::int64_t A) {
  const Batch b = batch_view(states, actions, rewards, lengths);
  check_indices(b, S, A);
  return b;
}

}  // namespace pgfast::bindings
