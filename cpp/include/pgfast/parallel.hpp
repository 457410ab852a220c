// A minimal fork-join runner: `threads` workers, a calling thread that waits and polls.
//
// The calling thread never computes; it sleeps on a condition variable and, every poll period,
// calls `poll()` (the Python bindings check for Ctrl-C there). When poll() returns true the
// shared cancel flag is raised, workers stop at their next check, and run_workers returns false.
// Kernels stay free of Python: they only read the cancel flag.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pgfast {

using PollFn = std::function<bool()>;

// Number of hardware threads (at least 1).
inline int hardware_threads() noexcept {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// Runs body(worker) for worker = 0..threads-1 concurrently. Returns false if poll() asked to
// stop (the work is then incomplete); rethrows the first exception a worker threw.
template <class Body>
bool run_workers(int threads, Body&& body, std::atomic<bool>& cancel, const PollFn& poll,
                 std::chrono::milliseconds poll_period = std::chrono::milliseconds(20)) {
  threads = std::max(threads, 1);
  if (threads == 1 && !poll) {
    body(0);
    return true;
  }
  std::mutex m;
  std::condition_variable cv;
  int remaining = threads;
  std::exception_ptr error;
  auto worker = [&](int w) {
    try {
      body(w);
    } catch (...) {
      std::lock_guard<std::mutex> lk(m);
      if (!error) error = std::current_exception();
      cancel.store(true, std::memory_order_relaxed);
    }
    std::lock_guard<std::mutex> lk(m);
    --remaining;
    cv.notify_all();
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads));
  try {
    for (int w = 0; w < threads; ++w) pool.emplace_back(worker, w);
  } catch (...) {  // could not start a thread: stop the ones that did start
    cancel.store(true, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m);
      remaining -= threads - static_cast<int>(pool.size());
    }
    for (auto& t : pool) t.join();
    throw;
  }
  bool interrupted = false;
  {
    std::unique_lock<std::mutex> lk(m);
    while (remaining > 0) {
      if (cv.wait_for(lk, poll_period, [&] { return remaining == 0; })) break;
      if (poll && !interrupted) {
        lk.unlock();
        if (poll()) {
          interrupted = true;
          cancel.store(true, std::memory_order_relaxed);
        }
        lk.lock();
      }
    }
  }
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return !interrupted;
}

// Hands out fixed blocks [b*block, min(n, (b+1)*block)) of an index range to many threads.
// Block boundaries depend only on n, never on the number of threads.
class BlockQueue {
 public:
  BlockQueue(std::int64_t n, std::int64_t block) : n_(n), block_(block) {}
  std::int64_t n() const noexcept { return n_; }
  std::int64_t block() const noexcept { return block_; }
  std::int64_t n_blocks() const noexcept { return (n_ + block_ - 1) / block_; }
  // Next block index, or -1 when all are taken.
  std::int64_t take() noexcept {
    const std::int64_t b = next_.fetch_add(1, std::memory_order_relaxed);
    return b < n_blocks() ? b : -1;
  }

 private:
  std::int64_t n_, block_;
  std::atomic<std::int64_t> next_{0};
};

// One thread's view of a BlockQueue: a stream of indices, block after block.
class IndexStream {
 public:
  IndexStream(BlockQueue& q, const std::atomic<bool>& cancel) : q_(q), cancel_(cancel) {}
  // Next index, or -1 when the queue is exhausted or the work was cancelled.
  std::int64_t next() noexcept {
    if (cur_ == end_) {
      if (cancel_.load(std::memory_order_relaxed)) return -1;
      const std::int64_t b = q_.take();
      if (b < 0) return -1;
      cur_ = b * q_.block();
      end_ = std::min(q_.n(), cur_ + q_.block());
    }
    return cur_++;
  }

 private:
  BlockQueue& q_;
  const std::atomic<bool>& cancel_;
  std::int64_t cur_ = 0, end_ = 0;
};

}  // namespace pgfast
