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
// A slot is free again once end() returns; close() follows the worker's last end(), on the
// worker's thread (a sink finishes its sums there, next to its data).
// The storing sink writes the padded (N, H) batch; later sinks accumulate estimators instead.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <type_traits>
#include <vector>

#include "pgfast/mdp.hpp"
#include "pgfast/parallel.hpp"
#include "pgfast/reduce.hpp"
#include "pgfast/rng.hpp"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

namespace pgfast {

inline constexpr int kLanes = 16;
inline constexpr std::int64_t kTrajectoryBlock = 64;
inline constexpr std::int32_t kPadIndex = -1;  // states/actions past an episode's end

// keep (all ones or zero) ? a : b, without a branch.
inline double select(std::uint64_t keep, double a, double b) noexcept {
  std::uint64_t x, y;
  std::memcpy(&x, &a, sizeof x);
  std::memcpy(&y, &b, sizeof y);
  const std::uint64_t z = y ^ ((x ^ y) & keep);
  double r;
  std::memcpy(&r, &z, sizeof r);
  return r;
}

// One alias column of a state's joint (a, s') distribution, parallel to CSR entry j: the column
// keeps entry j when the low word of the draw is below thr, else it takes its alias entry. The
// slot holds everything a step needs of either entry -- successor, its terminal flag, action and
// reward -- so a step makes no further dependent load.
//
// Compact layout (S <= 2^23, A <= 256, nnz < 2^31): one packed code per entry (mdp.hpp).
struct alignas(32) PackedSlot {
  static constexpr bool kPackedCodes = true;  // FiniteMDP::entry_codes exist
  std::uint64_t thr;
  std::uint32_t code0, code1;  // entry j / the alias entry: s' | terminal(s') << 23 | a << 24
  double reward0, reward1;

  // Makes the slots of one MDP (its arrays' pointers held once for a whole table build).
  struct Maker {
    const std::uint32_t* code;
    const double* reward;
    explicit Maker(const FiniteMDP& mdp) : code(mdp.entry_codes().data()), reward(mdp.reward().data()) {}
    PackedSlot operator()(std::uint64_t thr, std::int64_t e, std::int64_t f) const noexcept {
      return {thr, code[e], code[f], reward[e], reward[f]};
    }
  };
  struct Draw {
    std::uint32_t code;
    double reward;
    std::int32_t next() const noexcept { return static_cast<std::int32_t>(code & kCodeStateMask); }
    std::int32_t action() const noexcept { return static_cast<std::int32_t>(code >> kCodeActionShift); }
    bool terminal() const noexcept { return (code & kCodeTerminalBit) != 0; }
  };
  // Branch-free on purpose (keep is a coin flip; compilers turn a plain ?: into a branch).
  Draw take(std::uint64_t low) const noexcept {
    const std::uint64_t keep = 0 - static_cast<std::uint64_t>(low < thr);  // all ones or zero
    const std::uint32_t code = code1 ^ ((code0 ^ code1) & static_cast<std::uint32_t>(keep));
    const double r = select(keep, reward0, reward1);
    return {code, r};
  }
};
static_assert(sizeof(PackedSlot) == 32, "PackedSlot must fill half a cache line");

// PackedSlot without the rewards, for MDPs whose rewards depend on (s, a) only
// (FiniteMDP::sa_rewards): half the bytes to build, to keep in cache and to fetch cold after other
// work has evicted them; a step reads its reward from the (S, A) table instead (RewardOf).
struct alignas(16) SlimSlot {
  static constexpr bool kPackedCodes = true;
  std::uint64_t thr;
  std::uint32_t code0, code1;

