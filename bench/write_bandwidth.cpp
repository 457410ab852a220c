// How much faster two cores fill an output than one: memset of a buffer the size of the sampler's
// FrozenLake N = 1024 output (3.3 MB; states, actions, rewards of 1024 x 200 steps), best of 2000,
// by one thread and by two threads writing one half each. This bounds the sampler's 2T/1T on
// outputs larger than a core's L2 (bench/README.md, "Why 2T/1T at N = 1024 stays short").
//
//   g++ -O2 -pthread bench/write_bandwidth.cpp -o /tmp/write_bandwidth && /tmp/write_bandwidth
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  const std::size_t bytes = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 3300000;
  std::vector<char> buf(bytes);
  auto seconds = [](auto t0) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto best = [&](auto fill) {
    double b = 1e9;
    for (int r = 0; r < 2000; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      fill(r & 0xff);
      b = std::min(b, seconds(t0));
    }
    return b;
  };
  const double one = best([&](int v) { std::memset(buf.data(), v, bytes); });
  const double two = best([&](int v) {
    std::thread other([&] { std::memset(buf.data() + bytes / 2, v, bytes - bytes / 2); });
    std::memset(buf.data(), v, bytes / 2);
    other.join();
  });
  const double spawn = best([](int) { std::thread([] {}).join(); });
  std::printf("memset %zu bytes: 1 thread %.1f us (%.1f GB/s); 2 threads %.1f us, of which ~%.1f us starting "
              "the thread; 2T/1T %.2f\n",
              bytes, one * 1e6, bytes / one / 1e9, two * 1e6, spawn * 1e6, one / (two - spawn));
}
