"""How far the critic's estimate is from the return the policy gets: Q(s, a) against the
discounted return-to-go of evaluation episodes (the measure of TD3's and REDQ's bias plots).

An over-estimating critic misleads a QSM actor directly, since the actor follows grad_a Q; an
under-estimating one makes the policy's improvements look worthless. Returns-to-go are exact for
terminated episodes (the critic's target also counts nothing after a termination). A truncated
episode's return-to-go misses the tail after the time limit, so only its states at least
`value_horizon(gamma)` steps before the limit count: their missing tail weighs at most 1% of an
infinite horizon's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

ValueFn = Callable[[Tensor, Tensor], Tensor]
"""(obs (batch, obs_dim), actions (batch, act_dim) in [-1, 1]) -> Q estimates (batch,)."""

TAIL_TOLERANCE = 0.01
"""gamma^H at the horizon: the weight of a truncated episode's missing tail."""


def returns_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = sum_k gamma^k r_{t+k} up to the end of the episode, for every t."""
    out = np.empty(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def value_horizon(gamma: float) -> int:
    """The fewest steps H with gamma^H <= TAIL_TOLERANCE."""
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must lie in (0, 1), got {gamma}")
    return math.ceil(math.log(TAIL_TOLERANCE) / math.log(gamma))


def counted_states(length: int, terminated: bool, gamma: float) -> int:
    """How many leading states of an episode have a usable return-to-go: all of a terminated
    episode's, and those at least `value_horizon(gamma)` steps before a truncation."""
    return length if terminated else max(0, length - value_horizon(gamma))


@torch.no_grad()
def value_bias(
    value: ValueFn,
    episodes: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]],
    gamma: float,
    device: str = "cpu",
) -> dict:
    """Q against the return-to-go over the counted states of `episodes`, each (obs, actions,
    rewards, terminated) of one episode. Returns q_mean, return_to_go_mean, the bias (their
    difference), the bias divided by |return_to_go_mean| (REDQ's normalisation), and the number
    of states counted (NaN figures when none count)."""
    obs, actions, targets = [], [], []
    for ep_obs, ep_actions, ep_rewards, terminated in episodes:
        n = counted_states(len(ep_rewards), terminated, gamma)
        obs.append(ep_obs[:n])
        actions.append(ep_actions[:n])
        targets.append(returns_to_go(ep_rewards, gamma)[:n])
    target = np.concatenate(targets)
    if len(target) == 0:
        nan = float("nan")
        return {
            "q_mean": nan,
            "return_to_go_mean": nan,
            "bias": nan,
            "normalised_bias": nan,
            "states": 0,
        }
    q = value(
        torch.as_tensor(np.concatenate(obs), dtype=torch.float32, device=device),
        torch.as_tensor(np.concatenate(actions), dtype=torch.float32, device=device),
    )
    q_mean, g_mean = float(q.double().mean()), float(target.mean())
    return {
        "q_mean": q_mean,
        "return_to_go_mean": g_mean,
        "bias": q_mean - g_mean,
        "normalised_bias": (q_mean - g_mean) / abs(g_mean) if g_mean != 0 else float("nan"),
        "states": len(target),
    }