  struct Maker {
    const std::uint32_t* code;
    explicit Maker(const FiniteMDP& mdp) : code(mdp.entry_codes().data()) {}
    SlimSlot operator()(std::uint64_t thr, std::int64_t e, std::int64_t f) const noexcept {
      return {thr, code[e], code[f]};
    }
  };
  struct Draw {
    std::uint32_t code;
    std::int32_t next() const noexcept { return static_cast<std::int32_t>(code & kCodeStateMask); }
    std::int32_t action() const noexcept { return static_cast<std::int32_t>(code >> kCodeActionShift); }
    bool terminal() const noexcept { return (code & kCodeTerminalBit) != 0; }
  };
  Draw take(std::uint64_t low) const noexcept {  // branch-free, as PackedSlot::take
    const std::uint64_t keep = 0 - static_cast<std::uint64_t>(low < thr);
    return {code1 ^ ((code0 ^ code1) & static_cast<std::uint32_t>(keep))};
  }
};
static_assert(sizeof(SlimSlot) == 16, "SlimSlot must fill a quarter of a cache line");

// General layout, for MDPs too large for the packed codes.
struct WideSlot {
  static constexpr bool kPackedCodes = false;
  std::uint64_t thr;
  std::int32_t next0, next1;       // successor of entry j / of the alias entry
  std::uint32_t action0, action1;  // action | terminal(successor) << 31
  double reward0, reward1;

  struct Maker {
    const std::int32_t* next;
    const std::int32_t* action;
    const std::uint8_t* terminal;
    const double* reward;
    explicit Maker(const FiniteMDP& mdp)
        : next(mdp.next().data()), action(mdp.entry_action().data()), terminal(mdp.terminal().data()),
          reward(mdp.reward().data()) {}
    std::uint32_t act(std::int64_t k) const noexcept {
      return static_cast<std::uint32_t>(action[k]) | (terminal[next[k]] ? 0x80000000u : 0u);
    }
    WideSlot operator()(std::uint64_t thr, std::int64_t e, std::int64_t f) const noexcept {
      return {thr, next[e], next[f], act(e), act(f), reward[e], reward[f]};
    }
  };
  struct Draw {
    std::int32_t sp;
    std::uint32_t act;
    double reward;
    std::int32_t next() const noexcept { return sp; }
    std::int32_t action() const noexcept { return static_cast<std::int32_t>(act & 0x7FFFFFFFu); }
    bool terminal() const noexcept { return (act >> 31) != 0; }
  };
  Draw take(std::uint64_t low) const noexcept {  // branch-free, as PackedSlot::take
    const std::uint64_t keep = 0 - static_cast<std::uint64_t>(low < thr);
    const std::uint32_t k32 = static_cast<std::uint32_t>(keep);
    const std::uint32_t n0 = static_cast<std::uint32_t>(next0), n1 = static_cast<std::uint32_t>(next1);
    const double r = select(keep, reward0, reward1);
    return {static_cast<std::int32_t>(n1 ^ ((n0 ^ n1) & k32)), action1 ^ ((action0 ^ action1) & k32), r};
  }
};

// The reward of a step from state s: carried by the slot, or read from the (S, A) table.
template <class Slot>
struct RewardOf {
  explicit RewardOf(const FiniteMDP&) {}
  double operator()(const typename Slot::Draw& d, std::int32_t) const noexcept { return d.reward; }
};
template <>
struct RewardOf<SlimSlot> {
  const double* r;
  std::int64_t A;
  explicit RewardOf(const FiniteMDP& mdp) : r(mdp.sa_reward().data()), A(mdp.n_actions()) {}
  double operator()(const SlimSlot::Draw& d, std::int32_t s) const noexcept { return r[s * A + d.action()]; }
};

// The entries [begin, begin + count) of state s: from the compact row table, or from indptr.
struct CompactRows {
  const StateRow* rows;
  explicit CompactRows(const FiniteMDP& mdp) : rows(mdp.state_rows().data()) {}
  std::int64_t begin(std::int32_t s) const noexcept { return rows[s].begin; }
  std::int64_t count(std::int32_t s) const noexcept { return rows[s].count; }
};
struct IndptrRows {
  const std::int64_t* indptr;
  std::int64_t A;
  explicit IndptrRows(const FiniteMDP& mdp) : indptr(mdp.indptr().data()), A(mdp.n_actions()) {}
  std::int64_t begin(std::int32_t s) const noexcept { return indptr[s * A]; }
  std::int64_t count(std::int32_t s) const noexcept { return indptr[(s + 1) * A] - indptr[s * A]; }
};

// Alias tables of pi(a|s) P(s'|s,a) for every non-terminal state, over the MDP's CSR entries.
template <class Slot>
class JointTable {
 public:
  // `storage` is reused scratch (resized to nnz): callers keep one per thread across calls, so
  // the slots' pages are not faulted in anew for every batch.
  JointTable(const FiniteMDP& mdp, std::vector<Slot>& storage) : mdp_(mdp), slots_(storage) {
    slots_.resize(static_cast<std::size_t>(mdp.nnz()));
  }

