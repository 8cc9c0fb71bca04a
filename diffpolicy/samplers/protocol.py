"""What a `DiffusionPolicy` (and anything else that acts) needs from a sampler: one protocol that
the reverse-chain samplers (DDPM, DDIM) and Langevin dynamics all satisfy, and that a user's own
sampler satisfies without inheriting from anything."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from diffpolicy.samplers.base import Clipping, DenoiseFn
from diffpolicy.schedules import NoiseSchedule


@runtime_checkable
class Sampler(Protocol):
    """Turns a denoiser into samples.

    schedule: the noise schedule the denoiser was trained with (moved with the policy's device).
    prediction: what the denoiser outputs ("eps", "x0", "v" or "score").
    clipping: where samples are clipped (`Clipping`; `NO_CLIPPING` for never).
    num_steps: denoiser calls per sample.
    """

    schedule: NoiseSchedule
    prediction: str
    clipping: Clipping

    @property
    def num_steps(self) -> int: ...

    def sample(
        self,
        denoise: DenoiseFn,
        cond: Tensor | None,
        x_init: Tensor,
        /,
        generator: torch.Generator | None = None,
        differentiable: bool = False,
    ) -> Tensor:
        """x_init (batch, dim), a standard normal draw -> samples (batch, dim). Without autograd
        unless `differentiable` (a sampler that cannot backpropagate raises ValueError then)."""
        ...
