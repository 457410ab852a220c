"""Boundary checks shared by the public API: each names the argument it rejects."""

from __future__ import annotations

import hashlib
import operator
import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core

_MAX_SEED = 2**64 - 1


def as_float_array(x: Any, name: str, *, ndim: int | tuple[int, ...] | None = None) -> NDArray[np.float64]:
    """``x`` as a C-contiguous float64 array; TypeError for non-numeric data, ValueError for ndim."""
    arr = as_array(x, name)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    if arr.dtype != np.float64 or not arr.flags.c_contiguous:  # a view may own far less memory
        check_allocation(8 * arr.size, f"{name} of shape {arr.shape} as a float64 array", f"pass a smaller {name}")
    return np.asarray(arr, dtype=np.float64, order="C")


def as_array(x: Any, name: str) -> NDArray[Any]:
    """np.asarray(x), a ragged nesting of lists reported as the argument's fault."""
    try:
        return np.asarray(x)
    except ValueError as exc:  # "setting an array element with a sequence ... inhomogeneous shape"
        raise ValueError(f"{name} must be a rectangular array (nested lists of equal lengths): {exc}") from None


def require_finite(arr: NDArray[np.float64], name: str) -> None:
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = tuple(int(i) for i in bad)
        raise ValueError(f"{name} must be finite, found {arr[where]!r} at index {where}")


def as_int(x: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A Python int from an integer-like ``x`` (not bool, not float)."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        value = operator.index(x)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(x).__name__}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def as_bool(x: Any, name: str) -> bool:
    """A flag: True or False (also NumPy's), not a string or a number that would be truthy."""
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(x).__name__}")
    return bool(x)


def as_float(x: Any, name: str) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    return float(x)


def as_rcond(x: Any) -> float:
    """The relative eigenvalue cut-off of a pseudo-inverse, in [0, 1) (NaN refused)."""
    rc = as_float(x, "rcond")
    if not 0.0 <= rc < 1.0:
        raise ValueError(f"rcond must be in [0, 1), got {rc}")
    return rc


def as_gamma(x: Any, default: float) -> float:
    """A discount factor in [0, 1]; None -> ``default`` (the MDP's)."""
    if x is None:
        return default
    g = as_float(x, "gamma")
    if not 0.0 <= g <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {g}")
    return g


def require_instance(x: Any, cls: type, name: str, what: str) -> None:
    """TypeError naming the argument unless ``x`` is a ``cls``."""
    if not isinstance(x, cls):
        raise TypeError(f"{name} must be {what}, got {type(x).__name__}")


def as_index_array(x: Any, name: str, upper: int) -> NDArray[np.int32]:
    """Integer array with values in [0, upper), as C-contiguous int32 (same shape)."""
    arr = as_array(x, name)
    if arr.size == 0 and arr.dtype.kind == "f":  # [] is a float array to NumPy
        arr = arr.astype(np.int32)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.dtype != np.int32 or not arr.flags.c_contiguous:
        check_allocation(4 * arr.size, f"{name} of shape {arr.shape} as an int32 array", f"pass a smaller {name}")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= upper:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must lie in [0, {upper}), found {bad}")
    return np.asarray(arr, dtype=np.int32, order="C")


def as_seed(seed: Any) -> int:
    """A seed in [0, 2**64); None draws fresh entropy from the operating system."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) & _MAX_SEED  # type: ignore[arg-type]
    return as_int(seed, "seed", minimum=0, maximum=_MAX_SEED)


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


MAX_THREADS: int = int(_core.info.MAX_THREADS)  # 256, the core's own cap (run_workers clamps to it)
"""The most threads one call runs (``threads=`` above it is refused). Sampled batches do not
depend on the thread count (estimator sums only in their last bits), and more threads than CPUs
only add start-up and switching costs: the cap keeps a typo (``threads=4096``) from starting
thousands of OS threads. Of the threads a call starts, pgfast keeps at most one per usable CPU
(minus the caller's) parked for later calls; the others end with the call."""


def as_threads(threads: Any) -> int:
    """None -> every CPU this process may use (at most MAX_THREADS); otherwise an int in
    [1, MAX_THREADS]."""
    if threads is None:
        return min(available_cpus(), MAX_THREADS)
    return as_int(threads, "threads", minimum=1, maximum=MAX_THREADS)


def available_memory() -> int | None:
    """Bytes of memory available for new allocations, if the OS says (Linux), else total RAM."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


_ALWAYS_AVAILABLE = 64 << 20  # bytes any machine that runs pgfast can allocate


def check_allocation(nbytes: int, what: str, hint: str) -> None:
    """MemoryError stating the size, raised before allocating more than is available."""
    if nbytes < _ALWAYS_AVAILABLE:  # no need to read /proc/meminfo (~8 us) for a small batch
        return
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise MemoryError(
            f"{what} needs {nbytes / 2**30:.3g} GiB ({nbytes} bytes), more than the {avail / 2**30:.3g} GiB "
            f"of memory available; {hint}"
        )


def check_finite_result(x: Any, what: str, cause: str) -> None:
    """ValueError unless every entry of a public result ``x`` (an array or a number) is finite.

    Inputs are checked finite on the way in, so a non-finite result is an overflow of float64 on
    the way: ``what`` names the result and ``cause`` says what overflowed. Costs one
    ``np.isfinite`` pass over the result.
    """
    arr = np.asarray(x)
    if not np.isfinite(arr).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0]) if arr.ndim else ()
        at = f" at index {where}" if where else ""
        raise ValueError(f"{what} overflowed float64 ({cause}): got {arr[where]!r}{at}")


_INT32 = np.iinfo(np.int32)

def as_int32_array(x: Any, name: str, ndim: int) -> NDArray[np.int32]:
    """An integer array as C-contiguous int32, refusing other dtypes and values that would wrap."""
    arr = as_array(x, name)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    check_allocation(8 * arr.size, f"{name} of shape {arr.shape} as int32 (converted, then kept)", f"pass a smaller {name}")
    if arr.dtype != np.int32 and arr.size and (int(arr.min()) < _INT32.min or int(arr.max()) > _INT32.max):
        raise ValueError(f"{name} holds values outside the int32 range")
    return np.ascontiguousarray(arr, dtype=np.int32)

MAX_SIZE = 2**31 - 1
"""Upper bound of every state, action, feature and layer count (the C++ core's int32 indices)."""


def check_array_bytes(x: Any, name: str, owner: str) -> None:
    """MemoryError before a large array argument is converted to float64 and copied."""
    size = getattr(x, "size", None)
    if isinstance(size, (int, np.integer)):
        check_allocation(16 * int(size), f"{owner}'s {name} ({int(size)} values, converted and copied)",
                         f"pass smaller {name}")


def array_digest(*arrays: Any) -> str:
    """``"sha256:<hex>"`` of the arrays' dtypes, shapes and bytes, in order (``None`` counts as a
    value of its own): the fingerprints of checkpoints and partial results."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.data)
    return "sha256:" + h.hexdigest()
