// A minimal fork-join runner whose calling thread works too and answers interrupts.
//
// run_workers(threads, body) runs body(worker, stop) for worker = 0..threads-1: worker 0 on the
// calling thread, the others on new threads. Workers call stop(worker) at regular points (every
// block of work, and every few thousand steps inside a long one). On the calling thread that
// check also runs the poll function every poll period (the Python bindings check Ctrl-C there);
// once it returns true, or a worker throws, every worker's next stop() returns true.
// Kernels stay free of Python: they see only a callable that answers "should I stop?".
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

// Shared stop state of one parallel run.
class StopToken {
 public:
  explicit StopToken(PollFn poll, std::chrono::milliseconds period = std::chrono::milliseconds(20))
      : poll_(std::move(poll)), period_(period), next_poll_(std::chrono::steady_clock::now() + period) {}

  // True once the run must stop. Cheap: a relaxed load, plus a clock read on worker 0.
  bool operator()(int worker) {
    if (worker == 0 && poll_) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_poll_) {
        next_poll_ = now + period_;
        if (poll_()) {
          interrupted_ = true;
          cancel_.store(true, std::memory_order_relaxed);
        }
      }
    }
    return cancel_.load(std::memory_order_relaxed);
  }
  void cancel() noexcept { cancel_.store(true, std::memory_order_relaxed); }
  bool interrupted() const noexcept { return interrupted_; }
  std::chrono::milliseconds period() const noexcept { return period_; }

 private:
  std::atomic<bool> cancel_{false};
  PollFn poll_;
  std::chrono::milliseconds period_;
  std::chrono::steady_clock::time_point next_poll_;
  bool interrupted_ = false;  // written and read on the calling thread only
};

// Runs body(worker, stop) on `threads` workers (worker 0 is the calling thread). Returns false if
// the poll function interrupted the run (the work is then incomplete); rethrows the first
// exception a worker threw.
template <class Body>
bool run_workers(int threads, Body&& body, StopToken& stop) {
  threads = std::max(threads, 1);
  std::mutex m;
  std::condition_variable cv;
  int remaining = threads - 1;
  std::exception_ptr error;
  auto record_error = [&] {
    std::lock_guard<std::mutex> lk(m);
    if (!error) error = std::current_exception();
    stop.cancel();
  };
  auto worker = [&](int w) {
    try {
      body(w, stop);
    } catch (...) {
      record_error();
    }
    std::lock_guard<std::mutex> lk(m);
    --remaining;
    cv.notify_all();
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads - 1));
  try {
    for (int w = 1; w < threads; ++w) pool.emplace_back(worker, w);
  } catch (...) {  // could not start a thread: stop the ones that did start
    stop.cancel();
    {
      std::lock_guard<std::mutex> lk(m);
      remaining -= threads - 1 - static_cast<int>(pool.size());
    }
    for (auto& t : pool) t.join();
    throw;
  }
  try {
    body(0, stop);
  } catch (...) {
    record_error();
  }
  // Worker 0 is done; keep answering interrupts until the others are.
  {
    std::unique_lock<std::mutex> lk(m);
    while (remaining > 0) {
      if (cv.wait_for(lk, stop.period(), [&] { return remaining == 0; })) break;
      lk.unlock();
      stop(0);
      lk.lock();
    }
  }
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return !stop.interrupted();
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

// One worker's view of a BlockQueue: a stream of indices, block after block, that ends early
// when the run is stopped.
class IndexStream {
 public:
  IndexStream(BlockQueue& q, StopToken& stop, int worker) : q_(q), stop_(stop), worker_(worker) {}
  // Next index, or -1 when the queue is exhausted or the run was stopped.
  std::int64_t next() {
    if (cur_ == end_) {
      if (stop_(worker_)) return -1;
      const std::int64_t b = q_.take();
      if (b < 0) return -1;
      cur_ = b * q_.block();
      end_ = std::min(q_.n(), cur_ + q_.block());
    }
    return cur_++;
  }
  bool stopped() { return stop_(worker_); }

 private:
  BlockQueue& q_;
  StopToken& stop_;
  int worker_;
  std::int64_t cur_ = 0, end_ = 0;
};

}  // namespace pgfast
