"""Shape, independence and closed-form tests for diffpolicy.nets (denoiser, critic, embeddings)."""

from __future__ import annotations

import math

import pytest
import torch

from diffpolicy.nets import (
    ACTIVATIONS,
    REDUCTIONS,
    TIME_EMBEDDINGS,
    CriticEnsemble,
    Denoiser,
    EnsembleLinear,
    FourierFeatures,
    ResidualMLP,
    SinusoidalEmbedding,
    mlp,
    time_embedding,
)

torch.set_num_threads(1)

OBS, ACT, BATCH = 3, 2, 5
SMALL = {"hidden": (16, 16), "time_dim": 8, "time_hidden": (16, 16)}


def _inputs(batch=BATCH, obs_dim=OBS, act_dim=ACT, seed=0):
    g = torch.Generator().manual_seed(seed)
    a_t = torch.randn(batch, act_dim, generator=g)
    t = torch.randint(5, (batch,), generator=g)
    obs = torch.randn(batch, obs_dim, generator=g) if obs_dim else None
    return a_t, t, obs


# --- Denoiser ------------------------------------------------------------------------------------
@pytest.mark.parametrize("emb", ["fourier", "sinusoidal"])
def test_denoiser_shape_with_obs(emb):
    torch.manual_seed(0)
    net = Denoiser(OBS, ACT, time_embedding_name=emb, **SMALL)
    a_t, t, obs = _inputs()
    out = net(a_t, t, obs)
    assert out.shape == (BATCH, ACT)
    assert out.dtype == torch.float32
    # The output depends on obs and on t (the conditioning is wired in).
    assert not torch.allclose(out, net(a_t, t, obs + 1.0))
    assert not torch.allclose(out, net(a_t, (t + 1) % 5, obs))


def test_denoiser_without_obs():
    torch.manual_seed(0)
    net = Denoiser(0, ACT, **SMALL)
    a_t, t, _ = _inputs(obs_dim=0)
    out = net(a_t, t, None)
    assert out.shape == (BATCH, ACT)
    # The first layer sees exactly act_dim + time features: no slot for an observation.
    first = net.trunk[0]
    assert first.in_features == ACT + SMALL["time_hidden"][-1]


def test_denoiser_residual_trunk():
    torch.manual_seed(0)
    net = Denoiser(OBS, ACT, hidden=(16,), time_dim=8, time_hidden=(16, 16), residual_blocks=2)
    assert isinstance(net.trunk, ResidualMLP)
    assert len(net.trunk.blocks) == 2
    assert net.trunk.inp.out_features == 16
    a_t, t, obs = _inputs(batch=7)
    assert net(a_t, t, obs).shape == (7, ACT)


def test_residual_mlp_is_identity_plus_body():
    torch.manual_seed(0)
    net = ResidualMLP(4, 8, 1, 3)
    block = net.blocks[0]
    x = torch.randn(6, 8)
    torch.testing.assert_close(block(x), x + block.body(x))


@pytest.mark.parametrize(
    "obs",
    [None, torch.zeros(BATCH, OBS + 1), torch.zeros(BATCH + 1, OBS), torch.zeros(OBS)],
    ids=["none", "wide", "long", "1d"],
)
def test_denoiser_wrong_obs_shape_raises(obs):
    net = Denoiser(OBS, ACT, **SMALL)
    a_t, t, _ = _inputs()
    with pytest.raises(ValueError, match="obs must have shape"):
        net(a_t, t, obs)


def test_denoiser_bad_dims_raise():
    with pytest.raises(ValueError):
        Denoiser(-1, ACT, **SMALL)
    with pytest.raises(ValueError):
        Denoiser(OBS, 0, **SMALL)


# --- names ---------------------------------------------------------------------------------------
def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match="swish") as err:
        mlp(3, (4,), 2, act="swish")
    for name in ACTIVATIONS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="swish"):
        Denoiser(OBS, ACT, act="swish", **SMALL)
    with pytest.raises(ValueError, match="swish"):
        CriticEnsemble(OBS, ACT, hidden=(8,), act="swish")


def test_unknown_time_embedding_lists_valid_names():
    with pytest.raises(ValueError, match="gaussian") as err:
        time_embedding("gaussian", 8)
    for name in TIME_EMBEDDINGS:
        assert name in str(err.value)
    assert set(TIME_EMBEDDINGS) == {"sinusoidal", "fourier"}
    with pytest.raises(ValueError, match="gaussian"):
        Denoiser(OBS, ACT, time_embedding_name="gaussian", **SMALL)


def test_unknown_reduction_lists_valid_names():
    q = torch.randn(3, 4)
    with pytest.raises(ValueError, match="max") as err:
        CriticEnsemble.reduce(q, "max")
    for name in REDUCTIONS:
        assert name in str(err.value)
    assert set(REDUCTIONS) == {"min", "mean"}


