"""EnsembleBatchRenorm against Ioffe's (2017) definition, written out here in float64:

    y = ((x - mu_B) / sigma_B * r + d) * w + b,  sigma_B = sqrt(var_B + eps),
    r = clip(sigma_B / sigma, 1 / r_max, r_max),  d = clip((mu_B - mu) / sigma, -d_max, d_max),

with sigma = sqrt(running_var + eps), r = 1 and d = 0 while steps < warmup_steps, and the running
statistics moved by running <- (1 - momentum) running + momentum batch (biased batch variance).
Here: its defaults (CrossQ's), the clips at both ends, the argument checks with their messages,
members' independence and the integer step counter.
"""

from __future__ import annotations

import re

import pytest
import torch

from diffpolicy.nets import EnsembleBatchRenorm

torch.set_num_threads(1)

ARGS_MESSAGE = "need eps > 0, r_max >= 1, d_max >= 0 and warmup_steps >= 0"


def exactly(message: str) -> str:
    """A pattern for pytest.raises(match=...) that matches the whole message and nothing else."""
    return f"^{re.escape(message)}$"


def raw_r_d(x, running_mean, running_var, eps):
    """r and d before clipping."""
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    sigma = (torch.as_tensor(running_var, dtype=x.dtype) + eps).sqrt()
    return (var + eps).sqrt() / sigma, (mean - running_mean) / sigma


def definition(x, running_mean, running_var, weight, bias, eps, r_max, d_max, renorm):
    """Ioffe's batch renormalisation of (members, batch, features) and the batch statistics."""
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    r, d = raw_r_d(x, running_mean, running_var, eps)
    r = torch.minimum(torch.maximum(r, torch.full_like(r, 1 / r_max)), torch.full_like(r, r_max))
    d = torch.minimum(torch.maximum(d, torch.full_like(d, -d_max)), torch.full_like(d, d_max))
    if not renorm:
        r, d = torch.ones_like(r), torch.zeros_like(d)
    y = ((x - mean) / (var + eps).sqrt() * r + d) * weight + bias
    return y, mean, var


def randomised(layer: EnsembleBatchRenorm) -> EnsembleBatchRenorm:
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2.0)
        layer.bias.normal_()
    return layer


def extreme_batch(members: int = 2, batch: int = 64) -> torch.Tensor:
    """Four features against running statistics (0, 1): a batch std of 6 (r above 3), of 0.05 (r
    below 1/3), a batch mean of +12 and of -12 (d beyond +-5) with std 1."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(members, batch, 4, generator=g, dtype=torch.float64)
    return z * torch.tensor([6.0, 0.05, 1.0, 1.0], dtype=torch.float64) + torch.tensor(
        [0.5, -0.3, 12.0, -12.0], dtype=torch.float64
    )


def check_step(layer, x, eps, r_max, d_max, renorm, momentum):
    """One training call against the definition: output and the running statistics' update."""
    running = layer.running_mean.clone(), layer.running_var.clone()
    expected, mean, var = definition(
        x, *running, layer.weight, layer.bias, eps, r_max, d_max, renorm=renorm
    )
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        layer.running_mean, (1 - momentum) * running[0] + momentum * mean, rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        layer.running_var, (1 - momentum) * running[1] + momentum * var, rtol=1e-12, atol=1e-12
    )


# --- defaults and clips ---------------------------------------------------------------------------
def test_defaults_are_crossqs_and_renormalisation_starts_at_step_100000():
    # momentum 0.01, eps 1e-3, r_max 3, d_max 5, warmup_steps 100_000, on a batch that drives r
    # and d past both clips.
    layer = randomised(EnsembleBatchRenorm(2, 4).double())
    x = extreme_batch()
    r, d = raw_r_d(x, layer.running_mean, layer.running_var, 1e-3)
    assert r.max() > 3 and r.min() < 1 / 3 and d.max() > 5 and d.min() < -5
    with torch.no_grad():
        layer.steps.fill_(99_999)  # the last warm-up call: plain batch normalisation
    check_step(layer, x, 1e-3, 3.0, 5.0, renorm=False, momentum=0.01)
    assert int(layer.steps) == 100_000
    x = extreme_batch() * 1.5
    check_step(layer, x, 1e-3, 3.0, 5.0, renorm=True, momentum=0.01)
    assert int(layer.steps) == 100_001


