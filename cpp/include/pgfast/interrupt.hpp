// Ctrl-C inside a kernel: a long computation polls a StopToken (parallel.hpp) between chunks of
// work and throws Interrupted when it reports a stop; the bindings turn it into KeyboardInterrupt.
#pragma once

#include <exception>

#include "pgfast/parallel.hpp"

namespace pgfast {

// Thrown when the StopToken reports Ctrl-C; the bindings turn it into KeyboardInterrupt.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

inline void check_stop(StopToken& stop) {
  if (stop(0)) throw Interrupted{};
}

}  // namespace pgfast
