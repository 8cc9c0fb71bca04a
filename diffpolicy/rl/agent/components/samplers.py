"""Samplers by name: how the agent turns its denoiser into actions (to act, and to draw the
critic's target actions).

Built in: "ddpm", "ddim" and "langevin". `register_sampler("name", build)` adds one; `build(cfg,
steps, temperature)` returns any object satisfying `diffpolicy.samplers.Sampler`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diffpolicy.registry import Registry
from diffpolicy.rl.agent.components.objectives import OBJECTIVES
from diffpolicy.samplers import (
    Clipping,
    DDIMSampler,
    DDPMSampler,
    LangevinSampler,
    Sampler,
    even_timesteps,
)
from diffpolicy.schedules import make_schedule

if TYPE_CHECKING:
    from diffpolicy.rl.agent.agent import AgentConfig

SamplerFactory = Callable[["AgentConfig", "int | None", float], Sampler]
"""(cfg, steps, temperature) -> a sampler clipping actions to [-1, 1]. steps: None for the
config's own chain length, else the number of denoiser calls (the critic target's shorter chain).
temperature: 1 samples the policy, 0 removes the sampling noise after the first draw. In between
it scales the noise: for Langevin that samples pi^(1 / T) (up to the chain's O(h) bias), for DDPM
it does not (a narrower law, not pi^(1 / T); docs: Theory)."""


@dataclass(frozen=True)
class SamplerEntry:
    """A registered sampler."""

    build: SamplerFactory
    options: tuple[str, ...] = ()
    """AgentConfig fields only this sampler reads: changing one while another sampler is chosen
    is refused, since it would change nothing."""
    differentiable: bool = True
    """It can backpropagate through its chain (objectives such as dql need that)."""
    temperature: bool = True
    """It honours a temperature other than 1 (eval_temperature, deterministic prediction)."""


SAMPLERS: Registry[SamplerEntry] = Registry("sampler")


def register_sampler(
    name: str,
    build: SamplerFactory,
    *,
    options: tuple[str, ...] = (),
    differentiable: bool = True,
    temperature: bool = True,
    replace: bool = False,
) -> SamplerEntry:
    """Make `AgentConfig(sampler=name)` act with `build(cfg, steps, temperature)`."""
    entry = SamplerEntry(build, tuple(options), differentiable, temperature)
    return SAMPLERS.register(name, entry, replace)


def make_sampler(
    cfg: AgentConfig, steps: int | None = None, temperature: float = 1.0, name: str | None = None
) -> Sampler:
    """The sampler `cfg.sampler` names (or `name`: the same weights under another registered
    sampler, built from cfg's options), clipping actions to [-1, 1] after every step. `steps`
    overrides its number of steps (Langevin steps, or K levels for DDPM/DDIM); `temperature`
    scales its sampling noise (ValueError where the sampler has none to scale)."""
    return SAMPLERS[name or cfg.sampler].build(cfg, steps, temperature)


def _levels(cfg: AgentConfig, steps: int | None) -> dict:
    timesteps = even_timesteps(
        cfg.diffusion_steps, steps or cfg.sample_steps or cfg.diffusion_steps
    )
    # An objective whose chain keeps its Gaussian densities (DIME) clips the final sample only.
    free = OBJECTIVES[cfg.objective].gaussian_chain
    clipping = Clipping(each_step=not free, final=free)
    return {"prediction": cfg.prediction, "timesteps": timesteps, "clipping": clipping}


def _ddpm(cfg: AgentConfig, steps: int | None, temperature: float) -> Sampler:
    schedule = make_schedule(cfg.schedule, cfg.diffusion_steps)
    return DDPMSampler(
        schedule,
        variance=cfg.ddpm_variance,
        temperature=temperature,
        final_noise=OBJECTIVES[cfg.objective].gaussian_chain,
        **_levels(cfg, steps),
    )


def _ddim(cfg: AgentConfig, steps: int | None, temperature: float) -> Sampler:
    if temperature != 1.0:
        raise ValueError("a sampling temperature other than 1 needs the ddpm or langevin sampler")
    schedule = make_schedule(cfg.schedule, cfg.diffusion_steps)
    return DDIMSampler(schedule, eta=cfg.ddim_eta, **_levels(cfg, steps))


def _langevin(cfg: AgentConfig, steps: int | None, temperature: float) -> Sampler:
    trained = OBJECTIVES[cfg.objective].score_units(cfg)
    return LangevinSampler(
        make_schedule(cfg.schedule, cfg.diffusion_steps),
        prediction=cfg.prediction,
        step_size=cfg.langevin_step_size,
        num_steps=steps or cfg.langevin_steps,
        clipping=Clipping(),
        init_scale=cfg.langevin_init_scale,
        score_units=trained if cfg.langevin_score == "trained" else "level",
        temperature=temperature,
    )


register_sampler("ddpm", _ddpm, options=("sample_steps", "ddpm_variance"))
register_sampler("ddim", _ddim, options=("sample_steps", "ddim_eta"), temperature=False)
_LANGEVIN_OPTIONS = (
    "langevin_steps",
    "langevin_step_size",
    "langevin_init_scale",
    "langevin_score",
)
register_sampler("langevin", _langevin, options=_LANGEVIN_OPTIONS, differentiable=False)
