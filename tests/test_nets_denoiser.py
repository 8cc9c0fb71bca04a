"""The Denoiser written out by hand from its own parameters: the time network (embedding, then an
MLP whose hidden widths are time_hidden[:-1] and whose output is time_hidden[-1]), then the trunk
on concat[a_t, obs, time features], plain (Linear -> [LayerNorm] -> act per hidden width) or IDQL's
residual MLP. Also its shortcuts' contracts (a broadcast timestep is embedded once, the bound
function caches the time term per timestep tensor, the level table follows the device) and its
argument checks with their full messages."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffpolicy.nets import Denoiser, FourierFeatures, ResidualMLP, SinusoidalEmbedding
from diffpolicy.samplers.base import level

torch.set_num_threads(1)

FUNCTIONS = {"mish": F.mish, "relu": F.relu, "tanh": torch.tanh}
SMALL = {"hidden": (16, 16), "time_dim": 8, "time_hidden": (16, 16)}
HIDDEN_MESSAGE = "hidden widths must be a non-empty list of ints >= 1, got {}"


def exactly(message: str) -> str:
    """A pattern for pytest.raises(match=...) that matches the whole message and nothing else."""
    return f"^{re.escape(message)}$"


def linear(layer: nn.Linear, x: Tensor) -> Tensor:
    return x @ layer.weight.T + layer.bias


def layer_norm(ln: nn.LayerNorm, x: Tensor) -> Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    return (x - mean) / (var + ln.eps).sqrt() * ln.weight + ln.bias


def embedding(emb: nn.Module, t: Tensor) -> Tensor:
    t = t.to(torch.float32)[:, None]
    if isinstance(emb, FourierFeatures):
        angles = 2 * math.pi * t * emb.weight
        return torch.cat([angles.cos(), angles.sin()], dim=-1)
    assert isinstance(emb, SinusoidalEmbedding)
    half = emb.dim // 2
    angles = t * 10_000.0 ** (-torch.arange(half) / half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def plain_mlp(modules, h: Tensor, fn, layer_norm_on: bool) -> Tensor:
    """Linear -> [LayerNorm] -> fn for every Linear but the last, then the last Linear."""
    linears = [m for m in modules if isinstance(m, nn.Linear)]
    norms = [m for m in modules if isinstance(m, nn.LayerNorm)]
    assert len(norms) == (len(linears) - 1 if layer_norm_on else 0)
    for j, lin in enumerate(linears[:-1]):
        h = linear(lin, h)
        h = fn(layer_norm(norms[j], h) if layer_norm_on else h)
    return linear(linears[-1], h)


def by_hand(net: Denoiser, a_t, t, obs, fn, layer_norm_on=False) -> Tensor:
    emb, time_mlp = net.time_net
    time = plain_mlp(time_mlp, embedding(emb, t), fn, False)
    x = torch.cat([a_t, time] if obs is None else [a_t, obs, time], dim=-1)
    if not isinstance(net.trunk, ResidualMLP):
        return plain_mlp(net.trunk, x, fn, layer_norm_on)
    h = linear(net.trunk.inp, x)
    for block in net.trunk.blocks:
        (ln,) = [m for m in block.modules() if isinstance(m, nn.LayerNorm)]
        first, second = [m for m in block.modules() if isinstance(m, nn.Linear)]
        h = h + linear(second, fn(linear(first, layer_norm(ln, h))))
    (out,) = [m for m in net.trunk.out if isinstance(m, nn.Linear)]
    return linear(out, fn(h))


def randomise_layer_norms(net: nn.Module) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 2.0)
                m.bias.normal_()


CASES = {
    # name: (obs_dim, act_dim, Denoiser keyword arguments, the activation they give)
    "defaults": (3, 2, {"hidden": (16, 12), "time_dim": 8, "time_hidden": (10, 14)}, "mish"),
    "one-action-three-time-layers": (
        3,
        1,
        {"hidden": (1, 5), "time_dim": 6, "time_hidden": (7, 9, 11), "act": "tanh"},
        "tanh",
    ),
    "no-obs-layer-norm-one-time-layer": (
        0,
        2,
        {
            "hidden": (9, 7),
            "time_dim": 4,
            "time_hidden": (6,),
            "act": "relu",
            "layer_norm": True,
            "time_embedding_name": "sinusoidal",
        },
        "relu",
    ),
    "residual-one-block-relu": (
        3,
        2,
        {
            "hidden": (12,),
            "time_dim": 8,
            "time_hidden": (10, 6),
            "act": "relu",
            "residual_blocks": 1,
        },
        "relu",
    ),
    "residual-two-blocks-default-act": (
        2,
        3,
        {"hidden": (8, 99), "time_dim": 4, "time_hidden": (5, 7), "residual_blocks": 2},
        "mish",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_denoiser_is_the_qsm_layout_written_out(case):
    obs_dim, act_dim, kwargs, act = CASES[case]
    torch.manual_seed(0)
    net = Denoiser(obs_dim, act_dim, **kwargs)
    randomise_layer_norms(net)
    residual = kwargs.get("residual_blocks", 0) > 0
    assert isinstance(net.trunk, ResidualMLP) == residual
    # The widths: time_hidden[:-1] hidden, time_hidden[-1] out; the trunk's hidden, then act_dim.
    time_widths = [m.out_features for m in net.time_net[1] if isinstance(m, nn.Linear)]
    assert time_widths == list(kwargs["time_hidden"])
    if not residual:
        trunk_widths = [m.out_features for m in net.trunk if isinstance(m, nn.Linear)]
        assert trunk_widths == [*kwargs["hidden"], act_dim]
    else:
        assert net.trunk.inp.out_features == kwargs["hidden"][0]
        assert len(net.trunk.blocks) == kwargs["residual_blocks"]
    g = torch.Generator().manual_seed(1)
    a_t = torch.randn(6, act_dim, generator=g)
    t = torch.tensor([0, 3, 7, 1, 9, 3])
    obs = torch.randn(6, obs_dim, generator=g) if obs_dim else None
    expected = by_hand(net, a_t, t, obs, FUNCTIONS[act], kwargs.get("layer_norm", False))
    out = net(a_t, t, obs)
    assert out.shape == (6, act_dim)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(net.bind(obs)(a_t, t, obs), expected, rtol=1e-5, atol=1e-5)


def test_obs_free_denoiser_concatenates_on_the_last_axis():
    # Without an observation nothing ties the input to 2-D: a_t (batch, 1, act_dim) with t
    # (batch, 1) gives (batch, 1, act_dim), row by row the 2-D result (features on the last axis).
    torch.manual_seed(0)
    net = Denoiser(0, 2, hidden=(8,), time_dim=4, time_hidden=(2,))
    g = torch.Generator().manual_seed(1)
    a_t, t = torch.randn(5, 1, 2, generator=g), torch.randint(5, (5, 1), generator=g)
    out = net(a_t, t, None)
    assert out.shape == (5, 1, 2)
    torch.testing.assert_close(out[:, 0], net(a_t[:, 0], t[:, 0], None))


# --- embed_time's shortcuts -----------------------------------------------------------------------
def _record_time_net_inputs(net: Denoiser) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    net.time_net.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape)))
    return shapes


def test_per_row_timesteps_are_embedded_row_by_row():
    torch.manual_seed(0)
    net = Denoiser(3, 2, **SMALL)
    shapes = _record_time_net_inputs(net)
    t = torch.tensor([4, 0, 2, 2, 1, 3])
    out = net.embed_time(t)
    assert shapes == [(6,)]
    rows = torch.cat([net.time_net(t[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(out, rows)
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("batch", [2, 8])
def test_a_broadcast_timestep_is_embedded_once(batch):
    torch.manual_seed(0)
    net = Denoiser(3, 2, **SMALL)
    shapes = _record_time_net_inputs(net)
    t = level(3, torch.zeros(batch, 1))
    assert t.stride(0) == 0
    out = net.embed_time(t)
    assert shapes == [(1,)]
    assert out.shape == (batch, 16)
    torch.testing.assert_close(out, net.time_net(torch.full((batch,), 3)))


def test_one_level_table():
    torch.manual_seed(0)
    tabled = Denoiser(3, 2, num_levels=1, **SMALL)
    torch.manual_seed(0)
    plain = Denoiser(3, 2, **SMALL)
    t = torch.zeros(5, dtype=torch.long)
    torch.testing.assert_close(tabled.embed_time(t), plain.embed_time(t))


def test_level_table_is_made_on_the_timesteps_device():
    # PyTorch's meta device stands in for an accelerator: one CPU tensor in the computation raises.
    torch.manual_seed(0)
    net = Denoiser(3, 2, num_levels=5, **SMALL).to("meta")
    t = torch.tensor([0, 4, 2, 2, 1, 3, 0, 4], device="meta")
    out = net(torch.zeros(8, 2, device="meta"), t, torch.zeros(8, 3, device="meta"))
    assert out.device.type == "meta" and out.shape == (8, 2)


# --- bind -----------------------------------------------------------------------------------------
def test_bound_denoiser_computes_the_time_term_once_per_timestep_tensor():
    torch.manual_seed(0)
    net = Denoiser(3, 2, **SMALL)
    shapes = _record_time_net_inputs(net)
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(5, 3, generator=g)
    bound = net.bind(obs)
    t = torch.tensor([1, 0, 4, 2, 2])
    for _ in range(3):  # a Langevin chain passes the same tensor every step
        a_t = torch.randn(5, 2, generator=g)
        torch.testing.assert_close(bound(a_t, t, obs), net(a_t, t, obs))
    assert shapes == [(5,), (5,), (5,), (5,)]  # the bound calls embedded t once; forward 3 times
    other = t.flip(0)
    torch.testing.assert_close(bound(a_t, other, obs), net(a_t, other, obs))


def test_bound_denoiser_called_with_other_obs_raises_with_message():
    net = Denoiser(3, 2, **SMALL)
    obs = torch.zeros(4, 3)
    message = "a bound denoiser must be called with the obs it was bound to"
    with pytest.raises(ValueError, match=exactly(message)):
        net.bind(obs)(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), obs.clone())


def test_bind_checks_the_obs_with_message():
    net = Denoiser(3, 2, **SMALL)
    with pytest.raises(ValueError, match=exactly("obs must have shape (4, 3), got (4, 5)")):
        net.bind(torch.zeros(4, 5))
    message = "bind: this denoiser is conditioned on observations of size 3; got obs=None"
    with pytest.raises(ValueError, match=exactly(message)):
        net.bind(None)


def test_obs_free_denoiser_binds_to_none():
    torch.manual_seed(0)
    net = Denoiser(0, 2, **SMALL)
    a_t, t = torch.randn(4, 2), torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(net.bind(None)(a_t, t, None), net(a_t, t, None))


# --- argument checks ------------------------------------------------------------------------------
@pytest.mark.parametrize(("obs_dim", "act_dim"), [(-1, 2), (3, 0), (-2, -1)])
def test_bad_dims_raise_with_message(obs_dim, act_dim):
    message = f"need obs_dim >= 0 and act_dim >= 1, got {obs_dim}, {act_dim}"
    with pytest.raises(ValueError, match=exactly(message)):
        Denoiser(obs_dim, act_dim, **SMALL)


@pytest.mark.parametrize("hidden", [(), [], (16, 0), [-1]])
def test_bad_hidden_widths_raise_with_message(hidden):
    kwargs = {**SMALL, "hidden": hidden}
    with pytest.raises(ValueError, match=exactly(HIDDEN_MESSAGE.format(hidden))):
        Denoiser(3, 2, **kwargs)


@pytest.mark.parametrize("num_levels", [0, -3])
def test_bad_num_levels_raise_with_message(num_levels):
    with pytest.raises(ValueError, match=exactly(f"num_levels must be >= 1, got {num_levels}")):
        Denoiser(3, 2, num_levels=num_levels, **SMALL)


@pytest.mark.parametrize(
    ("obs", "got"),
    [(None, "None"), (torch.zeros(5, 4), "(5, 4)"), (torch.zeros(3), "(3,)")],
    ids=["none", "wide", "1d"],
)
def test_forward_names_the_expected_and_the_given_obs_shape(obs, got):
    net = Denoiser(3, 2, **SMALL)
    a_t, t = torch.zeros(5, 2), torch.zeros(5, dtype=torch.long)
    with pytest.raises(ValueError, match=exactly(f"obs must have shape (5, 3), got {got}")):
        net(a_t, t, obs)


def test_forward_and_bound_function_return_the_actions_dtype_under_autocast():
    """Under bfloat16 autocast the layers compute in bfloat16; the output is in a_t's dtype."""
    torch.manual_seed(0)
    net = Denoiser(3, 2, num_levels=5, **SMALL)
    a_t, t, obs = torch.randn(4, 2), torch.tensor([0, 1, 2, 4]), torch.randn(4, 3)
    with torch.autocast("cpu", torch.bfloat16):
        assert net(a_t, t, obs).dtype == torch.float32
        assert net.bind(obs)(a_t, t, obs).dtype == torch.float32
