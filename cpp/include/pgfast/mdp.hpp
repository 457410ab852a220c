// A finite MDP with sparse transitions: CSR over the S*A rows (s, a), one entry per successor s'
// with probability P(s'|s, a) and reward R(s, a, s') (a reward R(s, a) is repeated on each entry).
//
// Episodes start from s0 ~ mu0, end on *entering* a terminal state or after `horizon` steps.
// Rows of terminal states are never used and may be empty.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgfast/categorical.hpp"
#include "pgfast/interrupt.hpp"

namespace pgfast {

// Tolerance on probability sums (rows of P, mu0).
inline constexpr double kSumTolerance = 1e-8;

// The CSR entries [begin, begin + count) of a state's rows s*A..s*A+A-1 (compact sampling tables).
struct StateRow {
  std::int32_t begin, count;
};

// Packed entry code of the compact sampling tables: s' | terminal(s') << 23 | a << 24.
inline constexpr std::int32_t kCodeStateBits = 23;
inline constexpr std::uint32_t kCodeStateMask = (1u << kCodeStateBits) - 1;
inline constexpr std::uint32_t kCodeTerminalBit = 1u << kCodeStateBits;
inline constexpr std::int32_t kCodeActionShift = 24;

class FiniteMDP {
 public:
  FiniteMDP(std::int32_t n_states, std::int32_t n_actions, std::vector<std::int64_t> indptr,
            std::vector<std::int32_t> next, std::vector<double> prob, std::vector<double> reward,
            std::vector<std::uint8_t> terminal, std::vector<double> mu0, std::int64_t horizon,
            double gamma)
      : S_(n_states),
        A_(n_actions),
        H_(horizon),
        gamma_(gamma),
        indptr_(std::move(indptr)),
        next_(std::move(next)),
        prob_(std::move(prob)),
        reward_(std::move(reward)),
        terminal_(std::move(terminal)),
        mu0_(std::move(mu0)) {
    validate();
    action_.resize(next_.size());
    for (std::int64_t row = 0; row < static_cast<std::int64_t>(S_) * A_; ++row) {
      for (std::int64_t e = indptr_[row]; e < indptr_[row + 1]; ++e) action_[e] = static_cast<std::int32_t>(row % A_);
    }
    std::vector<double> support_p;
    for (std::int32_t s = 0; s < S_; ++s) {
      if (mu0_[s] > 0.0) {
        init_states_.push_back(s);
        support_p.push_back(mu0_[s]);
      }
    }
    initial_ = CategoricalRows({0, static_cast<std::int64_t>(init_states_.size())}, support_p.data());
    compact_ = S_ <= static_cast<std::int32_t>(kCodeStateMask) + 1 && A_ <= 256 &&
               nnz() <= static_cast<std::int64_t>(std::numeric_limits<std::int32_t>::max());
    if (compact_) {
      state_rows_.resize(static_cast<std::size_t>(S_));
      for (std::int64_t s = 0; s < S_; ++s) {
        const std::int64_t beg = indptr_[s * A_], end = indptr_[(s + 1) * A_];
        state_rows_[s] = {static_cast<std::int32_t>(beg), static_cast<std::int32_t>(end - beg)};
      }
      entry_code_.resize(next_.size());
      for (std::size_t e = 0; e < next_.size(); ++e) {
        const std::int32_t sp = next_[e];
        entry_code_[e] = static_cast<std::uint32_t>(sp) | (terminal_[sp] ? kCodeTerminalBit : 0u) |
                         (static_cast<std::uint32_t>(action_[e]) << kCodeActionShift);
      }
    }
    // Rewards that depend on (s, a) only (the same on every entry of a row) are also kept as an
    // (S, A) table, so that the sampler's slots need not carry them (sampling.hpp, SlimSlot).
    sa_rewards_ = true;
    sa_reward_.assign(static_cast<std::size_t>(S_) * A_, 0.0);
    for (std::int64_t row = 0; row < static_cast<std::int64_t>(S_) * A_ && sa_rewards_; ++row) {
      const std::int64_t beg = indptr_[row], end = indptr_[row + 1];
      if (beg < end) sa_reward_[row] = reward_[beg];
      for (std::int64_t e = beg; e < end; ++e) {  // bitwise, so that a -0.0 reward stays -0.0
        sa_rewards_ = sa_rewards_ && std::memcmp(&reward_[e], &reward_[beg], sizeof(double)) == 0;
      }
    }
    if (!sa_rewards_) std::vector<double>().swap(sa_reward_);
  }

  std::int32_t n_states() const noexcept { return S_; }
  std::int32_t n_actions() const noexcept { return A_; }
  std::int64_t horizon() const noexcept { return H_; }
  double gamma() const noexcept { return gamma_; }
  std::int64_t nnz() const noexcept { return static_cast<std::int64_t>(next_.size()); }

