// The glue every binding file shares: array conversion, argument checks, Ctrl-C polling.
//
// The files in cpp/bindings/ are the only code that knows Python: they convert arrays, release the
// GIL, map errors and poll Ctrl-C; one bind_<topic>.cpp per topic, each adding its functions to the
// submodule `_core.<topic>` that module.cpp makes for it (stubs: python/pgfast/_core/<topic>.pyi).
// Python (python/pgfast) validates shapes and dtypes and passes C-contiguous float64 / int32 /
// uint8 arrays; every array argument is .noconvert(), so nothing is copied on the way in. Kinds
// (objective, method, weights, baseline, activation) are bound enums, never strings. Outputs are
// NumPy arrays allocated here and filled in place with the GIL released.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgfast/parallel.hpp"

namespace py = pybind11;

namespace pgfast::bindings {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

// Called on the waiting thread, GIL released: run Python's signal handlers (Ctrl-C).
inline bool python_interrupted() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

inline int resolve_threads(int threads) {
  if (threads < 0 || threads > kMaxThreads)
    throw std::invalid_argument("threads must be in [1, " + std::to_string(kMaxThreads) + "] or None, got " +
                                std::to_string(threads));
  return threads == 0 ? std::min(hardware_threads(), kMaxThreads) : threads;
}

template <class T>
std::vector<T> to_vector(const carray<T>& a, const char* name, py::ssize_t expected = -1) {
  if (a.ndim() != 1) throw std::invalid_argument(std::string(name) + " must be 1-D");
  if (expected >= 0 && a.size() != expected) {
    throw std::invalid_argument(std::string(name) + " must have " + std::to_string(expected) +
                                " entries, got " + std::to_string(a.size()));
  }
  return std::vector<T>(a.data(), a.data() + a.size());
}

// A read-only NumPy view of memory owned by `owner` (kept alive by the view).
template <class T>
py::array readonly_view(const T* data, std::vector<py::ssize_t> shape, py::handle owner) {
  py::array out(py::dtype::of<T>(), std::move(shape), {}, data, owner);
  out.attr("setflags")(py::arg("write") = false);
  return out;
}

// Throws unless every entry of an index array lies in [0, upper), naming the first that does not.
inline void check_range(const carray<std::int32_t>& idx, py::ssize_t upper, const char* name) {
  const std::int32_t* v = idx.data();
  for (py::ssize_t k = 0; k < idx.size(); ++k) {
    if (v[k] < 0 || v[k] >= upper) {
      throw std::invalid_argument(std::string(name) + "[" + std::to_string(k) + "] = " + std::to_string(v[k]) +
                                  " is out of range [0, " + std::to_string(upper) + ")");
    }
  }
}

// Scalars every kernel assumes in range (Python checks them first; direct calls are checked here).
inline void check_unit(double x, const char* name) {
  if (!(x >= 0.0 && x <= 1.0)) {
    std::ostringstream os;
    os << name << " must be in [0, 1], got " << x;
    throw std::invalid_argument(os.str());
  }
}

// A policy table (S, A) as the samplers and solvers read it: finite entries >= 0, each row summing
// to 1 (within 1e-6). O(S A), negligible beside the O(nnz) tables built from it.
inline void check_policy_table(const carray<double>& probs, const char* name) {
  const double* p = probs.data();
  const py::ssize_t S = probs.shape(0), A = probs.shape(1);
  for (py::ssize_t s = 0; s < S; ++s) {
    double total = 0.0;
    for (py::ssize_t a = 0; a < A; ++a) {
      const double v = p[s * A + a];
      if (!(v >= 0.0 && v <= 1.0)) {
        std::ostringstream os;
        os << name << "[" << s << ", " << a << "] = " << v << ": probabilities must lie in [0, 1]";
        throw std::invalid_argument(os.str());
      }
      total += v;
    }
    if (!(std::abs(total - 1.0) <= 1e-6)) {
      std::ostringstream os;
      os << name << "[" << s << ", :] sums to " << total << "; each row must sum to 1";
      throw std::invalid_argument(os.str());
    }
  }
}

inline void require_shape2(const py::array& a, const char* name, py::ssize_t rows, py::ssize_t cols) {
  if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols) {
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(rows) + ", " +
                                std::to_string(cols) + ")");
  }
}

// Checks a padded batch (rewards (N, H), lengths (N,)) before a kernel reads it.
inline void check_batch(const carray<double>& rewards, const carray<std::int32_t>& lengths) {
  if (rewards.ndim() != 2) throw std::invalid_argument("rewards must have shape (N, H)");
  if (lengths.ndim() != 1 || lengths.shape(0) != rewards.shape(0)) {
    throw std::invalid_argument("lengths must have shape (N,) = (" + std::to_string(rewards.shape(0)) + ",)");
  }
  const std::int32_t* len = lengths.data();
  for (py::ssize_t i = 0; i < lengths.shape(0); ++i) {
    if (len[i] < 0 || len[i] > rewards.shape(1)) {
      throw std::invalid_argument("lengths[" + std::to_string(i) + "] = " + std::to_string(len[i]) +
                                  " is out of range [0, H = " + std::to_string(rewards.shape(1)) + "]");
    }
  }
}

// Moves a vector into a NumPy array of the given shape without copying.
template <class T>
py::array_t<T> vector_to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(std::move(shape), heap->data(), owner);
}

// One per topic, each in its bind_<topic>.cpp, called by module.cpp with the submodule
// _core.<topic>, in this order (a later topic's signatures name an earlier topic's classes).
void bind_mdp(py::module_ m);
void bind_policy(py::module_ m);
void bind_mlp(py::module_ m);
void bind_sampling(py::module_ m);
void bind_returns(py::module_ m);
void bind_exact(py::module_ m);
void bind_estimators(py::module_ m);
void bind_off_policy(py::module_ m);
void bind_info(py::module_ m);
void bind_lqr(py::module_ m);
void bind_lqr_exact(py::module_ m);

}  // namespace pgfast::bindings
