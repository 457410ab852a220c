// Canonical reductions over trajectories: the same bits for any thread count and any split of the
// trajectory range into shards (docs/guide/sampling.md, "Reproducibility").
//
// Trajectories 0..n-1 are cut into a fixed grid of blocks whose size depends only on n (and on the
// kind of statistic, never on threads or shards): block b holds [b B, min(n, (b + 1) B)). A block's
// partial statistic is accumulated from zero, its trajectories in one fixed order. Block partials
// are then combined along one canonical binary tree over block indices: node (l, i) covers blocks
// [i 2^l, (i + 1) 2^l) clipped to [0, nb), and its value is
//
//   value(l, i) = value(l - 1, 2i) + value(l - 1, 2i + 1)    (elementwise; a child past nb is absent
//                                                             and the other child's value is kept)
//
// A worker (or a shard) that owns the contiguous blocks [lo, hi) reduces them to the maximal
// aligned dyadic nodes inside that range with a binary-counter stack (NodeStack); merge_nodes()
// then combines any set of nodes that tiles [0, nb) bottom-up, by level and index, into the root.
// Every addition of the tree therefore happens on the same two operands wherever it runs, and the
// result is bit-identical however the blocks were shared out. A + B and B + A are the same double,
// so only the shape of the tree matters.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pgfast::reduce {

// The block grid of a reduction over n trajectories.
struct Grid {
  std::int64_t n = 0;       // trajectories
  std::int64_t block = 1;   // trajectories per block (the last block may be shorter)
  std::int64_t blocks = 0;  // number of blocks, ceil(n / block)

  // The grid with the smallest power-of-two block of at least min_block trajectories that cuts n
  // into at most max_blocks blocks. Depends on (n, min_block, max_blocks) only.
  static Grid make(std::int64_t n, std::int64_t min_block, std::int64_t max_blocks) {
    if (n < 0 || min_block < 1 || max_blocks < 1) throw std::invalid_argument("reduce::Grid: bad arguments");
    Grid g;
    g.n = n;
    std::int64_t b = 1;
    while (b < min_block) b *= 2;
    while ((n + b - 1) / b > max_blocks) b *= 2;
    g.block = b;
    g.blocks = (n + b - 1) / b;
    return g;
  }
  std::int64_t begin(std::int64_t b) const noexcept { return b * block; }
  std::int64_t end(std::int64_t b) const noexcept { return std::min(n, (b + 1) * block); }
};

// The blocks worker w of `workers` owns among [lo, hi): a contiguous share, as equal as can be.
inline std::pair<std::int64_t, std::int64_t> share(std::int64_t lo, std::int64_t hi, int w, int workers) noexcept {
  return {lo + (hi - lo) * w / workers, lo + (hi - lo) * (w + 1) / workers};
}

// A node of the canonical tree: level l, index i (blocks [i 2^l, (i + 1) 2^l)).
struct Node {
  int level = 0;
  std::int64_t index = 0;
  bool operator<(const Node& o) const noexcept { return level != o.level ? level < o.level : index < o.index; }
};

template <class P>
struct Part {
  Node node;
  P value;
};

// Reduces consecutive blocks, pushed in increasing order, to the maximal aligned dyadic nodes of
// the range pushed so far. `combine(left, right)` adds right into left (left holds the lower blocks).
template <class P>
class NodeStack {
 public:
  template <class Combine>
  void push(std::int64_t block, P&& value, Combine&& combine) {
    parts_.push_back(Part<P>{Node{0, block}, std::move(value)});
    while (parts_.size() >= 2) {
      Part<P>& right = parts_[parts_.size() - 1];
      Part<P>& left = parts_[parts_.size() - 2];
      if (left.node.level != right.node.level || (left.node.index & 1) != 0 || right.node.index != left.node.index + 1) {
        break;
      }
      combine(left.value, right.value);
      left.node = Node{left.node.level + 1, left.node.index / 2};
      parts_.pop_back();
    }
  }
  std::vector<Part<P>>& parts() noexcept { return parts_; }

 private:
  std::vector<Part<P>> parts_;
};

