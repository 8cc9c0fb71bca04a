"""The published online diffusion-policy objectives beside QSM and Diffusion-QL: "dime", "dacer"
and "qvpo" (docs/objectives/). Each reads its own `AgentConfig` fields (dime_*, dacer_*, qvpo_*),
and refuses in one line, at config time, a sampler its maths cannot use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from diffpolicy.objectives import AdaptiveTemperature
from diffpolicy.objectives.dacer import dacer_loss, policy_entropy
from diffpolicy.objectives.dime import dime_loss
from diffpolicy.objectives.qvpo import qvpo_loss
from diffpolicy.rl.agent.components.objectives import TemperatureRule, register_objective
from diffpolicy.rl.run.validation import fail

if TYPE_CHECKING:
    from diffpolicy.rl.agent.agent import Agent, AgentConfig
    from diffpolicy.rl.storage.buffer import Batch

P = "agent."


def _unchanged_exploration(cfg: AgentConfig, name: str, why: str) -> None:
    """These objectives set their own exploration: a changed exploration_noise would be unused."""
    from diffpolicy.rl.agent.components.checks import (
        default_of,  # checks imports this module's registry
    )

    if cfg.exploration_noise != default_of(cfg, "exploration_noise"):
        fail(P + "exploration_noise", cfg.exploration_noise, f"objective {name} {why}")


def _common(agent: Agent, batch: Batch) -> tuple:
    """The first arguments of the three losses: denoiser, critic, sampler, obs, act_dim."""
    policy = agent.policy
    return policy.denoiser, agent.critic, policy.sampler, batch.obs, agent.act_dim


# --- DIME ----------------------------------------------------------------------------------------
def _dime(agent: Agent, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    alpha = agent.temperature.alpha if agent.temperature is not None else agent.cfg.dime_alpha
    return dime_loss(*_common(agent, batch), alpha)


def _dime_temperature(cfg: AgentConfig, act_dim: int) -> AdaptiveTemperature | None:
    if cfg.dime_target_entropy is None:
        return None
    return AdaptiveTemperature(cfg.dime_alpha, None, cfg.alpha_lr)


def _dime_step(agent: Agent, batch: Batch, metrics: dict[str, Tensor]) -> dict[str, Tensor]:
    target = agent.cfg.dime_target_entropy * agent.act_dim
    return agent.temperature.step_error(target - metrics["entropy_bound"])


def _dime_check(cfg: AgentConfig) -> None:
    if cfg.sampler != "ddpm":
        fail(P + "sampler", cfg.sampler, "objective dime needs the Gaussian steps of ddpm")
    if cfg.ddpm_variance != "large":
        rule = "objective dime needs a Gaussian last step: use large"
        fail(P + "ddpm_variance", cfg.ddpm_variance, rule)
    _unchanged_exploration(cfg, "dime", "explores by its chain's own noise")


register_objective(
    "dime",
    _dime,
    options=("dime_alpha", "dime_target_entropy", "alpha_lr"),
    differentiates_sampler=True,
    temperature=TemperatureRule(_dime_temperature, _dime_step),
    exploration_std=lambda agent: 0.0,
    gaussian_chain=True,
    check=_dime_check,
)


# --- DACER ---------------------------------------------------------------------------------------
def _dacer_noise(agent: Agent) -> Tensor:
    return agent.temperature.alpha * agent.cfg.dacer_noise_scale


def _dacer(agent: Agent, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    return dacer_loss(*_common(agent, batch), _dacer_noise(agent))


def _dacer_temperature(cfg: AgentConfig, act_dim: int) -> AdaptiveTemperature:
    return AdaptiveTemperature(cfg.dacer_alpha, None, cfg.dacer_alpha_lr)


def _dacer_step(agent: Agent, batch: Batch, metrics: dict[str, Tensor]) -> dict[str, Tensor]:
    """Every dacer_entropy_every-th actor step: estimate the entropy, step alpha."""
    cfg = agent.cfg
    actor_step = (agent.num_updates - 1) // cfg.actor_every  # a host int: no device read
    if actor_step % cfg.dacer_entropy_every != 0:
        return {}
    entropy = policy_entropy(
        agent.policy.denoiser,
        agent.policy.sampler,
        batch.obs,
        agent.act_dim,
        cfg.dacer_entropy_samples,
        _dacer_noise(agent),
    )
    target = cfg.dacer_target_entropy * agent.act_dim
    return {**agent.temperature.step_error(target - entropy), "entropy_gmm": entropy}


register_objective(
    "dacer",
    _dacer,
    options=(
        "dacer_alpha",
        "dacer_alpha_lr",
        "dacer_noise_scale",
        "dacer_target_entropy",
        "dacer_entropy_every",
        "dacer_entropy_samples",
    ),
    differentiates_sampler=True,
    temperature=TemperatureRule(_dacer_temperature, _dacer_step),
    exploration_std=_dacer_noise,
    check=lambda cfg: _unchanged_exploration(
        cfg, "dacer", "adds noise alpha * dacer_noise_scale instead"
    ),
)


# --- QVPO ----------------------------------------------------------------------------------------
def _qvpo(agent: Agent, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    cfg = agent.cfg
    return qvpo_loss(*_common(agent, batch), cfg.qvpo_samples, cfg.qvpo_entropy_weight)


register_objective("qvpo", _qvpo, options=("qvpo_samples", "qvpo_entropy_weight"))
