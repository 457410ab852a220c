"""pgfast.envs: the canonical instances.

Each instance's optimal value from :func:`pgfast.exact.optimal` is checked against an independent
computation (a closed form the source states or that follows from the construction, value
iteration or the enumeration of deterministic policies in plain NumPy, gymnasium's own
CliffWalking); the structure (rows are distributions, terminal states, start states), the
reproducibility of Garnet instances by seed, the chain's slow escape from its poor start under
exact gradient ascent, the short corridor's optimum p* = 2 - sqrt(2), and the errors.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import pgfast as pg

EPS = float(np.finfo(np.float64).eps)


def _all_instances() -> list[pg.FiniteMDP]:
    return [
        pg.envs.garnet(12, 3, 4, seed=5),
        pg.envs.chain(5),
        pg.envs.two_state(),
        pg.envs.two_state(example="3"),
        pg.envs.short_corridor(),
        pg.envs.bandit([0.1, 0.9, 0.4]),
        pg.envs.cliff_grid(4, 6)[0],
    ]


def _value_iteration(P: np.ndarray, r: np.ndarray, alive: np.ndarray, gamma: float, iters: int) -> np.ndarray:
    """Optimal discounted values by plain value iteration (terminal states worth 0)."""
    V = np.zeros(P.shape[0])
    for _ in range(iters):
        V = (r + gamma * P @ (alive * V)).max(axis=1) * alive
    return V


def _enumerate_optimum(mdp: pg.FiniteMDP, gamma: float) -> float:
    """The best discounted J over all deterministic policies, each solved by a dense linear system."""
    P, r, S = mdp.P, mdp.R, mdp.n_states
    alive = (~mdp.terminal).astype(float)
    best = -np.inf
    for acts in itertools.product(range(mdp.n_actions), repeat=S):
        Ppi = P[np.arange(S), acts] * alive[None, :]
        V = np.linalg.solve(np.eye(S) - gamma * Ppi, r[np.arange(S), acts])
        best = max(best, float(mdp.mu0 @ V))
    return best


# -- structure -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mdp", _all_instances(), ids=lambda m: repr(m))
def test_rows_are_distributions_and_mu0_avoids_terminal_states(mdp: pg.FiniteMDP) -> None:
    P = mdp.P
    alive = ~mdp.terminal
    np.testing.assert_allclose(P[alive].sum(axis=2), 1.0, rtol=0, atol=8 * EPS * mdp.n_states)
    assert (P >= 0).all()
    assert np.isclose(mdp.mu0.sum(), 1.0) and (mdp.mu0[mdp.terminal] == 0).all()


def test_garnet_structure_and_reproducibility() -> None:
    S, A, b = 30, 4, 5
    mdp = pg.envs.garnet(S, A, b, seed=123, horizon=7, gamma=0.8)
    assert (mdp.n_states, mdp.n_actions, mdp.horizon, mdp.gamma) == (S, A, 7, 0.8)
    assert (np.count_nonzero(mdp.P, axis=2) == b).all()  # b distinct successors per (s, a)
    R = mdp.R  # the expected reward: the state's reward times a row sum of 1 (up to rounding)
    np.testing.assert_allclose(R, np.repeat(R[:, :1], A, axis=1), rtol=8 * b * EPS)
    assert ((R >= 0) & (R < 1 + 8 * b * EPS)).all()  # a U(0, 1) reward per state
    np.testing.assert_array_equal(mdp.mu0, np.full(S, 1.0 / S))
    again = pg.envs.garnet(S, A, b, seed=123, horizon=7, gamma=0.8)
    assert pg._mdp.mdp_digest(mdp) == pg._mdp.mdp_digest(again)  # same seed, same bits
    other = pg.envs.garnet(S, A, b, seed=124, horizon=7, gamma=0.8)
    assert not np.array_equal(mdp.P, other.P) and not np.array_equal(mdp.R, other.R)
    # counter-based streams: fewer actions are a prefix of the same instance
    fewer = pg.envs.garnet(S, 2, b, seed=123)
    np.testing.assert_array_equal(fewer.P, mdp.P[:, :2])
    np.testing.assert_array_equal(fewer.R, mdp.R[:, :2])


def test_garnet_successor_probabilities_are_uniform_on_the_simplex() -> None:
    """With b = 2 the first successor's probability (in index order) is U(0, 1): mean 1/2, variance 1/12."""
    mdp = pg.envs.garnet(400, 5, 2, seed=9)
    P = mdp.P.reshape(-1, 400)
    first = np.array([row[np.nonzero(row)[0][0]] for row in P])
    n = first.size
    assert abs(first.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    assert abs(first.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / n)  # Var of (U - 1/2)^2 is 1/180


def test_chain_structure() -> None:
    n, g = 5, 0.8
    mdp = pg.envs.chain(n, gamma=g)
    P, R = mdp.P, mdp.R
    assert mdp.terminal.tolist() == [False] * n + [True]
    assert P[0, 0, n] == 1 and R[0, 0] == 1  # advancing from position 1 reaches the goal
    for s in range(1, n):
        assert P[s, 0, s - 1] == 1 and R[s, 0] == 0
    assert (P[:n, 1, n] == 1).all()
    k = np.arange(1, n + 1)
    np.testing.assert_allclose(R[:n, 1], k / (k + 1) * g ** (k - 1), rtol=4 * EPS)
    # the trap: quitting beats advancing into a position that quits, yet advancing is optimal
    assert (R[1:n, 1] > g * R[: n - 1, 1]).all() and (R[:n, 1] < g ** (k - 1)).all()


def test_bad_init_shapes() -> None:
    theta = pg.envs.chain_bad_init(4, strength=3.0)
    assert theta.shape == (5, 2) and (theta[:4] == [0.0, 3.0]).all() and (theta[4] == 0).all()
    pi = pg.TabularSoftmax(5, 2, theta=theta)
    np.testing.assert_allclose(pi.probs()[:4, 0], 1 / (1 + np.exp(3.0)), rtol=1e-15)


def test_short_corridor_structure() -> None:
    mdp = pg.envs.short_corridor()
    P = mdp.P
    assert mdp.terminal.tolist() == [False, False, False, True] and mdp.mu0.tolist() == [1, 0, 0, 0]
    assert P[0, 0, 0] == P[0, 1, 1] == 1  # left at the start stays
    assert P[1, 0, 2] == P[1, 1, 0] == 1  # switched
    assert P[2, 0, 1] == P[2, 1, 3] == 1
    assert (mdp.R[:3] == -1).all()


def test_cliff_grid_is_gymnasiums_cliff_walking() -> None:
    mine, shape = pg.envs.cliff_grid()
    gym = pg.FiniteMDP.from_gymnasium("CliffWalking-v1", horizon=100)
    assert shape == (4, 12)
    np.testing.assert_array_equal(mine.P, gym.P)
    np.testing.assert_array_equal(mine.R, gym.R)
    np.testing.assert_array_equal(mine.mu0, gym.mu0)
    np.testing.assert_array_equal(mine.terminal, gym.terminal)


def test_cliff_grid_other_shapes() -> None:
    mdp, shape = pg.envs.cliff_grid(3, 5, cliff_reward=-10.0)
    assert shape == (3, 5) and mdp.n_states == 15
    assert mdp.terminal.nonzero()[0].tolist() == [14] and mdp.mu0.argmax() == 10
    assert mdp.P[10, 1, 10] == 1 and mdp.R[10, 1] == -10  # right from the start: into the cliff, back
    assert mdp.P[5, 2, 10] == 1 and mdp.R[5, 2] == -1  # down onto the start


def test_bandit_structure() -> None:
    mdp = pg.envs.bandit([1.0, -2.0])
    assert (mdp.n_states, mdp.n_actions, mdp.horizon) == (1, 2, 1)
    np.testing.assert_array_equal(mdp.R, [[1.0, -2.0]])
    traj = mdp.sample(pg.TabularSoftmax(1, 2), 64, seed=0)
    np.testing.assert_array_equal(traj.rewards[:, 0], np.where(traj.actions[:, 0] == 0, 1.0, -2.0))


# -- optimal values --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_garnet_optimum_against_value_iteration(seed: int) -> None:
    mdp = pg.envs.garnet(20, 4, 3, seed=seed, gamma=0.9)
    best = pg.exact.optimal(mdp, "discounted")
    V = _value_iteration(mdp.P, mdp.R, np.ones(20), 0.9, 600)  # 0.9**600 ~ 1e-28: converged
    np.testing.assert_allclose(best.state_values, V, rtol=1e-12)
    assert best.value == pytest.approx(float(mdp.mu0 @ V), rel=1e-12)


@pytest.mark.parametrize("n", [1, 3, 6])
@pytest.mark.parametrize("gamma", [0.5, 0.9, 1.0])
def test_chain_optimum_closed_form(n: int, gamma: float) -> None:
    mdp = pg.envs.chain(n, gamma=gamma, horizon=n + 2)
    closed = float(np.mean(gamma ** np.arange(n)))
    fh = pg.exact.optimal(mdp)  # the finite horizon reaches the goal from every position
    assert fh.value == pytest.approx(closed, rel=1e-14)
    assert (fh.actions[0, :n] == 0).all()
    if gamma < 1:
        disc = pg.exact.optimal(mdp, "discounted")
        assert disc.value == pytest.approx(closed, rel=1e-12) and (disc.actions[:n] == 0).all()


@pytest.mark.parametrize("example", sorted(pg.envs.TWO_STATE_EXAMPLES))
def test_two_state_optimum_against_enumeration(example: str) -> None:
    mdp = pg.envs.two_state(example=example)
    rows, r, g = pg.envs.TWO_STATE_EXAMPLES[example]
    assert mdp.gamma == g and mdp.n_actions == len(r) // 2
    np.testing.assert_array_equal(mdp.P.reshape(-1, 2), rows)
    np.testing.assert_allclose(mdp.R.ravel(), r, rtol=4 * EPS)  # sum_s' P R: rows sum to 1 up to rounding
    best = pg.exact.optimal(mdp, "discounted")
    assert best.value == pytest.approx(_enumerate_optimum(mdp, g), rel=1e-12)


def test_two_state_custom_rows() -> None:
    P = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [0.2, 0.8]]  # A = 3
    mdp = pg.envs.two_state(P, [0.0, 1.0, 0.2, 0.3, 0.0, -1.0], gamma=0.5)
    assert (mdp.n_actions, mdp.gamma) == (3, 0.5)
    assert pg.exact.optimal(mdp, "discounted").value == pytest.approx(_enumerate_optimum(mdp, 0.5), rel=1e-12)


