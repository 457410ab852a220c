// Batched simulation of a finite MDP under a stationary policy table.
//
// One draw per step. For each non-terminal state s, the pairs (a, s') are drawn jointly from
// pi(a|s) P(s'|s, a) by Walker's alias method over the stored CSR entries of the rows s*A..s*A+A-1
// (the JointTable, rebuilt for each policy). Trajectory i of seed k reads only its own random
// stream item_stream(key(k), i): the first word draws s0 ~ mu0, then one word per step draws the
// (a_t, s_{t+1}) pair. So a batch is a pure function of (seed, i) -- bit-identical for any thread
// count -- and the first m trajectories of a batch of n equal a batch of m.
//
// Speed: each worker advances kLanes trajectories in lock-step, in two passes per sweep. Pass 1
// draws every lane's random word and alias column and prefetches the slot; pass 2 reads the
// slots and moves the lanes. A trajectory's step waits on its previous step's loads, so the
// passes turn one long dependent chain into kLanes independent ones (the same reason a
// vectorised NumPy sampler over the whole batch is fast). A lane whose episode ends is refilled
// with the next trajectory after the sweep.
//
// A Sink receives the steps: k = begin(i, s0) returns a slot number k < kLanes that identifies
// trajectory i in the calls that follow, step(k, i, t, s, a, r), end(k, i, length, final_state).
// A slot is free again once end() returns.
// The storing sink writes the padded (N, H) batch; later sinks accumulate estimators instead.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "pgfast/mdp.hpp"
#include "pgfast/parallel.hpp"
#include "pgfast/rng.hpp"

namespace pgfast {

inline constexpr int kLanes = 16;
inline constexpr std::int64_t kTrajectoryBlock = 64;
inline constexpr std::int32_t kPadIndex = -1;  // states/actions past an episode's end

// One alias column of a state's joint (a, s') distribution, parallel to CSR entry j: the column
// keeps entry j when the low word of the draw is below thr, else it takes entry `alias`.
struct alignas(32) JointSlot {
  std::uint64_t thr;
  std::int32_t next0, next1;      // successor state of entry j / of the alias entry
  std::int32_t action0, action1;  // action of entry j / of the alias entry
  std::int32_t alias;             // the alias entry (global CSR index)
  std::int32_t pad;
};
static_assert(sizeof(JointSlot) == 32, "JointSlot must fill half a cache line");

// Alias tables of pi(a|s) P(s'|s,a) for every non-terminal state, over the MDP's CSR entries.
class JointTable {
 public:
  // `storage` is reused scratch (resized to nnz): callers keep one per thread across calls, so
  // the slots' pages are not faulted in anew for every batch.
  JointTable(const FiniteMDP& mdp, std::vector<JointSlot>& storage) : mdp_(mdp), slots_(storage) {
    slots_.resize(static_cast<std::size_t>(mdp.nnz()));
  }

  // Fills the slots of states [s_begin, s_end) from the policy table probs (S, A). Workers may
  // build disjoint state ranges concurrently.
  // Deterministic (tests re-derive it): weights w_j = (pi(a_j|s) * P_j) * n_s over the n_s
  // entries of s in CSR order, then Vose's construction with stacks of small and large columns.
  void build(const double* probs, std::int32_t s_begin, std::int32_t s_end) {
    std::vector<double> w;
    std::vector<std::int64_t> small, large;
    const std::int64_t A = mdp_.n_actions();
    const std::int64_t* indptr = mdp_.indptr().data();
    const double* prob = mdp_.prob().data();
    const std::int32_t* action = mdp_.entry_action().data();
    const std::uint8_t* terminal = mdp_.terminal().data();
    for (std::int32_t s = s_begin; s < s_end; ++s) {
      if (terminal[s]) continue;
      const std::int64_t beg = indptr[s * A], n = indptr[(s + 1) * A] - beg;
      w.resize(static_cast<std::size_t>(n));
      small.resize(static_cast<std::size_t>(n));
      large.resize(static_cast<std::size_t>(n));
      std::int64_t n_small = 0, n_large = 0;
      for (std::int64_t j = 0; j < n; ++j) {  // branch-free partition: the test is a coin flip
        const std::int64_t e = beg + j;
        w[j] = (probs[s * A + action[e]] * prob[e]) * static_cast<double>(n);
        const std::int64_t is_small = w[j] < 1.0;
        small[n_small] = j;
        large[n_large] = j;
        n_small += is_small;
        n_large += 1 - is_small;
      }
      while (n_small > 0 && n_large > 0) {
        const std::int64_t sm = small[--n_small], lg = large[n_large - 1];
        set(beg, sm, w[sm], lg);
        w[lg] = (w[lg] + w[sm]) - 1.0;
        const std::int64_t moves = w[lg] < 1.0;  // the large column became small
        n_large -= moves;
        small[n_small] = lg;
        n_small += moves;
      }
      // What is left is full up to rounding.
      while (n_large > 0) set(beg, large[--n_large], 1.0, 0);
      while (n_small > 0) set(beg, small[--n_small], 1.0, 0);
    }
  }

