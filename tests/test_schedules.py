"""Property tests for noise schedules: table invariants, conversions, forward noising, references.

Tolerances are derived from the dtype's unit roundoff u and the conditioning of the maths, never
hand-loosened: see `test_conversions_round_trip` for the conversion bound.
"""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffpolicy.schedules import PREDICTIONS, SCHEDULES, NoiseSchedule, make_schedule
from diffpolicy.schedules.named import MAX_BETA

DTYPES = (torch.float32, torch.float64)

names = st.sampled_from(SCHEDULES)
num_steps = st.integers(1, 1000)
dtypes = st.sampled_from(DTYPES)
seeds = st.integers(0, 2**31 - 1)
# Per-sample trailing shape: the batch dimension comes first, then 0 to 2 more dimensions.
trailing_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple)
batch_sizes = st.integers(1, 16)


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def draw_timesteps(data, batch: int, allowed: torch.Tensor) -> torch.Tensor:
    """A (batch,) long tensor of timesteps drawn (by hypothesis) from the 1-D tensor `allowed`."""
    idx = data.draw(st.lists(st.integers(0, allowed.numel() - 1), min_size=batch, max_size=batch))
    return allowed[torch.tensor(idx, dtype=torch.long)]


def bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.ndim - 1)))


# --- table invariants ---------------------------------------------------------------------------
@given(name=names, T=num_steps, dtype=dtypes)
def test_tables_valid_and_consistent(name, T, dtype):
    s = make_schedule(name, T, dtype)
    u = unit_roundoff(dtype)
    assert s.num_steps == T
    for table in (s.betas, s.alphas, s.alpha_bars):
        assert table.shape == (T,)
        assert table.dtype == dtype
    assert bool(((s.betas > 0) & (s.betas < 1)).all())
    assert bool(((s.alpha_bars > 0) & (s.alpha_bars < 1)).all())
    assert bool((s.alpha_bars[1:] < s.alpha_bars[:-1]).all()), "abar must strictly decrease"
    # alphas = 1 - betas and abar = cumprod(alphas), in the schedule's own dtype.
    assert torch.equal(s.alphas, 1.0 - s.betas)
    assert torch.equal(s.alpha_bars, torch.cumprod(s.alphas, 0))
    assert s.alpha_bars[0] == s.alphas[0]
    # Each ratio abar_t / abar_{t-1} is alpha_t up to three roundings: one in each stored abar
    # (torch's cumprod may accumulate in higher precision and round each prefix product once)
    # and one in the division.
    ratio = s.alpha_bars[1:] / s.alpha_bars[:-1]
    assert bool(((ratio - s.alphas[1:]).abs() <= 3 * u * s.alphas[1:]).all())


@given(name=names, T=num_steps)
def test_float32_tables_track_float64(name, T):
    """The float32 tables are the float64 ones up to accumulated rounding.

    Rounding beta to float32 perturbs alpha = 1 - beta by u * beta, a relative error of
    u * beta / alpha (large when beta is near MAX_BETA); cumprod adds about u per factor. So the
    relative error of abar_t is at most sum_{j <= t} u (2 + beta_j / alpha_j).
    """
    s64 = make_schedule(name, T, torch.float64)
    s32 = make_schedule(name, T, torch.float32)
    u = unit_roundoff(torch.float32)
    assert torch.equal(s32.betas, s64.betas.float())
    bound = torch.cumsum(u * (2.0 + s64.betas / s64.alphas), 0)
    rel = (s32.alpha_bars.double() - s64.alpha_bars).abs() / s64.alpha_bars
    assert bool((rel <= bound).all()), float((rel / bound).max())


