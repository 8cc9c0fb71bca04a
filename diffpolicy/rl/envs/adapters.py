"""Environment adapters: every env the loop sees acts in [-1, 1] and returns checked observations.

`make_env(name)` builds a gymnasium id (e.g. "Hopper-v5") or a DeepMind Control "domain-task"
(e.g. "cheetah-run") and wraps it in `BoxActionAdapter`.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch


class BoxActionAdapter(gym.Wrapper):
    """Rescales actions from [-1, 1] to a bounded Box and checks what comes back.

    Raises ValueError for: a non-Box or unbounded action space or a non-flat observation space (at
    construction), an action of the wrong shape or with NaN/inf, an observation of the wrong shape
    or with NaN/inf, a NaN/inf reward. Errors name the environment so a failing run says where the
    bad value came from.

    It records how the episode in progress began (its reset seed and the random state before it)
    and the actions taken since, so that `restore` can replay the episode where it cannot restore
    the simulator itself.
    """

    def __init__(self, env: gym.Env, name: str | None = None) -> None:
        super().__init__(env)
        self.name = name or (env.spec.id if env.spec else type(env.unwrapped).__name__)
        space = env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(
                f"{self.name}: diffusion policies need a continuous Box action space, got {space}"
            )
        if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            raise ValueError(f"{self.name}: the action space must be bounded, got {space}")
        if not isinstance(env.observation_space, gym.spaces.Box):
            raise ValueError(
                f"{self.name}: need a Box (vector) observation space, got {env.observation_space}"
            )
        if len(env.observation_space.shape) != 1:  # the networks take flat vectors
            raise ValueError(
                f"{self.name}: need flat (vector) observations, got shape "
                f"{env.observation_space.shape}; flatten them with a gymnasium wrapper "
                "(gymnasium.wrappers.FlattenObservation)"
            )
        self._low = space.low.astype(np.float64)
        self._high = space.high.astype(np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, space.shape, np.float32)
        self.obs_shape = env.observation_space.shape
        self._episode: dict[str, Any] | None = None  # how the episode began, its actions since
        self._obs: np.ndarray | None = None  # the last observation returned

    def reset(self, **kwargs) -> tuple[np.ndarray, dict]:
        seed = kwargs.get("seed")  # a seed fixes the episode; without, the random state does
        start = {"seed": seed, "rng": self._rng_state() if seed is None else None}
        obs, info = self.env.reset(**kwargs)
        self._episode = {**start, "actions": []}
        return self._check_obs(obs), info

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"{self.name}: action shape {action.shape} != {self.action_space.shape}"
            )
        if not np.isfinite(action).all():
            raise ValueError(f"{self.name}: action contains NaN or inf: {_one_line(action)}")
        if self._episode is not None:
            self._episode["actions"].append(action.copy())
        scaled = self._low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (self._high - self._low)
        obs, reward, terminated, truncated, info = self.env.step(
            scaled.astype(self.env.action_space.dtype)
        )
        if not np.isfinite(reward):
            raise ValueError(f"{self.name}: the environment returned a non-finite reward {reward}")
        return self._check_obs(obs), float(reward), bool(terminated), bool(truncated), info

    def _check_obs(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape != self.obs_shape:
            raise ValueError(
                f"{self.name}: observation shape {obs.shape} != declared {self.obs_shape}"
            )
        if not np.isfinite(obs).all():
            raise ValueError(f"{self.name}: observation contains NaN or inf: {_one_line(obs)}")
        self._obs = obs
        return obs

    # --- checkpointing ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The env's random state and the episode in progress, as tensors and plain Python types
        (loadable with `torch.load(weights_only=True)`): for MuJoCo envs the full simulator state,
        for others how the episode began and its actions, to be replayed."""
        base = self.env.unwrapped
        state = self._rng_state()
        sim = _mujoco_state(base)
        limit = _time_limit(self.env)
        if sim is not None and limit is not None:
            state["mujoco"] = sim
            state["mujoco_derived"] = {
                name: torch.from_numpy(getattr(base.data, name).copy()) for name in _DERIVED
            }
            state["elapsed_steps"] = int(limit._elapsed_steps)
        elif self._episode is not None:
            actions = np.array(self._episode["actions"]).reshape(-1, *self.action_space.shape)
            state["episode"] = {
                **self._episode,
                "actions": torch.from_numpy(actions),
                "obs": torch.from_numpy(self._obs.copy()),
            }
        return state

    def restore(self, state: dict[str, Any]) -> bool:
        """Restore a `snapshot`. Returns True if the episode continues where it was, False if the
        caller must reset (only the random state could be restored: a checkpoint without the
        episode, or a replay that did not reach the snapshot's observation and random state, as
        for an env whose episodes depend on more than their seed and actions). Call after one
        `reset()`."""
        self._set_rng_state(state)
        if "mujoco" in state:
            self._set_mujoco_state(state)
            return True
        if "episode" not in state:
            return False
        rng, episode = self._rng_state(), state["episode"]
        if (
            np.array_equal(self._replay(episode), episode["obs"].numpy())
            and self._rng_state() == rng
        ):
            return True
        self._set_rng_state(state)
        return False

    def _replay(self, episode: dict[str, Any]) -> np.ndarray:
        """Begin the recorded episode again and take its actions; the observation reached."""
        if episode["rng"] is not None:
            self._set_rng_state(episode["rng"])
        obs, _ = self.reset(seed=episode["seed"])
        for action in episode["actions"].numpy():
            obs, *_ = self.step(action)
        return obs

    def _rng_state(self) -> dict[str, Any]:
        base = self.env.unwrapped
        state: dict[str, Any] = {"np_random": copy.deepcopy(base.np_random.bit_generator.state)}
        if hasattr(base, "get_rng_state"):  # DeepMind Control
            state["dmc"] = base.get_rng_state()
        return state

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        base = self.env.unwrapped
        if "dmc" in state:
            base.set_rng_state(state["dmc"])
        generator = getattr(np.random, state["np_random"]["bit_generator"])()
        generator.state = copy.deepcopy(state["np_random"])
        base.np_random = np.random.Generator(generator)

    def _set_mujoco_state(self, state: dict[str, Any]) -> None:
        import mujoco

        base = self.env.unwrapped
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        mujoco.mj_setState(base.model, base.data, state["mujoco"].numpy(), spec)
        for name, value in state.get("mujoco_derived", {}).items():
            getattr(base.data, name)[...] = value.numpy()
        _time_limit(self.env)._elapsed_steps = state["elapsed_steps"]


