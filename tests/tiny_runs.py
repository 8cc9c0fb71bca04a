"""Tiny training runs for tests that need a run directory: seconds each, tiny networks."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from diffpolicy.rl import AgentConfig, TrainConfig

TINY_AGENT = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "batch_size": 16}


def tiny_config(run_dir: Path, env: str = "Pendulum-v1", steps: int = 120, **agent) -> TrainConfig:
    """`steps` steps of `env`, half of them uniform warm-up, one evaluation episode at the end;
    `agent` overrides the tiny agent's fields."""
    return TrainConfig(
        env=env,
        steps=steps,
        warmup_steps=steps // 2,
        eval_every=steps,
        eval_episodes=1,
        progress=False,
        run_dir=run_dir,
        agent=AgentConfig(**{**TINY_AGENT, **agent}),
    )


BLOW_UP_ENV = "DiffpolicyTestBlowUp-v0"


class _BlowUp(gym.Wrapper):
    """Pendulum whose rewards become huge (finite, 1e30 times larger) after `after` steps."""

    def __init__(self, after: int) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.after, self.steps = after, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        scale = 1e30 if self.steps > self.after else 1.0
        return obs, reward * scale, terminated, truncated, info


def register_blow_up_env(after: int) -> str:
    """Register (again) the env id whose training diverges: a critic's loss on rewards of 1e30
    overflows float32."""
    gym.register(BLOW_UP_ENV, entry_point=lambda: _BlowUp(after), max_episode_steps=200)
    return BLOW_UP_ENV


class _Unrepeatable(gym.Wrapper):
    """Pendulum whose observations count the resets of every instance: an episode replayed from
    its seed and actions does not repeat, so a resume cannot continue it."""

    resets = 0

    def reset(self, **kwargs):
        _Unrepeatable.resets += 1
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, *rest = self.env.step(action)
        return obs + 1e-3 * _Unrepeatable.resets, *rest


FAULTY_ENVS = {
    "DiffpolicyTestNaNObs-v0": lambda env: gym.wrappers.TransformObservation(
        env, lambda obs: obs * np.nan, env.observation_space
    ),
    "DiffpolicyTestNaNReward-v0": lambda env: gym.wrappers.TransformReward(
        env, lambda reward: float("nan")
    ),
    "DiffpolicyTest2DObs-v0": lambda env: gym.wrappers.ReshapeObservation(env, (3, 1)),
    "DiffpolicyTestUnrepeatable-v0": _Unrepeatable,
}
"""Pendulum with NaN observations, NaN rewards, 2-D observations, or episodes no replay repeats."""


def register_faulty_env(name: str) -> str:
    """Register one of FAULTY_ENVS (gymnasium's own checker off: it would only warn)."""
    wrap = FAULTY_ENVS[name]
    gym.register(name, entry_point=lambda: wrap(gym.make("Pendulum-v1")), disable_env_checker=True)
    return name