def test_short_corridor_tabular_optimum_sees_the_states() -> None:
    best = pg.exact.optimal(pg.envs.short_corridor())
    assert best.value == -3.0  # right, left (switched: moves right), right
    assert best.actions[0, :3].tolist() == [1, 0, 1]


def test_short_corridor_state_blind_values_match_the_book() -> None:
    """J(p) = -(4 - 2p) / (p (1 - p)) for the policy going right with probability p in every state."""
    mdp = pg.envs.short_corridor()
    for p in (0.1, 0.3, 2 - np.sqrt(2), 0.8, 0.95):
        J = pg.exact.evaluate(mdp, pg.envs.short_corridor_policy(p)).value
        assert J == pytest.approx(-(4 - 2 * p) / (p * (1 - p)), rel=1e-10)


def test_short_corridor_gradient_ascent_finds_p_star() -> None:
    mdp = pg.envs.short_corridor()
    pi = pg.envs.short_corridor_policy(0.1)
    for _ in range(2000):
        g = pg.exact.gradient(mdp, pi)
        pi.theta = pi.theta + 0.05 * g
        if np.abs(g).max() < 1e-11:
            break
    p = float(pi.probs()[0, 1])
    assert p == pytest.approx(2 - np.sqrt(2), abs=1e-9)
    assert np.allclose(pi.probs(), pi.probs()[0])  # the same in every state
    assert pg.exact.evaluate(mdp, pi).value == pytest.approx(-(4 - 2 * p) / (p * (1 - p)), rel=1e-10)


