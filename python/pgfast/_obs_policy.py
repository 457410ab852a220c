"""The base of the policies on vector observations (LinearGaussian, ObservationSoftmax): a flat theta and a feature map."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _policy
from ._features import FeatureMap, FeatureSpec
from ._validation import as_float_array, as_int, require_finite


class ObservationPolicy:
    """A policy whose parameters are one flat float64 ``theta`` and whose inputs are observations
    of ``obs_dim`` entries mapped by a :class:`FeatureMap` (assignment to ``theta`` is checked and
    atomic under the policies' lock, like :class:`pgfast.SoftmaxPolicy`'s)."""

    __slots__ = ("_theta", "_theta_accepted", "_obs_dim", "_features", "__weakref__")

    def _init_observations(self, obs_dim: int, features: FeatureSpec) -> None:
        self._obs_dim = as_int(obs_dim, "obs_dim", minimum=1, maximum=2**31 - 1)
        self._features = FeatureMap(features, self._obs_dim)

    def _init_theta(self, theta: NDArray[np.float64]) -> None:
        self._theta = np.array(theta, dtype=np.float64)
        self._theta_accepted = self._theta.copy()

    @property
    def obs_dim(self) -> int:
        """Dimension of the observation."""
        return self._obs_dim

    @property
    def feature_dim(self) -> int:
        """Dimension k of :math:`\\phi(x)`."""
        return self._features.dim

    @property
    def features(self) -> FeatureSpec:
        """The feature map as given (None: the identity)."""
        return self._features.spec

    @property
    def n_params(self) -> int:
        """The length of ``theta``."""
        return int(self._theta.size)

    @property
    def theta(self) -> NDArray[np.float64]:
        """The parameters (their layout is the class's); assigning copies into the policy's array
        (ValueError for another shape or non-finite values, and theta is left as it was)."""
        return self._theta

    @theta.setter
    def theta(self, value: ArrayLike) -> None:
        arr = as_float_array(value, "theta")
        try:
            if arr.shape != self._theta.shape:
                raise ValueError(f"theta must have shape {self._theta.shape}, got {arr.shape}")
            require_finite(arr, "theta")
        except ValueError:
            if np.shares_memory(arr, self._theta):
                with _policy._THETA_LOCK:
                    self._theta[...] = self._theta_accepted
            raise
        with _policy._THETA_LOCK:
            self._theta[...] = arr
            self._theta_accepted = self._theta.copy()

    def _theta_copy(self) -> NDArray[np.float64]:
        with _policy._THETA_LOCK:
            return self._theta.copy()

    def _obs(self, x: Any, name: str = "states") -> NDArray[np.float64]:
        arr = as_float_array(x, name)
        if arr.ndim == 0 or arr.shape[-1] != self._obs_dim:
            raise ValueError(f"{name} must have shape (..., obs_dim) = (..., {self._obs_dim}), got {arr.shape}")
        return arr