  // Fills the slots of states [s_begin, s_end) from the policy table probs (S, A). Workers may
  // build disjoint state ranges concurrently.
  // Deterministic (tests re-derive it): weights w_j = (pi(a_j|s) * P_j) * n_s over the n_s
  // entries of s in CSR order, then Vose's construction with stacks of small and large columns:
  // pop a small column, pair it with the large column on top (w_large = (w_large + w_small) - 1),
  // and move that large column to the small stack once w_large < 1.
  //
  // The stacks are walked with two cursors instead of being popped and pushed: a demoted large
  // column is always the next small one popped, so it waits in registers (`pending`), and the
  // large column on top and its weight stay in registers until it is demoted. The same pairings
  // and the same arithmetic as the stack version, in order, so the same slots bit for bit; one
  // state at a time (its loop's branch on demotion predicts well enough that interleaving states,
  // as an earlier version did, only added loads and stores: 155 -> 108 us on the random MDP).
  void build(const double* probs, std::int32_t s_begin, std::int32_t s_end) {
    const std::int64_t A = mdp_.n_actions();
    const std::int64_t* indptr = mdp_.indptr().data();
    const double* prob = mdp_.prob().data();
    const std::uint8_t* terminal = mdp_.terminal().data();
    const typename Slot::Maker make(mdp_);
    Slot* out = slots_.data();
    auto full = [&](std::int64_t e) { out[e] = make(std::numeric_limits<std::uint64_t>::max(), e, e); };
    // entry offsets within the state, in CSR order (32 bits where the packed codes already bound
    // nnz below 2^31)
    using Offset = std::conditional_t<Slot::kPackedCodes, std::int32_t, std::int64_t>;
    std::vector<double> w;
    std::vector<Offset> small, large;
    for (std::int32_t st = s_begin; st < s_end; ++st) {
      if (terminal[st]) continue;
      const std::int64_t beg = indptr[st * A], n = indptr[(st + 1) * A] - beg;
      if (static_cast<std::int64_t>(w.size()) < n) {
        w.resize(static_cast<std::size_t>(n));
        small.resize(static_cast<std::size_t>(n));
        large.resize(static_cast<std::size_t>(n));
      }
      double* wv = w.data();
      Offset* sm0 = small.data();
      Offset* lg0 = large.data();
      const double dn = static_cast<double>(n);
      std::int64_t ns = 0, nl = 0, k = 0;
      for (std::int64_t a = 0; a < A; ++a) {  // the entries of row (s, a) all have action a
        const double pa = probs[st * A + a];
        for (const std::int64_t row_end = indptr[st * A + a + 1] - beg; k < row_end; ++k) {
          const double x = (pa * prob[beg + k]) * dn;
          wv[k] = x;
          const std::int64_t is_small = x < 1.0;  // branch-free partition: the test is a coin flip
          sm0[ns] = static_cast<Offset>(k);
          lg0[nl] = static_cast<Offset>(k);
          ns += is_small;
          nl += 1 - is_small;
        }
      }
      std::int64_t ps = ns - 1, pl = nl - 1;  // tops of the initial small and large stacks
      bool pending = false;                   // a demoted large column is the next small one
      std::int64_t p_col = 0;
      double p_w = 0.0;
      if (pl >= 0) {
        std::int64_t lg = lg0[pl];
        double wl = wv[lg];
        while (pending || ps >= 0) {
          std::int64_t sm;
          double ws;
          if (pending) {
            sm = p_col;
            ws = p_w;
            pending = false;
          } else {
            sm = sm0[ps];
            ws = wv[sm];
            --ps;
          }
          out[beg + sm] = make(threshold(ws), beg + sm, beg + lg);  // keeps sm w.p. ws < 1
          wl = (wl + ws) - 1.0;
          if (wl < 1.0) {  // the large column became small
            pending = true;
            p_col = lg;
            p_w = wl;
            if (--pl < 0) break;
            lg = lg0[pl];
            wl = wv[lg];
          }
        }
        // What is left is full up to rounding: always its own entry (the large column on top
        // included).
        for (std::int64_t q = pl; q >= 0; --q) full(beg + lg0[q]);
      }
      if (pending) full(beg + p_col);
      for (std::int64_t q = ps; q >= 0; --q) full(beg + sm0[q]);
    }
  }