def test_bandit_optimum() -> None:
    means = np.array([0.3, -1.0, 0.7, 0.69])
    assert pg.exact.optimal(pg.envs.bandit(means)).value == 0.7
    assert pg.exact.optimal(pg.envs.bandit(means, horizon=5)).value == pytest.approx(3.5, rel=1e-15)
    disc = pg.exact.optimal(pg.envs.bandit(means, gamma=0.9), "discounted")
    assert disc.value == pytest.approx(7.0, rel=1e-12) and int(disc.actions[0]) == 2


@pytest.mark.parametrize("rows,cols", [(4, 12), (2, 3), (5, 4)])
def test_cliff_grid_optimum(rows: int, cols: int) -> None:
    mdp, _ = pg.envs.cliff_grid(rows, cols)
    assert pg.exact.optimal(mdp).value == -(cols + 1)  # up, along the edge, down
    disc = pg.exact.optimal(mdp, "discounted", gamma=0.9)
    closed = -sum(0.9**t for t in range(cols + 1))
    assert disc.value == pytest.approx(closed, rel=1e-12)


# -- the chain's slow escape -----------------------------------------------------------------------


def _steps_to_near_optimal(mdp: pg.FiniteMDP, theta: np.ndarray, lr: float, gap: float, max_steps: int) -> int:
    """Steps of exact gradient ascent (discounted) until J* - J <= gap; max_steps if never."""
    pi = pg.TabularSoftmax(mdp.n_states, mdp.n_actions, theta=theta)
    J_star = pg.exact.optimal(mdp, "discounted").value
    for step in range(max_steps):
        g, ev = pg.exact.gradient(mdp, pi, "discounted", return_evaluation=True)
        if J_star - ev.value <= gap:
            return step
        pi.theta = pi.theta + lr * g
    return max_steps


