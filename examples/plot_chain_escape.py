r"""
Softmax policy gradient's slow escape from a poor start, and natural gradient's fast one
========================================================================================

Li, Wei, Chi, Gu & Chen (2021, "Softmax policy gradient methods can take exponential time to
converge") build an MDP on which exact softmax policy gradient, even from the uniform policy,
stalls on one plateau after another: a state's best action only starts to look good once the
states it leads to have learned theirs. :func:`pgfast.envs.chain` is that mechanism in its
smallest form: from :func:`pgfast.envs.chain_bad_init`, where every position prefers to quit, the
positions learn to advance one at a time, nearest the goal first. On this small chain the stall
grows like a low power of its length (local log-log slopes 2.0 to 3.1 for n = 1, ..., 6), not
exponentially as on Li et al.'s much larger instance.

The natural policy gradient, :math:`\pi_{t+1}(a|s) \propto \pi_t(a|s)\,
e^{\eta A_t(s,a)/(1-\gamma)}` (Kakade 2001; Agarwal, Kakade, Lee & Mahajan 2021), rescales each
state's step by the policy's own sensitivity and does not wait on the plateaus: from the same
start it reaches the same sub-optimality gap in a small fraction of the iterations.
"""

import matplotlib.pyplot as plt
import numpy as np

import pgfast as pg

n = 6
mdp = pg.envs.chain(n, gamma=0.9)
J_star = pg.exact.optimal(mdp, "discounted").value


def run(optimizer, target=0.01):
    """Exact updates from the poor start until J* - J <= target: the values J_t and the
    probabilities of advancing in each position."""
    pi = pg.TabularSoftmax(n + 1, 2, theta=pg.envs.chain_bad_init(n))
    J, advance = [], []
    while True:
        grad, ev = pg.exact.gradient(mdp, pi, "discounted", return_evaluation=True)
        J.append(ev.value)
        advance.append(pi.probs()[:n, 0])
        if J_star - ev.value <= target:
            return np.array(J), np.array(advance)
        optimizer.step(pi, grad, mdp=mdp)  # natural PG takes the exact advantages from the MDP


J_pg, advance_pg = run(pg.optim.GradientAscent(lr=1.0))
J_npg, _ = run(pg.optim.NaturalPolicyGradient(lr=0.1))
print(f"iterations to J* - J <= 0.01: policy gradient {len(J_pg) - 1}, natural policy gradient {len(J_npg) - 1}")
assert 20 * len(J_npg) < len(J_pg)

# %%
# The plateaus: position k waits for position k - 1 before it learns to advance. The iteration
# at which it first advances with probability 0.1 grows with k.

escape = [int(np.argmax(advance_pg[:, k] > 0.1)) for k in range(n)]
print("policy gradient, iteration at which position k = 1..n escapes:", escape)
assert escape[0] > 0 and np.all(np.diff(escape) > 0)

fig, (ax_gap, ax_pi) = plt.subplots(1, 2, figsize=(10, 4))
pg.plot.gap({"softmax policy gradient": J_pg, "natural policy gradient": J_npg}, J_star, ax=ax_gap)
ax_gap.axhline(0.01, color="gray", ls=":")
for k in range(n):
    ax_pi.semilogx(np.arange(1, len(J_pg) + 1), advance_pg[:, k], label=f"position {k + 1}")
ax_pi.set_xlabel("iteration of softmax policy gradient")
ax_pi.set_ylabel(r"$\pi(\mathrm{advance} \mid k)$")
ax_pi.legend(fontsize=8)
fig.tight_layout()
plt.show()
