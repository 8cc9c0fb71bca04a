"""DACER's entropy estimate (diffpolicy.objectives.mixture_entropy) against closed forms: the
Gaussian entropy against torch.distributions, the mixture formula on identical and on separated
components, and the EM fit on samples of a known Gaussian and of a known separated mixture."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from diffpolicy.objectives.mixture_entropy import (
    REG_COVAR,
    estimate_entropy,
    fit_gaussian_mixture,
    gaussian_entropy,
    mixture_entropy,
    responsibilities,
)

torch.set_num_threads(1)
F64 = torch.float64


def _spd(seed: int, d: int, k: int = 1) -> torch.Tensor:
    """k random symmetric positive definite (d, d) matrices."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, d, d, generator=g, dtype=F64)
    return a @ a.transpose(-1, -2) + 0.1 * torch.eye(d, dtype=F64)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 4))
def test_gaussian_entropy_is_torch_distributions(seed, d):
    cov = _spd(seed, d)[0]
    expected = MultivariateNormal(torch.zeros(d, dtype=F64), cov).entropy()
    assert torch.allclose(gaussian_entropy(cov), expected, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 3), k=st.integers(1, 4))
def test_identical_components_add_the_weights_entropy(seed, d, k):
    """K copies of one Gaussian with weights w: H(N) + H(w), the mixture formula's two parts."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(k, generator=g, dtype=F64) + 0.05
    weights = weights / weights.sum()
    cov = _spd(seed, d)
    covs = cov.expand(k, d, d)
    expected = gaussian_entropy(cov[0]) + Categorical(probs=weights).entropy()
    assert torch.allclose(mixture_entropy(weights, covs), expected, atol=1e-10)


def test_separated_mixture_formula_is_its_monte_carlo_entropy():
    """Components 40 std apart barely overlap: the formula is then the mixture's entropy, which a
    Monte Carlo average of -log p over its samples estimates independently."""
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
    means = torch.tensor([[-40.0, 0.0], [0.0, 40.0], [40.0, 0.0]], dtype=F64)
    covs = _spd(3, 2, 3)
    mixture = MixtureSameFamily(Categorical(probs=weights), MultivariateNormal(means, covs))
    torch.manual_seed(0)
    monte_carlo = -mixture.log_prob(mixture.sample((100_000,))).mean()
    assert abs(mixture_entropy(weights, covs).item() - monte_carlo.item()) < 0.02


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 3), k=st.integers(1, 3))
def test_responsibilities_are_the_posterior_of_each_component(seed, d, k):
    """E-step against torch.distributions: p(k | x) = w_k N(x; mu_k, S_k) / sum_j (...), on
    overlapping components where every term matters."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(2, k, generator=g, dtype=F64) + 0.1
    weights = weights / weights.sum(-1, keepdim=True)
    means = torch.randn(2, k, d, generator=g, dtype=F64)
    covs = _spd(seed, d, 2 * k).reshape(2, k, d, d)
    x = torch.randn(2, 7, d, generator=g, dtype=F64) * 2
    log_joint = MultivariateNormal(means.unsqueeze(1), covs.unsqueeze(1)).log_prob(x.unsqueeze(2))
    expected = (log_joint + weights.log().unsqueeze(1)).softmax(-1)
    assert torch.allclose(responsibilities(x, weights, means, covs), expected, atol=1e-10)


def test_fit_of_one_gaussian_gives_its_entropy():
    """One component is fitted by its sample mean and covariance: the estimate is the Gaussian's
    entropy up to sampling error (n = 20000: about 0.01 nats)."""
    cov = _spd(7, 3)[0] * 0.01
    torch.manual_seed(1)
    x = MultivariateNormal(torch.full((3,), 0.2, dtype=F64), cov).sample((20_000,))
    estimate = estimate_entropy(x.unsqueeze(0), components=1)
    assert abs(estimate.item() - gaussian_entropy(cov).item()) < 0.03


