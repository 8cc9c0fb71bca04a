"""CriticEnsemble as N separate MLPs written out by hand (member i from its own slice of every
EnsembleLinear), in its arrangements (plain, LayerNorm, CrossQ's batch renormalisation, the
input's alone); its defaults; members that share no parameter; EnsembleLinear's initialisation;
argument checks with their full messages."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from diffpolicy.nets import (
    CriticEnsemble,
    EnsembleBatchRenorm,
    EnsembleLinear,
    EnsembleResidualBlock,
    HLGauss,
)

torch.set_num_threads(1)

OBS, ACT = 3, 2
HIDDEN_MESSAGE = "hidden widths must be a non-empty list of ints >= 1, got {}"


def exactly(message: str) -> str:
    """A pattern for pytest.raises(match=...) that matches the whole message and nothing else."""
    return f"^{re.escape(message)}$"


def inputs(batch: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, OBS, generator=g), torch.rand(batch, ACT, generator=g) * 2 - 1


def renormalise(layer: EnsembleBatchRenorm, i: int, x: torch.Tensor) -> torch.Tensor:
    """Member i's batch renormalisation in training mode after the warm-up (Ioffe, 2017)."""
    mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
    sigma = (layer.running_var[i, 0] + layer.eps).sqrt()
    r = ((var + layer.eps).sqrt() / sigma).clamp(1 / layer.r_max, layer.r_max)
    d = ((mean - layer.running_mean[i, 0]) / sigma).clamp(-layer.d_max, layer.d_max)
    x_hat = (x - mean) / (var + layer.eps).sqrt()
    return (x_hat * r + d) * layer.weight[i, 0] + layer.bias[i, 0]


def member_q(critic: CriticEnsemble, obs, action, i: int, fn=F.relu, layer_norm=False):
    """Q_i(s, a): member i's MLP on concat[s, a], from its slices of the ensemble's layers."""
    h = torch.cat([obs, action], dim=-1)
    layers = list(critic.net)
    if isinstance(layers[0], EnsembleBatchRenorm):
        h = renormalise(layers.pop(0), i, h)
    linears = [m for m in layers if isinstance(m, EnsembleLinear)]
    renorms = [m for m in layers if isinstance(m, EnsembleBatchRenorm)]
    for j, lin in enumerate(linears[:-1]):
        h = h @ lin.weight[i] + lin.bias[i, 0]
        if layer_norm:  # no affine: a shared one would couple the members
            h = F.layer_norm(h, (h.shape[-1],))
        h = fn(h)
        if renorms:
            h = renormalise(renorms[j], i, h)
    return (h @ linears[-1].weight[i] + linears[-1].bias[i, 0])[:, 0]


def test_defaults_are_two_relu_members_of_512_by_512():
    torch.manual_seed(0)
    critic = CriticEnsemble(OBS, ACT)
    obs, action = inputs()
    q = critic(obs, action)
    assert q.shape == (2, 6)
    assert [m.weight.shape[1:] for m in critic.net if isinstance(m, EnsembleLinear)] == [
        (OBS + ACT, 512),
        (512, 512),
        (512, 1),
    ]
    for i in range(2):
        torch.testing.assert_close(q[i], member_q(critic, obs, action, i), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hidden", [(1,), (5, 3)])
@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_each_member_is_its_own_mlp(hidden, act, layer_norm):
    torch.manual_seed(1)
    critic = CriticEnsemble(OBS, ACT, 3, hidden, act=act, layer_norm=layer_norm)
    obs, action = inputs(7)
    q = critic(obs, action)
    fn = {"relu": F.relu, "tanh": torch.tanh}[act]
    for i in range(3):
        expected = member_q(critic, obs, action, i, fn, layer_norm)
        torch.testing.assert_close(q[i], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_training_one_member_leaves_the_others_unchanged(layer_norm):
    # Every parameter has one slice per member: an SGD step on member 1's loss, over all of the
    # critic's parameters, moves member 1's values only (a parameter shared across members,
    # such as an affine LayerNorm, would move the others too).
    torch.manual_seed(2)
    critic = CriticEnsemble(OBS, ACT, 3, (8, 8), layer_norm=layer_norm)
    assert all(p.shape[0] == 3 for p in critic.parameters())
    obs, action = inputs(9)
    before = critic(obs, action).detach()
    optimiser = torch.optim.SGD(critic.parameters(), lr=0.5)
    (critic(obs, action)[1] - 5.0).square().mean().backward()
    optimiser.step()
    after = critic(obs, action).detach()
    assert (after[1] - before[1]).abs().min() > 0
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]], rtol=0, atol=0)


