r"""
The short corridor: the best state-blind policy is stochastic
=============================================================

In the short corridor with switched actions (Sutton & Barto 2018, *Reinforcement Learning: An
Introduction*, Example 13.1) every step costs -1, and in the second state the actions are
swapped. A policy that cannot tell the states apart goes right with the same probability
:math:`p` everywhere, and its value is

.. math::

    J(p) = \frac{2p - 4}{p(1 - p)},

maximised by the stochastic policy :math:`p^* = 2 - \sqrt 2 \approx 0.586`
(:math:`J(p^*) \approx -11.66`); both deterministic policies never reach the goal. Exact
gradient ascent on the policy's single logit finds :math:`p^*`.
"""

import matplotlib.pyplot as plt
import numpy as np

import pgfast as pg

mdp = pg.envs.short_corridor()
p_star = 2 - np.sqrt(2)

# %%
# The value of every state-blind policy, exactly, against the closed form.

p = np.linspace(0.1, 0.9, 161)
J = np.array([pg.exact.evaluate(mdp, pg.envs.short_corridor_policy(q)).value for q in p])
assert np.allclose(J, (2 * p - 4) / (p * (1 - p)), rtol=0, atol=1e-8)

# %%
# Gradient ascent from :math:`p = 0.1`.

pi = pg.envs.short_corridor_policy(0.1)
opt = pg.optim.GradientAscent(lr=0.01)
path = [pi.probs()[0, 1]]
for _ in range(300):
    opt.step(pi, pg.exact.gradient(mdp, pi))
    path.append(pi.probs()[0, 1])
path = np.array(path)
J_path = np.array([pg.exact.evaluate(mdp, pg.envs.short_corridor_policy(q)).value for q in path])

print(f"p found: {path[-1]:.10f}, 2 - sqrt 2 = {p_star:.10f}")
assert abs(path[-1] - p_star) < 1e-6
assert abs(J_path[-1] - (2 * p_star - 4) / (p_star * (1 - p_star))) < 1e-8

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(p, J, label="$J(p)$")
ax.plot(path[:40], J_path[:40], "o", ms=4, color="C1", label="gradient ascent, first 40 steps")
ax.axvline(p_star, color="gray", ls=":", label=r"$p^* = 2 - \sqrt{2}$")
ax.set_xlabel("probability of going right, $p$")
ax.set_ylabel("value $J(p)$")
ax.set_ylim(-45, -5)
ax.legend()
plt.show()