  const JointSlot* slots() const noexcept { return slots_.data(); }

 private:
  void set(std::int64_t beg, std::int64_t j, double q, std::int64_t alias) {
    JointSlot& sl = slots_[static_cast<std::size_t>(beg + j)];
    const std::int64_t e = beg + j;
    const std::int64_t f = q >= 1.0 ? e : beg + alias;
    sl.thr = q >= 1.0 ? std::numeric_limits<std::uint64_t>::max()
                      : (q <= 0.0 ? 0 : static_cast<std::uint64_t>(q * 0x1.0p64));
    sl.next0 = mdp_.next()[e];
    sl.action0 = mdp_.entry_action()[e];
    sl.next1 = mdp_.next()[f];
    sl.action1 = mdp_.entry_action()[f];
    sl.alias = static_cast<std::int32_t>(f);
    sl.pad = 0;
  }

  const FiniteMDP& mdp_;
  std::vector<JointSlot>& slots_;
};

// Simulates the trajectories `source` hands out, kLanes at a time, into `sink`.
template <class Sink>
void simulate_stream(const FiniteMDP& mdp, const JointSlot* slots, std::uint64_t key,
                     IndexStream& source, Sink& sink) {
  const std::int64_t H = mdp.horizon();
  const std::int64_t A = mdp.n_actions();
  const std::int64_t* indptr = mdp.indptr().data();
  const double* reward = mdp.reward().data();
  const std::uint8_t* terminal = mdp.terminal().data();

  std::int64_t traj[kLanes];
  std::int32_t t[kLanes], s[kLanes];
  Xoroshiro128pp rng[kLanes];
  std::int64_t col[kLanes];
  std::uint64_t low[kLanes];
  int ended[kLanes];
  int slot[kLanes];

  auto start = [&](int l, std::int64_t i) {
    traj[l] = i;
    t[l] = 0;
    rng[l] = item_stream(key, static_cast<std::uint64_t>(i));
    s[l] = mdp.draw_initial(rng[l].next());
    slot[l] = sink.begin(i, s[l]);
  };
  int active = 0;
  for (std::int64_t i; active < kLanes && (i = source.next()) >= 0; ++active) start(active, i);

  std::uint32_t sweep = 0;
  while (active > 0) {
    if ((++sweep & 1023u) == 0 && source.stopped()) return;
    // Pass 1: each lane's alias column (slot index) and the low word that decides it.
    for (int l = 0; l < active; ++l) {
      const std::int64_t beg = indptr[s[l] * A];
      const std::uint64_t n = static_cast<std::uint64_t>(indptr[(s[l] + 1) * A] - beg);
      std::uint64_t hi;
      low[l] = mulhilo64(rng[l].next(), n, hi);
      col[l] = beg + static_cast<std::int64_t>(hi);
#if defined(__GNUC__) || defined(__clang__)
      __builtin_prefetch(slots + col[l]);
#endif
    }
    // Pass 2: take the column's entry or its alias; emit the step; note lanes that end.
    int n_ended = 0;
    for (int l = 0; l < active; ++l) {
      const JointSlot& sl = slots[col[l]];
      const bool keep = low[l] < sl.thr;
      const std::int32_t a = keep ? sl.action0 : sl.action1;
      const std::int32_t sp = keep ? sl.next0 : sl.next1;
      const std::int64_t e = keep ? col[l] : sl.alias;
      sink.step(slot[l], traj[l], t[l], s[l], a, reward[e]);
      const std::int32_t tn = ++t[l];
      s[l] = sp;
      ended[n_ended] = l;
      n_ended += static_cast<int>(terminal[sp] | (tn == H));
    }
    // Refill ended lanes, last first, so that moving the last lane down keeps the others' places.
    for (int q = n_ended - 1; q >= 0; --q) {
      const int l = ended[q];
      sink.end(slot[l], traj[l], t[l], s[l]);
      const std::int64_t i = source.next();
      if (i >= 0) {
        start(l, i);
      } else {
        --active;
        traj[l] = traj[active];
        t[l] = t[active];
        s[l] = s[active];
        rng[l] = rng[active];
        slot[l] = slot[active];
      }
    }
  }
}

// A barrier for the workers of one run (C++17 has no std::barrier).
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void arrive_and_wait() {
    arrived_.fetch_add(1, std::memory_order_acq_rel);
    while (arrived_.load(std::memory_order_acquire) < n_) std::this_thread::yield();
  }

