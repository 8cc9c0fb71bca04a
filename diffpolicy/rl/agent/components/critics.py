"""Critics by name: the critic network and the loss of the agent's critic step.

Built in: "td" (clipped double-Q TD loss against Polyak-averaged target critics, `td_loss`) and
"crossq" (CrossQ: no target network, current and next state-actions in one batch,
`crossq_td_loss`). `register_critic("name", loss)` adds one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

from diffpolicy.nets import CriticEnsemble, HLGauss
from diffpolicy.objectives import crossq_td_loss, td_loss
from diffpolicy.registry import Registry

if TYPE_CHECKING:
    from diffpolicy.rl.agent.agent import Agent, AgentConfig
    from diffpolicy.rl.storage.buffer import Batch

CriticLoss = Callable[["Agent", "Batch", Tensor], tuple[Tensor, dict[str, Tensor]]]
"""(agent, replay batch, next actions) -> (loss of `agent.critic`, metrics as tensors). The next
actions come from the policy's target chain; the agent steps the optimiser and, for a critic
with a target network, the Polyak update of `agent.target_critic` after it."""

CriticFactory = Callable[["AgentConfig", int, int], nn.Module]
"""(cfg, obs_dim, act_dim) -> the online critic: (obs, actions) -> Q of shape (members, batch),
with `reduce(q, "mean" | "min")` as `CriticEnsemble` has (QSM's action gradient uses it)."""


def critic_ensemble(cfg: AgentConfig, obs_dim: int, act_dim: int) -> CriticEnsemble:
    """The ensemble the agent's critic_* options describe."""
    return CriticEnsemble(
        obs_dim,
        act_dim,
        cfg.critic_members,
        cfg.critic_hidden,
        layer_norm=cfg.critic_layer_norm,
        batch_renorm=cfg.critic_batch_renorm,
        renorm_warmup_steps=cfg.critic_renorm_warmup,
        input_renorm=cfg.critic_input_renorm,
        value_distribution=value_support(cfg),
        residual_blocks=cfg.critic_residual_blocks,
    )


def value_support(cfg: AgentConfig) -> HLGauss | None:
    """The critic's value support, [-V, V] with V = critic_reward_bound / (1 - gamma): the
    largest discounted return such rewards reach (None: a scalar critic)."""
    if cfg.critic_value_bins == 0:
        return None
    limit = cfg.critic_reward_bound / (1.0 - cfg.gamma)
    return HLGauss(-limit, limit, cfg.critic_value_bins)


@dataclass(frozen=True)
class CriticUpdate:
    """A registered critic."""

    loss: CriticLoss
    target_network: bool = True
    """Keep a Polyak-averaged copy of the critic (`agent.target_critic`, rate cfg.tau), updated
    by the agent after every critic step."""
    options: tuple[str, ...] = ()
    """AgentConfig fields only this critic reads: changing one while another critic is chosen is
    refused, since it would change nothing."""
    network: CriticFactory = critic_ensemble


CRITICS: Registry[CriticUpdate] = Registry("critic")


def register_critic(
    name: str,
    loss: CriticLoss,
    *,
    target_network: bool = True,
    options: tuple[str, ...] = (),
    network: CriticFactory = critic_ensemble,
    replace: bool = False,
) -> CriticUpdate:
    """Make `AgentConfig(critic=name)` train the critic with `loss(agent, batch, next_actions)`."""
    return CRITICS.register(
        name, CriticUpdate(loss, target_network, tuple(options), network), replace
    )


def critic_name(cfg: AgentConfig) -> str:
    """The critic the config chooses: cfg.critic, except that the older switch
    critic_target_network=False selects "crossq" (configs written before critics had names)."""
    return "crossq" if cfg.critic == "td" and not cfg.critic_target_network else cfg.critic


def _transitions(batch: Batch) -> tuple[Tensor, ...]:
    return batch.obs, batch.actions, batch.rewards, batch.next_obs, batch.terminated


def _td(agent: Agent, batch: Batch, next_actions: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    cfg = agent.cfg
    return td_loss(
        agent.critic,
        agent.target_critic,
        lambda s: next_actions,
        *_transitions(batch),
        cfg.gamma,
        cfg.target_subset,
    )


def _crossq(agent: Agent, batch: Batch, next_actions: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    return crossq_td_loss(
        agent.critic, lambda s: next_actions, *_transitions(batch), agent.cfg.gamma
    )


register_critic("td", _td, options=("target_subset",))
register_critic("crossq", _crossq, target_network=False)