  const std::vector<std::int64_t>& indptr() const noexcept { return indptr_; }
  const std::vector<std::int32_t>& next() const noexcept { return next_; }
  const std::vector<double>& prob() const noexcept { return prob_; }
  const std::vector<double>& reward() const noexcept { return reward_; }
  const std::vector<std::uint8_t>& terminal() const noexcept { return terminal_; }
  const std::vector<double>& mu0() const noexcept { return mu0_; }
  // The action of each stored entry (entry e lies in row s*A + action[e]).
  const std::vector<std::int32_t>& entry_action() const noexcept { return action_; }

  // Compact sampling tables (sampling.hpp), present when S <= 2^23, A <= 256 and nnz < 2^31:
  // per state its entries' range, per entry its packed code (see kCodeStateBits).
  bool compact_sampling() const noexcept { return compact_; }
  const std::vector<StateRow>& state_rows() const noexcept { return state_rows_; }
  const std::vector<std::uint32_t>& entry_codes() const noexcept { return entry_code_; }
  // True when every entry of each (s, a) row has the same reward; sa_reward() is then that (S, A)
  // table (empty otherwise).
  bool sa_rewards() const noexcept { return sa_rewards_; }
  const std::vector<double>& sa_reward() const noexcept { return sa_reward_; }

  // The entries grouped by successor state (the CSR transposed), for products with the transposed
  // transition matrix: the entries (s, a, s') into s' are k = ptr[s'] .. ptr[s' + 1] - 1, in the
  // order of the rows (source state, then entry).
  struct Incoming {
    std::vector<std::int64_t> ptr;     // (S + 1)
    std::vector<std::int32_t> src;     // (nnz) s
    std::vector<std::int32_t> action;  // (nnz) a
    std::vector<double> p_alive;       // (nnz) P(s'|s, a) if neither s nor s' is terminal, else 0
  };
  // Made by the first call (O(nnz) time, 16 bytes per entry; `stop` is polled, and a build it
  // interrupts is redone by the next call) and kept: every later call returns the same tables.
  // Thread-safe: a call made while another thread builds them waits for that build.
  const Incoming& incoming(StopToken* stop = nullptr) const {
    std::lock_guard<std::mutex> lock(incoming_->mutex);
    if (!incoming_->ready) {
      build_incoming(incoming_->tables, stop);
      incoming_->ready = true;
    }
    return incoming_->tables;
  }

  // s0 ~ mu0 from the random word x.
  inline std::int32_t draw_initial(std::uint64_t x) const noexcept {
    return init_states_[static_cast<std::size_t>(initial_.draw(0, x))];
  }

  // Expected immediate reward r(s, a) = sum_s' P(s'|s,a) R(s,a,s'), row-major (S, A).
  std::vector<double> expected_reward() const {
    std::vector<double> r(static_cast<std::size_t>(S_) * A_, 0.0);
    for (std::int64_t row = 0; row < static_cast<std::int64_t>(S_) * A_; ++row) {
      double acc = 0.0;
      for (std::int64_t e = indptr_[row]; e < indptr_[row + 1]; ++e) acc += prob_[e] * reward_[e];
      r[row] = acc;
    }
    return r;
  }

 private:
  [[noreturn]] static void fail(const std::string& msg) { throw std::invalid_argument(msg); }

  void build_incoming(Incoming& in, StopToken* stop) const {
    const std::int64_t nnz = this->nnz();
    in.ptr.assign(static_cast<std::size_t>(S_) + 1, 0);
    for (std::int64_t e = 0; e < nnz; ++e) ++in.ptr[next_[e] + 1];
    for (std::int64_t s = 0; s < S_; ++s) in.ptr[s + 1] += in.ptr[s];
    in.src.resize(static_cast<std::size_t>(nnz));
    in.action.resize(static_cast<std::size_t>(nnz));
    in.p_alive.resize(static_cast<std::size_t>(nnz));
    std::vector<std::int64_t> at(in.ptr.begin(), in.ptr.end() - 1);
    for (std::int32_t s = 0; s < S_; ++s) {
      if (stop && (s & 16383) == 0) check_stop(*stop);
      for (std::int64_t e = indptr_[static_cast<std::int64_t>(s) * A_]; e < indptr_[(static_cast<std::int64_t>(s) + 1) * A_]; ++e) {
        const std::int64_t k = at[next_[e]]++;
        in.src[k] = s;
        in.action[k] = action_[e];
        in.p_alive[k] = terminal_[s] || terminal_[next_[e]] ? 0.0 : prob_[e];
      }
    }
  }