def test_chain_escape_from_the_bad_init_is_slow() -> None:
    """From chain_bad_init, exact softmax gradient ascent needs many times the steps it needs from
    the uniform policy, and the ratio grows with the length of the chain."""
    ratios = []
    for n in (3, 6):
        mdp = pg.envs.chain(n)
        bad = _steps_to_near_optimal(mdp, pg.envs.chain_bad_init(n), 1.0, 0.01, 50_000)
        uniform = _steps_to_near_optimal(mdp, np.zeros((n + 1, 2)), 1.0, 0.01, 50_000)
        assert bad < 50_000 and uniform < 50_000  # both do converge
        ratios.append(bad / uniform)
    assert ratios[0] > 4 and ratios[1] > 10
    assert ratios[1] > 2 * ratios[0]


def test_chain_positions_escape_one_at_a_time() -> None:
    """From the poor start, position k (state k - 1) comes to prefer advancing only after position
    k - 1 has: the first steps at which pi(advance) passes 1/2 increase along the chain."""
    n = 5
    mdp = pg.envs.chain(n)
    pi = pg.TabularSoftmax(n + 1, 2, theta=pg.envs.chain_bad_init(n))
    first = np.full(n, -1)
    for step in range(30_000):
        advance = pi.probs()[:n, 0]
        first[(first < 0) & (advance > 0.5)] = step
        if (first >= 0).all():
            break
        pi.theta = pi.theta + pg.exact.gradient(mdp, pi, "discounted")
    assert (first >= 0).all() and (np.diff(first) > 0).all(), first