@pytest.mark.parametrize(("r_max", "d_max"), [(3.0, 5.0), (1.5, 0.5)])
def test_r_and_d_are_clipped_at_both_ends(r_max, d_max):
    layer = randomised(EnsembleBatchRenorm(2, 4, r_max=r_max, d_max=d_max, warmup_steps=0))
    layer = layer.double()
    x = extreme_batch()
    r, d = raw_r_d(x, layer.running_mean, layer.running_var, 1e-3)
    assert r.max() > r_max and r.min() < 1 / r_max and d.max() > d_max and d.min() < -d_max
    expected, _, var = definition(x, 0.0, 1.0, layer.weight, layer.bias, 1e-3, r_max, d_max, True)
    out = layer(x).detach()
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # The clipped values read off the output: (y - b) / w = x_hat r + d, where x_hat has mean 0
    # and mean square var / (var + eps) over the batch.
    z = (out - layer.bias.detach()) / layer.weight.detach()
    d_seen = z.mean(dim=1)
    r_seen = z.std(dim=1, unbiased=False) / (var / (var + 1e-3)).sqrt()[:, 0]
    torch.testing.assert_close(d_seen[:, 2:], torch.tensor([[d_max, -d_max]] * 2).double())
    torch.testing.assert_close(r_seen[:, :2], torch.tensor([[r_max, 1 / r_max]] * 2).double())


def test_r_max_one_and_d_max_zero_are_plain_batch_normalisation():
    # The smallest accepted bounds: r = 1 and d = 0 after the warm-up too.
    layer = randomised(EnsembleBatchRenorm(2, 4, r_max=1.0, d_max=0.0, warmup_steps=0).double())
    x = extreme_batch()
    check_step(layer, x, 1e-3, 1.0, 0.0, renorm=False, momentum=0.01)


def test_momentum_one_takes_the_batch_statistics():
    layer = EnsembleBatchRenorm(2, 4, momentum=1.0).double()
    x = extreme_batch()
    check_step(layer, x, 1e-3, 3.0, 5.0, renorm=False, momentum=1.0)
    torch.testing.assert_close(layer.running_var, x.var(dim=1, unbiased=False, keepdim=True))


def test_eps_enters_the_batch_and_running_std():
    layer = randomised(EnsembleBatchRenorm(2, 4, eps=0.5, warmup_steps=0).double())
    with torch.no_grad():
        layer.running_mean.normal_()
        layer.running_var.uniform_(0.2, 3.0)
    check_step(layer, extreme_batch() * 0.3, 0.5, 3.0, 5.0, renorm=True, momentum=0.01)


# --- argument checks ------------------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.0, -0.5, 1.01, 1.5, float("nan")])
def test_momentum_outside_zero_one_raises_with_message(momentum):
    with pytest.raises(ValueError, match=exactly(f"momentum must lie in (0, 1], got {momentum}")):
        EnsembleBatchRenorm(2, 3, momentum=momentum)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"eps": 0.0},
        {"eps": -1e-3},
        {"r_max": 0.99},
        {"r_max": 0.5},
        {"d_max": -0.1},
        {"warmup_steps": -1},
        {"eps": 0.0, "r_max": 0.5, "d_max": -1.0, "warmup_steps": -1},
    ],
    ids=str,
)
def test_bad_bounds_raise_with_message(kwargs):
    with pytest.raises(ValueError, match=exactly(ARGS_MESSAGE)):
        EnsembleBatchRenorm(2, 3, **kwargs)


# --- members and the step counter -----------------------------------------------------------------
@pytest.mark.parametrize("training", [True, False])
def test_each_member_has_its_own_scale_and_shift(training):
    layer = randomised(EnsembleBatchRenorm(3, 4, warmup_steps=0)).train(training)
    assert layer.weight.shape == layer.bias.shape == (3, 1, 4)
    x = torch.randn(3, 16, 4, generator=torch.Generator().manual_seed(0))
    before = layer(x).detach()
    with torch.no_grad():
        layer.running_mean.zero_()  # the statistics the first call saw
        layer.running_var.fill_(1.0)
        layer.weight[1].mul_(2.0)
        layer.bias[1].add_(1.0)
    after = layer(x).detach()
    assert (after[1] - before[1]).abs().min() > 0
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]], rtol=0, atol=0)


def test_step_counter_is_an_exact_integer_past_float32s_range():
    # steps counts training calls as int64: at 2^24 a float32 counter would stop moving (and round
    # warmup_steps = 2^24 + 1 down to 2^24, starting the renormalisation a call early).
    layer = randomised(EnsembleBatchRenorm(2, 4, warmup_steps=2**24 + 1).double())
    state = layer.state_dict()
    state["steps"] = torch.tensor(2**24)
    layer.load_state_dict(state)
    assert layer.steps.dtype == torch.long and int(layer.steps) == 2**24
    check_step(layer, extreme_batch(), 1e-3, 3.0, 5.0, renorm=False, momentum=0.01)
    assert int(layer.steps) == 2**24 + 1
    check_step(layer, extreme_batch() * 2, 1e-3, 3.0, 5.0, renorm=True, momentum=0.01)
    assert int(layer.steps) == 2**24 + 2