  void validate() const {
    if (S_ < 1) fail("n_states must be >= 1, got " + std::to_string(S_));
    if (A_ < 1) fail("n_actions must be >= 1, got " + std::to_string(A_));
    if (H_ < 1) fail("horizon must be >= 1, got " + std::to_string(H_));
    if (!(gamma_ >= 0.0 && gamma_ <= 1.0)) {
      std::ostringstream os;
      os << "gamma must be in [0, 1], got " << gamma_;
      fail(os.str());
    }
    const std::int64_t rows = static_cast<std::int64_t>(S_) * A_;
    if (static_cast<std::int64_t>(indptr_.size()) != rows + 1) {
      fail("P: indptr must have S*A + 1 = " + std::to_string(rows + 1) + " entries, got " +
           std::to_string(indptr_.size()));
    }
    if (terminal_.size() != static_cast<std::size_t>(S_)) {
      fail("terminal must have shape (S,) = (" + std::to_string(S_) + ",), got (" +
           std::to_string(terminal_.size()) + ",)");
    }
    if (mu0_.size() != static_cast<std::size_t>(S_)) {
      fail("mu0 must have shape (S,) = (" + std::to_string(S_) + ",), got (" +
           std::to_string(mu0_.size()) + ",)");
    }
    const std::int64_t nnz = static_cast<std::int64_t>(next_.size());
    if (static_cast<std::int64_t>(prob_.size()) != nnz || static_cast<std::int64_t>(reward_.size()) != nnz) {
      fail("P: next, prob and reward must have the same number of entries");
    }
    // indptr in full first (0 = indptr[0] <= ... <= indptr[S*A] = nnz), so that the entry loop
    // below never reads outside next, prob and reward.
    if (indptr_[0] != 0) fail("P: indptr must start at 0, got indptr[0] = " + std::to_string(indptr_[0]));
    if (indptr_[rows] != nnz) {
      fail("P: indptr must end at nnz = " + std::to_string(nnz) + " (the length of next), got indptr[" +
           std::to_string(rows) + "] = " + std::to_string(indptr_[rows]));
    }
    for (std::int64_t row = 0; row < rows; ++row) {
      if (indptr_[row + 1] < indptr_[row]) {
        fail("P: indptr must be non-decreasing, got indptr[" + std::to_string(row) + "] = " +
             std::to_string(indptr_[row]) + " > indptr[" + std::to_string(row + 1) + "] = " +
             std::to_string(indptr_[row + 1]));
      }
    }
    for (std::int64_t row = 0; row < rows; ++row) {
      const std::int64_t beg = indptr_[row], end = indptr_[row + 1];
      const std::int32_t s = static_cast<std::int32_t>(row / A_), a = static_cast<std::int32_t>(row % A_);
      double total = 0.0;
      for (std::int64_t e = beg; e < end; ++e) {
        const std::int32_t sp = next_[e];
        if (sp < 0 || sp >= S_) {
          fail("P: successor state " + std::to_string(sp) + " of (s=" + std::to_string(s) +
               ", a=" + std::to_string(a) + ") is out of range [0, " + std::to_string(S_) + ")");
        }
        const double p = prob_[e];
        if (!std::isfinite(p) || p < 0.0) {
          std::ostringstream os;
          os << "P[s=" << s << ", a=" << a << ", s'=" << sp << "] = " << p
             << ": transition probabilities must be finite and >= 0";
          fail(os.str());
        }
        if (!std::isfinite(reward_[e])) {
          std::ostringstream os;
          os << "R[s=" << s << ", a=" << a << ", s'=" << sp << "] = " << reward_[e]
             << ": rewards must be finite";
          fail(os.str());
        }
        total += p;
      }
      const bool ok = std::abs(total - 1.0) <= kSumTolerance || (terminal_[s] && total == 0.0);
      if (!ok) {
        std::ostringstream os;
        os.precision(17);
        os << "P[s=" << s << ", a=" << a << ", :] sums to " << total
           << "; each row must sum to 1 (within " << kSumTolerance << ")"
           << (terminal_[s] ? " or be all zero (s is terminal)" : "");
        fail(os.str());
      }
    }
    double total = 0.0;
    for (std::int32_t s = 0; s < S_; ++s) {
      const double m = mu0_[s];
      if (!std::isfinite(m) || m < 0.0) {
        std::ostringstream os;
        os << "mu0[" << s << "] = " << m << ": mu0 must be finite and >= 0";
        fail(os.str());
      }
      if (m > 0.0 && terminal_[s]) {
        fail("mu0[" + std::to_string(s) + "] > 0 but state " + std::to_string(s) +
             " is terminal; episodes must start in a non-terminal state");
      }
      total += m;
    }
    if (!(std::abs(total - 1.0) <= kSumTolerance)) {
      std::ostringstream os;
      os.precision(17);
      os << "mu0 sums to " << total << "; it must be a probability distribution (sum 1 within "
         << kSumTolerance << ")";
      fail(os.str());
    }
  }

  std::int32_t S_, A_;
  std::int64_t H_;
  double gamma_;
  std::vector<std::int64_t> indptr_;
  std::vector<std::int32_t> next_;
  std::vector<double> prob_, reward_;
  std::vector<std::uint8_t> terminal_;
  std::vector<double> mu0_;
  std::vector<std::int32_t> action_;
  CategoricalRows initial_;
  std::vector<std::int32_t> init_states_;
  bool compact_ = false;
  bool sa_rewards_ = false;
  std::vector<double> sa_reward_;
  std::vector<StateRow> state_rows_;
  std::vector<std::uint32_t> entry_code_;
  struct IncomingCache {
    std::mutex mutex;
    bool ready = false;
    Incoming tables;
  };
  std::shared_ptr<IncomingCache> incoming_ = std::make_shared<IncomingCache>();  // shared by copies
};

}  // namespace pgfast
