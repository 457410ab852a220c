r"""How close a policy's J is to the optimum: the figures ``pgfast train`` and the training
benchmark report.

- :func:`fraction_of_optimal` ("% of optimal"): :math:`J / J^*` when :math:`J^* > 0`, and
  :math:`J^* / J` when :math:`J^* < 0` (rewards that are costs, e.g. CliffWalking's -1 a step: the
  optimal cost over the policy's, in (0, 1] since :math:`J \le J^* < 0`). Both are 1 at the
  optimum and fall as J falls. :math:`J / J^*` alone is meaningless when :math:`J^* < 0` (it
  grows as J gets worse).
- :func:`normalized_score`: :math:`(J - J_u) / (J^* - J_u)`, with :math:`J_u` the exact J of the
  uniform policy: 0 for the uniform policy, 1 at the optimum, for any sign of the rewards. It is
  lenient where the uniform policy is very bad: on Taxi (:math:`J_u \approx -771`,
  :math:`J^* = 7.93`) a policy with J = -31 scores 95 %, and on CliffWalking with horizon 100
  (:math:`J_u \approx -1083`, :math:`J^* = -13`) the safe path's J = -17 scores 99.6 % while it
  is 76 % of optimal. So the targets ("95 % of optimal") use :func:`fraction_of_optimal`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import exact
from ._mdp import FiniteMDP
from ._policy import TabularSoftmax


def fraction_of_optimal(J: float, optimal_J: float) -> float:
    r""":math:`J / J^*` if :math:`J^* > 0`, :math:`J^* / J` if :math:`J^* < 0` (NaN if J = 0 there),
    NaN if :math:`J^* = 0`."""
    if optimal_J > 0:
        return J / optimal_J
    if optimal_J < 0 and J != 0:
        return optimal_J / J
    return math.nan


def normalized_score(J: float, optimal_J: float, uniform_J: float) -> float:
    r""":math:`(J - J_u) / (J^* - J_u)`; NaN when the uniform policy is optimal (:math:`J^* = J_u`)."""
    span = optimal_J - uniform_J
    return (J - uniform_J) / span if span > 0 else math.nan


@dataclass(frozen=True)
class Reference:
    """The exact J of the optimal and of the uniform policy of an MDP (finite-horizon objective)."""

    optimal_J: float
    uniform_J: float

    @classmethod
    def of(cls, mdp: FiniteMDP) -> Reference:
        uniform = TabularSoftmax(mdp.n_states, mdp.n_actions)
        return cls(float(exact.optimal(mdp).value), float(exact.evaluate(mdp, uniform).value))

    def fraction(self, J: float) -> float:
        return fraction_of_optimal(J, self.optimal_J)

    def score(self, J: float) -> float:
        return normalized_score(J, self.optimal_J, self.uniform_J)
