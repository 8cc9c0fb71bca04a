"""The update's fast paths compute what the plain formulas compute.

Sigmoid-form Mish against torch's Mish; the denoiser's bound obs term, broadcast timesteps and
per-level time table against its plain forward; batch renormalisation against its definition.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from diffpolicy.nets import Denoiser, EnsembleBatchRenorm, mish
from diffpolicy.samplers.base import level

SMALL = {"hidden": (16, 16), "time_dim": 8, "time_hidden": (16, 16)}


# --- Mish ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mish_matches_torch_values_and_gradients_over_a_wide_range(dtype):
    x = torch.linspace(-100.0, 100.0, 400_001, dtype=dtype, requires_grad=True)
    ours, ref = mish(x), F.mish(x)
    eps = torch.finfo(dtype).eps
    # Relative to max(|mish|, tiny): a few ulps everywhere, tails included.
    assert torch.allclose(ours, ref, rtol=8 * eps, atol=1e-30)
    (g_ours,) = torch.autograd.grad(ours.sum(), x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    assert torch.allclose(g_ours, g_ref, rtol=16 * eps, atol=16 * eps)


@given(st.floats(-50, 50, allow_nan=False, width=32), st.integers(1, 4))
def test_mish_is_x_tanh_softplus_in_double(x0, n):
    x = torch.full((n,), x0, dtype=torch.float64)
    exact = x * torch.tanh(torch.log1p(torch.exp(x)))
    torch.testing.assert_close(mish(x), exact, rtol=1e-13, atol=1e-300)


def test_mish_refuses_double_backward():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(mish(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


# --- the denoiser's shortcuts ------------------------------------------------------------------
def _denoiser(num_levels=None, residual_blocks=0, obs_dim=3):
    torch.manual_seed(0)
    return Denoiser(obs_dim, 2, num_levels=num_levels, residual_blocks=residual_blocks, **SMALL)


@pytest.mark.parametrize("residual_blocks", [0, 2])
@pytest.mark.parametrize("obs_dim", [0, 3])
def test_bound_denoiser_equals_forward(residual_blocks, obs_dim):
    net = _denoiser(residual_blocks=residual_blocks, obs_dim=obs_dim)
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(7, obs_dim, generator=g) if obs_dim else None
    a_t = torch.randn(7, 2, generator=g)
    t = torch.randint(5, (7,), generator=g)
    bound = net.bind(obs)
    torch.testing.assert_close(bound(a_t, t, obs), net(a_t, t, obs))
    torch.testing.assert_close(bound(a_t, level(3, a_t), obs), net(a_t, torch.full((7,), 3), obs))
    if obs_dim:
        with pytest.raises(ValueError, match="bound"):
            bound(a_t, t, obs.clone())


def test_broadcast_timestep_and_level_table_equal_per_row_embedding():
    plain, tabled = _denoiser(), _denoiser(num_levels=5)
    t = torch.tensor([0, 4, 2, 2, 1, 3, 0, 4])
    torch.testing.assert_close(tabled.embed_time(t), plain.embed_time(t))
    broadcast = level(2, torch.zeros(8, 1))
    assert broadcast.stride(0) == 0
    torch.testing.assert_close(plain.embed_time(broadcast), plain.time_net(torch.full((8,), 2)))
    # Gradients reach the time network through the table too.
    tabled.embed_time(t).sum().backward()
    assert tabled.time_net[0].weight.grad is not None


# --- batch renormalisation ---------------------------------------------------------------------
def _renorm_reference(x, running_mean, running_var, weight, bias, eps, r_max, d_max, renorm):
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    std, running_std = (var + eps).sqrt(), (running_var + eps).sqrt()
    # r and d are constants of the step (stop-gradient), as in Ioffe (2017).
    r = (std.detach() / running_std).clamp(1 / r_max, r_max) if renorm else 1.0
    d = ((mean.detach() - running_mean) / running_std).clamp(-d_max, d_max) if renorm else 0.0
    return ((x - mean) / std * r + d) * weight + bias, mean, var


def _randomise(layer: EnsembleBatchRenorm, max_var=4.0, min_var=0.2) -> None:
    """Weights, biases and running statistics away from their initial 1, 0, 0, 1."""
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2.0)
        layer.bias.normal_()
        layer.running_mean.normal_()
        layer.running_var.uniform_(min_var, max_var)


def _assert_same_gradients(out, ref, params, upstream, tol):
    """The gradients of (out * upstream).sum() and (ref * upstream).sum() for every param."""
    got = torch.autograd.grad((out * upstream).sum(), params)
    want = torch.autograd.grad((ref * upstream).sum(), params)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("renorm", [False, True])
def test_batch_renorm_training_output_and_running_statistics(renorm):
    torch.manual_seed(0)
    layer = EnsembleBatchRenorm(3, 4, momentum=0.1, warmup_steps=0 if renorm else 10)
    _randomise(layer, max_var=3.0, min_var=0.1)
    x = torch.randn(3, 32, 4, dtype=torch.float32) * 3 + 1
    before_mean, before_var = layer.running_mean.clone(), layer.running_var.clone()
    expected, mean, var = _renorm_reference(
        x, before_mean, before_var, layer.weight, layer.bias, 1e-3, 3.0, 5.0, renorm
    )
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.running_mean, 0.9 * before_mean + 0.1 * mean)
    torch.testing.assert_close(layer.running_var, 0.9 * before_var + 0.1 * var)
    assert int(layer.steps) == 1


@pytest.mark.parametrize("renorm", [False, True])
def test_batch_renorm_parameter_and_input_gradients_match_autograd_of_the_definition(renorm):
    # The layer's hand-written backward against autograd through the definition, in float64 and
    # with r and d away from 1 and 0 (running statistics far from the batch's), for x, w and b.
    torch.manual_seed(1)
    layer = EnsembleBatchRenorm(2, 3, warmup_steps=0 if renorm else 5).double()
    _randomise(layer)
    running = layer.running_mean.clone(), layer.running_var.clone()
    x = (torch.randn(2, 9, 3, dtype=torch.float64) * 2 + 0.5).requires_grad_(True)
    upstream = torch.randn(2, 9, 3, dtype=torch.float64)
    params = (x, layer.weight, layer.bias)
    out = layer(x)
    ref, _, _ = _renorm_reference(x, *running, layer.weight, layer.bias, 1e-3, 3.0, 5.0, renorm)
    _assert_same_gradients(out, ref, params, upstream, tol=1e-10)


def test_batch_renorm_eval_mode_is_the_running_statistics_affine_map():
    # (x - running_mean) / sqrt(running_var + eps) * w + b, values and gradients, in float64; the
    # layer folds it into one x * a + c pass. Nothing in eval mode moves the running statistics.
    torch.manual_seed(2)
    layer = EnsembleBatchRenorm(2, 3).double().eval()
    _randomise(layer)
    running = layer.running_mean.clone(), layer.running_var.clone()
    x = (torch.randn(2, 7, 3, dtype=torch.float64) * 2 + 0.5).requires_grad_(True)
    params = (x, layer.weight, layer.bias)
    out = layer(x)
    ref = (x - running[0]) / (running[1] + 1e-3).sqrt() * layer.weight + layer.bias
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    _assert_same_gradients(out, ref, params, torch.randn(2, 7, 3, dtype=torch.float64), tol=1e-12)
    assert torch.equal(layer.running_mean, running[0])
    assert torch.equal(layer.running_var, running[1])


def test_batch_renorm_gradient_matches_reference_and_eval_mode_is_per_sample():
    torch.manual_seed(0)
    layer = EnsembleBatchRenorm(2, 5, warmup_steps=0)
    with torch.no_grad():
        layer.running_var.fill_(2.0)
    x = torch.randn(2, 16, 5, dtype=torch.float32, requires_grad=True)
    w = torch.randn(2, 16, 5)
    (g,) = torch.autograd.grad((layer(x) * w).sum(), x)
    ref, _, _ = _renorm_reference(
        x, torch.zeros(2, 1, 5), torch.full((2, 1, 5), 2.0), 1.0, 0.0, 1e-3, 3.0, 5.0, True
    )
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)
    layer.eval()
    one = layer(x[:, :1].detach())
    torch.testing.assert_close(one, layer(x.detach())[:, :1])
