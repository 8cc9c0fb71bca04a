"""A diffusion policy: a denoiser plus the schedule and sampler that turn it into actions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffpolicy.samplers import Sampler


class DiffusionPolicy(nn.Module):
    """pi(a | s) sampled by running `sampler` on `denoiser` from x_T ~ N(0, I).

    Actions live in [-1, 1] when the sampler clips (the default in the agent).
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
    ) -> Tensor:
        """obs: (batch, obs_dim) -> actions (batch, act_dim). `denoiser` overrides the online one
        (the agent passes its EMA copy to act with averaged weights)."""
        net = denoiser if denoiser is not None else self.denoiser
        x_T = torch.randn(
            (obs.shape[0], self.act_dim), generator=generator, device=obs.device, dtype=obs.dtype
        )
        return self.sampler.sample(
            net, obs, x_T, generator=generator, differentiable=differentiable
        )