def test_fit_recovers_a_separated_mixture():
    """EM on samples of a well separated 3-mixture finds its weights and covariances, and the
    estimate is the mixture's entropy."""
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
    means = torch.tensor([[-0.6, 0.0], [0.0, 0.6], [0.6, 0.0]], dtype=F64)
    covs = _spd(11, 2, 3) * 1e-3
    mixture = MixtureSameFamily(Categorical(probs=weights), MultivariateNormal(means, covs))
    torch.manual_seed(2)
    x = mixture.sample((6000,)).unsqueeze(0)
    fitted_weights, _, fitted_covs = fit_gaussian_mixture(x)
    assert torch.allclose(fitted_weights.sum(-1), torch.ones(1, dtype=F64), atol=1e-12)
    order = fitted_weights[0].argsort()
    assert torch.allclose(fitted_weights[0, order], weights, atol=0.02)
    assert torch.allclose(fitted_covs[0, order], covs, rtol=0.15, atol=1e-4)
    expected = mixture_entropy(weights, covs).item()
    assert abs(estimate_entropy(x).item() - expected) < 0.05


def test_states_are_fitted_independently():
    """Fitting several states at once gives each state's own estimate."""
    torch.manual_seed(3)
    x = torch.randn(3, 300, 2, dtype=F64) * torch.tensor([0.1, 0.3, 1.0], dtype=F64).view(3, 1, 1)
    together = estimate_entropy(x)
    alone = torch.cat([estimate_entropy(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-8)
    # A scale of s adds d log s nats: the three estimates differ by 2 log 3 and 2 log (10 / 3).
    assert abs((together[1] - together[0]).item() - 2 * math.log(3)) < 0.3


def test_float32_input_is_estimated_in_float64():
    torch.manual_seed(4)
    x = torch.randn(2, 200, 3)
    out = estimate_entropy(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), estimate_entropy(x.double()), atol=1e-5)


def test_the_fit_starts_from_evenly_spaced_samples_and_the_samples_covariance():
    """Zero EM iterations return the start the docstring states: K of the samples at evenly
    spaced indices 0, (n - 1) / 2, n - 1 as means, the samples' covariance (divided by n) plus
    REG_COVAR I for every component, and equal weights."""
    x = torch.randn(2, 9, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    weights, means, covs = fit_gaussian_mixture(x, components=3, iterations=0)
    assert torch.equal(means, x[:, [0, 4, 8]])
    centred = x - x.mean(dim=1, keepdim=True)
    sample_cov = torch.einsum("sni,snj->sij", centred, centred) / 9
    expected = sample_cov + REG_COVAR * torch.eye(3, dtype=F64)
    assert torch.allclose(covs, expected.unsqueeze(1).expand(2, 3, 3, 3), rtol=1e-12, atol=0)
    assert torch.equal(weights, torch.full((2, 3), 1 / 3, dtype=F64))


@pytest.mark.parametrize("d", [1, 3])
def test_identical_samples_give_the_regularised_covariance_in_every_component(d):
    """n copies of one point: each component sits on it with covariance REG_COVAR I (float64's
    1e-6, not float32's) and weight 1 / K, so the estimate is
    d / 2 (1 + log 2 pi) + d / 2 log 1e-6 + log K for the default K = 3."""
    x = torch.full((2, 50, d), 0.3, dtype=F64)
    expected = 0.5 * d * (1 + math.log(2 * math.pi)) + 0.5 * d * math.log(1e-6) + math.log(3)
    expected = torch.full((2,), expected, dtype=F64)
    torch.testing.assert_close(estimate_entropy(x), expected, rtol=1e-13, atol=0)


def test_defaults_are_dacers_three_components_and_fifty_iterations():
    x = torch.randn(2, 40, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    explicit = fit_gaussian_mixture(x, components=3, iterations=50)
    for default, given_ in zip(fit_gaussian_mixture(x), explicit, strict=True):
        assert torch.equal(default, given_)
    assert torch.equal(estimate_entropy(x), estimate_entropy(x, components=3, iterations=50))
    assert not torch.equal(estimate_entropy(x), estimate_entropy(x, iterations=51))


def test_the_estimate_ignores_autocast_and_stays_on_the_samples_device():
    """Computed in float64, which autocast never casts: bfloat16 autocast changes nothing. On
    PyTorch's meta device (a stand-in for an accelerator) one CPU tensor would raise."""
    x = torch.randn(2, 60, 2, generator=torch.Generator().manual_seed(7))
    with torch.autocast("cpu", torch.bfloat16):
        assert torch.equal(estimate_entropy(x), estimate_entropy(x.double()).float())
    out = estimate_entropy(torch.zeros(2, 60, 2, device="meta"))
    assert out.device.type == "meta" and out.shape == (2,)
