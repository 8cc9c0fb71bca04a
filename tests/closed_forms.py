"""Closed-form denoisers and sampler laws for Gaussian and Gaussian-mixture targets.

These are written from the papers' formulas (Ho et al. 2020, DDPM; Song et al. 2021, DDIM) and
read only the schedule's alpha_bar table, never the library's conversion or step code, so a test
that compares the library against them compares two independent implementations.

Conventions: timesteps t in {0, ..., T-1}, t = 0 least noisy; abar at t = -1 is 1; the forward
process is x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from diffpolicy.schedules import NoiseSchedule

DenoiseFn = Callable[[Tensor, Tensor, Tensor | None], Tensor]


def _abar_table(schedule: NoiseSchedule) -> Tensor:
    """The schedule's abar table in float64 (exactly the values the samplers will use)."""
    return schedule.alpha_bars.detach().to("cpu", torch.float64)


def _abar_at(schedule: NoiseSchedule, t: Tensor, like: Tensor) -> Tensor:
    """abar_t per sample, shape (batch, 1), in like's dtype; t >= 0 (a denoiser never sees -1)."""
    table = schedule.alpha_bars.to(device=like.device, dtype=like.dtype)
    return table[t.long()].reshape(-1, 1)


def random_spd(eigenvalues: Sequence[float], seed: int) -> Tensor:
    """A float64 SPD matrix with the given eigenvalues and a seeded random orthogonal eigenbasis."""
    d = len(eigenvalues)
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # Haar-distributed, and no zero columns
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
    return (q * lam) @ q.T