  const Slot* slots() const noexcept { return slots_.data(); }

 private:
  // The column's threshold for keeping its own entry w.p. q, 0 <= q < 1: 2 floor(q 2^63), which
  // is floor(q 2^64) except that its lowest bit is dropped (q 2^64 is an integer for q >= 2^-11,
  // and then even); so P(low < thr) is q to within 2^-63. One multiplication and one conversion
  // (q 2^63 < 2^63 fits an int64), no branch.
  static std::uint64_t threshold(double q) noexcept {
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(q * 0x1.0p63)) << 1;
  }

  const FiniteMDP& mdp_;
  std::vector<Slot>& slots_;
};

// Simulates the trajectories `source` hands out, kLanes at a time, into `sink`.
//
// One pass over the lanes per sweep, software-pipelined: lane l's slot was prefetched in the
// previous sweep; the pass reads it, emits the step, and at once draws the next step's random
// word and alias column and prefetches that slot (for a lane that has just ended the draw is
// wasted and harmless: the lane is refilled with a new trajectory and its own stream).
template <class Slot, class Rows, class Sink, class Source>
void simulate_stream(const FiniteMDP& mdp, const Slot* slots, std::uint64_t key, Source& source, Sink& sink) {
  const std::int64_t H = mdp.horizon();
  const Rows rows(mdp);
  const RewardOf<Slot> reward_of(mdp);

  std::int64_t traj[kLanes];
  std::int32_t t[kLanes], s[kLanes];
  Xoroshiro128pp rng[kLanes];
  std::int64_t col[kLanes];
  std::uint64_t low[kLanes];
  int ended[kLanes];
  int slot[kLanes];

  auto draw = [&](int l) {
    const std::int32_t st = s[l];
    std::uint64_t hi;
    low[l] = mulhilo64(rng[l].next(), static_cast<std::uint64_t>(rows.count(st)), hi);
    col[l] = rows.begin(st) + static_cast<std::int64_t>(hi);
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(slots + col[l]);
#endif
  };
  auto start = [&](int l, std::int64_t i) {
    traj[l] = i;
    t[l] = 0;
    rng[l] = item_stream(key, static_cast<std::uint64_t>(i));
    s[l] = mdp.draw_initial(rng[l].next());
    slot[l] = sink.begin(i, s[l]);
    draw(l);
  };
  int active = 0;
  for (std::int64_t i; active < kLanes && (i = source.next()) >= 0; ++active) start(active, i);

  std::uint32_t sweep = 0;
  while (active > 0) {
    if ((++sweep & 1023u) == 0 && source.stopped()) return;
    int n_ended = 0;
    for (int l = 0; l < active; ++l) {
      const typename Slot::Draw d = slots[col[l]].take(low[l]);
      const std::int32_t sp = d.next();
      sink.step(slot[l], traj[l], t[l], s[l], d.action(), reward_of(d, s[l]));
      const std::int32_t tn = ++t[l];
      s[l] = sp;
      ended[n_ended] = l;
      n_ended += static_cast<int>(d.terminal() | (tn == H));
      draw(l);
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
        col[l] = col[active];
        low[l] = low[active];
      }
    }
  }
}

// Orders this thread's non-temporal stores before its later stores (e.g. the end of a worker).
inline void store_fence() noexcept {
#if defined(__SSE2__) || defined(_M_X64)
  _mm_sfence();
#endif
}

// The joint table's build, cut into chunks of states with about the same number of entries that
// the workers of one run claim in turn: a worker that starts late (a parked pool thread takes tens
// of microseconds to wake) builds fewer chunks instead of holding the others up at a barrier.
class BuildChunks {
 public:
  static constexpr std::int64_t kEntriesPerChunk = 1024;

