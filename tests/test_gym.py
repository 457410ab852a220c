"""gymnasium in and out: FiniteMDP.from_gymnasium (toy-text P tables) and mdp.to_gymnasium()."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.envs.toy_text import FrozenLakeEnv
from gymnasium.utils.env_checker import check_env

import pgfast as pg

LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3  # FrozenLake's actions
CW_UP, CW_RIGHT, CW_DOWN, CW_LEFT = 0, 1, 2, 3  # CliffWalking's actions
THIRD = 1.0 / 3.0


def dense_reference(env_id: str, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """P (S, A, S), expected reward r(s, a), terminal mask and mu0 straight from env.unwrapped.P.

    Plain loops over gymnasium's own table, independent of pgfast's vectorised import.
    """
    env = gymnasium.make(env_id, **kwargs)
    base = env.unwrapped
    S, A = int(base.observation_space.n), int(base.action_space.n)
    P = np.zeros((S, A, S))
    r = np.zeros((S, A))
    terminal = np.zeros(S, dtype=bool)
    for s in range(S):
        for a in range(A):
            for p, s_next, reward, done in base.P[s][a]:
                P[s, a, s_next] += p
                r[s, a] += p * reward
                if done and p > 0:
                    terminal[s_next] = True
    mu0 = np.array(base.initial_state_distrib, dtype=float)
    env.close()
    return P, r, terminal, mu0


def transition_table(mdp: pg.FiniteMDP, s: int, a: int) -> dict[int, tuple[float, float]]:
    """{s': (P(s'|s,a), R(s,a,s'))} for one stored row."""
    indptr, nxt, prob, reward = mdp.transitions
    row = s * mdp.n_actions + a
    sl = slice(int(indptr[row]), int(indptr[row + 1]))
    return {int(n): (float(p), float(r)) for n, p, r in zip(nxt[sl], prob[sl], reward[sl])}


def assert_table(got: dict[int, tuple[float, float]], want: dict[int, tuple[float, float]]) -> None:
    assert sorted(got) == sorted(want)
    for s_next, (p, r) in want.items():
        assert got[s_next][0] == pytest.approx(p, rel=1e-12)
        assert got[s_next][1] == pytest.approx(r, rel=1e-12)


# -- import: hand-written tables ----------------------------------------------------------------

# FrozenLake 4x4 ("SFFF", "FHFH", "FFFH", "HFFG"), states row-major. Slippery: the intended move
# and the two perpendicular ones, 1/3 each; bumping into a wall stays put; reward 1 on entering G.
FROZEN_4X4_SLIPPERY = {
    (0, LEFT): {0: (2 * THIRD, 0.0), 4: (THIRD, 0.0)},  # up (wall), left (wall), down
    (0, DOWN): {0: (THIRD, 0.0), 4: (THIRD, 0.0), 1: (THIRD, 0.0)},  # left (wall), down, right
    (0, RIGHT): {4: (THIRD, 0.0), 1: (THIRD, 0.0), 0: (THIRD, 0.0)},  # down, right, up (wall)
    (0, UP): {1: (THIRD, 0.0), 0: (2 * THIRD, 0.0)},  # right, up (wall), left (wall)
    (6, DOWN): {5: (THIRD, 0.0), 10: (THIRD, 0.0), 7: (THIRD, 0.0)},  # into both holes or down
    (14, RIGHT): {14: (THIRD, 0.0), 15: (THIRD, 1.0), 10: (THIRD, 0.0)},  # down (wall), goal, up
    (14, DOWN): {13: (THIRD, 0.0), 14: (THIRD, 0.0), 15: (THIRD, 1.0)},  # left, down (wall), right
}


def test_frozenlake_4x4_slippery_matches_hand_table() -> None:
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1")
    assert (mdp.n_states, mdp.n_actions, mdp.horizon, mdp.gamma) == (16, 4, 100, 1.0)
    for (s, a), want in FROZEN_4X4_SLIPPERY.items():
        assert_table(transition_table(mdp, s, a), want)
    assert np.flatnonzero(mdp.terminal).tolist() == [5, 7, 11, 12, 15]  # holes and goal
    np.testing.assert_array_equal(mdp.mu0, np.eye(16)[0])
    # the only reward: entering the goal, from 11 (a hole, never left), 14 and 15 (the goal itself)
    R = mdp.R
    assert R[14, RIGHT] == pytest.approx(THIRD) and R[14, DOWN] == pytest.approx(THIRD)
    assert R[14, UP] == pytest.approx(THIRD) and R[14, LEFT] == 0.0
    assert np.count_nonzero(R[:11]) == 0 and np.count_nonzero(R[12:14]) == 0
    np.testing.assert_allclose(mdp.P.sum(axis=2), 1.0, rtol=0, atol=1e-12)


def test_frozenlake_4x4_deterministic() -> None:
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", is_slippery=False)
    P = mdp.P
    assert mdp.nnz == 16 * 4 and np.all(P.max(axis=2) == 1.0)
    moves = {(0, LEFT): 0, (0, DOWN): 4, (0, RIGHT): 1, (0, UP): 0, (6, DOWN): 10, (6, LEFT): 5, (14, RIGHT): 15}
    for (s, a), s_next in moves.items():
        reward = 1.0 if s_next == 15 else 0.0
        assert transition_table(mdp, s, a) == {s_next: (1.0, reward)}
    assert np.flatnonzero(mdp.terminal).tolist() == [5, 7, 11, 12, 15]


@pytest.mark.parametrize(
    ("env_id", "kwargs", "horizon"),
    [("FrozenLake8x8-v1", {}, 200), ("FrozenLake-v1", {"map_name": "8x8"}, 100)],  # horizon: the id's spec
)
def test_frozenlake_8x8(env_id: str, kwargs: dict[str, Any], horizon: int) -> None:
    mdp = pg.FiniteMDP.from_gymnasium(env_id, **kwargs)
    assert (mdp.n_states, mdp.n_actions, mdp.horizon) == (64, 4, horizon)
    # 10 holes plus the goal in the standard 8x8 map
    assert int(mdp.terminal.sum()) == 11 and bool(mdp.terminal[63])
    np.testing.assert_array_equal(mdp.mu0, np.eye(64)[0])


def test_frozenlake_custom_desc_and_rewards() -> None:
    # S H       states 0 1
    # F G              2 3      reward_schedule: goal +5, hole -1, frozen -0.5
    mdp = pg.FiniteMDP.from_gymnasium(
        "FrozenLake-v1", desc=["SH", "FG"], is_slippery=False, reward_schedule=(5, -1, -0.5), horizon=7
    )
    assert (mdp.n_states, mdp.n_actions, mdp.horizon) == (4, 4, 7)
    assert mdp.terminal.tolist() == [False, True, False, True]
    assert transition_table(mdp, 0, RIGHT) == {1: (1.0, -1.0)}  # into the hole
    assert transition_table(mdp, 0, DOWN) == {2: (1.0, -0.5)}
    assert transition_table(mdp, 0, LEFT) == {0: (1.0, -0.5)}  # wall: stays on the start tile
    assert transition_table(mdp, 2, RIGHT) == {3: (1.0, 5.0)}  # into the goal
    assert transition_table(mdp, 2, UP) == {0: (1.0, -0.5)}


# every tabular toy-text environment of this gymnasium, slippery or not
TOY_TEXT = [
    ("FrozenLake-v1", {}),
    ("FrozenLake-v1", {"is_slippery": False}),
    ("FrozenLake-v1", {"map_name": "8x8"}),
    ("FrozenLake-v1", {"map_name": "8x8", "is_slippery": False}),
    ("FrozenLake-v1", {"desc": ["SFFH", "FHFF", "FFFG"], "success_rate": 0.6}),
    ("FrozenLake8x8-v1", {}),
    ("Taxi-v4", {}),
    ("Taxi-v4", {"is_rainy": True}),
    ("CliffWalking-v1", {}),
    ("CliffWalkingSlippery-v1", {}),
]


@pytest.mark.parametrize(("env_id", "kwargs"), TOY_TEXT)
def test_import_matches_dense_reference(env_id: str, kwargs: dict[str, Any]) -> None:
    P, r, terminal, mu0 = dense_reference(env_id, **kwargs)
    mdp = pg.FiniteMDP.from_gymnasium(env_id, horizon=50, **kwargs)
    np.testing.assert_allclose(mdp.P, P, rtol=1e-12, atol=0)
    np.testing.assert_allclose(mdp.R, r, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(mdp.terminal, terminal)
    np.testing.assert_array_equal(mdp.mu0, mu0)
    indptr, nxt, prob, _ = mdp.transitions
    assert np.all(prob > 0)
    for row in range(mdp.n_states * mdp.n_actions):  # successors strictly increasing in each row
        assert np.all(np.diff(nxt[indptr[row] : indptr[row + 1]]) > 0)


def test_taxi() -> None:
    mdp = pg.FiniteMDP.from_gymnasium("Taxi-v4")
    env = gymnasium.make("Taxi-v4")
    assert (mdp.n_states, mdp.n_actions, mdp.horizon) == (500, 6, 200)
    np.testing.assert_array_equal(mdp.mu0, env.unwrapped.initial_state_distrib)
    # 25 taxi cells x 4 passenger spots x 3 other destinations, uniform
    assert np.count_nonzero(mdp.mu0) == 300 and np.allclose(mdp.mu0[mdp.mu0 > 0], 1 / 300)
    # terminal: passenger dropped at its destination, taxi there (one state per destination)
    decoded = [tuple(env.unwrapped.decode(s)) for s in np.flatnonzero(mdp.terminal)]
    locs = [(0, 0), (0, 4), (4, 0), (4, 3)]
    assert sorted(decoded) == sorted((*locs[d], d, d) for d in range(4))
    # drop-off with the passenger aboard at the destination: +20 and terminal
    s = env.unwrapped.encode(0, 0, 4, 0)
    assert transition_table(mdp, s, 5) == {env.unwrapped.encode(0, 0, 0, 0): (1.0, 20.0)}
    env.close()


def test_cliffwalking_needs_horizon() -> None:
    with pytest.raises(ValueError, match="horizon"):
        pg.FiniteMDP.from_gymnasium("CliffWalking-v1")
    mdp = pg.FiniteMDP.from_gymnasium("CliffWalking-v1", horizon=100, gamma=0.9)
    assert (mdp.n_states, mdp.n_actions, mdp.horizon, mdp.gamma) == (48, 4, 100, 0.9)
    start = 36  # (3, 0)
    np.testing.assert_array_equal(mdp.mu0, np.eye(48)[start])
    assert np.flatnonzero(mdp.terminal).tolist() == [47]
    assert transition_table(mdp, start, CW_RIGHT) == {start: (1.0, -100.0)}  # into the cliff: back to start
    assert transition_table(mdp, 25, CW_DOWN) == {start: (1.0, -100.0)}  # (2, 1) down into the cliff
    assert transition_table(mdp, start, CW_UP) == {24: (1.0, -1.0)}
    assert transition_table(mdp, 35, CW_DOWN) == {47: (1.0, -1.0)}  # (2, 11) down to the goal


def test_cliffwalking_slippery_merges_natural_duplicates() -> None:
    # From the start, RIGHT slips UP (-> 24, -1), goes RIGHT (cliff: -> 36, -100) or slips DOWN
    # (wall: stays at 36, -1): two entries for s'=36 merge to p=2/3 with reward (-100 - 1) / 2.
    mdp = pg.FiniteMDP.from_gymnasium("CliffWalkingSlippery-v1", horizon=100)
    assert_table(transition_table(mdp, 36, CW_RIGHT), {24: (THIRD, -1.0), 36: (2 * THIRD, -50.5)})
    assert mdp.R[36, CW_RIGHT] == pytest.approx((-1 - 100 - 1) / 3, rel=1e-12)


# -- import: custom environments ----------------------------------------------------------------


class TabularEnv(gymnasium.Env[np.int64, np.int64]):
    """A minimal toy-text style environment with an explicit P table."""

    def __init__(self, P: Any, mu0: Any, n_states: int, n_actions: int) -> None:
        self.P = P
        if mu0 is not None:
            self.initial_state_distrib = np.asarray(mu0, dtype=float)
        self.observation_space = spaces.Discrete(n_states)
        self.action_space = spaces.Discrete(n_actions)


def test_duplicate_entries_are_merged() -> None:
    P = {
        0: {
            # s'=1 twice: p = 0.2 + 0.3, reward (0.2 * 1 + 0.3 * 6) / 0.5 = 4; s'=2 twice, equal rewards
            0: [(0.2, 1, 1.0, False), (0.25, 2, -3.0, True), (0.3, 1, 6.0, False), (0.25, 2, -3.0, True)],
            1: [(0.0, 2, 100.0, True), (1.0, 0, 0.5, False)],  # a p=0 entry is dropped
        },
        1: {0: [(1.0, 0, 0.0, False)], 1: [(1.0, 1, 2.0, False)]},
        2: {0: [(1.0, 2, 0.0, True)], 1: [(1.0, 2, 0.0, True)]},
    }
    mdp = pg.FiniteMDP.from_gymnasium(TabularEnv(P, [1.0, 0.0, 0.0], 3, 2), horizon=4)
    assert mdp.nnz == 2 + 1 + 2 + 2
    assert_table(transition_table(mdp, 0, 0), {1: (0.5, 4.0), 2: (0.5, -3.0)})
    assert transition_table(mdp, 0, 1) == {0: (1.0, 0.5)}
    assert mdp.R[0, 0] == pytest.approx(0.2 * 1 + 0.3 * 6 + 0.5 * -3, rel=1e-12)
    assert mdp.terminal.tolist() == [False, False, True]


def test_inconsistent_terminated_flag() -> None:
    def table(live_source: int) -> dict[int, dict[int, list[tuple[float, int, float, bool]]]]:
        # 2 is entered with terminated=True from 0; and with terminated=False from live_source
        return {
            0: {0: [(1.0, 2, 1.0, True)], 1: [(1.0, 1, 0.0, False)]},
            1: {0: [(1.0, 1, 0.0, False)], 1: [(1.0, 1, 0.0, False)]},
            3: {0: [(1.0, 2, 0.0, False)], 1: [(1.0, 3, 0.0, False)]},
            2: {0: [(1.0, 2, 0.0, True)], 1: [(1.0, 2, 0.0, True)]},
        } | ({1: {0: [(1.0, 2, 0.0, False)], 1: [(1.0, 1, 0.0, False)]}} if live_source == 1 else {})

    # from state 3, unreachable from mu0 = e_0: accepted (like gymnasium's own tables)
    mdp = pg.FiniteMDP.from_gymnasium(TabularEnv(table(3), [1.0, 0, 0, 0], 4, 2), horizon=3)
    assert mdp.terminal.tolist() == [False, False, True, False]
    # from state 1, reachable: gymnasium would go on after entering 2, pgfast would stop
    with pytest.raises(ValueError, match=r"state 2 .*terminated=False from P\[1\]\[0\]"):
        pg.FiniteMDP.from_gymnasium(TabularEnv(table(1), [1.0, 0, 0, 0], 4, 2), horizon=3)
    # the same state 3 becomes reachable when mu0 puts mass on it
    with pytest.raises(ValueError, match=r"P\[3\]\[0\]"):
        pg.FiniteMDP.from_gymnasium(TabularEnv(table(3), [0.5, 0, 0, 0.5], 4, 2), horizon=3)


# -- import: errors -----------------------------------------------------------------------------


def test_unknown_id() -> None:
    with pytest.raises(ValueError, match="NoSuchEnv-v0"):
        pg.FiniteMDP.from_gymnasium("NoSuchEnv-v0")
    with pytest.raises(ValueError, match="FrozenLake-v99"):
        pg.FiniteMDP.from_gymnasium("FrozenLake-v99")


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Blackjack-v1"])
def test_env_without_P(env_id: str) -> None:
    with pytest.raises(ValueError, match="no tabular `P`"):
        pg.FiniteMDP.from_gymnasium(env_id, horizon=10)


def test_kwargs_with_instance() -> None:
    env = gymnasium.make("FrozenLake-v1")
    with pytest.raises(TypeError, match="is_slippery"):
        pg.FiniteMDP.from_gymnasium(env, is_slippery=False)
    # an instance alone works, wrapped or not; horizon from its spec, or none without one
    assert pg.FiniteMDP.from_gymnasium(env).horizon == 100
    env.close()
    with pytest.raises(ValueError, match="horizon"):  # built directly: no spec, no max_episode_steps
        pg.FiniteMDP.from_gymnasium(FrozenLakeEnv())
    with pytest.raises(TypeError, match="env_or_id"):
        pg.FiniteMDP.from_gymnasium(42)


def test_bad_tables() -> None:
    good = {0: {0: [(1.0, 0, 0.0, False)]}}
    with pytest.raises(ValueError, match="initial_state_distrib"):
        pg.FiniteMDP.from_gymnasium(TabularEnv(good, None, 1, 1), horizon=1)
    with pytest.raises(ValueError, match="not Discrete"):
        env = TabularEnv(good, [1.0], 1, 1)
        env.observation_space = spaces.Box(0, 1, (1,))  # type: ignore[assignment]
        pg.FiniteMDP.from_gymnasium(env, horizon=1)
    with pytest.raises(ValueError, match=r"P\[0\]\[0\] enters state 5"):
        pg.FiniteMDP.from_gymnasium(TabularEnv({0: {0: [(1.0, 5, 0.0, False)]}}, [1.0], 1, 1), horizon=1)
    with pytest.raises(ValueError, match=r"P\[0\]\[0\] has probability -0.5"):
        pg.FiniteMDP.from_gymnasium(TabularEnv({0: {0: [(-0.5, 0, 0.0, False)]}}, [1.0], 1, 1), horizon=1)
    with pytest.raises(ValueError, match=r"P\[0\]\[0\] entries"):
        pg.FiniteMDP.from_gymnasium(TabularEnv({0: {0: [(1.0, 0)]}}, [1.0], 1, 1), horizon=1)
    with pytest.raises(ValueError, match="no entry for action 1"):
        pg.FiniteMDP.from_gymnasium(TabularEnv(good, [1.0], 1, 2), horizon=1)
    with pytest.raises(ValueError, match="sums to"):  # rows must still be distributions (checked in C++)
        pg.FiniteMDP.from_gymnasium(TabularEnv({0: {0: [(0.5, 0, 0.0, False)]}}, [1.0], 1, 1), horizon=1)


def test_taxi_fickle_passenger_is_refused() -> None:
    with pytest.raises(ValueError, match="fickle_passenger"):
        pg.FiniteMDP.from_gymnasium("Taxi-v4", fickle_passenger=True)


# -- export: mdp.to_gymnasium() -----------------------------------------------------------------


@pytest.mark.parametrize("render_mode", [None, "ansi"])
def test_check_env(render_mode: str | None) -> None:
    # FiniteMDPEnv sets env.spec, so check_env also re-makes it for every declared render mode
    env = pg.FiniteMDP.from_gymnasium("FrozenLake-v1").to_gymnasium(render_mode=render_mode)
    check_env(env)
    cliff = pg.FiniteMDP.from_gymnasium("CliffWalkingSlippery-v1", horizon=30).to_gymnasium(render_mode=render_mode)
    check_env(cliff)


def test_env_attributes_and_render() -> None:
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", is_slippery=False)
    env = mdp.to_gymnasium(render_mode="ansi")
    assert env.mdp is mdp  # type: ignore[attr-defined]
    assert env.observation_space == spaces.Discrete(16) and env.action_space == spaces.Discrete(4)
    assert env.metadata["render_modes"] == ["ansi"]
    s0, info = env.reset(seed=3)
    assert s0 == 0 and info == {"prob": 1.0} and env.render() == "t=0 s=0"
    assert env.step(RIGHT) == (1, 0.0, False, False, {"prob": 1.0})
    assert env.render() == "t=1 s=1"
    # the spec re-makes an environment over the same MDP
    again = gymnasium.make(env.spec)  # type: ignore[arg-type]
    assert again.unwrapped.mdp is mdp  # type: ignore[attr-defined]
    again.close()
    with pytest.raises(ValueError, match="render_mode"):
        mdp.to_gymnasium(render_mode="human")


def test_terminated_truncated_and_reset_needed() -> None:
    # 0 -> 1 -> 2 (terminal) deterministically, reward 1 per step, horizon 2 or 1
    P = np.zeros((3, 1, 3))
    P[0, 0, 1] = P[1, 0, 2] = P[2, 0, 2] = 1.0
    R = np.ones((3, 1))
    terminal = [False, False, True]
    env = pg.FiniteMDP(P, R, [1.0, 0, 0], horizon=2, terminal=terminal).to_gymnasium()
    with pytest.raises(gymnasium.error.ResetNeeded, match="before reset"):
        env.step(0)
    env.reset(seed=0)
    assert env.step(0) == (1, 1.0, False, False, {"prob": 1.0})
    assert env.step(0) == (2, 1.0, True, False, {"prob": 1.0})  # terminated at t = H: not truncated
    with pytest.raises(gymnasium.error.ResetNeeded, match="ended"):
        env.step(0)
    env = pg.FiniteMDP(P, R, [1.0, 0, 0], horizon=1, terminal=terminal).to_gymnasium()
    env.reset(seed=0)
    assert env.step(np.int64(0)) == (1, 1.0, False, True, {"prob": 1.0})  # truncated at t = H
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(0)
    assert env.reset()[0] == 0


@pytest.mark.parametrize("action", [4, -1, 1.0, "1", True])
def test_invalid_action(action: Any) -> None:
    env = pg.FiniteMDP.from_gymnasium("FrozenLake-v1").to_gymnasium()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=f"action.*{action!r}|action {action}"):
        env.step(action)


def test_reset_seed_reproduces_episode() -> None:
    env = pg.FiniteMDP.from_gymnasium("Taxi-v4").to_gymnasium()

    def episode(seed: int) -> list[tuple[int, float]]:
        s, _ = env.reset(seed=seed)
        out = [(int(s), 0.0)]
        for t in range(30):
            s, r, terminated, truncated, _ = env.step(t % 6)
            out.append((int(s), float(r)))
            if terminated or truncated:
                break
        return out

    assert episode(5) == episode(5)
    assert episode(5) != episode(6)  # different starts (1/300 each) or paths, almost surely


def test_episodes_match_sample_statistics() -> None:
    """Episodes of mdp.to_gymnasium() have the law of mdp.sample(): FrozenLake 4x4 slippery.

    For the mean return and the mean episode length, with n_g gym episodes and n_p sampled ones,
    |mean_g - mean_p| <= 4 * sqrt(var_g / n_g + var_p / n_p) (sample variances, ddof=1): a
    4-standard-error band, two-sided, so a false failure has probability about 6e-5 per quantity.
    """
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1")
    theta = np.random.default_rng(20240611).normal(scale=1.5, size=(16, 4))
    pi = pg.TabularSoftmax(16, 4, theta=theta)
    action_cdf = np.cumsum(pi.probs(), axis=1)

    env = mdp.to_gymnasium()
    rng = np.random.default_rng(7)
    n_gym = 3000
    gym_returns = np.zeros(n_gym)
    gym_lengths = np.zeros(n_gym)
    env.reset(seed=11)
    for i in range(n_gym):
        s, _ = env.reset()
        done = False
        while not done:
            a = min(int(np.searchsorted(action_cdf[s], rng.random() * action_cdf[s, -1], side="right")), 3)
            s, r, terminated, truncated, _ = env.step(a)
            gym_returns[i] += float(r)
            gym_lengths[i] += 1
            done = terminated or truncated

    traj = mdp.sample(pi, n=100_000, seed=3)
    for name, g, p in [
        ("return", gym_returns, traj.returns()),
        ("length", gym_lengths, np.asarray(traj.lengths, dtype=float)),
    ]:
        se = np.sqrt(g.var(ddof=1) / g.size + p.var(ddof=1) / p.size)
        assert se > 0, name
        assert abs(g.mean() - p.mean()) <= 4 * se, (name, g.mean(), p.mean(), se)


ALPHA = 1e-4  # significance level of the chi-square tests (fixed seeds: deterministic outcomes)


def chi2_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    """Chi-square goodness of fit pooled over rows: counts (rows, k) against known probabilities.

    Over the cells with p > 0 of every row with n > 0: sum (O - n p)^2 / (n p), with
    sum (support size - 1) degrees of freedom; counts on p = 0 cells give p-value 0.
    """
    from scipy import stats

    counts = np.atleast_2d(counts).astype(float)
    probs = np.broadcast_to(probs, counts.shape)
    n = counts.sum(axis=1, keepdims=True)
    used = (n[:, 0] > 0)[:, None] & (probs > 0)
    if np.any(counts[~(probs > 0)] > 0):
        return 0.0
    expected = (n * probs)[used]
    stat = float((((counts[used] - expected) ** 2) / expected).sum())
    dof = int(used.sum() - (n[:, 0] > 0).sum())
    return float(stats.chi2.sf(stat, dof))


def test_step_and_reset_frequencies_match_the_mdp() -> None:
    # Steps: uniform random actions on slippery CliffWalking (rows of 1 to 3 successors, merged
    # duplicates); every (s, a, s') transition counted and tested against P(s'|s, a).
    mdp = pg.FiniteMDP.from_gymnasium("CliffWalkingSlippery-v1", horizon=200)
    S, A = mdp.n_states, mdp.n_actions
    env = mdp.to_gymnasium()
    env.action_space.seed(1)
    counts = np.zeros((S * A, S))
    s, _ = env.reset(seed=2)
    for _ in range(30_000):
        a = int(env.action_space.sample())
        s_next, _, terminated, truncated, _ = env.step(a)
        counts[int(s) * A + a, int(s_next)] += 1
        s = env.reset()[0] if terminated or truncated else s_next
    assert counts.sum(axis=1).min() == 0 and counts.sum() == 30_000  # the cliff cells are never left
    assert chi2_pvalue(counts, mdp.P.reshape(S * A, S)) > ALPHA

    # Resets: Taxi's uniform distribution over its 300 start states.
    taxi = pg.FiniteMDP.from_gymnasium("Taxi-v4")
    env = taxi.to_gymnasium()
    env.reset(seed=3)
    starts = np.bincount([int(env.reset()[0]) for _ in range(30_000)], minlength=500)
    assert chi2_pvalue(starts, taxi.mu0) > ALPHA


def test_malformed_entries_of_a_custom_table() -> None:
    """A string flag 'False' would read as True (a terminal state); next states that mix scalars
    and lists have no integer array: both are named errors (ValueError, TypeError)."""
    for bad in ("False", 2):
        env = gymnasium.make("FrozenLake-v1", is_slippery=False)
        P = env.unwrapped.P  # type: ignore[attr-defined]
        p, s_next, r, _ = P[0][0][0]
        P[0][0][0] = (p, s_next, r, bad)
        with pytest.raises(ValueError, match=r"P\[0\]\[0\]: terminated must be True or False"):
            pg.FiniteMDP.from_gymnasium(env)
    env = gymnasium.make("FrozenLake-v1", is_slippery=False)
    P = env.unwrapped.P  # type: ignore[attr-defined]
    p, s_next, r, d = P[0][0][0]
    P[0][0][0] = (p, [s_next, 1], r, d)
    with pytest.raises(TypeError, match=r"P\[0\]\[0\]: next_state must be an integer"):
        pg.FiniteMDP.from_gymnasium(env)
