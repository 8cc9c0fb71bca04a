"""Shared pieces of the diffusion objectives: random timesteps and noise, targets per
parameterisation."""

from __future__ import annotations

import torch
from einops import repeat
from torch import Tensor, nn

from diffpolicy.samplers import Sampler
from diffpolicy.schedules import NoiseSchedule


def noised_actions(
    schedule: NoiseSchedule, actions: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw t ~ Uniform{0..T-1} and eps ~ N(0, I) per sample; return (a_t, t, eps).

    actions: (batch, act_dim) -> a_t (batch, act_dim), t (batch,) long, eps (batch, act_dim).
    """
    batch = actions.shape[0]
    t = torch.randint(schedule.num_steps, (batch,), generator=generator, device=actions.device)
    eps = torch.randn(
        actions.shape, generator=generator, device=actions.device, dtype=actions.dtype
    )
    # t is drawn in range: no range check (it would read t on the host every update).
    return schedule.add_noise(actions, eps, t, validate=False), t, eps


def policy_actions(
    denoiser: nn.Module,
    sampler: Sampler,
    obs: Tensor,
    act_dim: int,
    n: int = 1,
    differentiable: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """n chain samples per state, each from x_T ~ N(0, I): (obs repeated, actions), both
    (batch * n, dim) with a state's n draws adjacent. `differentiable`: backpropagate through
    the chain (Diffusion-QL, DACER, DIME)."""
    obs = repeat(obs, "b d -> (b n) d", n=n)
    x_T = torch.randn(
        (obs.shape[0], act_dim), generator=generator, device=obs.device, dtype=obs.dtype
    )
    actions = sampler.sample(denoiser, obs, x_T, generator=generator, differentiable=differentiable)
    return obs, actions


def noisy_actions(
    actions: Tensor, std: float | Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """actions + std * z, z ~ N(0, I), clipped to [-1, 1]: exploration noise, and DACER's policy
    around the chain's output."""
    noise = torch.randn(actions.shape, generator=generator, device=actions.device)
    return (actions + std * noise).clamp(-1.0, 1.0)