  BuildChunks(const FiniteMDP& mdp, int threads) {
    const std::int32_t S = mdp.n_states();
    const std::int64_t A = mdp.n_actions(), nnz = mdp.nnz();
    const std::int64_t* indptr = mdp.indptr().data();
    const std::int64_t chunks =
        threads <= 1 ? 1 : std::max<std::int64_t>(1, std::min<std::int64_t>(S, nnz / kEntriesPerChunk));
    bounds_.push_back(0);
    for (std::int64_t k = 1; k < chunks; ++k) {
      const std::int64_t target = nnz * k / chunks;
      std::int32_t lo = bounds_.back(), hi = S;  // first state whose entries start at or after target
      while (lo < hi) {
        const std::int32_t mid = lo + (hi - lo) / 2;
        if (indptr[static_cast<std::int64_t>(mid) * A] < target) lo = mid + 1; else hi = mid;
      }
      bounds_.push_back(lo);
    }
    bounds_.push_back(S);
  }

  // Builds chunks until none is left, then waits until all are built. False if the run was
  // stopped meanwhile (another worker failed, or an interrupt).
  template <class Slot>
  bool build(JointTable<Slot>& table, const double* probs, int worker, StopToken& stop) {
    const int n = static_cast<int>(bounds_.size()) - 1;
    for (int c; (c = next_.fetch_add(1, std::memory_order_relaxed)) < n;) {
      table.build(probs, bounds_[c], bounds_[c + 1]);
      done_.fetch_add(1, std::memory_order_release);
    }
    while (done_.load(std::memory_order_acquire) < n) {
      if (stop(worker)) return false;
      std::this_thread::yield();
    }
    return true;
  }

 private:
  std::vector<std::int32_t> bounds_;
  std::atomic<int> next_{0}, done_{0};
};

// The trajectories [begin, end) for simulate_stream, a stream that ends early when the run is stopped.
class RangeStream {
 public:
  RangeStream(std::int64_t begin, std::int64_t end, StopToken& stop, int worker)
      : cur_(begin), end_(end), stop_(stop), worker_(worker) {}
  std::int64_t next() {
    if (cur_ >= end_ || ((++handed_ & 63u) == 0 && stop_(worker_))) return -1;
    return cur_++;
  }
  bool stopped() { return stop_(worker_); }

 private:
  std::int64_t cur_, end_;
  StopToken& stop_;
  int worker_;
  std::uint32_t handed_ = 0;
};

// The workers' part of a simulation: build the joint table together (BuildChunks), then each runs
// work(worker, stop, slots, key).
template <class Slot, class Work>
bool simulate_workers(const FiniteMDP& mdp, const double* probs, std::uint64_t seed, int threads, Work&& work,
                      StopToken& stop) {
  const std::uint64_t key = stream_key(seed, Domain::Rollout);
  // The calling thread's table storage, reused across calls; one-thread runs keep their own, so
  // that their build does not have to fetch back the lines another core wrote in a parallel run
  // (a 1-thread call right after a 2-thread one was otherwise ~15 % slower on the random MDP).
  thread_local std::vector<Slot> storage_single, storage_shared;
  JointTable<Slot> table(mdp, threads == 1 ? storage_single : storage_shared);
  BuildChunks chunks(mdp, threads);
  return run_workers(
      threads,
      [&](int w, StopToken& st) {
        if (!chunks.build(table, probs, w, st)) return;
        work(w, st, table.slots(), key);
        store_fence();
      },
      stop);
}

// The slot layout and row view an MDP samples with, as a type: f(Layout<Slot, Rows>{}).
template <class S, class R>
struct Layout {
  using Slot = S;
  using Rows = R;
};
template <class F>
bool with_layout(const FiniteMDP& mdp, F&& f) {
  if (mdp.compact_sampling() && mdp.sa_rewards()) return f(Layout<SlimSlot, CompactRows>{});
  if (mdp.compact_sampling()) return f(Layout<PackedSlot, CompactRows>{});
  return f(Layout<WideSlot, IndptrRows>{});
}

