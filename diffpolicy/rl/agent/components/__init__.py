"""The agent's named parts: actor objectives, samplers and critics, each chosen by a config field
from a registry that user code adds to (`register_objective`, `register_sampler`,
`register_critic`), like gymnasium's `register` / `make`."""

from diffpolicy.rl.agent.components import online_objectives  # noqa: F401 (registers dime, dacer, qvpo)
from diffpolicy.rl.agent.components.checks import check_components
from diffpolicy.rl.agent.components.critics import (
    CRITICS,
    CriticUpdate,
    critic_ensemble,
    critic_name,
    register_critic,
)
from diffpolicy.rl.agent.components.objectives import OBJECTIVES, ActorObjective, register_objective
from diffpolicy.rl.agent.components.samplers import (
    SAMPLERS,
    SamplerEntry,
    make_sampler,
    register_sampler,
)

__all__ = [
    "CRITICS",
    "OBJECTIVES",
    "SAMPLERS",
    "ActorObjective",
    "CriticUpdate",
    "SamplerEntry",
    "check_components",
    "critic_ensemble",
    "critic_name",
    "make_sampler",
    "register_critic",
    "register_objective",
    "register_sampler",
]
