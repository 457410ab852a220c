"""What every benchmark suite shares: the workloads, the options, the allocator and BLAS set-up,
the machine description, the header line, the run-and-print wrapper and the JSON envelope.

Importing this module changes nothing in the process: :func:`single_thread_environment`,
:func:`single_threaded_blas` and :func:`reuse_freed_memory` are called by the suites' ``main``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import pgfast as pg

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# -- workloads ----------------------------------------------------------------------------------


def frozenlake(horizon: int = 200) -> pg.FiniteMDP:
    """FrozenLake 8x8, slippery (gymnasium's default), holes and goal terminal."""
    return pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="8x8", horizon=horizon)


def random_mdp(
    n_states: int = 500, n_actions: int = 8, n_successors: int = 10, horizon: int = 100, seed: int = 0
) -> pg.FiniteMDP:
    """S states, A actions, ``n_successors`` distinct successors per (s, a) with Dirichlet(1)
    probabilities, rewards N(0, 1) on (s, a), uniform mu0, no terminal states."""
    rng = np.random.default_rng(seed)
    S, A, K = n_states, n_actions, n_successors
    succ = np.argsort(rng.random((S * A, S)), axis=1)[:, :K]  # K distinct successors per row
    P = np.zeros((S * A, S))
    P[np.arange(S * A)[:, None], succ] = rng.dirichlet(np.ones(K), size=S * A)
    R = rng.normal(size=(S, A))
    return pg.FiniteMDP(P.reshape(S, A, S), R, np.full(S, 1.0 / S), horizon=horizon)


# -- process set-up -----------------------------------------------------------------------------


def single_thread_environment() -> None:
    """Sets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` to 1 where they
    are unset: the NumPy yardsticks are single-threaded, and child processes inherit the setting."""
    for var in _THREAD_VARIABLES:
        os.environ.setdefault(var, "1")


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep and reuse freed memory: no fresh mmap for blocks up to 32 MiB
    (the largest output here is 26 MB) and no trimming of the heap.

    Each call of either sampler allocates its (N, H) outputs; by default glibc hands large
    blocks back to the kernel on free, so the next call pays first-touch page faults (for
    FrozenLake N = 16384, 52 MB of outputs: pgfast 1T fell from ~91 to ~56 M steps/s and 2T
    from ~174 to ~85, and the figures depended on the order of the calls). With reuse the
    benchmark measures the samplers, not the kernel. False if this is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False


# -- report -------------------------------------------------------------------------------------


def git_state() -> str | None:
    """``git describe --always --dirty`` of the source tree this module runs from, if it is one."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def add_bench_arguments(parser: argparse.ArgumentParser, default_json: Path | None, quick_help: str,
                        *, malloc: bool = True) -> None:
    """The options every benchmark takes: --quick, --default-malloc (unless ``malloc=False``), --json."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    if malloc:
        parser.add_argument(
            "--default-malloc", action="store_true",
            help="leave glibc's malloc as it is (freed outputs go back to the kernel: page faults timed)",
        )
    parser.add_argument("--json", type=Path, default=default_json,
                        help=f"where to save the results as JSON (default: {default_json or 'not saved'})")


# Thread-count setters of the BLAS libraries NumPy wheels bundle (OpenBLAS, as scipy-openblas).
_BLAS_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
                 "openblas_set_num_threads")


def single_threaded_blas() -> bool:
    """Runs NumPy's BLAS on one thread from now on; True if a loaded BLAS was told so.

    The NumPy yardsticks are single-threaded, and a multi-threaded BLAS also leaves its threads
    spinning on the other cores after each product, where they compete with pgfast's 2-thread
    calls (measured: MLP 2T/1T 1.00 instead of 1.66). ``OPENBLAS_NUM_THREADS=1`` only works if set
    before NumPy loads, which ``import pgfast`` has already done, so the loaded library's own
    setter is called (Linux: the libraries mapped into this process; elsewhere nothing is done).
    """
    single_thread_environment()  # for child processes
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
            mapped = {fields[-1] for fields in (line.split() for line in f) if len(fields) >= 6}
        libs = sorted(p for p in mapped if "blas" in os.path.basename(p).lower() and ".so" in p)
    except OSError:
        return False
    done = False
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(1)
                done = True
                break
    return done


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    try:
        import gymnasium

        gym_version = gymnasium.__version__
    except ImportError:  # pragma: no cover
        gym_version = None
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gymnasium": gym_version,
        "pgfast": pg.__version__,
        "build_info": pg.build_info(),
        "git": git_state(),
    }


def header_line(info: dict[str, Any], reused: bool) -> str:
    """The first line every benchmark prints: versions, CPU, allocator mode."""
    libs = " | ".join(f"{k} {info[k]}" for k in ("pgfast", "numpy", "scipy", "python") if k in info)
    return (f"{libs} | {info['cpu']} ({info['usable_cpus']} usable CPUs) | "
            f"malloc: {'reuse freed memory' if reused else 'default'}")


def load_average() -> float:
    """The 1-minute load average (NaN where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        return float("nan")


def run_and_print(
    run: Callable[[], list[dict[str, Any]]],
    format_table: Callable[[list[dict[str, Any]]], str],
    info: dict[str, Any],
    reused: bool,
    *,
    load_share: str | None = None,
) -> list[dict[str, Any]]:
    """What every benchmark's main does around its suite: prints the header line, runs the suite,
    prints its table and the seconds it took, and returns the rows.

    With ``load_share`` (what the run itself adds to the 1-minute load average, e.g. ``"about 1"``)
    the load average before and after is printed too and recorded in ``info["load_average_1min"]``:
    more than the run's share means other work on the machine, which shows up in the timings.
    """
    info["blas_single_threaded"] = single_threaded_blas()
    print(header_line(info, reused))
    load_before = load_average()
    t0 = time.perf_counter()
    rows = run()
    elapsed = time.perf_counter() - t0
    load_after = load_average()
    print(format_table(rows))
    if load_share is None:
        print(f"\n({elapsed:.1f} s)")
    else:
        print(f"\n({elapsed:.1f} s; 1-minute load average {load_before:.2f} before, {load_after:.2f} after: this run "
              f"counts {load_share}, more means other work on the machine, which shows up in the timings)")
        info["load_average_1min"] = {"before": load_before, "after": load_after}
    return rows


def result_envelope(
    name: str, prog: str, argv: Sequence[str] | None, quick: bool, info: dict[str, Any]
) -> dict[str, Any]:
    """The JSON fields every benchmark records before its protocol, targets and rows."""
    return {
        "benchmark": name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([prog, *(argv if argv is not None else sys.argv[1:])]),
        "quick": quick,
        "machine": info,
    }


def save_result(path: Path | None, result: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(f"saved {path}")
