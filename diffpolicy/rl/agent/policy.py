"""A diffusion policy: a denoiser plus the schedule and sampler that turn it into actions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffpolicy.samplers import Sampler
from diffpolicy.schedules import NoiseSchedule


class DiffusionPolicy(nn.Module):
    """pi(a | s) sampled by running `sampler` on `denoiser` from x_T ~ N(0, I). The sampler is
    anything with the `diffpolicy.samplers.Sampler` protocol: DDPM, DDIM, Langevin or your own.

    Actions live in [-1, 1] when the sampler clips (the default in the agent). Moving the policy
    (`.to(device)`) moves the sampler's schedule tables with it, so sampling reads them where the
    networks are.
    """

    def __init__(self, denoiser: nn.Module, sampler: Sampler, act_dim: int) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.sampler = sampler
        self.act_dim = act_dim

    def forward(
        self,
        obs: Tensor,
        generator: torch.Generator | None = None,
        differentiable: bool = False,
        denoiser: nn.Module | None = None,
        sampler: Sampler | None = None,
    ) -> Tensor:
        """obs: (batch, obs_dim) -> actions (batch, act_dim). `denoiser` overrides the online one
        (the agent passes its EMA copy to act with averaged weights), `sampler` the policy's own
        (the agent draws critic-target actions with a shorter chain)."""
        net = denoiser if denoiser is not None else self.denoiser
        sampler = sampler if sampler is not None else self.sampler
        x_T = torch.randn(
            (obs.shape[0], self.act_dim), generator=generator, device=obs.device, dtype=obs.dtype
        )
        # A denoiser that can precompute its obs-only work for the K calls of a chain does so.
        denoise = net.bind(obs) if hasattr(net, "bind") else net
        return sampler.sample(denoise, obs, x_T, generator=generator, differentiable=differentiable)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        move_schedule(self.sampler, fn)
        return self


def move_schedule(sampler, fn) -> None:
    """Apply a module's tensor function (`.to`, `.cuda`, `.double`) to a sampler's schedule."""
    schedule = getattr(sampler, "schedule", None)
    if isinstance(schedule, NoiseSchedule):
        sampler.schedule = NoiseSchedule(fn(schedule.betas))
