"""Named beta schedules, each defined for any number of steps T >= 1."""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

from diffpolicy.schedules.base import NoiseSchedule

ScheduleName = Literal["linear", "cosine", "vp"]
SCHEDULES: tuple[str, ...] = get_args(ScheduleName)

# Largest beta allowed: beta = 1 would make abar exactly 0 and x0 unrecoverable.
MAX_BETA = 0.999


def linear_betas(num_steps: int) -> torch.Tensor:
    """DDPM's linear betas (1e-4 to 0.02 at T = 1000), rescaled by 1000 / T as in Nichol and
    Dhariwal so that the total noise does not depend on T; clipped at MAX_BETA for T < 20."""
    if num_steps == 1:  # one level must be the noisiest one, not linspace's start
        return torch.tensor([MAX_BETA], dtype=torch.float64)
    scale = 1000.0 / num_steps
    betas = torch.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=torch.float64)
    return betas.clamp(max=MAX_BETA)


def cosine_betas(num_steps: int, offset: float = 0.008) -> torch.Tensor:
    """Nichol and Dhariwal (2021): abar(u) = cos^2(pi/2 (u + s) / (1 + s)) / abar(0), u = t / T."""
    u = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((u + offset) / (1 + offset) * math.pi / 2) ** 2
    return (1.0 - f[1:] / f[:-1]).clamp(min=1e-8, max=MAX_BETA)


def vp_betas(num_steps: int, beta_min: float = 0.1, beta_max: float = 10.0) -> torch.Tensor:
    """The discrete VP schedule of Diffusion-QL and the QSM reference:
    alpha_t = exp(-beta_min / T - (beta_max - beta_min) (2t - 1) / (2 T^2)), t = 1..T.
    For T = 5 this gives abar = 0.804, 0.435, 0.159, 0.039, 0.0064."""
    t = torch.arange(1, num_steps + 1, dtype=torch.float64)
    log_alpha = -beta_min / num_steps - 0.5 * (beta_max - beta_min) * (2 * t - 1) / num_steps**2
    return 1.0 - torch.exp(log_alpha)


_BUILDERS = {"linear": linear_betas, "cosine": cosine_betas, "vp": vp_betas}


def make_schedule(
    name: ScheduleName, num_steps: int, dtype: torch.dtype = torch.float32
) -> NoiseSchedule:
    """The named schedule with T = num_steps levels; tables computed in float64, then cast."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    return NoiseSchedule(_BUILDERS[name](num_steps).to(dtype))
