r"""
Baselines and the variance of REINFORCE
=======================================

Subtracting a baseline :math:`b_t(s_t)` from the returns leaves the score-function estimator
unbiased and changes its variance (Williams 1992); so does weighting each score by the
reward-to-go instead of the whole return (the GPOMDP form of Baxter & Bartlett 2001). Greensmith,
Bartlett & Baxter (2004) and Peters & Schaal (2008) give the baseline that minimises the
variance. With rewards of one sign, as here, the estimator without a baseline is by far the
noisiest.

:func:`pgfast.exact.moments` computes the exact mean and covariance of the single-episode
estimator for each choice, so the comparison needs no sampling: here on a Garnet MDP with the
uniform policy.
"""

import matplotlib.pyplot as plt
import numpy as np

import pgfast as pg

mdp = pg.envs.garnet(10, 3, 2, seed=0, horizon=20)
pi = pg.TabularSoftmax(mdp.n_states, mdp.n_actions)
grad = pg.exact.gradient(mdp, pi)

estimators = {
    "return": [None, "mean", "optimal"],
    "reward_to_go": [None, "mean", "time", "exact", "optimal"],
}
trace = {}
for weights, baselines in estimators.items():
    for baseline in baselines:
        m = pg.exact.moments(mdp, pi, weights=weights, baseline=baseline)
        assert np.allclose(m.mean, grad, rtol=1e-9, atol=1e-12)  # every baseline is unbiased
        trace[weights, baseline] = m.trace
        print(f"{weights:>12} baseline={baseline!s:>8}: tr Cov = {m.trace:9.3f}, "
              f"tr Cov / |grad J|^2 = {m.noise_to_signal:8.2f}")

# %%
# Every baseline below the estimator without one; the optimal constant of the return
# estimator below the mean return :math:`b = J` (it minimises each coordinate's variance
# over constants); reward-to-go below the whole return.

for weights, baselines in estimators.items():
    for baseline in baselines[1:]:
        assert trace[weights, baseline] < trace[weights, None]
assert trace["return", "optimal"] <= trace["return", "mean"]
assert trace["reward_to_go", None] < trace["return", None]

fig, ax = plt.subplots(figsize=(7, 4))
x = 0
for color, (weights, baselines) in zip(["C0", "C1"], estimators.items(), strict=True):
    xs = np.arange(x, x + len(baselines))
    ax.bar(xs, [trace[weights, b] for b in baselines], color=color, label=weights.replace("_", "-"))
    for xi, b in zip(xs, baselines, strict=True):
        ax.text(xi, trace[weights, b] * 1.1, "none" if b is None else b, ha="center", fontsize=8)
    x += len(baselines) + 1
ax.set_xticks([])
ax.set_yscale("log")
ax.set_ylabel(r"$\mathrm{tr}\,\mathrm{Cov}[\hat g]$ of one episode")
ax.legend(title="weights")
plt.show()
