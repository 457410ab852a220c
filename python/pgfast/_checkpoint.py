"""Checkpoints of :func:`pgfast.train` (see :doc:`/guide/train`, "Checkpoints and resuming").

A checkpoint is one NumPy ``.npz`` archive that loads with ``allow_pickle=False``: the arrays
(``theta``, the History so far, the array entries of the optimizer's state such as Adam's
moments, a fitted ValueBaseline's table) and a JSON document (the entry ``checkpoint.json``,
UTF-8 bytes) with the iteration reached, the seed, the rest of the optimizer's state and the
fingerprint of the options a resumed run must share. It is written to a temporary file in the
same directory, flushed to disk and renamed over the previous one, so an interruption or a crash
during a write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._estimators import ValueBaseline
from ._mdp import FiniteMDP
from ._policy import SoftmaxPolicy
from ._validation import array_digest, as_seed
from .optim import Optimizer

FORMAT = "pgfast.train checkpoint"
VERSION = 1
_DOC = "checkpoint.json"  # the archive entry that holds the JSON document
_ARRAY = "__ndarray__"  # an optimizer state entry saved as the archive entry it names

Seed = int | np.random.SeedSequence


class State(NamedTuple):
    """What a run needs after ``iteration`` completed iterations (besides the History)."""

    iteration: int
    theta: NDArray[np.float64]
    optimizer: dict[str, Any]
    baseline: NDArray[np.float64] | None  # a ValueBaseline's table; None: no ValueBaseline, or not fitted


class Loaded(NamedTuple):
    state: State
    seed: Seed
    options: dict[str, Any]
    history: NDArray[np.float64]  # (iteration, len(fields))


# -- seeds ------------------------------------------------------------------------------------


def seed_spec(seed: Seed) -> int | dict[str, Any]:
    """The seed as JSON: the int, or a SeedSequence's entropy, spawn_key and pool_size."""
    if isinstance(seed, np.random.SeedSequence):
        e: Any = seed.entropy
        entropy = int(e) if isinstance(e, (int, np.integer)) else [int(x) for x in np.asarray(e).ravel().tolist()]
        return {"entropy": entropy, "spawn_key": [int(k) for k in seed.spawn_key], "pool_size": int(seed.pool_size)}
    return int(seed)


def as_train_seed(seed: Any) -> Seed:
    """A SeedSequence as it is, or an int seed in [0, 2**64) (None: fresh entropy from the system)."""
    return seed if isinstance(seed, np.random.SeedSequence) else as_seed(seed)


def _seed_from_spec(spec: Any) -> Seed:
    if isinstance(spec, dict):
        return np.random.SeedSequence(spec["entropy"], spawn_key=tuple(spec["spawn_key"]), pool_size=spec["pool_size"])
    if isinstance(spec, int) and not isinstance(spec, bool):
        return spec
    raise ValueError(f"the seed {spec!r} is neither an int nor a SeedSequence's entropy and spawn_key")


# -- the options a resumed run must share ----------------------------------------------------




def _describe(value: Any) -> Any:
    """A JSON-safe description of a setting (an array by its digest)."""
    if isinstance(value, np.ndarray):
        return array_digest(value)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_describe(v) for v in value]
    return "callable" if callable(value) else type(value).__qualname__


def fingerprint(
    mdp: FiniteMDP,
    policy: SoftmaxPolicy,
    optimizer: Optimizer,
    *,
    batch: int,
    weights: str,
    baseline: Any,
    gamma: float,
    exact_eval: bool,
    eval_every: int,
) -> dict[str, Any]:
    """The options that a run resumed from a checkpoint must share with the run that wrote it
    (``iterations`` and ``threads`` may differ), as a flat JSON-safe dict."""
    indptr, nxt, prob, reward = mdp.transitions
    out: dict[str, Any] = {
        "mdp.n_states": mdp.n_states, "mdp.n_actions": mdp.n_actions, "mdp.horizon": mdp.horizon,
        "mdp.gamma": mdp.gamma, "mdp.arrays": array_digest(indptr, nxt, prob, reward, mdp.mu0, mdp.terminal),
        "policy.class": type(policy).__qualname__, "policy.theta.shape": list(policy.theta.shape),
    }
    for key, value in sorted(policy.__getstate__().items()):  # its structure: features, layers, ...
        if key != "_theta":
            out[f"policy.{key.lstrip('_')}"] = _describe(value)
    state = optimizer._snapshot()
    out["optimizer.class"] = type(optimizer).__qualname__
    for key in optimizer.hyperparameters:
        out[f"optimizer.{key}"] = _describe(state.get(key))
    if isinstance(baseline, ValueBaseline):
        out.update({"baseline": "value", "baseline.n_states": baseline.n_states, "baseline.horizon": baseline.horizon,
                    "baseline.ridge": baseline.ridge, "baseline.features": _describe(baseline.features)})
    else:
        out["baseline"] = None if baseline is None or baseline == "none" else str(baseline)
    out.update({"batch": batch, "weights": weights, "gamma": gamma, "exact_eval": exact_eval, "eval_every": eval_every})
    normalised: dict[str, Any] = json.loads(json.dumps(out))  # tuples become lists, as in a loaded checkpoint
    return normalised