@pytest.mark.parametrize("warmup", [0, 4])
def test_batch_renorm_arrangement_and_its_warm_up(warmup):
    # CrossQ: batch renormalisation of the input and after each hidden activation, every layer
    # with the critic's renorm_warmup_steps; checked after the warm-up, with running statistics,
    # weights and biases away from their initial values so that r, d and the affine map matter.
    torch.manual_seed(3)
    critic = CriticEnsemble(OBS, ACT, 2, (6, 5), batch_renorm=True, renorm_warmup_steps=warmup)
    renorms = [m for m in critic.net if isinstance(m, EnsembleBatchRenorm)]
    assert len(renorms) == 3 and [m.warmup_steps for m in renorms] == [warmup] * 3
    with torch.no_grad():
        for layer in renorms:
            layer.weight.uniform_(0.5, 2.0)
            layer.bias.normal_()
            layer.running_mean.normal_()
            layer.running_var.uniform_(0.3, 3.0)
            layer.steps.fill_(warmup)  # the first call after the warm-up
    obs, action = inputs(16)
    expected = torch.stack([member_q(critic, obs, action, i) for i in range(2)]).detach()
    torch.testing.assert_close(critic.train()(obs, action), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_input_renorm_renormalises_the_input_alone(layer_norm):
    # One batch renorm layer, on concat[s, a], then the plain or LayerNorm MLP; checked after the
    # warm-up with moved running statistics, weights and biases, as the CrossQ arrangement above.
    torch.manual_seed(4)
    critic = CriticEnsemble(
        OBS, ACT, 2, (6, 5), layer_norm=layer_norm, input_renorm=True, renorm_warmup_steps=0
    )
    renorms = [m for m in critic.net if isinstance(m, EnsembleBatchRenorm)]
    assert len(renorms) == 1 and critic.net[0] is renorms[0]
    with torch.no_grad():
        renorms[0].weight.uniform_(0.5, 2.0)
        renorms[0].bias.normal_()
        renorms[0].running_mean.normal_()
        renorms[0].running_var.uniform_(0.3, 3.0)
    obs, action = inputs(16)
    expected = torch.stack(
        [member_q(critic, obs, action, i, layer_norm=layer_norm) for i in range(2)]
    ).detach()
    torch.testing.assert_close(critic.train()(obs, action), expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    shift=st.lists(st.floats(-50, 50), min_size=OBS + ACT, max_size=OBS + ACT),
    seed=st.integers(0, 2**16),
)
def test_input_renorm_in_training_makes_q_blind_to_a_per_feature_shift_of_the_batch(shift, seed):
    # What renormalising the input buys: during the warm-up (batch normalisation) a training-mode
    # Q depends on each observation and action feature only through its batch-standardised
    # value, so moving a feature by a constant across the batch changes no Q. Float64: exact up
    # to rounding. Without the input layer the shift moves Q (the last line).
    torch.manual_seed(seed)
    critic = CriticEnsemble(OBS, ACT, 2, (8, 8), layer_norm=True, input_renorm=True)
    critic = critic.double().train()
    obs, action = (x.double() for x in inputs(12, seed))
    delta = torch.tensor(shift, dtype=torch.float64)
    moved_obs, moved_action = obs + delta[:OBS], action + delta[OBS:]
    torch.testing.assert_close(
        critic(moved_obs, moved_action), critic(obs, action), rtol=1e-9, atol=1e-9
    )
    plain = CriticEnsemble(OBS, ACT, 2, (8, 8), layer_norm=True).double()
    if delta.abs().max() > 1e-3:
        assert not torch.allclose(plain(moved_obs, moved_action), plain(obs, action))


def test_batch_renorm_warm_up_defaults_to_100000_steps():
    critic = CriticEnsemble(OBS, ACT, hidden=(4,), batch_renorm=True)
    renorms = [m for m in critic.net if isinstance(m, EnsembleBatchRenorm)]
    assert [m.warmup_steps for m in renorms] == [100_000] * 2


# --- argument checks ------------------------------------------------------------------------------
@pytest.mark.parametrize("members", [1, 0, -2])
def test_fewer_than_two_members_raise_with_message(members):
    message = f"a critic ensemble needs >= 2 members, got {members}"
    with pytest.raises(ValueError, match=exactly(message)):
        CriticEnsemble(OBS, ACT, members, hidden=(8,))


@pytest.mark.parametrize("hidden", [(), [], (8, 0), [0], (4, -1)])
def test_bad_hidden_widths_raise_with_message(hidden):
    with pytest.raises(ValueError, match=exactly(HIDDEN_MESSAGE.format(hidden))):
        CriticEnsemble(OBS, ACT, 2, hidden)


def test_layer_norm_and_batch_renorm_together_raise_with_message():
    message = "choose one of layer_norm and batch_renorm"
    with pytest.raises(ValueError, match=exactly(message)):
        CriticEnsemble(OBS, ACT, 2, (8,), layer_norm=True, batch_renorm=True)


def test_input_renorm_with_batch_renorm_raises_with_message():
    message = "batch_renorm renormalises the input already; drop input_renorm"
    with pytest.raises(ValueError, match=exactly(message)):
        CriticEnsemble(OBS, ACT, 2, (8,), batch_renorm=True, input_renorm=True)


def test_unknown_reduction_message_in_full():
    message = "unknown critic reduction 'max'; valid: min, mean"
    with pytest.raises(ValueError, match=exactly(message)):
        CriticEnsemble.reduce(torch.zeros(2, 3), "max")


# --- EnsembleLinear -------------------------------------------------------------------------------
def test_ensemble_linear_initialisation_is_nn_linears_per_member():
    # Weights and biases uniform on [-1 / sqrt(in_dim), 1 / sqrt(in_dim)], drawn per member:
    # both ends of the interval are reached (within 10%) by 4 x 64 biases and 4 x 25 x 64 weights.
    torch.manual_seed(4)
    layer = EnsembleLinear(4, 25, 64)
    bound = 1 / math.sqrt(25)
    for p in (layer.weight, layer.bias):
        values = p.detach()
        assert values.abs().max() <= bound
        assert values.min() < -0.9 * bound and values.max() > 0.9 * bound
        assert abs(values.mean().item()) < 0.1 * bound
        assert not torch.equal(values[0], values[1])


def test_a_residual_block_is_x_plus_its_normalised_branch_member_by_member():
    torch.manual_seed(0)
    block = EnsembleResidualBlock(3, 8)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    block.double()
    first, second = block.branch[0], block.branch[3]
    for m in range(3):
        h = F.layer_norm(x[m] @ first.weight[m] + first.bias[m], (8,))
        h = F.layer_norm(torch.relu(h) @ second.weight[m] + second.bias[m], (8,))
        assert torch.allclose(block(x)[m], x[m] + h)
    # W1, b1, W2, b2 and nothing else: the LayerNorms have no scale or shift to learn.
    expected = [first.weight, first.bias, second.weight, second.bias]
    assert [id(p) for p in block.parameters()] == [id(p) for p in expected]


def test_a_residual_critic_is_bros_arrangement():
    """Linear, LayerNorm, ReLU, then the blocks, then the output Linear."""
    torch.manual_seed(0)
    critic = CriticEnsemble(3, 2, members=2, hidden=(8,), residual_blocks=2).double()
    obs, act = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    inp, *_, out = critic.net
    blocks = [m for m in critic.net if isinstance(m, EnsembleResidualBlock)]
    assert len(blocks) == 2
    x = torch.cat([obs, act], -1).expand(2, 4, 5)
    h = torch.relu(F.layer_norm(inp(x), (8,)))
    for block in blocks:
        h = block(h)
    assert torch.allclose(critic(obs, act), out(h).squeeze(-1))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"critic_residual_blocks": 1, "critic_hidden": (8, 8)}, "needs one width"),
        (
            {"critic_residual_blocks": 1, "critic_hidden": (8,), "critic_batch_renorm": True},
            "drop critic_batch_renorm",
        ),
        ({"critic_residual_blocks": -1}, "must be >= 0"),
    ],
)
def test_bad_residual_critic_options_are_one_line(options, message):
    from diffpolicy.rl import AgentConfig
    from diffpolicy.rl.run.validation import ConfigError

    with pytest.raises(ConfigError, match=message):
        AgentConfig(**options)


