"""Evaluation: several episodes on separately seeded environments, acting in one batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from diffpolicy.rl.envs.adapters import BoxActionAdapter
from diffpolicy.rl.run.value_bias import ValueFn, value_bias

ActFn = Callable[[Tensor], Tensor]
"""obs (batch, obs_dim) -> actions (batch, act_dim) in [-1, 1]."""


def evaluation_seed(seed: int, step: int) -> int:
    """The seed of the evaluation at `step` of a run seeded `seed` (env k is reset with this + k):
    apart from the training env's seeds, and the same for every method the harness compares."""
    return 1_000_003 * (seed + 1) + step


def evaluate(
    envs: list[BoxActionAdapter],
    act: ActFn,
    seed: int,
    device: str = "cpu",
    value: ValueFn | None = None,
    gamma: float = 0.99,
) -> dict:
    """Run one episode on each env (env k reset with seed + k), stepping all live episodes together
    so the policy is called once per step for the whole batch. Returns return and length stats;
    with `value` (a critic's Q estimate), also "value": Q against the discounted return-to-go of
    the states visited (`diffpolicy.rl.run.value_bias.value_bias`)."""
    obs = np.stack([env.reset(seed=seed + k)[0] for k, env in enumerate(envs)])
    returns = np.zeros(len(envs))
    lengths = np.zeros(len(envs), dtype=np.int64)
    live = np.ones(len(envs), dtype=bool)
    terminal = np.zeros(len(envs), dtype=bool)
    # Each episode's (obs, action, reward) steps, kept only when `value` is given.
    trajectories: list[list[tuple]] = [[] for _ in envs]
    while live.any():
        idx = np.flatnonzero(live)
        actions = act(torch.as_tensor(obs[idx], device=device)).cpu().numpy()
        for a, k in zip(actions, idx, strict=True):
            before = obs[k].copy()
            obs[k], reward, terminated, truncated, _ = envs[k].step(a)
            if value is not None:
                trajectories[k].append((before, a, reward))
            returns[k] += reward
            lengths[k] += 1
            live[k] = not (terminated or truncated)
            terminal[k] = terminated
    result = {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "length_mean": float(lengths.mean()),
        "episodes": len(envs),
    }
    if value is not None:
        episodes = []
        for steps, ended in zip(trajectories, terminal, strict=True):
            ep_obs, ep_actions, ep_rewards = zip(*steps, strict=True)
            rewards = np.asarray(ep_rewards, dtype=np.float64)
            episodes.append((np.stack(ep_obs), np.stack(ep_actions), rewards, bool(ended)))
        result["value"] = value_bias(value, episodes, gamma, device)
    return result
