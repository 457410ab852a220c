// A minimal fork-join runner whose calling thread works too and answers interrupts.
//
// run_workers(threads, body) runs body(worker, stop) for worker = 0..threads-1: worker 0 on the
// calling thread, the others on pool threads (at most usable_cpus() - 1 are kept) and, beyond
// those, on new threads that are joined before it returns. At most kMaxThreads workers run. Workers call stop(worker) at regular points (every
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

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif

namespace pgfast {

using PollFn = std::function<bool()>;

// Number of hardware threads (at least 1).
inline int hardware_threads() noexcept {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// Number of CPUs this process may run on (its affinity mask on Linux; else hardware_threads()).
inline int usable_cpus() noexcept {
#if defined(__linux__) && defined(CPU_COUNT)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  return hardware_threads();
}

// The most workers one parallel call runs (the Python API refuses more; run_workers clamps).
constexpr int kMaxThreads = 256;

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

// A process-wide pool of parked worker threads, so that a parallel call does not pay thread
// start-up (tens to hundreds of microseconds, as much as a small batch takes). After a job the
// workers spin (yielding) for a short while before parking, so consecutive calls find them awake.
// One job at a time: a caller that finds the pool busy (another Python thread) spawns threads.
// The pool keeps at most max_pooled() = usable_cpus() - 1 threads (with the calling thread, one
// per CPU the process may use): a call asking for more runs the extra workers on threads of its
// own, joined before it returns.
class WorkerPool {
 public:
  // The pool of this process (re-created in a child after fork, whose copy has no threads).
  static WorkerPool& get() {
    static WorkerPool* pool = nullptr;
    static long owner = 0;
    static std::mutex m;
    std::lock_guard<std::mutex> lk(m);
    const long pid = current_pid();
    if (pool == nullptr || owner != pid) {
      pool = new WorkerPool();  // leaked on purpose: threads may outlive static destruction
      owner = pid;
    }
    return *pool;
  }

  std::mutex& submit_mutex() noexcept { return submit_; }

  // The most threads the pool keeps (at least 1; fixed when the pool is made).
  int max_pooled() const noexcept { return max_pooled_; }

  // Wakes `helpers` pool threads (starting them if need be) without giving them a job: they spin
  // for a while, as after a job. A caller about to submit a job calls it first thing, so that a
  // parked thread's wake-up (tens of microseconds on a VM) overlaps the caller's set-up work.
  // Does nothing while another caller's job runs.
  void poke(int helpers) {
    std::unique_lock<std::mutex> submit(submit_, std::try_to_lock);
    if (!submit.owns_lock()) return;
    spawn(helpers);
    {
      std::lock_guard<std::mutex> lk(m_);
      if (parked_ == 0) return;
      pokes_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
  }

  // Runs job(w) for w = 1..helpers on pool threads and returns without waiting; wait_done()
  // waits. Caller holds submit_mutex(); helpers <= max_pooled().
  void start(int helpers, const std::function<void(int)>* job) {
    helpers = std::min(helpers, max_pooled());
    spawn(helpers);
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = job;
      helpers_ = helpers;
      remaining_.store(helpers, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
  }

  // Waits until the helpers are done, calling tick() about every period meanwhile. Spins (yielding)
  // for up to kDoneSpin first: the helpers of a small job usually finish within microseconds of
  // the caller, and waking a thread blocked on the condition variable takes 10-30 us on a VM.
  template <class Tick>
  void wait_done(std::chrono::milliseconds period, Tick&& tick) {
    const auto spin_until = std::chrono::steady_clock::now() + kDoneSpin;
    while (remaining_.load(std::memory_order_acquire) > 0 && std::chrono::steady_clock::now() < spin_until) {
      std::this_thread::yield();
    }
    std::unique_lock<std::mutex> lk(m_);
    while (remaining_.load(std::memory_order_acquire) > 0) {
      if (done_.wait_for(lk, period, [&] { return remaining_.load(std::memory_order_acquire) == 0; })) break;
      lk.unlock();
      tick();
      lk.lock();
    }
  }

 private:
  WorkerPool() : max_pooled_(std::max(1, usable_cpus() - 1)) {}

  static long current_pid() noexcept {
#if defined(__unix__) || defined(__APPLE__)
    return static_cast<long>(::getpid());
#else
    return 1;
#endif
  }

  void spawn(int helpers) {
    helpers = std::min(helpers, max_pooled());
    while (static_cast<int>(threads_.size()) < helpers) {
      const int w = static_cast<int>(threads_.size()) + 1;
      threads_.emplace_back([this, w] { loop(w); });
      threads_.back().detach();
    }
  }

  void loop(int w) {
    std::uint64_t seen = 0;
    for (;;) {
      // Spin a little, then park until the next job (or a poke, which starts another spin).
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
      while (generation_.load(std::memory_order_acquire) == seen &&
             std::chrono::steady_clock::now() < spin_until) {
        std::this_thread::yield();
      }
      const std::function<void(int)>* job;
      int helpers;
      {
        std::unique_lock<std::mutex> lk(m_);
        const std::uint64_t pokes = pokes_.load(std::memory_order_relaxed);
        ++parked_;
        wake_.wait(lk, [&] {
          return generation_.load(std::memory_order_acquire) != seen || pokes_.load(std::memory_order_relaxed) != pokes;
        });
        --parked_;
        if (generation_.load(std::memory_order_acquire) == seen) continue;  // a poke: spin again
        seen = generation_.load(std::memory_order_acquire);
        job = job_;
        helpers = helpers_;
      }
      if (w > helpers) continue;
      (*job)(w);
      if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(m_);  // orders the count with a waiter's check under m_
        done_.notify_all();
      }
    }
  }

  const int max_pooled_;
  std::mutex submit_, m_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(int)>* job_ = nullptr;
  static constexpr std::chrono::microseconds kDoneSpin{500};
  int helpers_ = 0;
  std::atomic<int> remaining_{0};  // helpers still running the current job
  int parked_ = 0;  // threads waiting on wake_ (under m_)
  std::atomic<std::uint64_t> generation_{0}, pokes_{0};
};

// Part of run_workers: workers first..threads-1 on new threads and worker 0 on the calling thread,
// which polls the stop token while it waits for the others; every new thread is joined.
template <class Fn>
void run_spawned(int first, int threads, Fn& guarded, StopToken& stop) {
  std::mutex m;
  std::condition_variable cv;
  int remaining = threads - first;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads - first));
  try {
    for (int w = first; w < threads; ++w) {
      pool.emplace_back([&, w] {
        guarded(w);
        std::lock_guard<std::mutex> lk(m);
        --remaining;
        cv.notify_all();
      });
    }
  } catch (...) {  // could not start a thread: stop the ones that did start
    stop.cancel();
    for (auto& t : pool) t.join();
    throw;
  }
  guarded(0);
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
}

// Runs body(worker, stop) on `threads` workers (worker 0 is the calling thread, the others come
// from the WorkerPool, or are new threads when the pool is busy or has fewer threads than asked
// for; those are joined before returning, so a call leaves no thread behind beyond the pool's
// max_pooled()). Returns false if the poll function interrupted the run (the work is then
// incomplete); rethrows the first exception a worker threw. `threads` is clamped to
// [1, kMaxThreads].
template <class Body>
bool run_workers(int threads, Body&& body, StopToken& stop) {
  threads = std::min(std::max(threads, 1), kMaxThreads);
  std::mutex m;
  std::exception_ptr error;
  auto guarded = [&](int w) {
    try {
      body(w, stop);
    } catch (...) {
      std::lock_guard<std::mutex> lk(m);
      if (!error) error = std::current_exception();
      stop.cancel();
    }
  };
  if (threads == 1) {
    guarded(0);
  } else {
    WorkerPool& pool = WorkerPool::get();
    std::unique_lock<std::mutex> job_lock(pool.submit_mutex(), std::try_to_lock);
    if (job_lock.owns_lock()) {
      const int pooled = std::min(threads - 1, pool.max_pooled());
      const std::function<void(int)> job = guarded;
      pool.start(pooled, &job);
      try {
        if (pooled + 1 < threads) {
          run_spawned(pooled + 1, threads, guarded, stop);  // the workers the pool does not keep
        } else {
          guarded(0);
        }
      } catch (...) {  // a thread could not be started: the pool's workers still use `job`
        stop.cancel();
        pool.wait_done(stop.period(), [&] { stop(0); });
        throw;
      }
      pool.wait_done(stop.period(), [&] { stop(0); });
    } else {
      run_spawned(1, threads, guarded, stop);
    }
  }
  if (error) std::rethrow_exception(error);
  return !stop.interrupted();
}

// Hands out fixed blocks [b*block, min(n, (b+1)*block)) of an index range to many threads.
// Block boundaries depend only on n, never on the number of threads; a block goes to whichever
// worker asks first (the sums of the estimators use the fixed shares of reduce.hpp instead).
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