def _one_line(values: np.ndarray) -> str:
    """An array as one line of text, long ones shortened (error messages are one line)."""
    return np.array2string(np.asarray(values), threshold=16, max_line_width=10**6)


# Quantities MuJoCo derives from the state (positions of bodies, contact forces, ...). After a
# step they describe the start of that step, and gymnasium tasks read them before the next step
# (Ant's x position, Humanoid's centre of mass), so an exact resume restores them as they were.
_DERIVED = (
    "xpos",
    "xquat",
    "xmat",
    "xipos",
    "ximat",
    "subtree_com",
    "cinert",
    "cvel",
    "cacc",
    "cfrc_int",
    "cfrc_ext",
    "qfrc_actuator",
    "actuator_force",
    "sensordata",
)


def _mujoco_state(base: gym.Env) -> torch.Tensor | None:
    if not (hasattr(base, "model") and hasattr(base, "data")):
        return None
    import mujoco

    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    buf = np.empty(mujoco.mj_stateSize(base.model, spec), dtype=np.float64)
    mujoco.mj_getState(base.model, base.data, buf, spec)
    return torch.from_numpy(buf)


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


_NEITHER = (
    "not a registered gymnasium id nor a DeepMind Control task (domain-task, e.g. cheetah-run)"
)


def make_env(name: str, action_repeat: int = 1) -> BoxActionAdapter:
    """A gymnasium id ("Hopper-v5", or "module:Id", which imports module) or a DeepMind Control
    task ("cheetah-run"), adapted. An id in gymnasium's registry wins, so a third-party id that
    looks like domain-task works without dm_control. ValueError, in one line, for an id that is
    neither (naming both), or an environment the policy cannot act in."""
    if ":" in name or name in gym.registry or not _looks_like_dmc(name):
        if action_repeat != 1:
            raise ValueError(
                f"action_repeat = {action_repeat}: only DeepMind Control tasks repeat actions, "
                f"and {name!r} is a gymnasium id"
            )
        try:
            env = gym.make(name)
        except (gym.error.Error, ModuleNotFoundError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if name in gym.registry:  # registered, but cannot be built (a missing dependency)
                raise ValueError(f"cannot make environment {name!r}: {reason}") from err
            raise ValueError(f"unknown environment {name!r}: {_NEITHER} ({reason})") from err
    else:
        env = _make_dmc(name, action_repeat)
    try:
        return BoxActionAdapter(env, name)
    except ValueError:
        env.close()
        raise


def _looks_like_dmc(name: str) -> bool:
    return "-" in name and name[:1].islower()


def _make_dmc(name: str, action_repeat: int) -> gym.Env:
    try:
        from diffpolicy.rl.envs.dmc import DMC_TASKS, DMCEnv
    except ImportError as err:
        raise ValueError(
            f"unknown environment {name!r}: {_NEITHER}; dm_control is not installed ({err})"
        ) from err
    if name not in DMC_TASKS:
        raise ValueError(f"unknown environment {name!r}: {_NEITHER}")
    return DMCEnv(name, action_repeat=action_repeat)
