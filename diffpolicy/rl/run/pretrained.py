"""A trained policy as users of Stable-Baselines3 expect one: load it from a run directory or a
small policy file, then `predict(obs)` with NumPy arrays in the environment's own units.

    policy = load_policy("runs/Hopper-v5/qsm/seed0")   # or a file written by save_policy
    action, _ = policy.predict(obs)                      # (obs_dim,) -> (act_dim,), env units
    save_policy(policy, "hopper.pt")                     # weights and config, no optimiser

A policy file holds the run config, the acting denoiser's weights (the EMA weights when the run
kept an EMA), the critic's when evaluation picks the best of several samples, the chains' tuned
temperature (`alpha_control` "chain"), and the action bounds; it loads with
`torch.load(weights_only=True)` (checksummed, as checkpoints are).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffpolicy.rl.agent.agent import best_of, make_denoiser
from diffpolicy.rl.agent.components import CRITICS, SAMPLERS, critic_name, make_sampler
from diffpolicy.rl.agent.policy import DiffusionPolicy, move_schedule
from diffpolicy.rl.envs.adapters import make_env
from diffpolicy.rl.run.config import TrainConfig, config_from_json, config_to_json
from diffpolicy.rl.run.resume import CHECKPOINT, CONFIG, imports_module
from diffpolicy.rl.run.validation import ConfigError
from diffpolicy.rl.storage.checkpoint import load_checkpoint, save_checkpoint
from diffpolicy.rl.storage.files import CheckpointError

POLICY_FORMAT = "diffpolicy-policy-1"
DETERMINISTIC_SEED = 0
"""deterministic=True draws the chain's start from a generator seeded with this, every call."""