def gaussian_eps(schedule: NoiseSchedule, mu: Tensor, Sigma: Tensor) -> DenoiseFn:
    """The exact epsilon-prediction for the target x0 ~ N(mu, Sigma).

    Under the forward process x_t ~ N(sqrt(abar) mu, C_t) with C_t = abar Sigma + (1 - abar) I, so
    the score is -C_t^{-1} (x - sqrt(abar) mu) and E[eps | x_t] = -sqrt(1 - abar) * score.
    Computed in Sigma's eigenbasis Sigma = Q diag(lam) Q^T, per sample (t may differ per row).
    """
    mu = torch.as_tensor(mu, dtype=torch.float64).reshape(-1)
    Sigma = torch.as_tensor(Sigma, dtype=torch.float64)
    lam, Q = torch.linalg.eigh(Sigma)

    def denoise(x_t: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        abar = _abar_at(schedule, t, x_t)  # (B, 1)
        m, q, l_ = (z.to(device=x_t.device, dtype=x_t.dtype) for z in (mu, Q, lam))
        y = (x_t - abar.sqrt() * m) @ q  # centred, in the eigenbasis
        score = -y / (abar * l_ + (1.0 - abar))
        return -(1.0 - abar).sqrt() * (score @ q.T)

    return denoise


def mixture_eps(
    schedule: NoiseSchedule,
    weights: Sequence[float] | Tensor,
    means: Sequence[Sequence[float]] | Tensor,
    stds: Sequence[float] | Tensor | float,
) -> DenoiseFn:
    """The exact epsilon-prediction for an isotropic Gaussian mixture sum_k w_k N(m_k, s_k^2 I).

    x_t ~ sum_k w_k N(a m_k, v_k I) with a = sqrt(abar), v_k = abar s_k^2 + 1 - abar, so
    score = -sum_k r_k (x - a m_k) / v_k with responsibilities
    r_k = softmax_k(log w_k - D/2 log v_k - |x - a m_k|^2 / (2 v_k)) (logsumexp-stable),
    and eps = -sqrt(1 - abar) * score.
    """
    w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
    m = torch.as_tensor(means, dtype=torch.float64)
    if m.ndim == 1:
        m = m.reshape(-1, 1)
    s = torch.as_tensor(stds, dtype=torch.float64).reshape(-1).expand(w.numel())
    if m.shape[0] != w.numel():
        raise ValueError("one mean per weight")
    d = m.shape[1]

    def denoise(x_t: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        abar = _abar_at(schedule, t, x_t)  # (B, 1)
        wk, mk, sk = (z.to(device=x_t.device, dtype=x_t.dtype) for z in (w, m, s))
        a = abar.sqrt()
        var = abar * sk**2 + (1.0 - abar)  # (B, K)
        diff = x_t[:, None, :] - a[:, :, None] * mk[None]  # (B, K, D)
        logits = wk.log() - 0.5 * d * var.log() - (diff**2).sum(-1) / (2.0 * var)
        resp = torch.softmax(logits, dim=1)  # (B, K)
        score = -(resp[:, :, None] * diff / var[:, :, None]).sum(1)
        return -(1.0 - abar).sqrt() * score

    return denoise


def exact_sampler_law(
    schedule: NoiseSchedule,
    mu: Tensor,
    Sigma: Tensor,
    timesteps: Sequence[int] | Tensor,
    sampler: str = "ddpm",
    variance: str = "small",
    eta: float = 0.0,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Exact mean and covariance of a sampler's OUTPUT for the target N(mu, Sigma), given the
    exact denoiser (`gaussian_eps`) and x_T ~ N(0, I), visiting tau_1 < ... < tau_K.

    Derivation. Diagonalise Sigma = Q diag(lam) Q^T; every quantity below is per eigen-direction
    (coordinates y_i = Q^T(.)), so consider one direction with data variance lam. At a step from
    tau to tau' (tau' = -1 on the last step, abar_{-1} = 1), write a = sqrt(abar_tau),
    a' = sqrt(abar_tau'), alpha = abar_tau / abar_tau', beta = 1 - alpha.

    * The exact posterior mean is E[x0 | x_t] = mu + g (x_t - a mu), g = a lam / (a^2 lam + 1 - a^2)
      (Gaussian conditioning), and E[eps | x_t] = (x_t - a E[x0 | x_t]) / sqrt(1 - a^2)
      = (1 - a g) / sqrt(1 - a^2) * (x_t - a mu).
    * Centre at the current level: y = x_t - a mu. Then y_prev = x_prev - a' mu = A y + sigma z.
      - DDPM (Ho et al. eq. 7): x_prev = c0 x0_hat + c1 x_t + sigma z with
        c0 = a' beta / (1 - abar), c1 = sqrt(alpha) (1 - abar') / (1 - abar); since
        c0 + c1 a = a', the mu terms cancel and A = c0 g + c1. sigma^2 = temperature^2 times
        beta_tilde = beta (1 - abar') / (1 - abar) ("small") or beta ("large"); 0 on the last step.
        (The large-variance law follows the same recursion: only sigma^2 changes.)
      - DDIM (Song et al. eq. 12): x_prev = a' x0_hat + k eps_hat + sigma z, k = sqrt(1 - abar' -
        sigma^2), sigma^2 = eta^2 (1 - abar') / (1 - abar) * beta (0 on the last step), so
        A = a' g + k (1 - a g) / sqrt(1 - abar).
    * Variance and mean error propagate as V' = A^2 V + sigma^2, e' = A e. The sampler starts at
      x_T ~ N(0, I), not the true marginal N(a_K mu, C_T), so V = 1 and e = -a_K (Q^T mu)_i at the
      top (a_K = sqrt(abar_{tau_K})). At the end a' = 1 so y = x0 - mu.

    Output: mean mu + Q e, covariance Q diag(V) Q^T (float64).
    """
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"unknown sampler {sampler!r}")
    if variance not in ("small", "large"):
        raise ValueError(f"unknown variance {variance!r}")
    mu = torch.as_tensor(mu, dtype=torch.float64).reshape(-1)
    Sigma = torch.as_tensor(Sigma, dtype=torch.float64)
    lam, Q = torch.linalg.eigh(Sigma)
    table = _abar_table(schedule)
    taus = [int(t) for t in torch.as_tensor(timesteps).reshape(-1).tolist()]

    V = torch.ones_like(lam)
    e = -math.sqrt(float(table[taus[-1]])) * (Q.T @ mu)
    for i in reversed(range(len(taus))):
        abar = float(table[taus[i]])
        abar_p = float(table[taus[i - 1]]) if i > 0 else 1.0
        last = i == 0
        a, a_p = math.sqrt(abar), math.sqrt(abar_p)
        alpha = abar / abar_p
        beta = 1.0 - alpha
        g = a * lam / (a * a * lam + 1.0 - abar)
        if sampler == "ddpm":
            c0 = a_p * beta / (1.0 - abar)
            c1 = math.sqrt(alpha) * (1.0 - abar_p) / (1.0 - abar)
            A = c0 * g + c1
            base = beta * (1.0 - abar_p) / (1.0 - abar) if variance == "small" else beta
            var = 0.0 if last else temperature**2 * base
        else:
            var = 0.0 if last else eta**2 * (1.0 - abar_p) / (1.0 - abar) * beta
            k = math.sqrt(max(1.0 - abar_p - var, 0.0))
            A = a_p * g + k * (1.0 - a * g) / math.sqrt(1.0 - abar)
        V = A * A * V + var
        e = A * e
    return mu + Q @ e, (Q * V) @ Q.T
