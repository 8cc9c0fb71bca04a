"""What the reverse-chain samplers (DDPM, DDIM) share: the timestep subsequence, clipping, noise
draws and the loop; and the `Clipping` flags every sampler honours.

A denoiser is any callable `denoise(x_t, t, cond) -> prediction` with x_t (batch, dim),
t (batch,) integer timesteps and a prediction of x_t's shape in the declared parameterisation.
Subclasses only say how one reverse step moves from level t to the lower level t_prev.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from diffpolicy.schedules import NoiseSchedule, check_prediction

DenoiseFn = Callable[[Tensor, Tensor, Tensor | None], Tensor]
"""What a sampler calls: `denoise(x_t, t, cond) -> prediction`. `diffpolicy.nets.Denoiser` is
one; any function of that shape (a closed form, a wrapped network) is another."""


def even_timesteps(num_train_steps: int, num_sample_steps: int) -> Tensor:
    """K evenly spaced, strictly increasing timesteps in [0, T-1], ending at T-1.

    Spacing (T-1)/(K-1) >= 1 when K <= T, so rounding never merges two of them.
    """
    if not 1 <= num_sample_steps <= num_train_steps:
        raise ValueError(f"need 1 <= K <= T, got K={num_sample_steps}, T={num_train_steps}")
    if num_sample_steps == 1:
        return torch.tensor([num_train_steps - 1])
    grid = torch.linspace(0, num_train_steps - 1, num_sample_steps, dtype=torch.float64)
    return grid.round().long()


def level(tau: int, like: Tensor) -> Tensor:
    """The timestep tau for every row of `like`: shape (batch,), one value broadcast (stride 0),
    so a denoiser can embed it once for the whole batch (`diffpolicy.nets.Denoiser` does)."""
    return torch.full((1,), tau, dtype=torch.long, device=like.device).expand(like.shape[0])


@dataclass(frozen=True)
class Clipping:
    """Where samples are clipped to [low, high].

    each_step: clip x after every reverse step (the QSM reference does this).
    x0: clip the denoiser's implied clean sample before forming the step (diffusers' clip_sample).
    final: clip the returned sample (what each_step does too), leaving the chain's states free
    (DIME: every step then keeps its Gaussian density).
    """

    low: float = -1.0
    high: float = 1.0
    each_step: bool = True
    x0: bool = False
    final: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"clipping bounds need low < high, got [{self.low}, {self.high}]")


NO_CLIPPING = Clipping(each_step=False, x0=False)


class ReverseChainSampler(ABC):
    """Draws samples by running the reverse chain over K increasing timesteps tau_1 < ... < tau_K.
    DDPM and DDIM are its subclasses; every sampler satisfies the `Sampler` protocol.

    Args:
        schedule: the noise schedule the denoiser was trained with.
        prediction: what the denoiser outputs: "eps", "x0", "v" or "score".
        timesteps: the subsequence to visit (default: all T levels).
        clipping: a `Clipping`, or `NO_CLIPPING`.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction: str = "eps",
        timesteps: Sequence[int] | Tensor | None = None,
        clipping: Clipping = NO_CLIPPING,
    ) -> None:
        check_prediction(prediction)
        self.schedule = schedule
        self.prediction = prediction
        self.clipping = clipping
        T = schedule.num_steps
        steps = torch.arange(T) if timesteps is None else torch.as_tensor(timesteps).long()
        if steps.ndim != 1 or steps.numel() < 1:
            raise ValueError("timesteps must be a non-empty 1-D sequence")
        if int(steps.min()) < 0 or int(steps.max()) >= T:
            raise ValueError(f"timesteps must lie in [0, {T - 1}], got {steps.tolist()}")
        if steps.numel() > 1 and not bool((steps[1:] > steps[:-1]).all()):
            raise ValueError(f"timesteps must be strictly increasing, got {steps.tolist()}")
        self.timesteps = steps
        # Read once here, so the sampling loop never reads a tensor on the host (a device sync).
        self._taus: list[int] = steps.tolist()

    @property
    def taus(self) -> list[int]:
        """The visited timesteps tau_1 < ... < tau_K as ints (no host read of a tensor)."""
        return self._taus

    @property
    def num_steps(self) -> int:
        """K, the number of denoiser calls per sample."""
        return self.timesteps.numel()

    def sample(
        self,
        denoise: DenoiseFn,
        cond: Tensor | None,
        x_T: Tensor,
        generator: torch.Generator | None = None,
        differentiable: bool = False,
    ) -> Tensor:
        """Run the chain from x_T (batch, dim) and return the final sample (batch, dim).

        Runs without autograd unless `differentiable=True` (Diffusion-QL backpropagates through it).
        """
        return self._run(denoise, cond, x_T, generator, differentiable, keep_chain=False)[-1]

    def sample_chain(
        self,
        denoise: DenoiseFn,
        cond: Tensor | None,
        x_T: Tensor,
        generator: torch.Generator | None = None,
        differentiable: bool = False,
    ) -> Tensor:
        """The whole chain (K + 1, batch, dim): x_T first, the final sample last."""
        chain = self._run(denoise, cond, x_T, generator, differentiable, keep_chain=True)
        return torch.stack(chain)

    def _run(self, denoise, cond, x_T, generator, differentiable, keep_chain) -> list[Tensor]:
        if x_T.ndim != 2:
            raise ValueError(f"x_T must have shape (batch, dim), got {tuple(x_T.shape)}")
        chain = [x_T]
        with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
            x = x_T
            taus = self.taus
            for i in reversed(range(len(taus))):
                t = level(taus[i], x)
                t_prev = level(taus[i - 1] if i > 0 else -1, x)
                x0, eps = self.predict(denoise, x, t, cond)
                # Drawn at every step, used or not, so samplers given one generator see one stream.
                noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = self.step(x, t, t_prev, x0, eps, noise)
                if self.clipping.each_step:
                    x = x.clamp(self.clipping.low, self.clipping.high)
                if keep_chain:
                    chain.append(x)
                else:
                    chain = [x]
            if self.clipping.final:
                chain[-1] = chain[-1].clamp(self.clipping.low, self.clipping.high)
        return chain

    def predict(self, denoise: DenoiseFn, x_t: Tensor, t: Tensor, cond: Tensor | None):
        """One denoiser call at level t: (x0_hat, eps_hat), x0_hat clipped if `clipping.x0`."""
        pred = denoise(x_t, t, cond)
        x0 = self.schedule.convert(pred, x_t, t, self.prediction, "x0", validate=False)
        if self.clipping.x0:
            x0 = x0.clamp(self.clipping.low, self.clipping.high)
        # eps consistent with the (possibly clipped) x0, as the step formulas assume.
        eps = self.schedule.convert(x0, x_t, t, "x0", "eps", validate=False)
        return x0, eps

    @abstractmethod
    def step(
        self, x_t: Tensor, t: Tensor, t_prev: Tensor, x0: Tensor, eps: Tensor, noise: Tensor
    ) -> Tensor:
        """One reverse step from level t to t_prev < t (t_prev = -1 means the clean sample)."""
