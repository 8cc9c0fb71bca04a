"""Actor objectives by name: how the agent's actor step turns a replay batch into a loss.

Built in: "qsm" (Q-score matching, `diffpolicy.objectives.qsm_loss`) and "dql" (Diffusion-QL,
`dql_loss`) here; "dime", "dacer" and "qvpo" in `online_objectives`. `register_objective("name",
loss)` adds one; see examples/custom_objective.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from diffpolicy.objectives import AdaptiveTemperature, dql_loss, qsm_loss
from diffpolicy.registry import Registry
from diffpolicy.samplers.langevin import ScoreUnits

if TYPE_CHECKING:
    from diffpolicy.rl.agent.agent import Agent, AgentConfig
    from diffpolicy.rl.storage.buffer import Batch

ActorLoss = Callable[["Agent", "Batch"], tuple[Tensor, dict[str, Tensor]]]
"""(agent, replay batch) -> (loss of the online denoiser, metrics as tensors). The agent steps
the optimiser, the lr schedule and the EMA; the loss only reads what it needs from the agent
(`agent.policy.denoiser`, `agent.critic`, `agent.policy.sampler`, `agent.cfg`)."""


def _diffusion_units(cfg: AgentConfig) -> ScoreUnits:
    return "level"


def _exploration_noise(agent: Agent) -> float | Tensor:
    return agent.cfg.exploration_noise


@dataclass(frozen=True)
class TemperatureRule:
    """A temperature an objective tunes online: the agent builds it, keeps it in its state (and
    checkpoints), and steps it after each actor step."""

    build: Callable[[AgentConfig, int], AdaptiveTemperature | None]
    """(cfg, act_dim) -> the temperature, or None where the config keeps it fixed."""
    step: Callable[[Agent, Batch, dict[str, Tensor]], dict[str, Tensor]]
    """(agent, batch, the actor step's metrics) -> metrics, after one step of agent.temperature."""


@dataclass(frozen=True)
class ActorObjective:
    """A registered actor objective."""

    loss: ActorLoss
    options: tuple[str, ...] = ()
    """AgentConfig fields only this objective reads: changing one while another objective is
    chosen is refused, since it would change nothing."""
    differentiates_sampler: bool = False
    """It backpropagates through the sampling chain, so it needs a differentiable sampler."""
    score_units: Callable[[AgentConfig], ScoreUnits] = _diffusion_units
    """How the denoiser it trains reads as a score at level 0 (`LangevinSampler.score_units`):
    "level", the diffusion convention, for any denoising-trained model."""
    temperature: TemperatureRule | None = None
    """The temperature it tunes, if any (`agent.temperature`)."""
    exploration_std: Callable[[Agent], float | Tensor] = _exploration_noise
    """Std of the Gaussian noise added to training and target actions (default: the config's
    exploration_noise)."""
    gaussian_chain: bool = False
    """Its DDPM chain keeps a Gaussian density on every step (DIME's entropy bound): noise on the
    last step too, and only the final sample clipped to [-1, 1]."""
    check: Callable[[AgentConfig], None] | None = None
    """Its own config rules (ConfigError in one line), after the registries' own checks."""


OBJECTIVES: Registry[ActorObjective] = Registry("objective")


def register_objective(
    name: str,
    loss: ActorLoss,
    *,
    options: tuple[str, ...] = (),
    differentiates_sampler: bool = False,
    score_units: Callable[[AgentConfig], ScoreUnits] = _diffusion_units,
    temperature: TemperatureRule | None = None,
    exploration_std: Callable[[Agent], float | Tensor] = _exploration_noise,
    gaussian_chain: bool = False,
    check: Callable[[AgentConfig], None] | None = None,
    replace: bool = False,
) -> ActorObjective:
    """Make `AgentConfig(objective=name)` train the actor with `loss(agent, batch)`."""
    entry = ActorObjective(
        loss,
        tuple(options),
        differentiates_sampler,
        score_units,
        temperature,
        exploration_std,
        gaussian_chain,
        check,
    )
    return OBJECTIVES.register(name, entry, replace)


def _qsm(agent: Agent, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    cfg = agent.cfg
    return qsm_loss(
        agent.policy.denoiser,
        agent.critic,
        agent.policy.sampler.schedule,
        batch.obs,
        batch.actions,
        cfg.qsm,
        cfg.prediction,
        alpha=_loss_alpha(agent),
    )


def _loss_alpha(agent: Agent) -> Tensor | None:
    """The tuned alpha where it scales the loss; None (qsm.alpha) when it is fixed, or when it
    sets the chains' temperature instead (alpha_control "chain")."""
    if agent.temperature is None or agent.cfg.alpha_control == "chain":
        return None
    return agent.temperature.alpha


def _qsm_units(cfg: AgentConfig) -> ScoreUnits:
    # QSM's eps target trains -eps_theta = alpha grad Q itself (diffpolicy/samplers/langevin.py).
    return "unit" if cfg.qsm.target == "eps" else "level"


def _dql(agent: Agent, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    return dql_loss(
        agent.policy.denoiser,
        agent.critic,
        agent.policy.sampler,
        batch.obs,
        batch.actions,
        agent.cfg.dql_eta,
    )


def _spread_temperature(cfg: AgentConfig, act_dim: int) -> AdaptiveTemperature | None:
    if cfg.alpha_target_std is None:
        return None
    return AdaptiveTemperature(cfg.qsm.alpha, cfg.alpha_target_std, cfg.alpha_lr, cfg.alpha_max)


def _spread_step(agent: Agent, batch: Batch, metrics: dict[str, Tensor]) -> dict[str, Tensor]:
    return agent.spread_temperature_step(batch)


# QSM's own settings (agent.qsm) are not declared as options: presets set alpha per environment
# (presets.qsm_dmc), and choosing another objective on top of such a preset must not trip on it.
register_objective(
    "qsm",
    _qsm,
    options=("alpha_target_std", "alpha_lr", "alpha_spread_states", "alpha_control", "alpha_max"),
    score_units=_qsm_units,
    temperature=TemperatureRule(_spread_temperature, _spread_step),
)
register_objective("dql", _dql, options=("dql_eta",), differentiates_sampler=True)
