"""Diffusion-based maximum-entropy RL (DIME; Celik et al., ICML 2025, arXiv 2502.02316): the
denoising chain a^N -> ... -> a^0 is trained, through every step, to maximise Q plus alpha times a
lower bound on its action entropy, with alpha tuned toward a target entropy as SAC tunes it.

    L(theta) = E_s E_{a^{0:N} ~ pi_theta}[ -alpha l(a^{0:N}) - min_i Q_i(s, a^0) ],
    l(a^{0:N}) = log fwd(a^{1:N} | a^0) - log pi_theta(a^{0:N})
               = -log N(a^N; 0, I)
                 + sum_{n=1}^{N} [ log N(a^n; sqrt(1 - beta_n) a^{n-1}, beta_n I)
                                   - log N(a^{n-1}; mu_theta(a^n, n, s), sigma_n^2 I) ],

where fwd is the noising (forward) chain, pi_theta the sampler's reverse chain (DDPM with the
"large" variance sigma_n^2 = beta_n, noise on every step including the last) and
E[l] <= H(pi_theta(a^0 | s)) since the gap is a KL divergence (the paper's entropy lower bound).
The temperature follows SAC: log alpha moves down the gradient of
-log alpha * (H_target - E[l]).

Differences from the paper: the chain is the library's DDPM sampler on its noise schedule (the
paper discretises its own VP SDE, 16 steps by default); its states are left unclipped and the
action is the final state clipped to [-1, 1], so the bound is on the entropy of the action
before clipping; the critic's target is not soft (no alpha * l term in the TD target: the
critics are shared by every objective).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from diffpolicy.nets.averaging import frozen
from diffpolicy.samplers import DDPMSampler
from diffpolicy.samplers.base import level


def gaussian_log_density(x: Tensor, mean: Tensor | float, std: Tensor | float) -> Tensor:
    """log N(x; mean, std^2 I), summed over the last dimension: (batch, d) -> (batch,)."""
    z = (x - mean) / std
    log_std = std.log() if isinstance(std, Tensor) else math.log(std)
    per_dim = -0.5 * z.square() - log_std - 0.5 * math.log(2.0 * math.pi)
    return per_dim.sum(-1)


def chain_with_entropy_bound(
    denoiser: nn.Module,
    sampler: DDPMSampler,
    obs: Tensor | None,
    x_T: Tensor,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Run the reverse chain from x_T (batch, d) with noise on every step, differentiably:
    (a^0 (batch, d) before any final clipping, the bound l (batch,) along the chain)."""
    if sampler.clipping.each_step:
        # A clipped state has no Gaussian density; evaluated anyway, its log-density rewards
        # means pushed past the bound, which the entropy term would then chase.
        raise ValueError("the entropy bound needs a chain without each_step clipping")
    x = x_T
    bound = -gaussian_log_density(x, 0.0, 1.0)
    taus = sampler.taus
    for i in reversed(range(len(taus))):
        t = level(taus[i], x)
        t_prev = level(taus[i - 1] if i > 0 else -1, x)
        x0, _ = sampler.predict(denoiser, x, t, obs)
        mean, std = sampler.kernel(x, t, t_prev, x0)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_prev = mean + std * noise
        abar = sampler.schedule.alpha_bar(t, x, validate=False)
        abar_prev = sampler.schedule.alpha_bar(t_prev, x, validate=False)
        beta = 1.0 - abar / abar_prev
        forward = gaussian_log_density(x, (1.0 - beta).sqrt() * x_prev, beta.sqrt())
        bound = bound + forward - gaussian_log_density(x_prev, mean, std)
        x = x_prev
    return x, bound


def dime_loss(
    denoiser: nn.Module,
    critic: nn.Module,
    sampler: DDPMSampler,
    obs: Tensor,
    act_dim: int,
    alpha: float | Tensor,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The DIME actor loss on the states obs (batch, obs_dim); the critic gets no gradient."""
    x_T = torch.randn(
        (obs.shape[0], act_dim), generator=generator, device=obs.device, dtype=obs.dtype
    )
    chain, bound = chain_with_entropy_bound(denoiser, sampler, obs, x_T, generator)
    actions = chain.clamp(sampler.clipping.low, sampler.clipping.high)
    with frozen(critic):
        q = critic.reduce(critic(obs, actions), "min")
    loss = (-alpha * bound - q).mean()
    metrics = {
        "dime_loss": loss.detach(),
        "entropy_bound": bound.mean().detach(),
        "q_policy": q.mean().detach(),
    }
    return loss, metrics
