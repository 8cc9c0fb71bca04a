"""The critic-bias measure: returns-to-go, the truncation horizon, and evaluate's Q-against-return
figures on an environment whose true Q is known in closed form."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffpolicy.rl.envs.adapters import BoxActionAdapter
from diffpolicy.rl.run.evaluate import evaluate
from diffpolicy.rl.run.value_bias import returns_to_go, value_bias, value_horizon

GAMMA = 0.99


@given(
    st.lists(st.floats(-10, 10), min_size=1, max_size=40),
    st.floats(0.0, 0.999),
)
def test_returns_to_go_is_the_discounted_sum_to_the_end(rewards, gamma):
    got = returns_to_go(np.array(rewards), gamma)
    for t in range(len(rewards)):
        expected = sum(gamma**k * r for k, r in enumerate(rewards[t:]))
        assert got[t] == pytest.approx(expected, rel=1e-9, abs=1e-9)


@given(st.floats(0.5, 0.9999))
def test_value_horizon_is_the_first_step_where_the_tail_weighs_at_most_one_percent(gamma):
    h = value_horizon(gamma)
    assert gamma**h <= 0.01 * (1 + 1e-12) and gamma ** (h - 1) > 0.01 * (1 - 1e-12)


@pytest.mark.parametrize("gamma", [0.0, 1.0, -0.5, 1.5])
def test_value_horizon_refuses_a_discount_outside_the_open_interval(gamma):
    with pytest.raises(ValueError, match="gamma must lie in"):
        value_horizon(gamma)


class CountdownEnv(gym.Env):
    """Reward 1 a step; obs = (steps left,). Ends by termination after `length` steps (3 to 9,
    drawn from the reset seed), or never (`endless`, truncated by a TimeLimit)."""

    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)

    def __init__(self, endless: bool = False) -> None:
        self.endless = endless

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.left = 3 + int(self.np_random.integers(7))
        return np.array([self.left], np.float32), {}

    def step(self, action):
        self.left -= 1
        terminated = not self.endless and self.left == 0
        return np.array([self.left], np.float32), 1.0, terminated, False, {}


def exact_q(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Q of CountdownEnv with `left` steps to go: sum_{k < left} gamma^k."""
    return (1 - GAMMA ** obs[:, 0].double()) / (1 - GAMMA)


def still(obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(len(obs), 1)


def countdown_envs(n: int, endless: bool = False, limit: int | None = None):
    envs = []
    for _ in range(n):
        env = CountdownEnv(endless)
        envs.append(BoxActionAdapter(gym.wrappers.TimeLimit(env, limit) if limit else env, "cd"))
    return envs


def test_an_exact_critic_has_no_bias_and_every_terminated_state_counts():
    result = evaluate(countdown_envs(4), still, seed=11, value=exact_q, gamma=GAMMA)
    value = result["value"]
    assert value["states"] == result["length_mean"] * 4
    assert value["bias"] == pytest.approx(0.0, abs=1e-9)
    assert value["q_mean"] == pytest.approx(value["return_to_go_mean"], rel=1e-12)


def test_an_offset_critic_shows_its_offset():
    offset = lambda o, a: exact_q(o, a) + 2.5  # noqa: E731
    value = evaluate(countdown_envs(3), still, seed=5, value=offset, gamma=GAMMA)["value"]
    assert value["bias"] == pytest.approx(2.5, rel=1e-9)
    assert value["normalised_bias"] == pytest.approx(2.5 / value["return_to_go_mean"], rel=1e-9)


def test_truncated_episodes_count_only_states_a_horizon_before_the_limit():
    """An endless episode cut at 600 steps: its true Q is 1 / (1 - gamma) everywhere. Only the
    first 600 - H states count, and their returns-to-go miss at most 1% of it."""
    limit, h = 600, value_horizon(GAMMA)
    true_q = lambda o, a: torch.full((len(o),), 1 / (1 - GAMMA))  # noqa: E731
    envs = countdown_envs(2, endless=True, limit=limit)
    value = evaluate(envs, still, seed=0, value=true_q, gamma=GAMMA)["value"]
    assert value["states"] == 2 * (limit - h)
    assert 0 < value["normalised_bias"] <= 0.01 / (1 - 0.01)


def test_no_counted_state_gives_nan_figures_not_an_error():
    envs = countdown_envs(2, endless=True, limit=value_horizon(GAMMA) - 1)
    value = evaluate(envs, still, seed=0, value=exact_q, gamma=GAMMA)["value"]
    assert value["states"] == 0 and math.isnan(value["bias"])


def test_without_a_critic_evaluate_reports_returns_only():
    assert "value" not in evaluate(countdown_envs(2), still, seed=0)


def test_value_bias_batches_every_counted_state_in_one_call():
    calls = []

    def counting(obs, actions):
        calls.append(len(obs))
        return exact_q(obs, actions)

    episodes = [
        (np.array([[3.0], [2.0], [1.0]]), np.zeros((3, 1)), np.ones(3), True),
        (np.array([[2.0], [1.0]]), np.zeros((2, 1)), np.ones(2), True),
    ]
    assert value_bias(counting, episodes, GAMMA)["bias"] == pytest.approx(0.0, abs=1e-12)
    assert calls == [5]