class TrainedPolicy:
    """A trained diffusion policy acting in the environment's own units.

    `predict(obs)` returns `(actions, state)` as Stable-Baselines3's does (the policy has no
    recurrent state: `state` is passed back unchanged) and samples as the run's evaluation did
    (`eval_temperature`, `eval_best_of`, no exploration noise);
    `predict(obs, deterministic=True)` runs the chain at temperature 0 (no sampling noise after
    the initial draw; a sampler without a temperature, such as ddim, keeps its own) from a fixed
    generator, so one observation always gets one action.
    """

    def __init__(
        self,
        config: TrainConfig,
        denoiser_state: dict[str, Tensor],
        action_low: np.ndarray,
        action_high: np.ndarray,
        obs_dim: int,
        critic_state: dict[str, Tensor] | None = None,
        device: str | torch.device = "cpu",
        chain_temperature: float = 1.0,
    ) -> None:
        cfg = config.agent
        self.config, self.device = config, torch.device(device)
        self.chain_temperature = chain_temperature
        self.obs_dim, self.act_dim = obs_dim, len(action_low)
        self.action_low = np.asarray(action_low, dtype=np.float64)
        self.action_high = np.asarray(action_high, dtype=np.float64)
        denoiser = make_denoiser(obs_dim, self.act_dim, cfg)
        denoiser.load_state_dict(denoiser_state)
        self.policy = DiffusionPolicy(denoiser, make_sampler(cfg), self.act_dim)
        self.policy.requires_grad_(False).eval().to(self.device)
        self.best_of = cfg.eval_best_of
        self.critic = None
        if self.best_of > 1:
            if critic_state is None:
                raise CheckpointError("eval_best_of > 1 picks samples by Q: the critic is missing")
            self.critic = CRITICS[critic_name(cfg)].network(cfg, obs_dim, self.act_dim)
            self.critic.load_state_dict(critic_state)
            self.critic.requires_grad_(False).eval().to(self.device)
        # The run's tuned temperature (alpha_control "chain"; 1 otherwise) scales evaluation's.
        self._sampler = make_sampler(cfg, temperature=cfg.eval_temperature * chain_temperature)
        cold = 0.0 if SAMPLERS[cfg.sampler].temperature else 1.0
        self._deterministic_sampler = make_sampler(cfg, temperature=cold)
        for sampler in (self._sampler, self._deterministic_sampler):
            move_schedule(sampler, lambda table: table.to(self.device))

    @torch.no_grad()
    def predict(
        self,
        obs: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """obs (obs_dim,) or (batch, obs_dim) -> (actions, state): actions (act_dim,) or
        (batch, act_dim) in the environment's action bounds and its action dtype (float32).
        `state` and `episode_start` are Stable-Baselines3's recurrent-policy arguments, taken
        for its interface and unused: `state` comes back as it was given."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"obs must have shape ({self.obs_dim},) or (batch, {self.obs_dim}), got {obs.shape}"
            )
        if not np.isfinite(obs).all():  # the chain would turn it into NaN actions without a word
            raise ValueError("obs must be finite: it holds NaN or inf")
        obs_t = torch.as_tensor(obs.reshape(-1, self.obs_dim), device=self.device)
        generator = None
        if deterministic:
            generator = torch.Generator(self.device).manual_seed(DETERMINISTIC_SEED)
        sampler = self._deterministic_sampler if deterministic else self._sampler
        actions = best_of(self.policy, self.critic, obs_t, self.best_of, generator, sampler=sampler)
        unit = actions.clamp(-1.0, 1.0).double().cpu().numpy()
        scaled = self.to_env_units(unit).astype(np.float32)
        return (scaled[0] if obs.ndim == 1 else scaled), state

    def to_env_units(self, actions: np.ndarray) -> np.ndarray:
        """[-1, 1] -> [low, high], the map `BoxActionAdapter.step` applies."""
        return self.action_low + (actions + 1.0) * 0.5 * (self.action_high - self.action_low)

    def save(self, path: str | Path) -> Path:
        """Write the policy file (atomically); returns its path."""
        state = {
            "policy_format": POLICY_FORMAT,
            "config": config_to_json(self.config),
            "obs_dim": self.obs_dim,
            "action_low": torch.from_numpy(self.action_low),
            "action_high": torch.from_numpy(self.action_high),
            "denoiser": {k: v.cpu() for k, v in self.policy.denoiser.state_dict().items()},
        }
        if self.chain_temperature != 1.0:  # alpha_control "chain": the run's tuned temperature
            state["chain_temperature"] = self.chain_temperature
        if self.critic is not None:
            state["critic"] = {k: v.cpu() for k, v in self.critic.state_dict().items()}
        save_checkpoint(state, Path(path))
        return Path(path)


def load_policy(
    path: str | Path, device: str | torch.device = "cpu", env: str | None = None
) -> TrainedPolicy:
    """A run directory (its config and latest checkpoint; builds the environment once to read
    its action bounds) or a file written by `save_policy`. Objectives, samplers and critics
    registered by user code must be registered first, as for training.

    A file whose env id has a module part ("module:Id", which gymnasium imports to build it) is
    refused unless `env` names the same id: a file never makes us import code on its own word. An
    `env` other than the policy's own is refused."""
    path = Path(path)
    if path.is_dir():
        return _from_run_dir(path, device, env)
    state = load_checkpoint(path, read_chunks=False)
    if state.get("policy_format") != POLICY_FORMAT:
        hint = "; pass its run directory" if "agent" in state else ""
        raise CheckpointError(f"{path} is not a diffpolicy policy file{hint}")
    return TrainedPolicy(
        _config(state["config"], path, env),
        state["denoiser"],
        state["action_low"].numpy(),
        state["action_high"].numpy(),
        state["obs_dim"],
        state.get("critic"),
        device,
        state.get("chain_temperature", 1.0),
    )


def save_policy(policy: TrainedPolicy | str | Path, path: str | Path) -> Path:
    """Write the small policy file of a loaded policy, or of a run directory's latest checkpoint."""
    if not isinstance(policy, TrainedPolicy):
        policy = load_policy(policy)
    return policy.save(path)


def _from_run_dir(run_dir: Path, device, env: str | None) -> TrainedPolicy:
    if not (run_dir / CONFIG).is_file():
        raise CheckpointError(f"{run_dir} is not a run directory: no {CONFIG}")
    cfg = _config((run_dir / CONFIG).read_text(), run_dir / CONFIG, env)
    state = load_checkpoint(run_dir / CHECKPOINT, read_chunks=False)
    low, high, obs_dim = _env_bounds(cfg)
    modules = state["agent"]["modules"]
    acting = "ema.model." if cfg.agent.ema_decay > 0 else "policy.denoiser."
    return TrainedPolicy(
        cfg,
        _prefixed(modules, acting),
        low,
        high,
        obs_dim,
        _prefixed(modules, "critic.") if cfg.agent.eval_best_of > 1 else None,
        device,
        _chain_temperature(cfg, modules),
    )


def _chain_temperature(cfg: TrainConfig, modules: dict[str, Tensor]) -> float:
    """qsm.alpha / the tuned alpha, for a run whose chains ran at a tuned temperature."""
    if cfg.agent.alpha_target_std is None or cfg.agent.alpha_control != "chain":
        return 1.0
    return cfg.agent.qsm.alpha / modules["temperature.log_alpha"].exp().item()


def _config(text: str, where: Path, env: str | None) -> TrainConfig:
    try:
        cfg = config_from_json(text)
    except ConfigError as err:
        raise ConfigError(f"cannot load the policy's config from {where}: {err}") from err
    if env is not None and env != cfg.env:  # env only confirms the policy's own id
        raise ConfigError(
            f"cannot load the policy in {where}: env {env!r} was given, but it was trained on "
            f"{cfg.env!r}"
        )
    reason = imports_module(cfg.env, env)
    if reason:
        raise ConfigError(
            f"cannot load the policy in {where}: it {reason}; pass --env {cfg.env} "
            "(load_policy's env) if you trust it"
        )
    return cfg


def _env_bounds(cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """The environment's own action bounds (before the adapter maps them to [-1, 1])."""
    env = make_env(cfg.env, cfg.action_repeat)
    try:
        space = env.env.action_space
        return space.low, space.high, env.observation_space.shape[0]
    finally:
        env.close()


def _prefixed(modules: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in modules.items() if k.startswith(prefix)}
