"""Unadjusted Langevin dynamics on a denoiser's score at the lowest noise level.

QSM's fixed point is a policy whose score is alpha * grad_a Q. Langevin dynamics with that score,
x <- x + h * score(x) + sqrt(2 h) z, has exp(alpha Q) as its stationary law (up to O(h)), so this is
the sampler under which the QSM fixed point is exactly the Boltzmann policy. The DDPM/DDIM samplers
assume the denoiser knows the score of the *noised* policy at each level, which QSM does not train.

Which score the denoiser's output stands for depends on how it was trained (`score_units`):

- "level": the diffusion convention. An eps prediction at level 0 is the noise of that level, so
  score = -eps / sqrt(1 - abar_0) (`NoiseSchedule.convert`).
- "unit": QSM's eps target (the reference's): -eps_theta was regressed onto alpha * grad_a Q itself
  at every level, so score = -eps_theta. Read as "level", the same weights would sample
  exp(alpha / sqrt(1 - abar_0) * Q): 2.26x the stated alpha for vp with T = 5.

The chain is short by default (the agent's 10 steps of h = 2e-3 move a total time of 0.02): it is
then a noisy ascent of Q from `init_scale` * N(0, I) more than a draw from the stationary law.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from diffpolicy.samplers.base import NO_CLIPPING, Clipping, DenoiseFn, level
from diffpolicy.schedules import NoiseSchedule, check_prediction

ScoreUnits = Literal["level", "unit"]
SCORE_UNITS: tuple[str, ...] = get_args(ScoreUnits)


class LangevinSampler:
    """`num_steps` Langevin steps of size `step_size` on the score at timestep 0.

    Args:
        schedule: the noise schedule the denoiser was trained with.
        prediction: what the denoiser outputs ("eps", "x0", "v" or "score").
        step_size: h in x <- x + h * score + sqrt(2 h) z.
        num_steps: Langevin steps per sample, each one denoiser call.
        clipping: `Clipping.each_step` clips x to [low, high] after every step; `Clipping.x0`
            clips the denoiser's implied clean action before the score is read from it (as DDPM
            and DDIM do), which bounds the score near the box. None: `NO_CLIPPING`.
        init_scale: the chain starts at init_scale * x_init.
        score_units: "level" or "unit", see the module docstring.
        temperature: the noise is sqrt(2 h temperature) z, so the chain samples
            pi^(1 / temperature): exp(alpha Q / temperature) at the QSM fixed point. 0: noiseless
            ascent of the score (a low-temperature evaluation mode).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction: str = "eps",
        step_size: float = 1e-2,
        num_steps: int = 1000,
        clipping: Clipping | None = None,
        init_scale: float = 1.0,
        score_units: ScoreUnits = "level",
        temperature: float = 1.0,
    ) -> None:
        check_prediction(prediction)
        if not step_size > 0 or num_steps < 1:
            raise ValueError(f"need step_size > 0 and num_steps >= 1, got {step_size}, {num_steps}")
        if not init_scale >= 0:
            raise ValueError(f"init_scale must be >= 0, got {init_scale}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if score_units not in SCORE_UNITS:
            raise ValueError(
                f"unknown score_units {score_units!r}; valid: {', '.join(SCORE_UNITS)}"
            )
        self.schedule, self.prediction = schedule, prediction
        self.step_size, self.num_steps = step_size, num_steps
        self.clipping = clipping if clipping is not None else NO_CLIPPING
        # A short chain does not forget its start: a DiffusionPolicy's N(0, I) draw is shrunk by
        # this factor so the chain starts inside the action box.
        self.init_scale = init_scale
        self.score_units = score_units
        self.temperature = temperature
        # An eps prediction maps to the score by one constant: read the table once, here, so
        # each step costs one multiply instead of a table lookup (acting at batch 1 is overhead).
        sigma_0 = float((1.0 - schedule.alpha_bars[0]).sqrt())
        self._eps_to_score = -1.0 if score_units == "unit" else -1.0 / sigma_0

    def score(self, denoise: DenoiseFn, x: Tensor, t: Tensor, cond: Tensor | None) -> Tensor:
        """The score the chain follows at x (batch, dim), t the level-0 timesteps (batch,)."""
        pred = denoise(x, t, cond)
        if self.clipping.x0:
            # The eps consistent with the clipped clean action, read in the chain's units.
            x0 = self.schedule.convert(pred, x, t, self.prediction, "x0", validate=False)
            x0 = x0.clamp(self.clipping.low, self.clipping.high)
            return self.schedule.convert(x0, x, t, "x0", "eps", validate=False) * self._eps_to_score
        if self.prediction == "eps":
            return pred * self._eps_to_score
        if self.score_units == "unit":
            return -self.schedule.convert(pred, x, t, self.prediction, "eps", validate=False)
        return self.schedule.convert(pred, x, t, self.prediction, "score", validate=False)

    def sample(
        self,
        denoise: DenoiseFn,
        cond: Tensor | None,
        x_init: Tensor,
        generator: torch.Generator | None = None,
        differentiable: bool = False,
    ) -> Tensor:
        """x_init (batch, dim) -> samples (batch, dim) after num_steps Langevin steps, started
        from init_scale * x_init. Not differentiable (Diffusion-QL needs DDPM or DDIM)."""
        if differentiable:
            raise ValueError("LangevinSampler cannot backpropagate; use DDPM or DDIM for that")
        with torch.no_grad():
            x = self.init_scale * x_init
            t = level(0, x)
            h = self.step_size
            noise_scale = (2 * h * self.temperature) ** 0.5
            for _ in range(self.num_steps):
                score = self.score(denoise, x, t, cond)
                # Drawn even at temperature 0, so every temperature sees the same noise stream.
                z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = x + h * score + noise_scale * z
                if self.clipping.each_step:
                    x = x.clamp(self.clipping.low, self.clipping.high)
            if self.clipping.final:
                x = x.clamp(self.clipping.low, self.clipping.high)
            return x