# --- CriticEnsemble ------------------------------------------------------------------------------
@pytest.mark.parametrize("members", [2, 5])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_critic_shape(members, layer_norm):
    torch.manual_seed(0)
    critic = CriticEnsemble(OBS, ACT, members, hidden=(16, 16), layer_norm=layer_norm)
    _, _, obs = _inputs(batch=7)
    q = critic(obs, torch.rand(7, ACT) * 2 - 1)
    assert q.shape == (members, 7)
    # Independently initialised members disagree.
    assert not torch.allclose(q[0], q[1])


def test_critic_rejects_single_member():
    with pytest.raises(ValueError, match="2"):
        CriticEnsemble(OBS, ACT, 1, hidden=(8,))


def test_reduce_matches_torch():
    q = torch.randn(4, 9, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(CriticEnsemble.reduce(q, "min"), torch.min(q, dim=0).values)
    torch.testing.assert_close(CriticEnsemble.reduce(q, "mean"), torch.mean(q, dim=0))
    assert CriticEnsemble.reduce(q, "min").shape == (9,)


def _member_slices(critic: CriticEnsemble, member: int):
    for layer in critic.net:
        if isinstance(layer, EnsembleLinear):
            yield layer.weight[member]
            yield layer.bias[member]


@pytest.mark.parametrize("layer_norm", [False, True])
def test_perturbing_member0_changes_only_row0(layer_norm):
    torch.manual_seed(0)
    critic = CriticEnsemble(OBS, ACT, 3, hidden=(16, 16), layer_norm=layer_norm)
    obs, act = torch.randn(6, OBS), torch.randn(6, ACT)
    before = critic(obs, act).detach()
    with torch.no_grad():
        for p in _member_slices(critic, 0):
            p.add_(0.5 * torch.randn_like(p))
    after = critic(obs, act).detach()
    assert (after[0] - before[0]).abs().min() > 0
    torch.testing.assert_close(after[1:], before[1:], rtol=0, atol=0)


def test_member1_gradient_is_zero_on_member0_params():
    torch.manual_seed(0)
    critic = CriticEnsemble(OBS, ACT, 3, hidden=(16, 16))
    obs, act = torch.randn(6, OBS), torch.randn(6, ACT)
    critic(obs, act)[1].sum().backward()
    for layer in critic.net:
        if isinstance(layer, EnsembleLinear):
            for p in (layer.weight, layer.bias):
                assert torch.count_nonzero(p.grad[0]) == 0
                assert torch.count_nonzero(p.grad[2]) == 0
                assert torch.count_nonzero(p.grad[1]) > 0


def test_ensemble_linear_equals_per_member_loop():
    torch.manual_seed(0)
    layer = EnsembleLinear(3, 4, 5)
    assert layer.weight.shape == (3, 4, 5) and layer.bias.shape == (3, 1, 5)
    x = torch.randn(3, 7, 4)
    out = layer(x)
    assert out.shape == (3, 7, 5)
    for i in range(3):
        expected = x[i] @ layer.weight[i] + layer.bias[i, 0]
        torch.testing.assert_close(out[i], expected)
    # Members are initialised independently, within nn.Linear's bound 1/sqrt(in_dim).
    assert not torch.equal(layer.weight[0], layer.weight[1])
    assert layer.weight.abs().max() <= 1 / math.sqrt(4)


# --- time embeddings -----------------------------------------------------------------------------
def test_sinusoidal_closed_form():
    dim, period = 6, 10_000.0
    emb = SinusoidalEmbedding(dim, max_period=period)
    ts = torch.tensor([0, 1, 3, 17])
    out = emb(ts)
    assert out.shape == (4, dim)
    half = dim // 2
    for row, t in enumerate(ts.tolist()):
        for k in range(half):
            w = period ** (-k / half)
            assert out[row, k].item() == pytest.approx(math.sin(t * w), abs=1e-5)
            assert out[row, half + k].item() == pytest.approx(math.cos(t * w), abs=1e-5)
    # t = 0: sin part 0, cos part 1.
    assert torch.equal(out[0], torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    # No learnable parameters.
    assert list(emb.parameters()) == []


def test_fourier_closed_form():
    torch.manual_seed(0)
    emb = FourierFeatures(8, std=0.2)
    w = emb.weight.detach().clone()
    assert w.shape == (4,)
    assert emb.weight.requires_grad
    ts = torch.tensor([0, 2, 5])
    out = emb(ts)
    assert out.shape == (3, 8)
    for row, t in enumerate(ts.tolist()):
        for k in range(4):
            angle = 2 * math.pi * t * w[k].item()
            assert out[row, k].item() == pytest.approx(math.cos(angle), abs=1e-5)
            assert out[row, 4 + k].item() == pytest.approx(math.sin(angle), abs=1e-5)
    assert not FourierFeatures(8, learnable=False).weight.requires_grad


@pytest.mark.parametrize("cls", [SinusoidalEmbedding, FourierFeatures])
@pytest.mark.parametrize("dim", [0, 1, 7])
def test_embedding_rejects_odd_dim(cls, dim):
    with pytest.raises(ValueError, match="even"):
        cls(dim)
