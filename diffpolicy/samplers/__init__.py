"""Samplers: DDPM (ancestral) and DDIM, sharing one loop, clipping and noise stream; and Langevin
dynamics on the lowest-level score (where the QSM fixed point is the Boltzmann policy). All of them
satisfy the `Sampler` protocol."""

from diffpolicy.samplers.base import (
    NO_CLIPPING,
    Clipping,
    DenoiseFn,
    ReverseChainSampler,
    even_timesteps,
)
from diffpolicy.samplers.ddim import DDIMSampler
from diffpolicy.samplers.ddpm import VARIANCES, DDPMSampler, Variance
from diffpolicy.samplers.langevin import LangevinSampler
from diffpolicy.samplers.protocol import Sampler

__all__ = [
    "NO_CLIPPING",
    "VARIANCES",
    "Clipping",
    "DDIMSampler",
    "DDPMSampler",
    "DenoiseFn",
    "LangevinSampler",
    "ReverseChainSampler",
    "Sampler",
    "Variance",
    "even_timesteps",
]
