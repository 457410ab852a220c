// Build and thread information: thread limits, the worker pool, build_info().
#include <Eigen/Core>

#include "common.hpp"
#include "pgfast/parallel.hpp"
#include "pgfast/sampling.hpp"

namespace pgfast::bindings {

void bind_info(py::module_ m) {
  m.def("hardware_threads", &hardware_threads);
  m.attr("MAX_THREADS") = kMaxThreads;
  m.def("pooled_threads_max", [] { return WorkerPool::get().max_pooled(); },
        "The most worker threads the pool keeps between calls (usable CPUs - 1, at least 1).");
  m.def(
      "wake_workers",
      [](int threads) {
        if (threads > 1) {
          py::gil_scoped_release nogil;
          WorkerPool::get().poke(threads - 1);
        }
      },
      py::arg("threads"),
      "Wake threads - 1 pool threads ahead of a parallel call (they spin for a few ms).");
  m.def("build_info", [] {
    py::dict d;
    d["version"] = PGFAST_VERSION_INFO;
    d["compiler"] = PGFAST_COMPILER_INFO;
    d["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                 std::to_string(EIGEN_MINOR_VERSION);
    d["eigen_simd"] = Eigen::SimdInstructionSetsInUse();
#ifdef PGFAST_NATIVE_BUILD
    d["native"] = true;
#else
    d["native"] = false;
#endif
#ifdef PGFAST_SANITIZE_BUILD
    d["sanitize"] = true;
#else
    d["sanitize"] = false;
#endif
#ifdef NDEBUG
    d["debug"] = false;
#else
    d["debug"] = true;
#endif
    d["lanes"] = kLanes;
    d["trajectory_block"] = kTrajectoryBlock;
    return d;
  });
}

}  // namespace pgfast::bindings