// Combines the sibling pairs among `parts` bottom-up (the same additions merge_nodes makes), so
// that the nodes of contiguous blocks computed by several workers become the largest aligned
// nodes of their range: a shard's partial result. Nodes without their sibling stay as they are.
template <class P, class Combine>
std::vector<Part<P>> combine_siblings(std::vector<Part<P>>&& parts, Combine&& combine) {
  std::map<Node, P> nodes;
  for (Part<P>& p : parts) nodes.emplace(p.node, std::move(p.value));
  bool merged = true;
  while (merged) {
    merged = false;
    for (auto it = nodes.begin(); it != nodes.end();) {
      auto sib = std::next(it);
      if (sib != nodes.end() && (it->first.index & 1) == 0 && sib->first.level == it->first.level &&
          sib->first.index == it->first.index + 1) {
        const Node parent{it->first.level + 1, it->first.index / 2};
        combine(it->second, sib->second);
        P value = std::move(it->second);
        nodes.erase(sib);
        nodes.erase(it);
        nodes.emplace(parent, std::move(value));
        merged = true;
        break;  // the map changed: start again from the lowest level
      }
      ++it;
    }
  }
  std::vector<Part<P>> out;
  for (auto& kv : nodes) out.push_back(Part<P>{kv.first, std::move(kv.second)});
  return out;
}

// Combines nodes that tile [0, blocks) exactly once into the root's value, bottom-up by level and
// index. Throws std::invalid_argument (with `what` naming the statistic) when the nodes overlap or
// leave a gap: partial results that do not cover the range once.
template <class P, class Combine>
P merge_nodes(std::vector<Part<P>>&& parts, std::int64_t blocks, Combine&& combine, const std::string& what) {
  if (blocks < 1) throw std::invalid_argument(what + ": nothing to merge");
  std::map<Node, P> level;  // ordered by (level, index)
  for (Part<P>& p : parts) {
    // index <= (blocks - 1) >> level: the node's first block lies in the grid (no shift of a
    // caller's index, which could overflow)
    const int lv = p.node.level;
    const std::int64_t ix = p.node.index;
    if (lv < 0 || lv > 62 || ix < 0 || ix > ((blocks - 1) >> lv)) {
      throw std::invalid_argument(what + ": a partial result lies outside the block grid");
    }
    if (!level.emplace(p.node, std::move(p.value)).second) {
      throw std::invalid_argument(what + ": two partial results cover the same trajectories");
    }
  }
  int top = 0;
  while ((std::int64_t{1} << top) < blocks) ++top;
  for (int l = 0; l < top; ++l) {
    std::map<Node, P> next;
    for (auto it = level.begin(); it != level.end() && it->first.level == l;) {
      const Node node = it->first;
      const std::int64_t i = node.index;
      const Node parent{l + 1, i / 2};
      if ((i & 1) == 0) {
        auto sib = std::next(it);
        const bool has_sib = sib != level.end() && sib->first.level == l && sib->first.index == i + 1;
        if (has_sib) {
          combine(it->second, sib->second);
          next.emplace(parent, std::move(it->second));
          it = level.erase(level.erase(it));
          continue;
        }
        if (((i + 1) << l) < blocks) {
          // the right sibling's blocks exist but nothing at this level covers them: a lower node
          // would have merged into it by now, so they are missing (or covered by a larger node)
          throw std::invalid_argument(what + ": the partial results leave trajectories out or overlap");
        }
        next.emplace(parent, std::move(it->second));  // no right sibling: kept as it is
        it = level.erase(it);
        continue;
      }
      throw std::invalid_argument(what + ": the partial results leave trajectories out or overlap");
    }
    for (auto& kv : next) {
      if (!level.emplace(kv.first, std::move(kv.second)).second) {
        throw std::invalid_argument(what + ": two partial results cover the same trajectories");
      }
    }
  }
  if (level.size() != 1 || level.begin()->first.level != top || level.begin()->first.index != 0) {
    throw std::invalid_argument(what + ": the partial results leave trajectories out or overlap");
  }
  return std::move(level.begin()->second);
}

}  // namespace pgfast::reduce
