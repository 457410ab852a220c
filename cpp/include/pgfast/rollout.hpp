// Batched simulation of a finite MDP under a stationary policy table.
//
// Trajectory i of seed k is a pure function of (k, i): it reads only item_stream(key(k), i), whose
// first word draws s0 ~ mu0 and then two words per step draw a_t ~ pi(.|s_t) and
// s_{t+1} ~ P(.|s_t, a_t). Each thread advances
// kLanes trajectories in lock-step so that the memory loads of one hide behind the others
// (a single trajectory waits on its previous step at every step); a lane whose episode ends
// takes the next trajectory at once.
//
// A Sink receives the steps: begin(i, s0), step(i, t, s, a, r), end(i, length, final_state).
// The storing sink writes the padded (N, H) batch; later sinks accumulate estimators instead.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "pgfast/categorical.hpp"
#include "pgfast/mdp.hpp"
#include "pgfast/parallel.hpp"
#include "pgfast/rng.hpp"

namespace pgfast {

inline constexpr int kLanes = 8;
inline constexpr std::int64_t kTrajectoryBlock = 256;
inline constexpr std::int32_t kPadIndex = -1;  // states/actions past an episode's end

template <class Sink>
void simulate_stream(const FiniteMDP& mdp, const CategoricalRows& pi, std::uint64_t key,
                     IndexStream& source, Sink& sink) {
  const std::int64_t H = mdp.horizon();
  const std::int64_t A = mdp.n_actions();
  const CategoricalRows& trans = mdp.transitions();
  const std::int64_t* indptr = mdp.indptr().data();
  const std::int32_t* next = mdp.next().data();
  const double* reward = mdp.reward().data();
  const std::uint8_t* terminal = mdp.terminal().data();

  std::int64_t traj[kLanes], t[kLanes];
  std::int32_t s[kLanes];
  Xoroshiro128pp rng[kLanes];
  int active = 0;
  auto refill = [&](int l) {
    const std::int64_t i = source.next();
    traj[l] = i;
    if (i < 0) return;
    ++active;
    t[l] = 0;
    rng[l] = item_stream(key, static_cast<std::uint64_t>(i));
    s[l] = mdp.draw_initial(rng[l].next());
    sink.begin(i, s[l]);
  };
  for (int l = 0; l < kLanes; ++l) refill(l);

  std::uint32_t tick = 0;
  while (active > 0) {
    if ((++tick & 1023u) == 0 && source.stopped()) return;
    for (int l = 0; l < kLanes; ++l) {
      if (traj[l] < 0) continue;
      const std::int64_t i = traj[l];
      const std::int32_t st = s[l];
      const std::int32_t a = static_cast<std::int32_t>(pi.draw(st, rng[l].next()));
      const std::int64_t row = st * A + a;
      const std::int64_t e = indptr[row] + trans.draw(row, rng[l].next());
      const std::int32_t sp = next[e];
      sink.step(i, t[l], st, a, reward[e]);
      const std::int64_t tn = ++t[l];
      if (terminal[sp] || tn == H) {
        sink.end(i, tn, sp);
        --active;
        refill(l);
      } else {
        s[l] = sp;
      }
    }
  }
}

// Runs simulate_stream over trajectories 0..n-1 on `threads` threads, one Sink per thread made
// by make_sink(worker). Returns false if the stop token's poll interrupted the run.
template <class MakeSink>
bool simulate(const FiniteMDP& mdp, const CategoricalRows& pi, std::int64_t n, std::uint64_t seed,
              int threads, MakeSink&& make_sink, StopToken& stop) {
  const std::uint64_t key = stream_key(seed, Domain::Rollout);
  BlockQueue queue(n, kTrajectoryBlock);
  const std::int64_t blocks = queue.n_blocks();
  if (threads > blocks) threads = static_cast<int>(blocks);
  return run_workers(
      threads,
      [&](int w, StopToken& st) {
        IndexStream source(queue, st, w);
        auto sink = make_sink(w);
        simulate_stream(mdp, pi, key, source, sink);
      },
      stop);
}

// Writes the padded batch: states/actions (N, H) int32, rewards (N, H) float64, lengths and
// final states (N,) int32. Positions t >= length hold kPadIndex / 0.0.
struct StoreSink {
  std::int32_t* states;
  std::int32_t* actions;
  double* rewards;
  std::int32_t* lengths;
  std::int32_t* final_states;
  std::int64_t H;

  void begin(std::int64_t, std::int32_t) noexcept {}
  void step(std::int64_t i, std::int64_t t, std::int32_t s, std::int32_t a, double r) noexcept {
    const std::int64_t k = i * H + t;
    states[k] = s;
    actions[k] = a;
    rewards[k] = r;
  }
  void end(std::int64_t i, std::int64_t length, std::int32_t final_state) noexcept {
    // Padding: -1 is all-ones bytes as int32, 0.0 is all-zero bytes as a double.
    static_assert(kPadIndex == -1, "padding is written with memset(0xFF)");
    const std::size_t k = static_cast<std::size_t>(i * H + length), rest = static_cast<std::size_t>(H - length);
    std::memset(states + k, 0xFF, rest * sizeof(std::int32_t));
    std::memset(actions + k, 0xFF, rest * sizeof(std::int32_t));
    std::memset(rewards + k, 0, rest * sizeof(double));
    lengths[i] = static_cast<std::int32_t>(length);
    final_states[i] = final_state;
  }
};

}  // namespace pgfast