 private:
  int n_;
  std::atomic<int> arrived_{0};
};

// Runs simulate_stream over trajectories 0..n-1 on `threads` workers, one Sink per worker made by
// make_sink(worker). The workers first build the joint table together (split by states).
// Returns false if the stop token's poll interrupted the run.
template <class MakeSink>
bool simulate(const FiniteMDP& mdp, const double* probs, std::int64_t n, std::uint64_t seed,
              int threads, MakeSink&& make_sink, StopToken& stop, bool static_split = false) {
  const std::uint64_t key = stream_key(seed, Domain::Rollout);
  const std::int64_t blocks = (n + kTrajectoryBlock - 1) / kTrajectoryBlock;
  if (threads > blocks) threads = static_cast<int>(blocks);
  if (threads < 1) threads = 1;
  BlockQueue queue(n, kTrajectoryBlock, static_split ? threads : 0);
  thread_local std::vector<JointSlot> storage;  // the calling thread's, reused across calls
  JointTable table(mdp, storage);
  SpinBarrier barrier(threads);
  const std::int32_t S = mdp.n_states();
  return run_workers(
      threads,
      [&](int w, StopToken& st) {
        // Split the states so each worker builds about the same number of entries.
        const std::int64_t A = mdp.n_actions(), nnz = mdp.nnz();
        const std::int64_t* indptr = mdp.indptr().data();
        auto split = [&](int k) {
          if (k >= threads) return S;
          const std::int64_t target = nnz * k / threads;
          std::int32_t lo = 0, hi = S;  // first state whose entries start at or after target
          while (lo < hi) {
            const std::int32_t mid = lo + (hi - lo) / 2;
            if (indptr[static_cast<std::int64_t>(mid) * A] < target) lo = mid + 1; else hi = mid;
          }
          return lo;
        };
        table.build(probs, split(w), split(w + 1));
        barrier.arrive_and_wait();
        IndexStream source(queue, st, w);
        auto sink = make_sink(w);
        simulate_stream(mdp, table.slots(), key, source, sink);
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

  int begin(std::int64_t, std::int32_t) noexcept { return 0; }
  void step(int, std::int64_t i, std::int64_t t, std::int32_t s, std::int32_t a, double r) noexcept {
    const std::int64_t k = i * H + t;
    states[k] = s;
    actions[k] = a;
    rewards[k] = r;
  }
  void end(int, std::int64_t i, std::int64_t length, std::int32_t final_state) noexcept {
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
