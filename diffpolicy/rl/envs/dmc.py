"""DeepMind Control suite tasks exposed as flat-vector ``gymnasium.Env`` environments.

``DMCEnv("cheetah-run")`` wraps ``dm_control.suite`` directly (no shimmy) so that the library's
gymnasium training loop runs DMC unchanged, with explicit control over:

* observations: the dict observation is flattened into one float32 vector, keys in **sorted**
  order (dm_control returns an ``OrderedDict``, but sorting does not depend on that order
  staying the same across versions); scalars count as one element;
* actions: the agent acts in ``[-1, 1]^m``; actions are mapped linearly onto the task's
  ``action_spec`` bounds;
* seeding: ``reset(seed=s)`` seeds the task's ``numpy.random.RandomState`` exactly as
  ``suite.load(..., task_kwargs={"random": s})`` would, so initial states depend on the run's
  seed, and later unseeded resets continue that stream;
* episode ends: DMC episodes end by time limit, which is a **truncation**
  (``truncated=True, terminated=False``); only a ``LAST`` step with discount 0 is a termination.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from dm_control import suite

DMC_TASKS: tuple[str, ...] = tuple(f"{domain}-{task}" for domain, task in suite.ALL_TASKS)
"""Valid names, ``"<domain>-<task>"`` (domains keep underscores, e.g. ``"ball_in_cup-catch"``)."""


def _valid_names_message() -> str:
    by_domain: dict[str, list[str]] = {}
    for name in DMC_TASKS:
        by_domain.setdefault(name.split("-", 1)[0], []).append(name)
    return "\n".join(f"  {domain}: {', '.join(names)}" for domain, names in by_domain.items())


def flatten_observation(observation: Mapping[str, Any]) -> np.ndarray:
    """Concatenate a dm_control dict observation into a float32 vector, keys in sorted order."""
    parts = [np.asarray(observation[key], dtype=np.float64).ravel() for key in sorted(observation)]
    return np.concatenate(parts).astype(np.float32)


class DMCEnv(gym.Env):
    """A DeepMind Control suite task as a ``gymnasium.Env`` with flat float32 observations.

    Args:
        name: ``"<domain>-<task>"``, one of :data:`DMC_TASKS`.
        action_repeat: each agent action is applied this many times (control steps) and the
            rewards are summed; the repeat stops early when the episode ends.
        time_limit: episode length in environment *control* steps (the suite's default is 1000
            for every task but ``lqr``); with ``action_repeat=k`` the agent sees
            ``ceil(time_limit / k)`` steps. Reaching it is reported as ``truncated=True``.

    The suite environment is built with ``flat_observation=False`` and its own clock disabled
    (``task_kwargs={"time_limit": inf}``), so this adapter's control-step counter is the single,
    explicit episode limit; the default ``time_limit=1000`` matches the suite's episode length.
    The underlying ``dm_control`` environment is available as :attr:`dmc_env`.
    """

    metadata = {"render_modes": []}

    def __init__(self, name: str, action_repeat: int = 1, time_limit: int = 1000):
        if name not in DMC_TASKS:
            raise ValueError(f"Unknown DMC task {name!r}. Valid names:\n{_valid_names_message()}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        if time_limit < 1:
            raise ValueError(f"time_limit must be >= 1, got {time_limit}")
        domain, task = name.split("-", 1)
        self.name = name
        self.action_repeat = int(action_repeat)
        self.time_limit = int(time_limit)
        # The task seed 0 is a placeholder: the first reset() always re-seeds the task.
        self._env = suite.load(
            domain,
            task,
            task_kwargs={"random": 0, "time_limit": float("inf")},
            environment_kwargs={"flat_observation": False},
        )
        spec = self._env.action_spec()
        self._action_dtype = spec.dtype
        self._low = np.broadcast_to(np.asarray(spec.minimum, np.float64), spec.shape).copy()
        self._high = np.broadcast_to(np.asarray(spec.maximum, np.float64), spec.shape).copy()
        obs_size = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_size,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, np.float32)
        self._task_seeded = False
        self._steps = 0
        self._needs_reset = True

    @property
    def dmc_env(self):
        """The wrapped ``dm_control.rl.control.Environment``."""
        return self._env

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; returns ``(observation, {})``.

        ``seed`` (an int >= 0) re-seeds both ``self.np_random`` and the task's RandomState (same
        stream as ``task_kwargs={"random": seed}``; a seed of 2**32 or more, which RandomState
        refuses, is hashed to 32 bits first). Without a seed, the task stream continues, so
        successive episodes start from different states; if the task was never seeded, its seed
        is drawn from ``self.np_random``.
        """
        super().reset(seed=seed)
        if seed is not None or not self._task_seeded:
            task_seed = seed if seed is not None else int(self.np_random.integers(2**32))
            if task_seed >= 2**32:  # RandomState takes 32 bits; evaluation seeds can exceed that
                task_seed = int(np.random.SeedSequence(task_seed).generate_state(1)[0])
            self._env.task.random.seed(task_seed)
            self._task_seeded = True
        time_step = self._env.reset()
        self._steps = 0
        self._needs_reset = False
        return flatten_observation(time_step.observation), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (in ``[-1, 1]``, clipped) ``action_repeat`` times.

        Returns ``(observation, summed_reward, terminated, truncated, {"discount": d})``.
        Raises ``ValueError`` for a wrongly shaped or non-finite action.
        """
        if self._needs_reset:
            raise RuntimeError("DMCEnv.step() called before reset() or after the episode ended")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action shape {action.shape} != expected {self.action_space.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action}")
        unit = (np.clip(action, -1.0, 1.0) + 1.0) * 0.5
        scaled = (self._low + unit * (self._high - self._low)).astype(self._action_dtype)

        reward, terminated, episode_over = 0.0, False, False
        for _ in range(self.action_repeat):
            time_step = self._env.step(scaled)
            self._steps += 1
            reward += float(time_step.reward)
            terminated = time_step.last() and float(time_step.discount) == 0.0
            episode_over = time_step.last() or self._steps >= self.time_limit
            if episode_over:
                break
        truncated = episode_over and not terminated
        self._needs_reset = episode_over
        info = {"discount": float(time_step.discount)}
        return flatten_observation(time_step.observation), reward, terminated, truncated, info

    def get_rng_state(self) -> dict[str, Any]:
        """Random state for checkpoints, as plain Python types (``torch.load(weights_only=True)``
        safe): the task's RandomState and the gymnasium ``np_random`` generator.

        Physics is not captured (several tasks also keep per-episode state in the model, e.g.
        target positions): after restoring, call ``reset()``. (The training loop's env adapter
        replays the episode in progress from this state and its actions instead.)
        """
        name, keys, pos, has_gauss, cached_gaussian = self._env.task.random.get_state()
        return {
            "task": {
                "bit_generator": str(name),
                "keys": [int(k) for k in keys],
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached_gaussian),
            },
            "task_seeded": self._task_seeded,
            "np_random": copy.deepcopy(self.np_random.bit_generator.state),
        }

    def set_rng_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_rng_state` output; the current episode ends (call ``reset()``)."""
        task = state["task"]
        self._env.task.random.set_state(
            (
                task["bit_generator"],
                np.asarray(task["keys"], dtype=np.uint32),
                int(task["pos"]),
                int(task["has_gauss"]),
                float(task["cached_gaussian"]),
            )
        )
        self._task_seeded = bool(state["task_seeded"])
        bit_generator = getattr(np.random, state["np_random"]["bit_generator"])()
        bit_generator.state = copy.deepcopy(state["np_random"])
        self.np_random = np.random.Generator(bit_generator)
        self._needs_reset = True

    def close(self) -> None:
        """Release the underlying dm_control environment (safe to call more than once)."""
        self._env.close()