// Runs simulate_stream over trajectories 0..n-1 on `threads` workers, one Sink per worker made by
// make_sink(worker), the blocks of kTrajectoryBlock trajectories handed out as workers ask.
// Returns false if the stop token's poll interrupted the run.
template <class MakeSink>
bool simulate(const FiniteMDP& mdp, const double* probs, std::int64_t n, std::uint64_t seed, int threads,
              MakeSink&& make_sink, StopToken& stop) {
  const std::int64_t blocks = (n + kTrajectoryBlock - 1) / kTrajectoryBlock;
  threads = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, blocks)));
  BlockQueue queue(n, kTrajectoryBlock);
  return with_layout(mdp, [&](auto layout) {
    using Slot = typename decltype(layout)::Slot;
    using Rows = typename decltype(layout)::Rows;
    return simulate_workers<Slot>(
        mdp, probs, seed, threads,
        [&](int w, StopToken& st, const Slot* slots, std::uint64_t key) {
          IndexStream source(queue, st, w);
          auto sink = make_sink(w);
          simulate_stream<Slot, Rows>(mdp, slots, key, source, sink);
          sink.close();
        },
        stop);
  });
}

// simulate() for the canonical reductions (reduce.hpp): worker w simulates its contiguous share
// of the grid's blocks, each block on its own (its trajectories start on fresh lanes and all end
// before the next block starts, so the order in which they reach the sink depends on the block
// alone), and calls sink.block_done(b) after block b. Returns false if the run was interrupted.
// Only the blocks [block_lo, block_hi) are simulated (a shard of the batch), shared out in the same
// contiguous way.
template <class MakeSink>
bool simulate_blocks(const FiniteMDP& mdp, const double* probs, const reduce::Grid& grid, std::uint64_t seed,
                     int threads, MakeSink&& make_sink, StopToken& stop, std::int64_t block_lo = 0,
                     std::int64_t block_hi = -1) {
  if (block_hi < 0) block_hi = grid.blocks;
  const std::int64_t nb = block_hi - block_lo;
  threads = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, nb)));
  return with_layout(mdp, [&](auto layout) {
    using Slot = typename decltype(layout)::Slot;
    using Rows = typename decltype(layout)::Rows;
    return simulate_workers<Slot>(
        mdp, probs, seed, threads,
        [&](int w, StopToken& st, const Slot* slots, std::uint64_t key) {
          auto sink = make_sink(w);
          const auto [b0, b1] = reduce::share(block_lo, block_hi, w, threads);
          for (std::int64_t b = b0; b < b1; ++b) {
            RangeStream source(grid.begin(b), grid.end(b), st, w);
            simulate_stream<Slot, Rows>(mdp, slots, key, source, sink);
            if (source.stopped()) return;
            sink.block_done(b);
          }
        },
        stop);
  });
}

// Row writers of StoreSink: dst[0, len) = src[0, len), dst[len, H) = pad. With `stream`, the
// cache lines that lie wholly in the row go out with non-temporal stores (no read-for-ownership
// of lines that are overwritten whole; the caller fences with store_fence() before the data is
// read), the partial lines at the ends -- shared with the neighbouring rows -- with plain stores.
template <class T>
inline void write_row(T* dst, const T* src, std::int64_t len, std::int64_t H, T pad, bool stream) noexcept {
#if defined(__SSE2__) || defined(_M_X64)
  if (stream) {
    static_assert(16 % sizeof(T) == 0, "whole elements per 16-byte store");
    constexpr std::int64_t kPer = 16 / static_cast<std::int64_t>(sizeof(T)), kLine = 4 * kPer;
    std::int64_t k = 0;
    for (; k < H && (reinterpret_cast<std::uintptr_t>(dst + k) & 63u) != 0; ++k) dst[k] = k < len ? src[k] : pad;
    T pads[kPer];
    for (std::int64_t q = 0; q < kPer; ++q) pads[q] = pad;
    const __m128i vpad = _mm_loadu_si128(reinterpret_cast<const __m128i*>(pads));
    const std::int64_t lines_end = k + (H - k) / kLine * kLine;  // end of the whole lines
    for (; k + kPer <= len && k < lines_end; k += kPer) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + k), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k)));
    }
    if (k < len && k < lines_end) {  // the chunk where the episode ends: mix data and padding
      T mix[kPer];
      for (std::int64_t q = 0; q < kPer; ++q) mix[q] = k + q < len ? src[k + q] : pad;
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + k), _mm_loadu_si128(reinterpret_cast<const __m128i*>(mix)));
      k += kPer;
    }
    for (; k < lines_end; k += kPer) _mm_stream_si128(reinterpret_cast<__m128i*>(dst + k), vpad);
    for (; k < H; ++k) dst[k] = k < len ? src[k] : pad;
    return;
  }