def test_chain_slowdown_grows_polynomially_and_natural_gradient_escapes_fast() -> None:
    """The iterations softmax gradient ascent needs from chain_bad_init grow like a low power of
    n, not geometrically: the ratio between consecutive lengths falls, and the local log-log
    slope stays between 2 and 4. The natural policy gradient from the same start needs a tenth
    of them or fewer."""
    sizes = (2, 3, 4, 5)
    pg_steps, npg_steps = [], []
    for n in sizes:
        mdp = pg.envs.chain(n)
        pg_steps.append(_steps_to_near_optimal(mdp, pg.envs.chain_bad_init(n), 1.0, 0.01, 20_000))
        pi = pg.TabularSoftmax(n + 1, 2, theta=pg.envs.chain_bad_init(n))
        J = pg.optim.NaturalPolicyGradient(lr=0.1).run(pi, mdp, 1000)
        reached = np.flatnonzero(pg.exact.optimal(mdp, "discounted").value - J <= 0.01)
        assert reached.size > 0
        npg_steps.append(int(reached[0]))
    steps = np.array(pg_steps, dtype=float)
    assert steps[-1] < 20_000
    ratios = steps[1:] / steps[:-1]
    assert np.all(ratios > 1) and np.all(np.diff(ratios) < 0), ratios
    slopes = np.log(ratios) / np.log(np.array(sizes[1:]) / np.array(sizes[:-1]))
    assert np.all((slopes > 2) & (slopes < 4)), slopes
    assert np.all(10 * np.array(npg_steps) < steps), (npg_steps, pg_steps)


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: pg.envs.garnet(5, 2, 6, seed=0), ValueError, "branching must be at most n_states = 5"),
        (lambda: pg.envs.garnet(0, 2, 1, seed=0), ValueError, "n_states must be >= 1"),
        (lambda: pg.envs.garnet(5, 2, 2, seed=None), TypeError, "seed must be an integer"),
        (lambda: pg.envs.garnet(5, 2, 2, seed=-1), ValueError, "seed must be >= 0"),
        (lambda: pg.envs.garnet(5, 2.0, 2, seed=0), TypeError, "n_actions must be an integer"),
        (lambda: pg.envs.garnet(5, 2, 2, seed=0, gamma=1.5), ValueError, "gamma must be in"),
        (lambda: pg.envs.garnet(10**5, 100, 2, seed=0), MemoryError, "bytes"),
        (lambda: pg.envs.chain(0), ValueError, "n must be >= 1"),
        (lambda: pg.envs.chain(3, gamma=0.0), ValueError, r"gamma must be in \(0, 1\]"),
        (lambda: pg.envs.chain(3, horizon=0), ValueError, "horizon must be >= 1"),
        (lambda: pg.envs.chain_bad_init(3, strength=-1.0), ValueError, "strength must be finite"),
        (lambda: pg.envs.chain_bad_init(3, strength="big"), TypeError, "strength must be a real number"),
        (lambda: pg.envs.two_state(example="2e"), ValueError, "example must be one of"),
        (lambda: pg.envs.two_state(example=0), TypeError, "example must be a string"),
        (lambda: pg.envs.two_state([[1.0, 0.0]] * 4), ValueError, "give both"),
        (lambda: pg.envs.two_state([[1.0, 0.0]] * 3, [0.0] * 3), ValueError, r"P must have shape \(2 A, 2\)"),
        (lambda: pg.envs.two_state([[1.0, 0.0]] * 4, [0.0] * 3), ValueError, r"r must have shape \(2 A,\)"),
        (lambda: pg.envs.two_state([[0.5, 0.6]] * 4, [0.0] * 4), ValueError, "sum"),
        (lambda: pg.envs.two_state([[1.0, 0.0]] * 4, [0.0, np.nan, 0.0, 0.0]), ValueError, "r must be finite"),
        (lambda: pg.envs.short_corridor_policy(1.0), ValueError, r"p_right must be in \(0, 1\)"),
        (lambda: pg.envs.short_corridor(gamma=-0.1), ValueError, "gamma must be in"),
        (lambda: pg.envs.bandit([]), ValueError, "at least one arm"),
        (lambda: pg.envs.bandit([[1.0]]), ValueError, "means must be 1-D"),
        (lambda: pg.envs.bandit([1.0, np.inf]), ValueError, "means must be finite"),
        (lambda: pg.envs.bandit(["a"]), TypeError, "means must be a real numeric array"),
        (lambda: pg.envs.cliff_grid(1, 5), ValueError, "rows must be >= 2"),
        (lambda: pg.envs.cliff_grid(4, 2), ValueError, "cols must be >= 3"),
        (lambda: pg.envs.cliff_grid(4, 12, cliff_reward=np.nan), ValueError, "cliff_reward must be finite"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, exc, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=match):
        call()
