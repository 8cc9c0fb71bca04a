"""Sampling speed of DDPM and DDIM with a 256-wide MLP denoiser, single CPU thread.

Run (pyproject's addopts pass --benchmark-disable; --benchmark-enable overrides it):

    .venv/bin/python -m pytest benchmarks/test_sampler_speed.py --benchmark-enable

Cases: K = 5, 10, 20 denoiser calls on the vp schedule with T = K, batch 1 (acting in one
environment) and batch 256 (a training minibatch), grouped by batch size.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from diffpolicy.samplers import DDIMSampler, DDPMSampler
from diffpolicy.schedules import make_schedule

torch.set_num_threads(1)

ACTION_DIM, OBS_DIM, TIME_DIM, HIDDEN = 6, 17, 16, 256


class MLPDenoiser(nn.Module):
    """concat[x (6), sinusoidal time features (16), obs (17)] -> 256 -> 256 -> 6, Mish."""

    def __init__(self) -> None:
        super().__init__()
        half = TIME_DIM // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half) / half)
        self.register_buffer("freqs", freqs)
        self.net = nn.Sequential(
            nn.Linear(ACTION_DIM + TIME_DIM + OBS_DIM, HIDDEN),
            nn.Mish(),
            nn.Linear(HIDDEN, HIDDEN),
            nn.Mish(),
            nn.Linear(HIDDEN, ACTION_DIM),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        angles = t.to(x.dtype)[:, None] * self.freqs[None, :]
        return self.net(torch.cat([x, angles.sin(), angles.cos(), obs], dim=-1))


@pytest.mark.parametrize("batch", [1, 256])
@pytest.mark.parametrize("num_steps", [5, 10, 20])
@pytest.mark.parametrize("sampler_name", ["ddpm", "ddim"])
def test_sampling_speed(benchmark, sampler_name, num_steps, batch):
    torch.manual_seed(0)
    schedule = make_schedule("vp", num_steps)
    sampler = (DDPMSampler if sampler_name == "ddpm" else DDIMSampler)(schedule)
    model = MLPDenoiser().eval()
    obs = torch.randn(batch, OBS_DIM)
    x_T = torch.randn(batch, ACTION_DIM)
    generator = torch.Generator().manual_seed(0)

    benchmark.group = f"batch={batch}"
    benchmark.extra_info.update(sampler=sampler_name, K=num_steps, batch=batch)
    out = benchmark(sampler.sample, model, obs, x_T, generator)
    assert out.shape == (batch, ACTION_DIM)
    assert bool(torch.isfinite(out).all())