@given(name=names, T=num_steps, dtype=dtypes)
def test_to_dtype_keeps_tables_consistent(name, T, dtype):
    other = torch.float64 if dtype == torch.float32 else torch.float32
    s = make_schedule(name, T, dtype)
    moved = s.to(dtype=other)
    assert isinstance(moved, NoiseSchedule)
    assert moved.num_steps == T
    for table in (moved.betas, moved.alphas, moved.alpha_bars):
        assert table.dtype == other
        assert table.shape == (T,)
    assert torch.equal(moved.betas, s.betas.to(other))
    # Derived tables are recomputed in the new dtype, so they agree with the betas exactly.
    assert torch.equal(moved.alphas, 1.0 - moved.betas)
    assert torch.equal(moved.alpha_bars, torch.cumprod(1.0 - moved.betas, 0))
    back = moved.to(dtype=dtype)
    if dtype == torch.float32:  # float32 -> float64 -> float32 is lossless for the betas
        assert torch.equal(back.betas, s.betas)
        assert torch.equal(back.alpha_bars, s.alpha_bars)
    # The original schedule is immutable and untouched.
    assert s.betas.dtype == dtype and s.alpha_bars.dtype == dtype


# --- snr ----------------------------------------------------------------------------------------
@given(name=names, T=num_steps, dtype=dtypes)
def test_snr_matches_definition_and_decreases(name, T, dtype):
    s = make_schedule(name, T, dtype)
    t = torch.arange(T)
    snr = s.snr(t)
    assert snr.shape == (T,)
    abar = s.alpha_bars.double()
    expected = abar / (1.0 - abar)
    # 1 - abar is exact for abar >= 1/2 (Sterbenz) and well-conditioned below: ~3 roundings.
    rel = (snr.double() - expected).abs() / expected
    assert bool((rel <= 4 * unit_roundoff(dtype)).all())
    assert bool((snr[1:] < snr[:-1]).all()), "snr must strictly decrease"
    # Per-sample lookups agree with the full table.
    idx = torch.tensor([T - 1, 0, T // 2])
    assert torch.equal(s.snr(idx), snr[idx])
    with pytest.raises(ValueError):
        s.snr(torch.tensor([-1]))
    with pytest.raises(ValueError):
        s.snr(torch.tensor([T]))


# --- conversions --------------------------------------------------------------------------------
def true_forms(x0: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every parameterisation from its definition (not the library's code)."""
    a, s = abar.sqrt(), (1.0 - abar).sqrt()
    return {"eps": eps, "x0": x0, "v": a * eps - s * x0, "score": -eps / s}


def natural_scale(form: str, abar: torch.Tensor) -> torch.Tensor:
    """Typical magnitude of a form when x0 and eps are O(1): the score is eps / sqrt(1 - abar)."""
    return (1.0 - abar).rsqrt() if form == "score" else torch.ones_like(abar)


@given(
    name=names,
    T=num_steps,
    batch=batch_sizes,
    trailing=trailing_shapes,
    seed=seeds,
    data=st.data(),
)
def test_conversions_round_trip(name, T, batch, trailing, seed, data):
    """Every ordered pair of forms, directly, back and forth, and via each third form (float64).

    Each conversion is linear in (x_t, pred) with coefficients among a/s, s/a, 1/a, 1/s, a, s
    (a = sqrt(abar), s = sqrt(1 - abar)). Measured in each form's natural units (score scaled by
    s), every coefficient is at most kappa = 1 / sqrt(abar (1 - abar)) (= 1/(a s) >= a/s + s/a),
    so one conversion adds at most ~ u M kappa of rounding and amplifies earlier errors by at most
    kappa, where M bounds |x0| + |eps| and u is float64's unit roundoff. After k conversions the
    error is at most 2 u M kappa^k (kappa >= 2 makes the geometric sum <= 2 kappa^k); the bound is
    applied with a factor 8 for the handful of roundings per conversion. The test also excludes
    timesteps with abar < 1e-5 (the last steps of long cosine schedules, where abar ~ 1e-9 makes
    kappa^3 u ~ 1e-3 and the check meaningless), keeping every bound below ~1e-9.
    """
    sched = make_schedule(name, T, torch.float64)
    allowed = torch.nonzero(sched.alpha_bars >= 1e-5).flatten()
    if allowed.numel() == 0:  # cannot happen for the named schedules, but be explicit
        pytest.skip("no well-conditioned timestep")
    t = draw_timesteps(data, batch, allowed)
    g = torch.Generator().manual_seed(seed)
    shape = (batch, *trailing)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    abar = bcast(sched.alpha_bars[t], x0)
    x_t = abar.sqrt() * x0 + (1.0 - abar).sqrt() * eps
    forms = true_forms(x0, eps, abar)
    u = unit_roundoff(torch.float64)
    kappa = (abar * (1.0 - abar)).rsqrt()
    M = (x0.abs() + eps.abs()).max() + 1.0

    def check(got, target, k):
        tol = 8 * 2 * u * M * kappa**k * natural_scale(target, abar)
        err = (got - forms[target]).abs()
        assert got.shape == shape
        assert bool((err <= tol).all()), (target, k, float((err / tol).max()))

    for src, tgt in itertools.product(PREDICTIONS, repeat=2):
        direct = sched.convert(forms[src], x_t, t, src, tgt)
        check(direct, tgt, 1)
        back = sched.convert(direct, x_t, t, tgt, src)
        check(back, src, 2)
        for mid in PREDICTIONS:
            if mid in (src, tgt):
                continue
            via = sched.convert(sched.convert(forms[src], x_t, t, src, mid), x_t, t, mid, tgt)
            check(via, tgt, 2)


@given(
    name=names,
    T=num_steps,
    dtype=dtypes,
    batch=batch_sizes,
    trailing=trailing_shapes,
    seed=seeds,
    data=st.data(),
)
def test_forward_noising_then_true_noise_recovers_x0(name, T, dtype, batch, trailing, seed, data):
    """x_t = add_noise(x0, eps, t); convert(eps, x_t, t, eps -> x0) must give x0 back, and that
    x0 converted to v must be sqrt(abar) eps - sqrt(1 - abar) x0.

    Bounds (elementwise, u = the dtype's unit roundoff, a = sqrt(abar), s = sqrt(1 - abar)):
    x_t carries ~3u(|a x0| + |s eps|) of rounding, divided by a when solving for x0, so
    |x0_hat - x0| <= 8u (|x0| + |eps| / a). Recomputing eps from x0_hat amplifies that by a/s and
    v mixes both with weights a and s, so |v_hat - v| <= 8u M (kappa + 1), with
    kappa = 1/(a s) = a/s + s/a.
    All timesteps are allowed here, including abar ~ 1e-9 where float32 is honestly imprecise.
    """
    sched = make_schedule(name, T, dtype)
    t = draw_timesteps(data, batch, torch.arange(T))
    g = torch.Generator().manual_seed(seed)
    shape = (batch, *trailing)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    eps = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    x_t = sched.add_noise(x0, eps, t)
    assert x_t.shape == shape and x_t.dtype == dtype

    u = unit_roundoff(dtype)
    abar = bcast(sched.alpha_bars.double()[t], x0)  # the dtype's table values, exactly
    a, s = abar.sqrt(), (1.0 - abar).sqrt()
    x0d, epsd = x0.double(), eps.double()
    expected_xt = a * x0d + s * epsd
    assert bool(
        ((x_t.double() - expected_xt).abs() <= 4 * u * (a * x0d.abs() + s * epsd.abs() + u)).all()
    )

    x0_hat = sched.convert(eps, x_t, t, "eps", "x0")
    assert x0_hat.dtype == dtype
    tol_x0 = 8 * u * (x0d.abs() + epsd.abs() / a)
    assert bool(((x0_hat.double() - x0d).abs() <= tol_x0).all())

    v_hat = sched.convert(x0_hat, x_t, t, "x0", "v")
    M = (x0d.abs() + epsd.abs()).max()
    tol_v = 8 * u * M * ((a * s).reciprocal() + 1.0)
    assert bool(((v_hat.double() - (a * epsd - s * x0d)).abs() <= tol_v).all())


def test_conversion_rejects_unknown_form_and_add_noise_checks_shapes():
    s = make_schedule("cosine", 10)
    x = torch.zeros(3, 2)
    t = torch.tensor([0, 4, 9])
    for bad in (("eps", "noise"), ("epsilon", "x0")):
        with pytest.raises(ValueError, match="eps, x0, v, score"):
            s.convert(x, x, t, *bad)
    with pytest.raises(ValueError, match=r"x0 \(3, 2\) and noise \(3, 3\) differ in shape"):
        s.add_noise(x, torch.zeros(3, 3), t)
    # add_noise checks its timesteps unless told not to (hot paths draw them in range).
    with pytest.raises(ValueError, match=r"timesteps must lie in \[-1, 9\]"):
        s.add_noise(x, x, torch.tensor([0, 4, 10]))
    # So does convert, and alpha_bar, which allows -1 ("clean") and nothing below it.
    with pytest.raises(ValueError, match=r"timesteps must lie in \[-1, 9\], got \[10\]"):
        s.convert(x[:1], x[:1], torch.tensor([10]), "eps", "x0")
    for bad in (10, -2):
        with pytest.raises(ValueError, match=rf"must lie in \[-1, 9\], got \[{bad}\]"):
            s.alpha_bar(torch.tensor([bad]), x[:1])
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 9\]"):
        s.snr(torch.tensor([-1]))
    with pytest.raises(
        TypeError, match=r"^timesteps must be an integer tensor of shape \(batch,\)$"
    ):
        s.alpha_bar(torch.tensor([1.0]), x[:1])
    # t = -1 means "clean": abar = 1.
    assert torch.equal(s.alpha_bar(torch.tensor([-1, 0]), x[:2]).flatten()[0], torch.tensor(1.0))


# --- make_schedule and reference values ---------------------------------------------------------
def test_make_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'; valid: linear, cosine, vp"):
        make_schedule("quadratic", 10)
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"num_steps must be an integer >= 1, got {bad}"):
            make_schedule("linear", bad)
    for betas in ([0.1, 1.0], [0.0, 0.5]):
        with pytest.raises(
            ValueError, match=r"^every beta must lie in the open interval \(0, 1\)$"
        ):
            NoiseSchedule(torch.tensor(betas))
    # One beta that is not a 1-D table (0-d), and a 2-D table: both refused, the shape named.
    for betas in (torch.tensor(0.5), torch.full((2, 3), 0.5), torch.zeros(0)):
        shape = re.escape(str(tuple(betas.shape)))
        with pytest.raises(
            ValueError, match=f"betas must be a non-empty 1-D tensor, got shape {shape}"
        ):
            NoiseSchedule(betas)


def test_vp_matches_qsm_reference():
    """QSM / Diffusion-QL's VP schedule at T = 5: abar = 0.804, 0.435, 0.159, 0.039, 0.0064."""
    abar = make_schedule("vp", 5, torch.float64).alpha_bars
    reference = torch.tensor([0.804, 0.435, 0.159, 0.039, 0.0064], dtype=torch.float64)
    assert bool(((abar - reference).abs() <= 5e-4).all()), abar.tolist()
    assert abs(float(abar[-1]) - 0.0064) <= 5e-5  # quoted to two significant figures
    # The closed form: log abar_k = -k beta_min / T - (beta_max - beta_min) k^2 / (2 T^2).
    k = torch.arange(1, 6, dtype=torch.float64)
    closed = torch.exp(-0.1 * k / 5 - 9.9 * k**2 / 50)
    torch.testing.assert_close(abar, closed, rtol=1e-12, atol=0)


@given(T=st.integers(2, 1000), frac=st.floats(0.0, 1.0))
def test_cosine_matches_nichol_dhariwal(T, frac):
    """abar at level index i (u = (i + 1) / T) is f(u) / f(0), f(u) = cos^2(pi/2 (u + s)/(1 + s)),
    s = 0.008, wherever no beta up to i was clipped (only the last, abar -> 0, is)."""
    s = make_schedule("cosine", T, torch.float64)

    def f(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    i = min(int(frac * (T - 1)), T - 2)
    for j in sorted({0, i // 2, i}):
        expected = f((j + 1) / T) / f(0.0)
        assert math.isclose(float(s.alpha_bars[j]), expected, rel_tol=1e-12), (j, T)
    # The last beta is clipped at MAX_BETA.
    assert float(s.betas[-1]) == pytest.approx(MAX_BETA, rel=1e-15)


def test_cosine_single_step_and_linear_reference():
    assert float(make_schedule("cosine", 1, torch.float64).alpha_bars[0]) == pytest.approx(
        1 - MAX_BETA, rel=1e-12
    )
    lin = make_schedule("linear", 1000, torch.float64).betas
    torch.testing.assert_close(
        lin, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), rtol=1e-12, atol=0
    )


def test_linear_betas_are_rescaled_by_1000_over_T():
    """Nichol and Dhariwal's rescaling keeps the total noise of DDPM's T = 1000 schedule: betas
    are an arithmetic sequence from 0.1 / T to 20 / T (1e-4 and 0.02 at T = 1000), whose sum is
    T * (0.1 / T + 20 / T) / 2 = 10.05 for every T. From T = 21 on no beta reaches MAX_BETA.
    Every such T is checked (cheap); the step tolerance is 8 ulps of the largest beta."""
    for T in range(21, 1001):
        b = make_schedule("linear", T, torch.float64).betas
        assert math.isclose(float(b[0]), 0.1 / T, rel_tol=1e-12), T
        assert math.isclose(float(b[-1]), 20.0 / T, rel_tol=1e-12), T
        assert math.isclose(float(b.sum()), 10.05, rel_tol=1e-12), T
        steps = b[1:] - b[:-1]
        tol = 8 * torch.finfo(torch.float64).eps * 20.0 / T
        assert float((steps - 19.9 / (T * (T - 1))).abs().max()) <= tol, T


def test_linear_betas_below_21_steps_clip_at_max_beta():
    """T = 10: betas 0.01 + k * 1.99 / 9 = (9 + 199 k) / 900, of which k >= 5 exceed 1 and clip;
    T = 1: the single level is the noisiest one allowed."""
    b = make_schedule("linear", 10, torch.float64).betas
    expected = [(9 + 199 * k) / 900 for k in range(5)] + [MAX_BETA] * 5
    torch.testing.assert_close(b, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    assert make_schedule("linear", 1, torch.float64).betas.tolist() == [MAX_BETA]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tables_and_lookups_follow_the_device():
    """`to(device)` moves the tables, and snr reads the table on its timesteps' device. (On the
    CPU every device argument is the CPU: docs/mutation.md lists those mutants as equivalent.)"""
    s = make_schedule("vp", 5).to("cuda")
    assert s.betas.is_cuda and s.alphas.is_cuda and s.alpha_bars.is_cuda
    assert make_schedule("vp", 5).snr(torch.tensor([0, 3], device="cuda")).is_cuda


def test_lookups_follow_the_inputs_dtype_and_device():
    """abar comes back in the input's dtype (a float64 schedule serving float32 actions gives
    float32), and on its device (PyTorch's meta device stands in for an accelerator)."""
    s64 = make_schedule("vp", 5, torch.float64)
    x = torch.zeros(3, 2)
    t = torch.tensor([0, 2, 4])
    assert s64.alpha_bar(t, x).dtype == torch.float32
    assert s64.add_noise(x, x, t).dtype == torch.float32
    meta = torch.zeros(3, 2, device="meta")
    abar = s64.alpha_bar(t.to("meta"), meta, validate=False)  # validating would read t
    assert abar.device.type == "meta" and abar.shape == (3, 1)
