"""The config rules that come from the registries: every name is registered, and no option is
set that the chosen objective, sampler or critic would ignore or cannot honour. `AgentConfig`
calls `check_components` after the field checks of `diffpolicy.rl.run.validation`."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from diffpolicy.registry import Registry
from diffpolicy.rl.agent.components.critics import CRITICS, critic_name
from diffpolicy.rl.agent.components.objectives import OBJECTIVES
from diffpolicy.rl.agent.components.samplers import SAMPLERS
from diffpolicy.rl.run.validation import fail

if TYPE_CHECKING:
    from diffpolicy.rl.agent.agent import AgentConfig

P = "agent."


def check_components(cfg: AgentConfig) -> None:
    """ConfigError, in one line naming the field, for a config the registries refuse."""
    for field, registry in (
        ("objective", OBJECTIVES),
        ("sampler", SAMPLERS),
        ("critic", CRITICS),
    ):
        name = getattr(cfg, field)
        if name not in registry:
            fail(P + field, name, f"must be one of: {', '.join(registry.names())}")
    critic = critic_name(cfg)
    _unused_options(cfg, "objective", OBJECTIVES, cfg.objective)
    _unused_options(cfg, "sampler", SAMPLERS, cfg.sampler)
    _unused_options(cfg, "critic", CRITICS, critic)

    objective, sampler = OBJECTIVES[cfg.objective], SAMPLERS[cfg.sampler]
    if objective.check is not None:  # first: it names the one sampler that fits, where any
        objective.check(cfg)
    if objective.differentiates_sampler and not sampler.differentiable:
        usable = [name for name, entry in SAMPLERS.items() if entry.differentiable]
        fail(
            P + "sampler",
            cfg.sampler,
            f"objective {cfg.objective} backpropagates through the sampler: "
            f"use {' or '.join(usable)}",
        )
    if cfg.eval_temperature != 1.0 and not sampler.temperature:
        usable = [name for name, entry in SAMPLERS.items() if entry.temperature]
        fail(
            P + "eval_temperature",
            cfg.eval_temperature,
            f"sampler {cfg.sampler} has no temperature: use {' or '.join(usable)}",
        )
    if cfg.alpha_control == "chain" and not sampler.temperature:
        usable = [name for name, entry in SAMPLERS.items() if entry.temperature]
        fail(
            P + "alpha_control",
            cfg.alpha_control,
            f"sampler {cfg.sampler} has no temperature to tune: use {' or '.join(usable)}",
        )
    if not cfg.critic_target_network and CRITICS[critic].target_network:
        fail(
            P + "critic_target_network",
            False,
            f"critic {critic} keeps target networks (false is the older way to choose crossq)",
        )
    if not CRITICS[critic].target_network and cfg.tau != default_of(cfg, "tau"):
        fail(P + "tau", cfg.tau, f"critic {critic} has no target network to average")


def _unused_options(cfg: AgentConfig, field: str, registry: Registry, chosen: str) -> None:
    """Refuse a changed option that only other entries of `registry` read."""
    readers: dict[str, list[str]] = {}
    for name, entry in registry.items():
        for option in entry.options:
            readers.setdefault(option, []).append(name)
    for option, names in readers.items():
        if chosen in names:
            continue
        value = getattr(cfg, option)
        if value != default_of(cfg, option):
            kind = field if len(names) == 1 else field + "s"
            fail(
                P + option,
                _plain(value),
                f"read only by {kind} {', '.join(names)}, not by {P}{field} = {chosen!r}",
            )


def default_of(cfg: AgentConfig, option: str) -> Any:
    field = next(f for f in dataclasses.fields(cfg) if f.name == option)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