def check_options(saved: dict[str, Any], given: dict[str, Any], path: Any) -> None:
    """ValueError naming every option of this run that differs from the checkpoint's."""
    missing = object()

    def show(v: Any) -> str:
        return "(absent)" if v is missing else repr(v)

    diffs = []
    for key in [*given, *(k for k in saved if k not in given)]:
        a, b = given.get(key, missing), saved.get(key, missing)
        if a == b:
            continue
        if isinstance(a, str) and isinstance(b, str) and a.startswith("sha256:") and b.startswith("sha256:"):
            diffs.append(f"{key} differ")
        else:
            diffs.append(f"{key} is {show(a)} here, {show(b)} in the checkpoint")
    if diffs:
        raise ValueError(f"resume={str(path)!r}: the run's options differ from the checkpoint's: {'; '.join(diffs)}")


# -- capture and restore ----------------------------------------------------------------------


def capture(iteration: int, policy: SoftmaxPolicy, optimizer: Optimizer, value_baseline: ValueBaseline | None) -> State:
    # a ValueBaseline's table is read-only and replaced whole by each fit: holding it is enough
    table = None if value_baseline is None else value_baseline._table
    return State(iteration, policy.theta.copy(), optimizer._snapshot(), table)


def restore(state: State, policy: SoftmaxPolicy, optimizer: Optimizer, value_baseline: ValueBaseline | None) -> None:
    table = state.baseline
    if value_baseline is not None and table is not None:
        shape = (value_baseline.horizon, value_baseline.n_states)
        if table.shape != shape or not np.isfinite(table).all():
            raise ValueError(f"the ValueBaseline table must be finite with shape {shape}, got shape {table.shape}")
    policy.theta = state.theta
    optimizer.load_state_dict(dict(state.optimizer))
    if value_baseline is not None:
        value_baseline._table = table


# -- the file ---------------------------------------------------------------------------------


def _as_path(x: Any, name: str) -> Path:
    if not isinstance(x, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike) or None, got {type(x).__name__}")
    return Path(x)


def as_output_path(checkpoint: Any) -> Path | None:
    """``checkpoint`` as a Path whose directory exists and is writable (None stays None)."""
    if checkpoint is None:
        return None
    path = _as_path(checkpoint, "checkpoint")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise ValueError(f"checkpoint={str(checkpoint)!r}: the directory {str(path.parent)!r} does not exist or is not writable")
    return path


def _pgfast_version() -> str:
    try:
        return version("pgfast")
    except PackageNotFoundError:  # pragma: no cover
        return "0+unknown"


def save(path: Path, state: State, *, seed: Seed, options: dict[str, Any], history: NDArray[np.float64],
         fields: tuple[str, ...]) -> None:
    """Write the checkpoint atomically (temporary file in the same directory, fsync, rename)."""
    arrays: dict[str, NDArray[Any]] = {"theta": np.ascontiguousarray(state.theta), "history": history}
    opt: dict[str, Any] = {}
    for key, value in state.optimizer.items():
        if isinstance(value, np.ndarray):
            arrays[f"optimizer.{key}"] = value
            opt[key] = {_ARRAY: f"optimizer.{key}"}
        else:
            opt[key] = value
    if state.baseline is not None:
        arrays["baseline.values"] = state.baseline
    doc = {
        "format": FORMAT, "version": VERSION, "pgfast": _pgfast_version(), "iteration": state.iteration,
        "seed": seed_spec(seed), "fields": list(fields), "optimizer": opt, "baseline_fitted": state.baseline is not None,
        "options": options,
    }
    arrays[_DOC] = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    _write_atomic(path, arrays)


