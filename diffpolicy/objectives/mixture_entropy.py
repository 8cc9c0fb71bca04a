"""The entropy of a policy from its samples, by fitting a Gaussian mixture (DACER's estimator).

For each state, a K-component Gaussian mixture with full covariances is fitted to N actions by a
fixed number of EM iterations (no convergence test, so nothing is read on the host), and its
entropy is approximated by

    H ~= sum_k w_k H(N(mu_k, Sigma_k)) - sum_k w_k log w_k,
    H(N(mu, Sigma)) = 1 / 2 log det(2 pi e Sigma) = d / 2 (1 + log 2 pi) + 1 / 2 log det Sigma,

which is the mixture's entropy when its components do not overlap and an upper bound on it
otherwise (Huber et al. 2008). DACER (Wang et al. 2024, github.com/happy-yan/DACER-Diffusion-
with-Online-RL, relax/algorithm/dacer.py) fits scikit-learn's GaussianMixture (K = 3, k-means
initialisation, up to 100 iterations) state by state; here every state is fitted at once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

REG_COVAR = 1e-6
"""Added to every covariance's diagonal (scikit-learn's default), so that none is singular."""


def gaussian_entropy(cov: Tensor) -> Tensor:
    """Differential entropy of N(mu, cov), 1 / 2 log det(2 pi e cov): (..., d, d) -> (...)."""
    return 0.5 * torch.linalg.slogdet(2.0 * math.pi * math.e * cov)[1]


def mixture_entropy(weights: Tensor, covs: Tensor) -> Tensor:
    """The non-overlapping-components entropy of a mixture: weights (..., K), covs
    (..., K, d, d) -> (...)."""
    own = (weights * gaussian_entropy(covs)).sum(-1)
    return own - torch.special.xlogy(weights, weights).sum(-1)


def fit_gaussian_mixture(
    x: Tensor, components: int = 3, iterations: int = 50
) -> tuple[Tensor, Tensor, Tensor]:
    """EM fit of a full-covariance Gaussian mixture to each row's samples.

    x: (states, n, d) -> weights (states, K), means (states, K, d), covs (states, K, d, d).
    Starts from K of the samples as means (evenly spaced indices: the samples are independent),
    the samples' covariance for every component and equal weights.
    """
    states, n, d = x.shape
    eye = REG_COVAR * torch.eye(d, dtype=x.dtype, device=x.device)
    start = torch.linspace(0, n - 1, components).long().to(x.device)
    means = x[:, start]
    centred = x - x.mean(dim=1, keepdim=True)
    cov = centred.mT @ centred / n + eye
    covs = cov.unsqueeze(1).expand(states, components, d, d)
    weights = torch.full((states, components), 1.0 / components, dtype=x.dtype, device=x.device)
    for _ in range(iterations):
        resp = responsibilities(x, weights, means, covs)  # (states, n, K)
        mass = resp.sum(dim=1).clamp(min=torch.finfo(x.dtype).tiny)  # (states, K); never 0
        weights = mass / n
        means = resp.mT @ x / mass.unsqueeze(-1)
        diff = x.unsqueeze(1) - means.unsqueeze(2)  # (states, K, n, d)
        weighted = diff * resp.mT.unsqueeze(-1)
        covs = weighted.mT @ diff / mass[..., None, None] + eye
    return weights, means, covs


def responsibilities(x: Tensor, weights: Tensor, means: Tensor, covs: Tensor) -> Tensor:
    """p(component k | x_n) for every sample: (states, n, K). The Gaussian log-densities leave
    out their constant -d / 2 log 2 pi: the same for every component, it cancels in the
    normalisation."""
    chol, _ = torch.linalg.cholesky_ex(covs)  # no error check: it would read the device
    diff = (x.unsqueeze(1) - means.unsqueeze(2)).mT  # (states, K, d, n)
    z = torch.linalg.solve_triangular(chol, diff, upper=False)
    log_det = torch.linalg.diagonal(chol).log().sum(-1)  # half log det Sigma
    log_pdf = -0.5 * z.square().sum(-2) - log_det.unsqueeze(-1)
    log_joint = log_pdf + weights.log().unsqueeze(-1)  # (states, K, n)
    return log_joint.softmax(dim=1).mT


def estimate_entropy(x: Tensor, components: int = 3, iterations: int = 50) -> Tensor:
    """DACER's entropy estimate of each row's samples: x (states, n, d) -> (states,), computed
    in float64 whatever x's dtype (autocast never casts float64, so not in bfloat16 either)."""
    weights, _, covs = fit_gaussian_mixture(x.double(), components, iterations)
    return mixture_entropy(weights, covs).to(x.dtype)