def test_a_residual_critics_blocks_use_its_activation():
    critic = CriticEnsemble(3, 2, hidden=(8,), act="tanh", residual_blocks=2)
    blocks = [m for m in critic.net if isinstance(m, EnsembleResidualBlock)]
    assert [type(block.branch[2]) for block in blocks] == [torch.nn.Tanh, torch.nn.Tanh]


@pytest.mark.parametrize("options", [{"hidden": (8, 8)}, {"hidden": (8,), "batch_renorm": True}])
def test_a_residual_critic_refuses_two_widths_or_batch_renorm_with_message(options):
    with pytest.raises(ValueError) as err:
        CriticEnsemble(3, 2, residual_blocks=1, **options)
    assert str(err.value) == "residual blocks need one hidden width and no batch_renorm"


@pytest.mark.parametrize("bins", [0, 11])
def test_outputs_are_in_the_inputs_dtype_under_autocast(bins):
    """Under bfloat16 autocast the layers compute in bfloat16; values and logits do not."""
    support = HLGauss(-5.0, 5.0, bins) if bins else None
    critic = CriticEnsemble(3, 2, hidden=(8,), value_distribution=support)
    with torch.autocast("cpu", torch.bfloat16):
        assert critic.outputs(torch.randn(4, 3), torch.randn(4, 2)).dtype == torch.float32