def _write_atomic(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # (no key is named allow_pickle)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C or a full disk: the previous checkpoint stays as it was
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself reaches the disk (not possible on every system)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_to_resume(path: Any, *, options: dict[str, Any], seed: Any, iterations: int, fields: tuple[str, ...]) -> Loaded:
    """The checkpoint ``path``, checked against the run that resumes it: the same options and
    seed (None: the checkpoint's), and ``iterations`` at least the iteration it reached."""
    loaded = load(path, fields)
    check_options(loaded.options, options, path)
    if seed is not None:
        given, saved = seed_spec(as_train_seed(seed)), seed_spec(loaded.seed)
        if given != saved:
            raise ValueError(f"resume={str(path)!r}: seed is {given!r} here, {saved!r} in the checkpoint "
                             "(pass seed=None to take the checkpoint's)")
    if loaded.state.iteration > iterations:
        raise ValueError(f"iterations must be >= {loaded.state.iteration}, the iteration the checkpoint {str(path)!r} "
                         f"reached, got {iterations}")
    return loaded


def load(path: Any, fields: tuple[str, ...]) -> Loaded:
    """Read and check a checkpoint; ValueError naming ``resume`` if it is missing or not one."""
    where = f"resume={str(path)!r}"
    p = _as_path(path, "resume")
    if not p.is_file():
        raise ValueError(f"{where}: no such file")
    try:
        with open(p, "rb") as fh:
            archive = np.load(fh, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("an .npy array, not an .npz archive")
            with archive:
                if _DOC not in archive.files:
                    raise ValueError(f"the archive has no {_DOC} entry")
                doc = json.loads(archive[_DOC].tobytes().decode())
                arrays = {k: archive[k] for k in archive.files if k != _DOC}
        return _parse(doc, arrays, fields)
    except KeyError as exc:
        raise ValueError(f"{where}: not a readable pgfast train checkpoint (it lacks the entry {exc})") from None
    except (OSError, ValueError, TypeError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: not a readable pgfast train checkpoint ({exc})") from None


def _parse(doc: Any, arrays: dict[str, NDArray[Any]], fields: tuple[str, ...]) -> Loaded:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"its document is not marked {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise ValueError(f"format version {doc.get('version')!r}; this pgfast reads version {VERSION}")
    saved = doc["fields"]
    # a checkpoint of a version whose History had fewer columns (the first ones of `fields`) loads
    # with NaN in the columns it lacks
    if not isinstance(saved, list) or not saved or saved != list(fields[:len(saved)]):
        raise ValueError(f"its History has the fields {saved}, not {list(fields)}")
    it = doc["iteration"]
    if not isinstance(it, int) or isinstance(it, bool) or it < 0:
        raise ValueError(f"iteration {it!r} is not an int >= 0")
    history = np.asarray(arrays["history"], dtype=np.float64)
    if history.shape != (it, len(saved)):
        raise ValueError(f"its History has shape {history.shape}, not ({it}, {len(saved)})")
    if len(saved) < len(fields):
        history = np.hstack([history, np.full((it, len(fields) - len(saved)), np.nan)])
    opt: dict[str, Any] = {}
    for key, value in doc["optimizer"].items():
        opt[key] = arrays[value[_ARRAY]] if isinstance(value, dict) and _ARRAY in value else value
    table = None
    if doc["baseline_fitted"]:
        table = np.ascontiguousarray(arrays["baseline.values"], dtype=np.float64)
        table.setflags(write=False)
    state = State(it, np.asarray(arrays["theta"], dtype=np.float64), opt, table)
    options = doc["options"]
    if not isinstance(options, dict):
        raise ValueError("its options are not a dict")
    return Loaded(state, _seed_from_spec(doc["seed"]), options, history)


class Saver:
    """Writes ``path`` every ``every`` seconds of wall time (counted from the previous write)."""

    def __init__(self, path: Path, every: float, seed: Seed, options: dict[str, Any], fields: tuple[str, ...]) -> None:
        self.path, self.every, self.seed, self.options, self.fields = path, every, seed, options, fields
        self.last = time.monotonic()
        self.saved = -1  # the iteration of the last write

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every

    def save(self, state: State, records: list[dict[str, float]]) -> None:
        history = np.array([[r[f] for f in self.fields] for r in records], dtype=np.float64).reshape(len(records), len(self.fields))
        save(self.path, state, seed=self.seed, options=self.options, history=history, fields=self.fields)
        self.saved = state.iteration
        self.last = time.monotonic()
