r"""
Paths across the value-function polytope
========================================

The value vectors :math:`(V^\pi(0), V^\pi(1))` of all policies of a two-state MDP fill a polytope
in the plane whose top-right corner is :math:`V^*`, the value of a deterministic policy (Dadashi,
Taïga, Le Roux, Schuurmans & Bellemare 2019, "The value function polytope in reinforcement
learning"). Drawing the iterates of an optimizer in it shows how the method moves: on the
paper's example (its Figure 2 (d)), started near a poor deterministic policy, exact softmax
gradient ascent slows down by a vertex on its way (a near-deterministic policy, where the
softmax's gradient vanishes), while the natural policy gradient (Kakade 2001) and policy mirror
descent with the Euclidean map (Lan 2022; Xiao 2022) pass it. With exact advantages, both of
these improve the value of *every* state at every step (Agarwal, Kakade, Lee & Mahajan 2021;
Xiao 2022). The last panel shows the sub-optimality gap of :math:`J = \mu_0^\top V` of the three
runs.
"""

import matplotlib.pyplot as plt
import numpy as np

import pgfast as pg

mdp = pg.envs.two_state(example="2d")
V_star = pg.exact.optimal(mdp, "discounted").state_values
start = np.array([[0.0, 3.0], [0.0, 3.0]])  # prefers action 1 in both states

optimizers = {
    "gradient ascent": pg.optim.GradientAscent(lr=1.0),
    "natural policy gradient": pg.optim.NaturalPolicyGradient(lr=0.1),
    "mirror descent (Euclidean)": pg.optim.PolicyMirrorDescent(lr=0.1, mirror="euclidean"),
}
paths = {}
for name, opt in optimizers.items():
    pi = pg.TabularSoftmax(2, 2, theta=start)
    V = []
    for _ in range(200):
        grad, ev = pg.exact.gradient(mdp, pi, "discounted", return_evaluation=True)
        V.append(ev.state_values)
        opt.step(pi, grad, mdp=mdp)
    paths[name] = np.array(V)

# %%
# The closed-form updates improve both states' values at every step and reach :math:`V^*`;
# gradient ascent spends many more steps by the vertex of the deterministic policy (1, 0) and is
# still away from :math:`V^*` after as many steps.

vertex = pg.exact.evaluate(mdp, pg.TabularSoftmax(2, 2, theta=[[0.0, 50.0], [50.0, 0.0]]), "discounted").state_values
near, error = {}, {}
for name, V in paths.items():
    near[name] = int(np.sum(np.abs(V - vertex).max(axis=1) < 0.05))
    error[name] = np.abs(V[-1] - V_star).max()
    print(f"{name:>27}: |V_200 - V*| = {error[name]:.1e}, {near[name]} iterates by the vertex")
for name in ["natural policy gradient", "mirror descent (Euclidean)"]:
    assert np.all(np.diff(paths[name], axis=0) >= -1e-12)
    assert error[name] < 1e-6
    assert near["gradient ascent"] > 10 * near[name]
assert error["gradient ascent"] > 1e-3

fig, axes = plt.subplots(2, 2, figsize=(10, 8))
for ax, color, (name, V) in zip(axes.flat, ["C0", "C1", "C2"], paths.items(), strict=False):
    pg.plot.polytope(mdp, paths={name: V}, n_policies=1000, ax=ax)
    for line in ax.get_lines():  # the path, its start and its end
        line.set_color(color)
    ax.plot(V[:, 0], V[:, 1], ".", ms=4, alpha=0.5, color=color)
    ax.legend(fontsize="small")
    # V* dominates every policy's values: the polytope lies below and left of it
    assert np.all(ax.collections[0].get_offsets() <= V_star + 1e-12)
J = {name: V @ mdp.mu0 for name, V in paths.items()}  # J = mu0 . V, mu0 uniform
pg.plot.gap(J, V_star @ mdp.mu0, ax=axes[1, 1])
fig.tight_layout()
plt.show()
