"""The time embeddings' formulas, defaults, dtypes and argument checks.

Sinusoidal: [sin(t w_k), cos(t w_k)], w_k = max_period^(-k / half), max_period 10000 by default.
Fourier: [cos(2 pi t W), sin(2 pi t W)], W ~ N(0, 0.2^2) by default (the QSM reference).
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from diffpolicy.nets import Denoiser, FourierFeatures, SinusoidalEmbedding, time_embedding

torch.set_num_threads(1)


def exactly(message: str) -> str:
    """A pattern for pytest.raises(match=...) that matches the whole message and nothing else."""
    return f"^{re.escape(message)}$"


def sinusoidal(t: torch.Tensor, dim: int, max_period: float) -> torch.Tensor:
    """The closed form in float64."""
    half = dim // 2
    k = torch.arange(half, dtype=torch.float64)
    angles = t.to(torch.float64)[..., None] * max_period ** (-k / half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def fourier(t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The closed form in float64 for the frequencies w."""
    angles = 2 * math.pi * t.to(torch.float64)[..., None] * w.detach().to(torch.float64)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def test_sinusoidal_default_period_is_ten_thousand():
    emb = SinusoidalEmbedding(8)
    # At t = 1 the sin half is sin(w_k): each frequency to float32 precision (w_3 = 1e-3 would be
    # 7.5e-5 off, relatively, for a period of 10001).
    out = emb(torch.tensor([1]))
    expected = sinusoidal(torch.tensor([1]), 8, 10_000.0)
    torch.testing.assert_close(out.double(), expected, rtol=2e-6, atol=0.0)


def test_sinusoidal_frequencies_are_not_in_the_state_dict():
    # Fixed features, rebuilt from dim and max_period: nothing to save or load, so a state dict
    # holds only what was learnt.
    emb = SinusoidalEmbedding(8)
    assert list(emb.state_dict()) == []
    net = Denoiser(3, 2, (8,), time_embedding_name="sinusoidal", time_dim=8, time_hidden=(8,))
    assert not [k for k in net.state_dict() if "freqs" in k]
    fresh = Denoiser(3, 2, (8,), time_embedding_name="sinusoidal", time_dim=8, time_hidden=(8,))
    fresh.load_state_dict(net.state_dict(), strict=True)
    t = torch.tensor([0, 3, 9])
    torch.testing.assert_close(fresh.embed_time(t), net.embed_time(t), rtol=0, atol=0)


@pytest.mark.parametrize("cls", [SinusoidalEmbedding, FourierFeatures])
@pytest.mark.parametrize("dim", [2, 4, 10])
def test_embedding_reports_its_width_and_two_is_the_smallest(cls, dim):
    torch.manual_seed(0)
    emb = cls(dim)
    out = emb(torch.tensor([0, 1, 7]))
    assert emb.dim == dim == out.shape[-1]
    if cls is SinusoidalEmbedding:
        expected = sinusoidal(torch.tensor([0, 1, 7]), dim, 10_000.0)
    else:
        expected = fourier(torch.tensor([0, 1, 7]), emb.weight)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [SinusoidalEmbedding, FourierFeatures])
@pytest.mark.parametrize("dim", [-2, 0, 1, 3, 7])
def test_embedding_rejects_odd_or_small_dim_with_message(cls, dim):
    message = f"embedding dim must be even and >= 2, got {dim}"
    with pytest.raises(ValueError, match=exactly(message)):
        cls(dim)


def test_fourier_default_std_is_the_qsm_references():
    torch.manual_seed(0)
    w = FourierFeatures(40_000).weight.detach().double()
    # 20000 normal draws: the sample std is within 0.2 +- 0.003 with overwhelming probability.
    assert w.std().item() == pytest.approx(0.2, abs=0.003)
    assert w.mean().item() == pytest.approx(0.0, abs=0.005)
    torch.manual_seed(0)
    by_name = time_embedding("fourier", 40_000)
    assert isinstance(by_name, FourierFeatures)
    assert torch.equal(by_name.weight.detach().double(), w)


@pytest.mark.parametrize("cls", [SinusoidalEmbedding, FourierFeatures])
def test_embedding_dtype_is_the_modules_not_the_timesteps(cls):
    # Float timesteps of another dtype are cast to the embedding's: the next Linear gets its dtype.
    torch.manual_seed(0)
    emb = cls(6)
    t = torch.tensor([0.0, 1.5, 40.0], dtype=torch.float64)
    out = emb(t)
    assert out.dtype == torch.float32
    reference = emb(t.float())
    torch.testing.assert_close(out, reference, rtol=0, atol=0)


def test_fourier_in_float64_is_the_float64_closed_form():
    # A float64 module computes 2 pi t W in float64 (a float32 product would be ~1e-4 off at
    # t = 999): the timesteps are cast to the weight's dtype before the product.
    torch.manual_seed(0)
    emb = FourierFeatures(8, std=1.0).double()
    t = torch.tensor([0, 17, 999])
    out = emb(t)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, fourier(t, emb.weight), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [SinusoidalEmbedding, FourierFeatures])
def test_embedding_features_lie_on_the_last_axis(cls):
    # A column of timesteps (batch, 1) embeds to (batch, 1, dim): [first half, second half] of
    # each row's features along the last axis, the same rows as for (batch,).
    torch.manual_seed(0)
    emb = cls(6)
    t = torch.tensor([0, 2, 5, 11])
    out = emb(t[:, None])
    assert out.shape == (4, 1, 6)
    torch.testing.assert_close(out[:, 0], emb(t), rtol=0, atol=0)


def test_unknown_time_embedding_message_in_full():
    message = "unknown time embedding 'gaussian'; valid: sinusoidal, fourier"
    with pytest.raises(ValueError, match=exactly(message)):
        time_embedding("gaussian", 8)
