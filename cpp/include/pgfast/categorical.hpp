// Rows of categorical distributions stored CSR-style, each drawn from one 64-bit random word.
//
// Short rows (<= kLinearMax entries) are drawn by a branch-free inverse CDF: the index is the
// number of cumulative probabilities <= u, counted two at a time with SSE2 over a row padded to
// a multiple of four with 2.0 (never <= u), so there is no data-dependent branch. Long rows use Walker's alias method (Vose's construction): O(1) per
// draw whatever the row length. Both are exact up to the 2^-53 (CDF) or 2^-64 (alias) resolution
// of the random word.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgfast/rng.hpp"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

namespace pgfast {

class CategoricalRows {
 public:
  static constexpr std::int64_t kLinearMax = 16;

  CategoricalRows() = default;

  // offsets: rows + 1 entries, non-decreasing, offsets[0] == 0; prob: offsets.back() weights.
  // A row may be empty (it must then never be drawn from). Weights are normalised per row.
  CategoricalRows(std::vector<std::int64_t> offsets, const double* prob) : offsets_(std::move(offsets)) {
    const std::int64_t nnz = offsets_.empty() ? 0 : offsets_.back();
    cdf_off_.assign(offsets_.size(), 0);
    bool any_long = false;
    for (std::size_t r = 0; r + 1 < offsets_.size(); ++r) {
      const std::int64_t len = offsets_[r + 1] - offsets_[r];
      cdf_off_[r + 1] = cdf_off_[r] + (len <= kLinearMax ? padded(len) : 0);
      any_long = any_long || len > kLinearMax;
    }
    cdf_.assign(static_cast<std::size_t>(cdf_off_.empty() ? 0 : cdf_off_.back()), 2.0);
    if (any_long) {  // alias tables are indexed like the entries; only long rows use them
      alias_thr_.resize(static_cast<std::size_t>(nnz));
      alias_idx_.resize(static_cast<std::size_t>(nnz));
    }
    const std::int64_t rows = n_rows();
    std::vector<double> scaled;
    std::vector<std::int32_t> small, large;
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t beg = offsets_[r], len = offsets_[r + 1] - beg;
      if (len == 0) continue;
      double total = 0.0;
      for (std::int64_t k = 0; k < len; ++k) total += prob[beg + k];
      if (!(total > 0.0) || !std::isfinite(total)) {
        throw std::invalid_argument("categorical row " + std::to_string(r) + " has total weight " +
                                    std::to_string(total) + "; expected a positive finite sum");
      }
      if (len > kLinearMax) {
        build_alias(beg, len, prob + beg, total, scaled, small, large);
        continue;
      }
      // Cumulative sums of all but the last entry; padding stays 2.0 (never <= u).
      double acc = 0.0;
      double* c = cdf_.data() + cdf_off_[r];
      for (std::int64_t k = 0; k + 1 < len; ++k) {
        acc += prob[beg + k];
        c[k] = acc / total;
      }
    }
  }

  std::int64_t n_rows() const noexcept {
    return offsets_.empty() ? 0 : static_cast<std::int64_t>(offsets_.size()) - 1;
  }

  // Index within row r (0 .. row_size(r) - 1) drawn with the random word x.
  inline std::int64_t draw(std::int64_t r, std::uint64_t x) const noexcept {
    const std::int64_t beg = offsets_[r];
    const std::int64_t len = offsets_[r + 1] - beg;
    if (len <= kLinearMax) {
      const double u = to_unit(x);
      const double* c = cdf_.data() + cdf_off_[r];
      const std::int64_t m = cdf_off_[r + 1] - cdf_off_[r];
      return count_le(c, m, u);
    }
    return draw_alias(beg, len, x);
  }

  inline std::int64_t draw_alias(std::int64_t beg, std::int64_t len, std::uint64_t x) const noexcept {
    std::uint64_t hi;
    const std::uint64_t lo = mulhilo64(x, static_cast<std::uint64_t>(len), hi);
    const std::int64_t k = static_cast<std::int64_t>(hi);
    return lo < alias_thr_[beg + k] ? k : alias_idx_[beg + k];
  }

 private:
  void build_alias(std::int64_t beg, std::int64_t len, const double* p, double total,
                   std::vector<double>& scaled, std::vector<std::int32_t>& small,
                   std::vector<std::int32_t>& large) {
    scaled.assign(static_cast<std::size_t>(len), 0.0);
    small.clear();
    large.clear();
    for (std::int64_t k = 0; k < len; ++k) {
      scaled[k] = p[k] / total * static_cast<double>(len);
      (scaled[k] < 1.0 ? small : large).push_back(static_cast<std::int32_t>(k));
    }
    while (!small.empty() && !large.empty()) {
      const std::int32_t s = small.back(), l = large.back();
      small.pop_back();
      set_column(beg, s, scaled[s], l);
      scaled[l] = (scaled[l] + scaled[s]) - 1.0;
      if (scaled[l] < 1.0) {
        large.pop_back();
        small.push_back(l);
      }
    }
    // Leftovers are full columns up to rounding.
    for (std::int32_t k : large) set_column(beg, k, 1.0, k);
    for (std::int32_t k : small) set_column(beg, k, 1.0, k);
  }

  void set_column(std::int64_t beg, std::int32_t k, double q, std::int32_t alias) {
    std::uint64_t thr;
    if (q >= 1.0) {
      thr = std::numeric_limits<std::uint64_t>::max();
      alias = k;
    } else if (q <= 0.0) {
      thr = 0;
    } else {
      thr = static_cast<std::uint64_t>(std::ldexp(q, 64));
    }
    alias_thr_[beg + k] = thr;
    alias_idx_[beg + k] = alias;
  }

  static constexpr std::int64_t kPad = 4;

  // Number of c[k] <= u for k < m (m a multiple of kPad).
  static inline std::int64_t count_le(const double* c, std::int64_t m, double u) noexcept {
#if defined(__SSE2__) || defined(_M_X64)
    const __m128d uu = _mm_set1_pd(u);
    __m128i acc = _mm_setzero_si128();
    for (std::int64_t k = 0; k < m; k += kPad) {
      const __m128d m0 = _mm_cmple_pd(_mm_loadu_pd(c + k), uu);
      const __m128d m1 = _mm_cmple_pd(_mm_loadu_pd(c + k + 2), uu);
      acc = _mm_sub_epi64(acc, _mm_castpd_si128(m0));
      acc = _mm_sub_epi64(acc, _mm_castpd_si128(m1));
    }
    return _mm_cvtsi128_si64(acc) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc));
#else
    std::int64_t idx = 0;
    for (std::int64_t k = 0; k < m; ++k) idx += static_cast<std::int64_t>(c[k] <= u);
    return idx;
#endif
  }
  // Entries compared by the CDF scan of a row of length len: len - 1, rounded up to kPad.
  static constexpr std::int64_t padded(std::int64_t len) noexcept {
    return len <= 1 ? 0 : ((len - 1 + kPad - 1) / kPad) * kPad;
  }

  std::vector<std::int64_t> offsets_, cdf_off_;
  std::vector<double> cdf_;
  std::vector<std::uint64_t> alias_thr_;
  std::vector<std::int32_t> alias_idx_;
};

}  // namespace pgfast
