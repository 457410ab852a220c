r"""
Entropy regularisation: the natural policy gradient's linear rate
=================================================================

Cen, Cheng, Chen, Wei & Chi (2022, "Fast global convergence of natural policy gradient methods
with entropy regularization") show that on the entropy-regularised objective :math:`J_\tau`, the
natural policy gradient

.. math::

    \pi_{t+1}(a|s) \propto \pi_t(a|s)^{1 - \eta\tau/(1-\gamma)}\,
    \exp\big(\eta\, Q_\tau^{(t)}(s,a) / (1-\gamma)\big), \qquad 0 < \eta \le (1-\gamma)/\tau,

converges linearly, whatever the size of the MDP (their Theorem 1):

.. math::

    \|Q^*_\tau - Q^{(t+1)}_\tau\|_\infty \le C_1 \gamma (1 - \eta\tau)^t, \qquad
    \|\log\pi^*_\tau - \log\pi^{(t+1)}\|_\infty \le 2 C_1 \tau^{-1} (1 - \eta\tau)^t,

with :math:`C_1 = \|Q^*_\tau - Q^{(0)}_\tau\|_\infty + 2\tau(1 - \frac{\eta\tau}{1-\gamma})
\|\log\pi^*_\tau - \log\pi^{(0)}\|_\infty`. The exact oracles check both bounds at every step on a
Garnet MDP, against the soft optimum of soft value iteration. They also show the rate the
iterates reach near the optimum, faster than the bound's: there the soft action values change only
to second order in the policy, so :math:`\log\pi_t - \log\pi^*_\tau` contracts by
:math:`1 - \eta\tau/(1-\gamma)` per step, and the value gap by its square.
"""

import matplotlib.pyplot as plt
import numpy as np

import pgfast as pg

mdp = pg.envs.garnet(20, 4, 3, seed=0, gamma=0.9)
S, A, gamma, tau = mdp.n_states, mdp.n_actions, mdp.gamma, 0.1
soft = pg.exact.soft_optimal(mdp, tau, "discounted", tol=1e-14)
Q_star, log_pi_star = soft.action_values, np.log(soft.probs())

runs = {}
for alpha in [0.1, 0.3, 0.6]:  # alpha = eta tau / (1 - gamma)
    eta = alpha * (1 - gamma) / tau
    pi = pg.TabularSoftmax(S, A)
    npg = pg.optim.NaturalPolicyGradient(lr=eta, tau=tau)
    q_err, pi_err, gap = [], [], []
    for _ in range(120):
        ev = pg.exact.evaluate(mdp, pi, "discounted", regularizer=pg.Entropy(tau))
        q_err.append(np.abs(Q_star - ev.action_values).max())
        pi_err.append(np.abs(log_pi_star - np.log(pi.probs())).max())
        gap.append(soft.value - ev.value)
        npg.step(pi, np.zeros((S, A)), mdp=mdp)
    runs[eta] = np.array(q_err), np.array(pi_err), np.array(gap)

# %%
# Theorem 1's bounds hold at every step; the log-policy error's slope, fitted where it is
# between 1e-10 and 1e-2, is :math:`\log(1 - \eta\tau/(1-\gamma))`, below the bound's
# :math:`\log(1 - \eta\tau)`, and the value gap's is twice that.

for eta, (q_err, pi_err, gap) in runs.items():
    t = np.arange(1, len(q_err))
    C1 = q_err[0] + 2 * tau * (1 - eta * tau / (1 - gamma)) * pi_err[0]
    assert np.all(q_err[1:] <= C1 * gamma * (1 - eta * tau) ** (t - 1))
    assert np.all(pi_err[1:] <= 2 * C1 / tau * (1 - eta * tau) ** (t - 1))
    fit = (pi_err > 1e-10) & (pi_err < 1e-2)
    slope = np.polyfit(np.flatnonzero(fit), np.log(pi_err[fit]), 1)[0]
    local = np.log(1 - eta * tau / (1 - gamma))
    print(f"eta = {eta:.1f}: slope of log |log pi* - log pi_t| = {slope:.4f}, "
          f"log(1 - eta tau / (1 - gamma)) = {local:.4f}, log(1 - eta tau) = {np.log(1 - eta * tau):.4f}")
    assert abs(slope - local) < 0.01 * abs(local)
    fit = (gap > 1e-10) & (gap < 1e-3)
    slope_gap = np.polyfit(np.flatnonzero(fit), np.log(gap[fit]), 1)[0]
    assert abs(slope_gap - 2 * local) < 0.02 * abs(2 * local)
    assert np.all(gap > -1e-12)  # the soft optimum is optimal

fig, (ax_pi, ax_gap) = plt.subplots(1, 2, figsize=(11, 4))
for color, (eta, (q_err, pi_err, gap)) in zip(["C0", "C1", "C2"], runs.items(), strict=True):
    t = np.arange(len(pi_err))
    C1 = q_err[0] + 2 * tau * (1 - eta * tau / (1 - gamma)) * pi_err[0]
    shown = pi_err > 1e-12
    ax_pi.semilogy(t[shown], pi_err[shown], color=color, label=rf"$\eta = {eta:.1f}$")
    ax_pi.semilogy(t[1:], 2 * C1 / tau * (1 - eta * tau) ** (t[1:] - 1), "--", color=color)
    shown = gap > 1e-12
    ax_gap.semilogy(t[shown], gap[shown], color=color, label=rf"$\eta = {eta:.1f}$")
ax_pi.set_xlabel("iteration $t$")
ax_pi.set_ylabel(r"$\|\log\pi^*_\tau - \log\pi_t\|_\infty$")
ax_pi.plot([], [], "--", color="gray", label="Theorem 1's bound")
ax_pi.legend()
ax_gap.set_xlabel("iteration $t$")
ax_gap.set_ylabel(r"$J^*_\tau - J_\tau(\pi_t)$")
ax_gap.legend()
fig.tight_layout()
plt.show()
