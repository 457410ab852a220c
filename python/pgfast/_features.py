"""Feature maps of continuous observations, phi(x), shared by the policies on observations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import as_float_array

FeatureSpec = str | Callable[[NDArray[np.float64]], Any] | None

#: The named feature maps: ``None`` / ``"identity"``: phi(x) = x; ``"affine"``: (x, 1);
#: ``"quadratic"``: (1, x, x_i x_j for i <= j).
NAMED_FEATURES = ("identity", "affine", "quadratic")


def _quadratic(x: NDArray[np.float64]) -> NDArray[np.float64]:
    n = x.shape[-1]
    i, j = np.triu_indices(n)
    ones = np.ones((*x.shape[:-1], 1))
    return np.concatenate([ones, x, x[..., i] * x[..., j]], axis=-1)


class FeatureMap:
    """A feature map phi: (..., obs_dim) -> (..., dim), checked once on a probe observation."""

    __slots__ = ("spec", "obs_dim", "dim", "_fn")

    def __init__(self, spec: FeatureSpec, obs_dim: int) -> None:
        self.spec = spec
        self.obs_dim = obs_dim
        fn: Callable[[NDArray[np.float64]], Any] | None
        if spec is None or spec == "identity":
            fn = None
            self.dim = obs_dim
        elif spec == "affine":
            fn = lambda x: np.concatenate([x, np.ones((*x.shape[:-1], 1))], axis=-1)  # noqa: E731
            self.dim = obs_dim + 1
        elif spec == "quadratic":
            fn = _quadratic
            self.dim = 1 + obs_dim + obs_dim * (obs_dim + 1) // 2
        elif isinstance(spec, str):
            raise ValueError(f"features must be None, one of {list(NAMED_FEATURES)} or a callable, got {spec!r}")
        elif callable(spec):
            fn = spec
            probe = self._call(fn, np.zeros((2, obs_dim)))
            if probe.ndim != 2 or probe.shape[0] != 2 or probe.shape[1] < 1:
                raise ValueError(
                    f"features must map an (N, obs_dim) array to an (N, dim) array, got shape {probe.shape} for N = 2"
                )
            self.dim = int(probe.shape[1])
        else:
            raise TypeError(f"features must be None, a name in {list(NAMED_FEATURES)} or a callable, got {type(spec).__name__}")
        self._fn = fn

    @property
    def identity(self) -> bool:
        """True when phi(x) = x (the compiled samplers need it)."""
        return self._fn is None

    @staticmethod
    def _call(fn: Callable[[NDArray[np.float64]], Any], x: NDArray[np.float64]) -> NDArray[np.float64]:
        out = as_float_array(fn(x), "features(x)")
        return out

    def __call__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """phi(x) for x of shape (..., obs_dim): shape (..., dim)."""
        if self._fn is None:
            return x
        flat = x.reshape(-1, self.obs_dim)
        out = self._call(self._fn, flat)
        if out.shape != (flat.shape[0], self.dim):
            raise ValueError(f"features returned shape {out.shape}, expected ({flat.shape[0]}, {self.dim})")
        return out.reshape(*x.shape[:-1], self.dim)

    def __repr__(self) -> str:
        return "None" if self.spec is None else repr(self.spec)