#else
  (void)stream;
#endif
  if (src != dst) std::memcpy(dst, src, static_cast<std::size_t>(len) * sizeof(T));
  if (sizeof(T) == 4 || pad == T(0)) {  // kPadIndex (all-ones bytes) or 0.0 (all-zero bytes)
    unsigned char b;
    std::memcpy(&b, &pad, 1);
    std::memset(dst + len, b, static_cast<std::size_t>(H - len) * sizeof(T));
  } else {
    for (std::int64_t k = len; k < H; ++k) dst[k] = pad;
  }
}

// Writes the padded batch: states/actions (N, H) int32, rewards (N, H) float64, lengths and
// final states (N,) int32. Positions t >= length hold kPadIndex / 0.0.
//
// Rows past the first kStreamBytes of the output are staged: the running trajectory's steps go
// to a per-worker buffer (kLanes x H, cache-resident) and the row is written out when it ends,
// sequentially with non-temporal stores, instead of scattering each step's three stores over
// kLanes rows of an output too large for the caches (every one a read-for-ownership miss). The
// first rows -- all of a small batch -- are written in place through the caches, and so are
// all rows of horizons too short to fill a cache line or too long to stage.
struct StoreSink {
  std::int32_t* states;
  std::int32_t* actions;
  double* rewards;
  std::int32_t* lengths;
  std::int32_t* final_states;
  std::int64_t H;

  static constexpr std::int64_t kMinStagedH = 32;  // shorter rows hold no whole cache line
  static constexpr std::int64_t kMaxStagedH = 4096;
  static constexpr std::int64_t kStreamBytes = std::int64_t{8} << 20;
  static constexpr std::int64_t kBytesPerStep = 2 * sizeof(std::int32_t) + sizeof(double);

  int begin(std::int64_t i, std::int32_t) {
    if (free_.empty() && n_slots_ == 0) {
      for (int k = kLanes - 1; k >= 0; --k) free_.push_back(k);
      n_slots_ = kLanes;
    }
    const int k = free_.back();
    free_.pop_back();
    staged_[k] = H >= kMinStagedH && H <= kMaxStagedH && (i + 1) * H * kBytesPerStep > kStreamBytes;
    if (staged_[k]) {
      if (stage_s_.empty()) {
        stage_s_.resize(static_cast<std::size_t>(kLanes * H));
        stage_a_.resize(stage_s_.size());
        stage_r_.resize(stage_s_.size());
      }
      ds_[k] = stage_s_.data() + k * H;
      da_[k] = stage_a_.data() + k * H;
      dr_[k] = stage_r_.data() + k * H;
    } else {
      ds_[k] = states + i * H;
      da_[k] = actions + i * H;
      dr_[k] = rewards + i * H;
    }
    return k;
  }
  void step(int k, std::int64_t, std::int64_t t, std::int32_t s, std::int32_t a, double r) noexcept {
    ds_[k][t] = s;
    da_[k][t] = a;
    dr_[k][t] = r;
  }
  void end(int k, std::int64_t i, std::int64_t length, std::int32_t final_state) {
    const std::int64_t o = i * H;
    const bool stream = staged_[k];
    write_row<std::int32_t>(states + o, ds_[k], length, H, kPadIndex, stream);
    write_row<std::int32_t>(actions + o, da_[k], length, H, kPadIndex, stream);
    write_row<double>(rewards + o, dr_[k], length, H, 0.0, stream);
    lengths[i] = static_cast<std::int32_t>(length);
    final_states[i] = final_state;
    free_.push_back(k);
  }
  void close() noexcept {}

  // Internal state (public so that StoreSink stays an aggregate: StoreSink{states, ..., H}).
  std::int32_t* ds_[kLanes] = {};  // where slot k's steps go: its output row or its staging row
  std::int32_t* da_[kLanes] = {};
  double* dr_[kLanes] = {};
  bool staged_[kLanes] = {};
  int n_slots_ = 0;
  std::vector<int> free_{};
  std::vector<std::int32_t> stage_s_{}, stage_a_{};
  std::vector<double> stage_r_{};
};

}  // namespace pgfast
