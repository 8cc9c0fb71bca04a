"""DDPM ancestral sampling (Ho et al. 2020), over all T levels or a subsequence of them."""

from __future__ import annotations

from typing import Literal, get_args

from torch import Tensor

from diffpolicy.samplers.base import ReverseChainSampler

Variance = Literal["small", "large"]
VARIANCES: tuple[str, ...] = get_args(Variance)


class DDPMSampler(ReverseChainSampler):
    """x_prev = posterior mean of q(x_prev | x_t, x0_hat) + temperature * sigma * z.

    variance "small" uses the posterior variance beta_tilde = beta (1 - abar_prev) / (1 - abar_t);
    "large" uses beta itself. Over a subsequence, beta is the respaced 1 - abar_t / abar_prev.
    No noise is added on the last step (to the clean sample), for either variance, unless
    `final_noise` (DIME: every reverse kernel then has a density).

    A temperature T below 1 scales the noise of every step; it does not sample pi^(1 / T), it
    narrows the law faster. With the exact denoiser of N(0, 1) (cosine, 50 levels, "large") the
    sample variance is about T^2, 0.25 and 0.06 at T = 0.5 and 0.25, where pi^(1 / T) has 0.5 and
    0.25. Langevin's temperature does sample pi^(1 / T) (`LangevinSampler`).
    """

    def __init__(
        self,
        *args,
        variance: Variance = "small",
        temperature: float = 1.0,
        final_noise: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if variance not in VARIANCES:
            raise ValueError(f"unknown variance {variance!r}; valid: {', '.join(VARIANCES)}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.variance = variance
        self.temperature = temperature
        self.final_noise = final_noise

    def kernel(self, x_t, t, t_prev, x0) -> tuple[Tensor, Tensor]:
        """The Gaussian reverse kernel p(x_prev | x_t): (mean, std), std before the temperature
        and whatever the last step does with it."""
        # The loop checked its timesteps once at construction: no per-step range check.
        abar = self.schedule.alpha_bar(t, x_t, validate=False)
        abar_prev = self.schedule.alpha_bar(t_prev, x_t, validate=False)
        alpha = abar / abar_prev
        beta = 1.0 - alpha
        # Posterior mean of q(x_prev | x_t, x0), Ho et al. eq. 7.
        coef_x0 = abar_prev.sqrt() * beta / (1.0 - abar)
        coef_xt = alpha.sqrt() * (1.0 - abar_prev) / (1.0 - abar)
        mean = coef_x0 * x0 + coef_xt * x_t
        var = beta * (1.0 - abar_prev) / (1.0 - abar) if self.variance == "small" else beta
        return mean, var.sqrt()

    def step(self, x_t, t, t_prev, x0, eps, noise) -> Tensor:
        mean, std = self.kernel(x_t, t, t_prev, x0)
        if self.final_noise:
            return mean + self.temperature * std * noise
        last = (t_prev < 0).to(x_t.dtype).reshape(std.shape)
        return mean + (1.0 - last) * self.temperature * std * noise
