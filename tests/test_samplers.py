"""Property tests for the DDPM and DDIM samplers against closed forms (see tests/closed_forms.py).

The distributional tests use the exact denoiser of a Gaussian (or Gaussian-mixture) target, for
which the sampler's output law is known exactly (Gaussian case) or nearly so (mixture case), and
compare empirical moments of n samples with Monte-Carlo error bars. With the "ci" profile
(derandomize=True) every draw is deterministic, so the z = 5 bars cannot flake.
"""

from __future__ import annotations

import math

import pytest
import torch
from closed_forms import exact_sampler_law, gaussian_eps, mixture_eps, random_spd
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from diffpolicy.samplers import (
    NO_CLIPPING,
    Clipping,
    DDIMSampler,
    DDPMSampler,
    LangevinSampler,
    Sampler,
    even_timesteps,
)
from diffpolicy.schedules import PREDICTIONS, SCHEDULES, make_schedule

F64 = torch.float64
Z = 5.0  # Monte-Carlo bars in standard errors

names = st.sampled_from(SCHEDULES)
seeds = st.integers(0, 2**31 - 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_sampler(config: str, schedule, timesteps, eta: float = 0.0, temperature: float = 1.0):
    """A sampler and the matching keyword arguments of `exact_sampler_law`."""
    if config == "ddpm-small":
        return DDPMSampler(schedule, timesteps=timesteps), {"sampler": "ddpm"}
    if config == "ddpm-large":
        sampler = DDPMSampler(schedule, timesteps=timesteps, variance="large")
        return sampler, {"sampler": "ddpm", "variance": "large"}
    if config == "ddpm-temperature":
        sampler = DDPMSampler(schedule, timesteps=timesteps, temperature=temperature)
        return sampler, {"sampler": "ddpm", "temperature": temperature}
    if config == "ddim-eta0":
        return DDIMSampler(schedule, timesteps=timesteps), {"sampler": "ddim"}
    if config == "ddim-eta1":
        return DDIMSampler(schedule, timesteps=timesteps, eta=1.0), {"sampler": "ddim", "eta": 1.0}
    if config == "ddim-eta":
        return DDIMSampler(schedule, timesteps=timesteps, eta=eta), {"sampler": "ddim", "eta": eta}
    raise AssertionError(config)


@st.composite
def gaussian_problems(draw, max_k: int = 40):
    """A target N(mu, Sigma) in 1-3 dims, a schedule, and an even K-step subsequence."""
    d = draw(st.integers(1, 3))
    mu = torch.tensor(draw(st.lists(st.floats(-2, 2), min_size=d, max_size=d)), dtype=F64)
    lam = draw(st.lists(st.floats(0.05, 2.0), min_size=d, max_size=d))
    Sigma = random_spd(lam, draw(seeds))
    name = draw(names)
    T = draw(st.integers(1, 1000))
    K = draw(st.integers(1, min(T, max_k)))
    return mu, Sigma, make_schedule(name, T, F64), even_timesteps(T, K)


def moment_bars(P: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard errors of the sample mean (sqrt(P_ii / n)) and of each sample-covariance entry
    (sqrt((P_ii P_jj + P_ij^2) / n), the Gaussian fourth-moment formula) for n draws of N(., P)."""
    diag = torch.diagonal(P)
    se_mean = (diag / n).sqrt()
    se_cov = ((diag[:, None] * diag[None, :] + P**2) / n).sqrt()
    return se_mean, se_cov


# --- the closed forms themselves ----------------------------------------------------------------
@settings(max_examples=15)
@given(problem=gaussian_problems(), seed=seeds, data=st.data())
def test_gaussian_eps_is_minus_sqrt_one_minus_abar_times_score(problem, seed, data):
    """gaussian_eps vs autograd of the explicit log-density of N(a mu, a^2 Sigma + (1 - a^2) I)."""
    mu, Sigma, sched, _ = problem
    T, d = sched.num_steps, mu.numel()
    t = torch.tensor(data.draw(st.lists(st.integers(0, T - 1), min_size=5, max_size=5)))
    x = torch.randn(5, d, generator=gen(seed), dtype=F64).requires_grad_(True)
    abar = sched.alpha_bars[t][:, None, None]
    C = abar * Sigma + (1 - abar) * torch.eye(d, dtype=F64)
    logp = torch.distributions.MultivariateNormal(abar[:, :, 0].sqrt() * mu, C).log_prob(x)
    (score,) = torch.autograd.grad(logp.sum(), x)
    expected = -(1 - abar[:, :, 0]).sqrt() * score
    got = gaussian_eps(sched, mu, Sigma)(x.detach(), t, None)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-10)


@settings(max_examples=15)
@given(T=st.integers(1, 300), name=names, d=st.integers(1, 3), seed=seeds, data=st.data())
def test_mixture_eps_is_minus_sqrt_one_minus_abar_times_score(T, name, d, seed, data):
    """mixture_eps against autograd of the log-density of sum_k w_k N(a m_k, v_k I)."""
    sched = make_schedule(name, T, F64)
    g = gen(seed)
    k = data.draw(st.integers(1, 3))
    w = torch.rand(k, generator=g, dtype=F64) + 0.1
    w = w / w.sum()
    means = 3 * torch.randn(k, d, generator=g, dtype=F64)
    stds = 0.1 + torch.rand(k, generator=g, dtype=F64)
    t = torch.tensor(data.draw(st.lists(st.integers(0, T - 1), min_size=6, max_size=6)))
    x = (3 * torch.randn(6, d, generator=g, dtype=F64)).requires_grad_(True)
    abar = sched.alpha_bars[t][:, None]
    v = abar * stds**2 + (1 - abar)  # (6, k)
    comp = torch.distributions.Normal(abar.sqrt()[:, :, None] * means, v.sqrt()[:, :, None])
    logp = torch.logsumexp(w.log() + comp.log_prob(x[:, None, :]).sum(-1), dim=1)
    (score,) = torch.autograd.grad(logp.sum(), x)
    got = mixture_eps(sched, w, means, stds)(x.detach(), t, None)
    torch.testing.assert_close(got, -(1 - abar).sqrt() * score, rtol=1e-8, atol=1e-10)


def test_exact_law_single_step_closed_form():
    """K = 1 (straight from x_T ~ N(0, 1) to the clean sample) in 1-D, by hand: both samplers
    output x0_hat = mu + g (x_T - a mu), so the law is N(mu (1 - a g), g^2)."""
    sched = make_schedule("vp", 7, F64)
    mu, lam = torch.tensor([0.7], dtype=F64), 0.4
    a2 = float(sched.alpha_bars[3])
    g = math.sqrt(a2) * lam / (a2 * lam + 1 - a2)
    for kw in ({"sampler": "ddpm"}, {"sampler": "ddpm", "variance": "large"}, {"sampler": "ddim"}):
        mean, cov = exact_sampler_law(sched, mu, torch.tensor([[lam]], dtype=F64), [3], **kw)
        assert math.isclose(float(mean), 0.7 * (1 - math.sqrt(a2) * g), rel_tol=1e-12)
        assert math.isclose(float(cov), g * g, rel_tol=1e-12)


@settings(max_examples=10)
@given(problem=gaussian_problems())
def test_exact_law_is_consistent_across_equivalent_samplers(problem):
    """DDIM(eta=1) and DDPM(small) define the same chain (Song et al. sec. 4.1), so their laws
    agree; DDPM at temperature 0 has the same mean as at temperature 1."""
    mu, Sigma, sched, ts = problem
    m1, c1 = exact_sampler_law(sched, mu, Sigma, ts, sampler="ddpm")
    m2, c2 = exact_sampler_law(sched, mu, Sigma, ts, sampler="ddim", eta=1.0)
    torch.testing.assert_close(m1, m2, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(c1, c2, rtol=1e-9, atol=1e-10)
    m0, _ = exact_sampler_law(sched, mu, Sigma, ts, sampler="ddpm", temperature=0.0)
    torch.testing.assert_close(m0, m1, rtol=1e-12, atol=1e-12)


@settings(max_examples=5)
@given(
    mu=st.lists(st.floats(-2, 2), min_size=3, max_size=3),
    lam=st.lists(st.floats(0.05, 2.0), min_size=3, max_size=3),
    seed=seeds,
)
def test_exact_law_converges_to_target_with_many_steps(mu, lam, seed):
    """With cosine T = 500 over all levels, DDPM(small) and DDIM(eta=0) laws are within 0.02 of the
    target, so the recursion is not wrong in the same way as a wrong sampler could be. (Measured
    worst case over eigenvalues in [0.05, 2]: 0.017 for DDPM's covariance, 0.010 for DDIM's.)"""
    mu = torch.tensor(mu, dtype=F64)
    Sigma = random_spd(lam, seed)
    sched = make_schedule("cosine", 500, F64)
    for kw in ({"sampler": "ddpm"}, {"sampler": "ddim"}):
        mean, cov = exact_sampler_law(sched, mu, Sigma, torch.arange(500), **kw)
        assert float((mean - mu).abs().max()) <= 0.02, kw
        assert float((cov - Sigma).abs().max()) <= 0.02, kw


# --- Gaussian target: empirical moments vs the exact law and the target -------------------------
CONFIGS = ["ddpm-small", "ddpm-large", "ddpm-temperature", "ddim-eta0", "ddim-eta1", "ddim-eta"]


@pytest.mark.parametrize("config", CONFIGS)
@settings(max_examples=12)
@given(
    problem=gaussian_problems(),
    seed=seeds,
    eta=st.floats(0.0, 1.0),
    temperature=st.floats(0.0, 1.5),
)
def test_gaussian_target_moments(config, problem, seed, eta, temperature):
    """Samples from the exact-eps sampler match the exact output law and the target N(mu, Sigma).

    Derivation (details in `closed_forms.exact_sampler_law`): with the exact denoiser every step is
    affine in x_t plus independent Gaussian noise, so the output is exactly Gaussian with mean
    mu + Q e and covariance P = Q diag(V) Q^T, obtained by propagating per eigen-direction
    y' = A y + sigma z (A = c0 g + c1 for DDPM, a' g + k (1 - a g) / sqrt(1 - abar) for DDIM) from
    x_T ~ N(0, I). Hence, for n = 4000 float64 samples:

    * sharp test: |empirical mean_i - law mean_i| <= z sqrt(P_ii / n) and
      |empirical cov_ij - P_ij| <= z sqrt((P_ii P_jj + P_ij^2) / n), the Monte-Carlo error alone;
    * target test: the same with |law - target| (the discretisation bias of K steps and of starting
      at N(0, I) rather than N(sqrt(abar_T) mu, C_T)) added to the bar. With many steps that bias
      is small (`test_exact_law_converges_to_target_with_many_steps`).

    Both bars also get a float64 rounding floor (below ~1e-12 unless abar at the top step is below
    ~1e-6, e.g. linear schedules with T < 20 whose betas clip at 0.999).
    """
    mu, Sigma, sched, ts = problem
    n = 4000
    sampler, law_kw = make_sampler(config, sched, ts, eta=eta, temperature=temperature)
    g = gen(seed)
    x_T = torch.randn(n, mu.numel(), generator=g, dtype=F64)
    x = sampler.sample(gaussian_eps(sched, mu, Sigma), None, x_T, generator=g)
    assert x.shape == x_T.shape and x.dtype == F64

    law_mean, law_cov = exact_sampler_law(sched, mu, Sigma, ts, **law_kw)
    se_mean, se_cov = moment_bars(law_cov, n)
    emp_mean = x.mean(0)
    emp_cov = torch.cov(x.T).reshape(law_cov.shape)
    # Float64 rounding floor (negligible unless abar at the top step is tiny): the first step
    # rebuilds x0 = (x - s eps) / a, so each sample carries up to ~4u (|x| + |eps|) / a of
    # rounding, and later steps do not amplify it (their affine maps have gain <= ~sqrt(2)).
    # A per-sample error <= r moves a mean by <= r and a covariance entry by
    # <= r (sd_i + sd_j) + r^2.
    a_top = math.sqrt(float(sched.alpha_bars[ts[-1]]))
    r = 16 * 2**-53 * (2.0 + float(x_T.abs().max()) + float(mu.abs().max())) / a_top
    sd = torch.diagonal(emp_cov).clamp(min=0).sqrt()
    fp_mean, fp_cov = r, r * (sd[:, None] + sd[None, :]) + r * r

    # Sharp: the exact law, Monte-Carlo error only.
    assert bool(((emp_mean - law_mean).abs() <= Z * se_mean + fp_mean).all()), (emp_mean, law_mean)
    assert bool(((emp_cov - law_cov).abs() <= Z * se_cov + fp_cov).all()), (emp_cov, law_cov)
    # The target, within discretisation bias plus Monte-Carlo error.
    bias_mean, bias_cov = (law_mean - mu).abs(), (law_cov - Sigma).abs()
    assert bool(((emp_mean - mu).abs() <= bias_mean + Z * se_mean + fp_mean).all())
    assert bool(((emp_cov - Sigma).abs() <= bias_cov + Z * se_cov + fp_cov).all())


# --- Gaussian-mixture target --------------------------------------------------------------------
# Discretisation allowances, measured with n = 100,000 samples (MC s.e. ~0.0015) for cosine
# T in {100, 200}, D in {1, 2}, weights {0.2, 0.5, 0.8}, both DDPM variances: the mode fraction was
# off by at most 0.0043, each mode's mean by at most 0.006, and the per-mode std by at most 0.016
# (small variance at T = 100 gives 0.284; large gives 0.306). These are allowances for the finite
# step count (each about 1.5-2x the largest measured deviation), not error bars.
MODE_FRACTION_ALLOWANCE = 0.01
MODE_MEAN_ALLOWANCE = 0.01
MODE_STD_ALLOWANCE = 0.02


@settings(max_examples=6)
@given(
    w=st.floats(0.2, 0.8),
    d=st.integers(1, 2),
    T=st.integers(100, 200),
    variance=st.sampled_from(["small", "large"]),
    seed=seeds,
)
def test_mixture_target_mode_weights_and_widths(w, d, T, variance, seed):
    """Two modes at +-2 e_1 with std 0.3 and weights (w, 1 - w), DDPM over all levels of cosine T.

    The fraction of samples nearest the +2 mode must be w within 5 Monte-Carlo standard errors
    (sqrt(w (1 - w) / n)) plus MODE_FRACTION_ALLOWANCE; each mode's sample mean must be its centre
    within 5 standard errors (0.3 / sqrt(n_k)) plus MODE_MEAN_ALLOWANCE, and its per-coordinate
    sample std 0.3 within 5 standard errors (0.3 / sqrt(2 n_k)) plus MODE_STD_ALLOWANCE.
    """
    n, std = 6000, 0.3
    sched = make_schedule("cosine", T, F64)
    means = torch.zeros(2, d, dtype=F64)
    means[0, 0], means[1, 0] = 2.0, -2.0
    denoise = mixture_eps(sched, [w, 1 - w], means, std)
    g = gen(seed)
    x_T = torch.randn(n, d, generator=g, dtype=F64)
    x = DDPMSampler(sched, variance=variance).sample(denoise, None, x_T, generator=g)

    near_plus = x[:, 0] > 0  # nearest of +-2 e_1
    frac = float(near_plus.double().mean())
    assert abs(frac - w) <= Z * math.sqrt(w * (1 - w) / n) + MODE_FRACTION_ALLOWANCE
    for mask, m in ((near_plus, means[0]), (~near_plus, means[1])):
        n_k = int(mask.sum())
        assert n_k > 100
        mode = x[mask]
        mean_bar = Z * std / math.sqrt(n_k) + MODE_MEAN_ALLOWANCE
        assert float((mode.mean(0) - m).abs().max()) <= mean_bar
        sd = mode.std(0)
        assert float((sd - std).abs().max()) <= Z * std / math.sqrt(2 * n_k) + MODE_STD_ALLOWANCE


# --- exact identities between samplers ----------------------------------------------------------
def linear_denoiser(d: int, T: int, seed: int):
    """A fixed random (not exact) denoiser, affine in x_t and in t / T."""
    g = gen(seed)
    W = 0.5 * torch.randn(d, d, generator=g, dtype=F64)
    b = torch.randn(d, generator=g, dtype=F64)

    def denoise(x, t, cond):
        return x @ W + (t.to(x.dtype) / T)[:, None] * b

    return denoise


@settings(max_examples=15)
@given(
    name=names,
    T=st.integers(1, 200),
    d=st.integers(1, 4),
    prediction=st.sampled_from(PREDICTIONS),
    seed=seeds,
    data=st.data(),
)
def test_ddim_eta1_equals_ddpm_small(name, T, d, prediction, seed, data):
    """Song et al. (2021): DDIM with eta = 1 is DDPM with the posterior variance beta_tilde, step by
    step, for ANY denoiser; over a subsequence, DDPM uses the respaced betas. With one noise draw
    per step from equally seeded generators and the same x_T, the outputs coincide (float64)."""
    sched = make_schedule(name, T, F64)
    K = data.draw(st.integers(1, T))
    for ts in (None, even_timesteps(T, K)):
        denoise = linear_denoiser(d, T, seed)
        x_T = torch.randn(8, d, generator=gen(seed + 1), dtype=F64)
        ddim = DDIMSampler(sched, prediction=prediction, timesteps=ts, eta=1.0)
        ddpm = DDPMSampler(sched, prediction=prediction, timesteps=ts, variance="small")
        a = ddim.sample_chain(denoise, None, x_T, generator=gen(seed))
        b = ddpm.sample_chain(denoise, None, x_T, generator=gen(seed))
        scale = 1.0 + float(b.abs().max())
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * scale)


@settings(max_examples=10)
@given(name=names, T=st.integers(1, 300), d=st.integers(1, 4), seed=seeds, data=st.data())
def test_ddim_eta0_deterministic_and_ddpm_not(name, T, d, seed, data):
    sched = make_schedule(name, T, F64)
    ts = even_timesteps(T, data.draw(st.integers(1, min(T, 50))))
    denoise = linear_denoiser(d, T, seed)
    x_T = torch.randn(5, d, generator=gen(seed), dtype=F64)
    ddim = DDIMSampler(sched, timesteps=ts, eta=0.0)
    out1 = ddim.sample(denoise, None, x_T, generator=gen(1))
    out2 = ddim.sample(denoise, None, x_T, generator=gen(2))
    assert torch.equal(out1, out2)
    if len(ts) > 1:  # the noise stream matters whenever a non-final step adds noise
        for sampler in (
            DDPMSampler(sched, timesteps=ts),
            DDIMSampler(sched, timesteps=ts, eta=1.0),
        ):
            a = sampler.sample(denoise, None, x_T, generator=gen(1))
            assert not torch.equal(a, sampler.sample(denoise, None, x_T, generator=gen(2)))


@settings(max_examples=10)
@given(name=names, T=st.integers(2, 300), d=st.integers(1, 4), seed=seeds, data=st.data())
def test_ddpm_temperature_zero_is_deterministic(name, T, d, seed, data):
    sched = make_schedule(name, T, F64)
    ts = even_timesteps(T, data.draw(st.integers(2, min(T, 50))))
    denoise = linear_denoiser(d, T, seed)
    x_T = torch.randn(5, d, generator=gen(seed), dtype=F64)
    for variance in ("small", "large"):
        cold = DDPMSampler(sched, timesteps=ts, variance=variance, temperature=0.0)
        a = cold.sample(denoise, None, x_T, generator=gen(1))
        assert torch.equal(a, cold.sample(denoise, None, x_T, generator=gen(2)))
        warm = DDPMSampler(sched, timesteps=ts, variance=variance, temperature=1.0)
        assert not torch.equal(a, warm.sample(denoise, None, x_T, generator=gen(1)))


@settings(max_examples=10)
@given(
    name=names,
    T=st.integers(1, 100),
    sampler_cls=st.sampled_from([DDPMSampler, DDIMSampler]),
    seed=seeds,
    data=st.data(),
)
def test_sample_chain_shape_and_ends(name, T, sampler_cls, seed, data):
    sched = make_schedule(name, T, F64)
    K = data.draw(st.integers(1, T))
    sampler = sampler_cls(sched, timesteps=even_timesteps(T, K))
    assert sampler.num_steps == K
    denoise = linear_denoiser(3, T, seed)
    x_T = torch.randn(4, 3, generator=gen(seed), dtype=F64)
    chain = sampler.sample_chain(denoise, None, x_T, generator=gen(seed + 1))
    assert chain.shape == (K + 1, 4, 3)
    assert torch.equal(chain[0], x_T)
    assert torch.equal(chain[-1], sampler.sample(denoise, None, x_T, generator=gen(seed + 1)))


# --- clipping -----------------------------------------------------------------------------------
class RecordingDDPM(DDPMSampler):
    """DDPM that records the x0 each step is formed from."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen_x0: list[torch.Tensor] = []

    def step(self, x_t, t, t_prev, x0, eps, noise):
        self.seen_x0.append(x0)
        return super().step(x_t, t, t_prev, x0, eps, noise)


def explosive_denoiser(x, t, cond):
    """An eps-prediction whose implied x0 = (1 + 3 s) x / a lies far outside [-1, 1]."""
    return -3.0 * x


@settings(max_examples=10)
@given(
    name=names,
    T=st.integers(2, 200),
    sampler_cls=st.sampled_from([DDPMSampler, DDIMSampler]),
    bounds=st.sampled_from([(-1.0, 1.0), (-0.5, 2.0)]),
    seed=seeds,
    data=st.data(),
)
def test_each_step_clipping_bounds_every_chain_element(name, T, sampler_cls, bounds, seed, data):
    low, high = bounds
    sched = make_schedule(name, T, F64)
    ts = even_timesteps(T, data.draw(st.integers(2, min(T, 30))))
    x_T = 3.0 * torch.randn(64, 2, generator=gen(seed), dtype=F64)
    clipped = sampler_cls(sched, timesteps=ts, clipping=Clipping(low, high)).sample_chain(
        explosive_denoiser, None, x_T, generator=gen(seed)
    )
    assert torch.equal(clipped[0], x_T)  # x_T itself is not clipped
    assert float(clipped[1:].min()) >= low and float(clipped[1:].max()) <= high
    free = sampler_cls(sched, timesteps=ts, clipping=NO_CLIPPING).sample_chain(
        explosive_denoiser, None, x_T, generator=gen(seed)
    )
    assert float(free[1:].min()) < low or float(free[1:].max()) > high  # clipping was needed


@settings(max_examples=10)
@given(name=names, T=st.integers(1, 200), seed=seeds, data=st.data())
def test_x0_clipping_bounds_the_implied_x0(name, T, seed, data):
    sched = make_schedule(name, T, F64)
    ts = even_timesteps(T, data.draw(st.integers(1, min(T, 30))))
    x_T = 3.0 * torch.randn(64, 2, generator=gen(seed), dtype=F64)
    clip = Clipping(-1.0, 1.0, each_step=False, x0=True)
    rec = RecordingDDPM(sched, timesteps=ts, clipping=clip)
    out = rec.sample(explosive_denoiser, None, x_T, generator=gen(seed))
    assert len(rec.seen_x0) == len(ts)
    for x0 in rec.seen_x0:
        assert float(x0.min()) >= -1.0 and float(x0.max()) <= 1.0
    # The last step lands exactly on the (clipped) x0 for both samplers.
    assert torch.allclose(out, rec.seen_x0[-1], rtol=1e-12, atol=1e-12)
    ddim_out = DDIMSampler(sched, timesteps=ts, clipping=clip).sample(
        explosive_denoiser, None, x_T, generator=gen(seed)
    )
    assert float(ddim_out.abs().max()) <= 1.0
    raw = RecordingDDPM(sched, timesteps=ts)
    raw.sample(explosive_denoiser, None, x_T, generator=gen(seed))
    assert float(raw.seen_x0[0].abs().max()) > 1.0  # without clipping x0 leaves the box


@settings(max_examples=10)
@given(name=names, T=st.integers(2, 200), seed=seeds, data=st.data())
def test_x0_clipping_steps_keep_the_noise_of_the_clipped_x0(name, T, seed, data):
    """A DDIM (eta = 0) step keeps the noise that explains x_t: with c the clipped clean estimate,
    x_t = a c + s e and x_prev = a' c + s' e for ONE e (a, s at t; a', s' at t_prev). So
    s (x_prev - a' c) = s' (x_t - a c) at every step, the last (s' = 0) landing on c. The noise
    of the unclipped prediction would break this wherever clipping moved the estimate.
    c is computed here by hand from the eps prediction: clamp((x_t - s eps) / a, -1, 1)."""
    sched = make_schedule(name, T, F64)
    ts = even_timesteps(T, data.draw(st.integers(2, min(T, 30))))
    x_T = 3.0 * torch.randn(64, 2, generator=gen(seed), dtype=F64)
    clip = Clipping(-1.0, 1.0, each_step=False, x0=True)
    chain = DDIMSampler(sched, timesteps=ts, clipping=clip).sample_chain(
        explosive_denoiser, None, x_T
    )
    abar = sched.alpha_bars
    levels = ts.tolist()[::-1]  # the chain visits the timesteps from the top down
    clipped_somewhere = False
    for i, t in enumerate(levels):
        x_t, x_prev = chain[i], chain[i + 1]
        a, s = abar[t].sqrt(), (1 - abar[t]).sqrt()
        raw = (x_t - s * explosive_denoiser(x_t, None, None)) / a
        c = raw.clamp(-1.0, 1.0)
        if i == len(levels) - 1:
            torch.testing.assert_close(x_prev, c, rtol=0, atol=1e-12)
            break
        clipped_somewhere |= bool((raw != c).any())
        t_prev = levels[i + 1]
        a_p, s_p = abar[t_prev].sqrt(), (1 - abar[t_prev]).sqrt()
        scale = 1.0 + float(x_t.abs().max()) + float(x_prev.abs().max())
        torch.testing.assert_close(
            s * (x_prev - a_p * c), s_p * (x_t - a * c), rtol=0, atol=1e-12 * scale
        )
    assert clipped_somewhere  # the check above was exercised where clipping matters


def test_clipping_rejects_empty_interval():
    with pytest.raises(ValueError, match=r"low < high, got \[1.0, 1.0\]"):
        Clipping(1.0, 1.0)
    with pytest.raises(ValueError, match=r"low < high, got \[1.0, -1.0\]"):
        Clipping(1.0, -1.0)


# --- autograd -----------------------------------------------------------------------------------
class TinyDenoiser(nn.Module):
    def __init__(self, d: int, cond_dim: int, T: int):
        super().__init__()
        self.T = T
        self.inp = nn.Linear(d + 1 + cond_dim, 16)
        self.out = nn.Linear(16, d)

    def forward(self, x, t, cond):
        h = torch.cat([x, (t.to(x.dtype) / self.T)[:, None], cond], dim=-1)
        return self.out(torch.tanh(self.inp(h)))


@pytest.mark.parametrize("sampler_cls", [DDPMSampler, DDIMSampler])
def test_differentiable_sampling_reaches_every_parameter(sampler_cls):
    torch.manual_seed(0)
    T, d = 10, 3
    sched = make_schedule("vp", T)
    net = TinyDenoiser(d, 2, T)
    cond = torch.randn(6, 2)
    x_T = torch.randn(6, d)
    sampler = sampler_cls(sched, timesteps=even_timesteps(T, 5))

    out = sampler.sample(net, cond, x_T, generator=gen(0))
    assert not out.requires_grad and out.grad_fn is None
    assert all(p.grad is None for p in net.parameters())

    out = sampler.sample(net, cond, x_T, generator=gen(0), differentiable=True)
    assert out.requires_grad
    out.sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


# --- timesteps and argument validation ----------------------------------------------------------
@given(T=st.integers(1, 1000), data=st.data())
def test_even_timesteps_properties(T, data):
    K = data.draw(st.integers(1, T))
    ts = even_timesteps(T, K)
    assert ts.dtype == torch.long and ts.shape == (K,)
    assert int(ts[-1]) == T - 1
    assert int(ts.min()) >= 0 and int(ts.max()) <= T - 1
    if K > 1:
        gaps = ts[1:] - ts[:-1]
        assert bool((gaps > 0).all())
        assert int(gaps.max()) - int(gaps.min()) <= 1  # evenly spaced up to rounding
    if K == T:
        assert torch.equal(ts, torch.arange(T))
    with pytest.raises(ValueError, match=f"need 1 <= K <= T, got K={T + 1}, T={T}"):
        even_timesteps(T, T + 1)
    with pytest.raises(ValueError, match=f"got K=0, T={T}"):
        even_timesteps(T, 0)


def test_sampler_argument_validation():
    sched = make_schedule("linear", 10)
    bad_timesteps = [  # each bad subsequence and what the error says about it
        ([3, 2], r"strictly increasing, got \[3, 2\]"),
        ([1, 1, 2], r"strictly increasing, got \[1, 1, 2\]"),
        ([0, 2, 1], r"strictly increasing, got \[0, 2, 1\]"),
        ([-1, 4], r"must lie in \[0, 9\], got \[-1, 4\]"),
        ([0, 10], r"must lie in \[0, 9\], got \[0, 10\]"),
        ([], "^timesteps must be a non-empty 1-D sequence$"),
        ([[0, 1]], "^timesteps must be a non-empty 1-D sequence$"),
    ]
    for bad, message in bad_timesteps:
        for cls in (DDPMSampler, DDIMSampler):
            with pytest.raises(ValueError, match=message):
                cls(sched, timesteps=bad)
    for eta in (-0.1, 1.1):
        with pytest.raises(ValueError, match=r"eta must lie in \[0, 1\]"):
            DDIMSampler(sched, eta=eta)
    with pytest.raises(ValueError, match="unknown variance 'medium'; valid: small, large"):
        DDPMSampler(sched, variance="medium")
    with pytest.raises(ValueError, match="temperature must be >= 0, got -1.0"):
        DDPMSampler(sched, temperature=-1.0)
    with pytest.raises(ValueError) as info:
        DDIMSampler(sched, prediction="noise")
    assert all(p in str(info.value) for p in PREDICTIONS)
    with pytest.raises(ValueError, match=r"x_T must have shape \(batch, dim\), got \(2, 3, 1\)"):
        DDPMSampler(sched).sample(lambda x, t, c: x, None, torch.zeros(2, 3, 1))
    assert isinstance(DDPMSampler(sched), Sampler)
    assert torch.equal(DDIMSampler(sched).timesteps, torch.arange(10))


@settings(max_examples=12, deadline=None)
@given(
    mean=st.floats(-0.8, 0.8),
    std=st.floats(0.1, 0.6),
    step=st.floats(1e-3, 2e-2),
    num_steps=st.integers(1, 30),
    init_scale=st.floats(0.0, 1.5),
    seed=seeds,
)
def test_langevin_chain_law_for_gaussian_score(mean, std, step, num_steps, init_scale, seed):
    """With the score -(x - m) / s^2 of N(m, s^2), one unadjusted Langevin step is linear:
    x' - m = rho (x - m) + sqrt(2 h) z with rho = 1 - h / s^2. From x_0 = c * N(0, 1) after n
    steps: mean m (1 - rho^n), variance c^2 rho^(2n) + 2 h (1 - rho^(2n)) / (1 - rho^2)."""
    sched = make_schedule("vp", 5)
    sigma0 = math.sqrt(1.0 - float(sched.alpha_bars[0]))

    def denoise(x, t, cond):  # eps = -sqrt(1 - abar_0) * score, as the schedule converts
        return sigma0 * (x - mean) / std**2

    sampler = LangevinSampler(sched, step_size=step, num_steps=num_steps, init_scale=init_scale)
    n = 20_000
    x = sampler.sample(
        denoise, None, torch.randn(n, 1, generator=gen(seed), dtype=F64), gen(seed + 1)
    )
    rho = 1.0 - step / std**2
    exp_mean = mean * (1.0 - rho**num_steps)
    exp_var = init_scale**2 * rho ** (2 * num_steps) + 2 * step * (1 - rho ** (2 * num_steps)) / (
        1 - rho**2
    )
    assert abs(x.mean().item() - exp_mean) <= Z * math.sqrt(exp_var / n)
    # var of the sample variance of a Gaussian: 2 v^2 / (n - 1)
    assert abs(x.var().item() - exp_var) <= Z * exp_var * math.sqrt(2 / (n - 1))


def test_langevin_refuses_to_backpropagate():
    sampler = LangevinSampler(make_schedule("vp", 5), num_steps=2)
    with pytest.raises(ValueError) as err:
        sampler.sample(lambda x, t, c: x, None, torch.zeros(2, 1), differentiable=True)
    assert str(err.value) == "LangevinSampler cannot backpropagate; use DDPM or DDIM for that"
    with pytest.raises(ValueError, match="init_scale"):
        LangevinSampler(make_schedule("vp", 5), init_scale=-1.0)


# --- sharpened by mutation testing (docs/mutation.md) --------------------------------------------
@pytest.mark.parametrize("eta", [0.3, 0.5, 0.8])
def test_ddim_noise_scale_is_eta_times_ddpm_small(eta):
    """Song et al. (2021), eq. 16: DDIM's noise at eta is eta times DDPM's posterior std (the
    "small" variance). Two noise streams through one non-final step differ by sigma (z1 - z2),
    and both samplers draw the same z from equally seeded generators, so the ratio of their
    differences is sigma_DDIM / sigma_DDPM = eta, elementwise."""
    sched = make_schedule("cosine", 50, F64)
    denoise = linear_denoiser(2, 50, seed=3)
    x_T = torch.randn(16, 2, generator=gen(0), dtype=F64)

    def spread(sampler):
        first, second = (
            sampler.sample_chain(denoise, None, x_T, generator=gen(s))[1] for s in (1, 2)
        )
        return first - second

    ts = [20, 40]
    ddim = spread(DDIMSampler(sched, timesteps=ts, eta=eta))
    ddpm = spread(DDPMSampler(sched, timesteps=ts, variance="small"))
    torch.testing.assert_close(ddim / ddpm, torch.full_like(ddim, eta), rtol=1e-9, atol=0)


@pytest.mark.parametrize("sampler_cls", [DDPMSampler, DDIMSampler])
def test_sample_chain_passes_cond_and_runs_without_autograd_by_default(sampler_cls):
    sched = make_schedule("vp", 5, F64)
    net = TinyDenoiser(2, 3, 5).double()
    cond = torch.randn(4, 3, generator=gen(0), dtype=F64)
    x_T = torch.randn(4, 2, generator=gen(1), dtype=F64)
    sampler = sampler_cls(sched)
    chain = sampler.sample_chain(net, cond, x_T, generator=gen(2))
    assert not chain.requires_grad
    # The chain ends where `sample` does with the same cond, and cond changes the chain.
    assert torch.equal(chain[-1], sampler.sample(net, cond, x_T, generator=gen(2)))
    other = sampler.sample_chain(net, cond + 1.0, x_T, generator=gen(2))
    assert not torch.equal(chain[-1], other[-1])


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("units", ["level", "unit"])
def test_langevin_reads_every_prediction_type_as_its_score(prediction, units):
    """One noiseless step moves x by h * score. Built from a known pair (x0, eps) at level 0,
    x = a x0 + s eps, the denoiser returns that pair's form by its definition (v = a eps - s x0,
    score = -eps / s); the chain's score is then -eps / s ("level") or -eps ("unit")."""
    sched = make_schedule("vp", 5, F64)
    abar = sched.alpha_bars[0]
    a, s = abar.sqrt(), (1 - abar).sqrt()
    g = gen(4)
    x0, eps = (torch.randn(6, 2, generator=g, dtype=F64) for _ in range(2))
    x = a * x0 + s * eps
    form = {"eps": eps, "x0": x0, "v": a * eps - s * x0, "score": -eps / s}[prediction]
    h = 0.01
    sampler = LangevinSampler(
        sched, prediction, step_size=h, num_steps=1, score_units=units, temperature=0.0
    )
    moved = sampler.sample(lambda x_t, t, c: form, None, x)
    score = -eps / s if units == "level" else -eps
    torch.testing.assert_close(moved, x + h * score, rtol=1e-12, atol=1e-12)


def test_langevin_defaults_and_argument_validation():
    sampler = LangevinSampler(make_schedule("vp", 5))
    # The documented defaults: a long, fine chain from the draw itself, at temperature 1.
    assert (sampler.step_size, sampler.num_steps, sampler.init_scale) == (1e-2, 1000, 1.0)
    assert (sampler.temperature, sampler.score_units, sampler.prediction) == (1.0, "level", "eps")
    sched = make_schedule("vp", 5)
    for kw in ({"step_size": 0.0}, {"num_steps": 0}, {"step_size": -1.0, "num_steps": 3}):
        with pytest.raises(ValueError, match="need step_size > 0 and num_steps >= 1"):
            LangevinSampler(sched, **kw)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        LangevinSampler(sched, temperature=-0.5)
    with pytest.raises(ValueError, match="unknown score_units 'celsius'; valid: level, unit"):
        LangevinSampler(sched, score_units="celsius")


@pytest.mark.parametrize("sampler_cls", [DDPMSampler, DDIMSampler])
def test_chains_stay_on_the_samples_device(sampler_cls):
    """Timesteps and noise are made on x_T's device: on PyTorch's meta device (a stand-in for an
    accelerator) one CPU tensor in a step would raise."""
    sampler = sampler_cls(make_schedule("vp", 5), clipping=Clipping(x0=True))
    x_T = torch.zeros(4, 2, device="meta")
    out = sampler.sample(lambda x, t, c: 0.5 * x, None, x_T, generator=gen(0))
    assert out.device.type == "meta" and out.shape == (4, 2)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_a_langevin_step_adds_its_noise_scale_times_the_generators_draw(dtype):
    """On a flat score (eps prediction 0) two steps move init_scale x_init by sqrt(2 h T) (z1 +
    z2), z the generator's standard normal draws in x's dtype: the same numbers by hand."""
    h, temperature, init = 0.01, 0.7, 0.5
    sampler = LangevinSampler(
        make_schedule("vp", 5, F64), step_size=h, num_steps=2, init_scale=init,
        temperature=temperature,
    )  # fmt: skip
    x_init = torch.randn(64, 3, generator=gen(0), dtype=dtype)
    out = sampler.sample(lambda x, t, c: torch.zeros_like(x), None, x_init, gen(1))
    g = gen(1)
    z1, z2 = (torch.randn(64, 3, generator=g, dtype=dtype) for _ in range(2))
    expected = init * x_init + (2 * h * temperature) ** 0.5 * z1 + (2 * h * temperature) ** 0.5 * z2
    assert out.dtype == dtype
    torch.testing.assert_close(out, expected, rtol=4 * torch.finfo(dtype).eps, atol=0)


def test_langevin_chains_stay_on_the_samples_device():
    """On PyTorch's meta device (a stand-in for an accelerator) a CPU noise draw would raise."""
    sampler = LangevinSampler(make_schedule("vp", 5), num_steps=3, clipping=Clipping(x0=True))
    x_init = torch.zeros(4, 2, device="meta")
    out = sampler.sample(lambda x, t, c: 0.5 * x, None, x_init, generator=gen(0))
    assert out.device.type == "meta" and out.shape == (4, 2)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_a_step_adds_the_generators_standard_normal_draw(dtype):
    """A step's noise is the generator's first standard normal draw in x's dtype: two streams
    move the first step's output by sigma (z1 - z2), one sigma for every element."""
    sampler = DDPMSampler(make_schedule("cosine", 20, F64).to(dtype=dtype), timesteps=[5, 19])
    x_T = torch.randn(64, 3, generator=gen(0), dtype=dtype)
    denoise = linear_denoiser(3, 20, seed=1)

    def first_step(seed):
        chain = sampler.sample_chain(
            lambda x, t, c: denoise(x.double(), t, c).to(dtype), None, x_T, gen(seed)
        )
        return chain[1], torch.randn(64, 3, generator=gen(seed), dtype=dtype)

    (x1, z1), (x2, z2) = first_step(1), first_step(2)
    sigma = (x1 - x2) / (z1 - z2)
    # Rounding of the two outputs, divided by the noise difference that scales it up.
    tol = 64 * torch.finfo(dtype).eps / (z1 - z2).abs()
    assert bool(((sigma - sigma.median()).abs() <= tol * (1 + x1.abs() + x2.abs())).all())


@pytest.mark.parametrize(
    "build",
    [
        lambda clipping: DDPMSampler(make_schedule("vp", 5), variance="large", clipping=clipping),
        lambda clipping: DDIMSampler(make_schedule("vp", 5), eta=0.5, clipping=clipping),
        lambda clipping: LangevinSampler(make_schedule("vp", 5), num_steps=3, clipping=clipping),
    ],
)
def test_final_clipping_clips_only_the_returned_sample(build):
    """Clipping(each_step=False, final=True) leaves the chain's states free (DIME's chain): its
    sample is the unclipped chain's sample, clipped."""

    def denoise(x, t, cond):
        return 0.3 * x

    x_T = torch.randn(64, 2, generator=gen(0)) * 3
    free = build(NO_CLIPPING).sample(denoise, None, x_T, gen(1))
    final = build(Clipping(each_step=False, final=True)).sample(denoise, None, x_T, gen(1))
    assert (free.abs() > 1).any()
    assert torch.equal(final, free.clamp(-1.0, 1.0))


def test_ddpm_final_noise_adds_the_last_kernels_noise():
    """final_noise: the last step draws from its Gaussian kernel too (std sqrt(beta_0) for the
    "large" variance) instead of returning its mean."""
    schedule = make_schedule("vp", 3, dtype=F64)

    def denoise(x, t, cond):
        return 0.3 * x

    x_T = torch.randn(4096, 1, generator=gen(0), dtype=F64)
    plain = DDPMSampler(schedule, variance="large", clipping=NO_CLIPPING)
    noisy = DDPMSampler(schedule, variance="large", clipping=NO_CLIPPING, final_noise=True)
    difference = noisy.sample(denoise, None, x_T, gen(1)) - plain.sample(denoise, None, x_T, gen(1))
    beta_0 = 1.0 - schedule.alpha_bars[0].item()
    assert difference.std().item() == pytest.approx(math.sqrt(beta_0), rel=0.05)
