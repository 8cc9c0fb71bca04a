"""Unadjusted Langevin dynamics on a denoiser's score at the lowest noise level.

QSM's fixed point is a policy whose score is alpha * grad_a Q. Langevin dynamics with that score,
x <- x + h * score(x) + sqrt(2 h) z, has exp(alpha Q) as its stationary law (up to O(h)), so this is
the sampler under which the QSM fixed point is exactly the Boltzmann policy. The DDPM/DDIM samplers
assume the denoiser knows the score of the *noised* policy at each level, which QSM does not train.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffpolicy.samplers.base import Clipping, Denoiser
from diffpolicy.schedules import NoiseSchedule, check_prediction


class LangevinSampler:
    """`num_steps` Langevin steps of size `step_size` on the score at timestep 0."""

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction: str = "eps",
        step_size: float = 1e-2,
        num_steps: int = 1000,
        clipping: Clipping | None = None,
        init_scale: float = 1.0,
    ) -> None:
        check_prediction(prediction)
        if step_size <= 0 or num_steps < 1:
            raise ValueError(f"need step_size > 0 and num_steps >= 1, got {step_size}, {num_steps}")
        if init_scale < 0:
            raise ValueError(f"init_scale must be >= 0, got {init_scale}")
        self.schedule, self.prediction = schedule, prediction
        self.step_size, self.num_steps, self.clipping = step_size, num_steps, clipping
        # A short chain does not forget its start: a DiffusionPolicy's N(0, I) draw is shrunk by
        # this factor so the chain starts inside the action box.
        self.init_scale = init_scale

    @torch.no_grad()
    def sample(
        self,
        denoise: Denoiser,
        cond: Tensor | None,
        x_init: Tensor,
        generator: torch.Generator | None = None,
        differentiable: bool = False,
    ) -> Tensor:
        """x_init (batch, dim) -> samples (batch, dim) after num_steps Langevin steps, started
        from init_scale * x_init. Not differentiable (Diffusion-QL needs DDPM or DDIM)."""
        if differentiable:
            raise ValueError("LangevinSampler cannot backpropagate; use DDPM or DDIM for that")
        x = self.init_scale * x_init
        t = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        h = self.step_size
        for _ in range(self.num_steps):
            score = self.schedule.convert(denoise(x, t, cond), x, t, self.prediction, "score")
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + h * score + (2 * h) ** 0.5 * z
            if self.clipping is not None:
                x = x.clamp(self.clipping.low, self.clipping.high)
        return x
