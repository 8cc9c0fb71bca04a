"""The MLP blocks and Mish against their formulas written out with torch.nn.functional.

Every network here is rebuilt by hand from its own parameters (Linear: x W^T + b; LayerNorm with
its eps, weight and bias), so a missing, extra or reordered layer, a wrong default activation or a
dropout that does not act fails a comparison. Argument checks are matched with their full message.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffpolicy.nets import ACTIVATIONS, Mish, ResidualBlock, ResidualMLP, mish, mlp
from diffpolicy.nets.layers import activation

torch.set_num_threads(1)

FUNCTIONS = {
    "relu": F.relu,
    "mish": F.mish,
    "silu": F.silu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
    "elu": F.elu,
}


def exactly(message: str) -> str:
    """A pattern for pytest.raises(match=...) that matches the whole message and nothing else."""
    return f"^{re.escape(message)}$"


def linear(layer: nn.Linear, x: Tensor) -> Tensor:
    return x @ layer.weight.T + layer.bias


def layer_norm(ln: nn.LayerNorm, x: Tensor) -> Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    return (x - mean) / (var + ln.eps).sqrt() * ln.weight + ln.bias


def randomise_layer_norms(net: nn.Module) -> None:
    """LayerNorm weights and biases away from 1 and 0, so the affine part is visible."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 2.0)
                m.bias.normal_()


def residual_block(block: ResidualBlock, x: Tensor, fn, dropped: Tensor | None = None) -> Tensor:
    """x + W2 act(W1 LN(drop(x)) + b1) + b2, with drop(x) given (training) or x (no dropout)."""
    (ln,) = [m for m in block.modules() if isinstance(m, nn.LayerNorm)]
    first, second = [m for m in block.modules() if isinstance(m, nn.Linear)]
    assert first.out_features == 4 * x.shape[-1] == second.in_features  # IDQL's 4x inner width
    h = x if dropped is None else dropped
    return x + linear(second, fn(linear(first, layer_norm(ln, h))))


# --- activations and Mish -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_by_name_is_that_function(name):
    x = torch.linspace(-6.0, 6.0, 241, dtype=torch.float64)
    module = activation(name)
    torch.testing.assert_close(module(x), FUNCTIONS[name](x), rtol=1e-13, atol=1e-15)
    assert activation(name) is not module  # a fresh module each time


def test_unknown_activation_message_in_full():
    message = "unknown activation 'swish'; valid: relu, mish, silu, gelu, tanh, elu"
    with pytest.raises(ValueError, match=exactly(message)):
        activation("swish")


def test_mish_compiler_path_is_the_same_closed_form(monkeypatch):
    # Under torch.compile mish() returns x * tanh(softplus(x)) from the sigmoid formula as plain
    # tensor ops (for the compiler to fuse); pretend to compile and check that path against torch.
    x = torch.linspace(-100.0, 100.0, 40_001, dtype=torch.float64, requires_grad=True)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    ours = mish(x)
    assert "MishFunction" not in type(ours.grad_fn).__name__  # the compiler's path was taken
    ref = F.mish(x)
    eps = torch.finfo(torch.float64).eps
    assert torch.allclose(ours, ref, rtol=8 * eps, atol=1e-300)
    (g_ours,) = torch.autograd.grad(ours.sum(), x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    assert torch.allclose(g_ours, g_ref, rtol=1e-12, atol=16 * eps)
    torch.testing.assert_close(Mish()(x.detach()), ref.detach(), rtol=8 * eps, atol=1e-300)


# --- mlp ------------------------------------------------------------------------------------------
def test_mlp_defaults_are_relu_without_layer_norm():
    torch.manual_seed(0)
    net = mlp(3, (5, 4), 2)
    x = torch.randn(7, 3)
    first, second, last = [m for m in net if isinstance(m, nn.Linear)]
    expected = linear(last, F.relu(linear(second, F.relu(linear(first, x)))))
    torch.testing.assert_close(net(x), expected)
    assert not any(isinstance(m, nn.LayerNorm) for m in net)


@pytest.mark.parametrize("act", ["mish", "tanh"])
def test_mlp_with_layer_norm_normalises_before_each_activation(act):
    torch.manual_seed(1)
    net = mlp(3, (5, 4), 2, act=act, layer_norm=True)
    randomise_layer_norms(net)
    x = torch.randn(7, 3, dtype=torch.float32) * 3
    linears = [m for m in net if isinstance(m, nn.Linear)]
    norms = [m for m in net if isinstance(m, nn.LayerNorm)]
    assert [ln.normalized_shape for ln in norms] == [(5,), (4,)]
    h = x
    for lin, ln in zip(linears[:-1], norms, strict=True):
        h = FUNCTIONS[act](layer_norm(ln, linear(lin, h)))
    torch.testing.assert_close(net(x), linear(linears[-1], h), rtol=1e-5, atol=1e-5)


def test_mlp_trunk_ends_on_the_last_activation():
    torch.manual_seed(2)
    net = mlp(3, (5,), None, act="tanh")
    x = torch.randn(4, 3)
    (only,) = [m for m in net if isinstance(m, nn.Linear)]
    torch.testing.assert_close(net(x), torch.tanh(linear(only, x)))


def test_mlp_without_hidden_layers_is_one_linear():
    # What the denoiser's time network is when time_hidden has a single width.
    torch.manual_seed(3)
    net = mlp(3, (), 2, act="mish")
    x = torch.randn(4, 3)
    assert len(net) == 1 and isinstance(net[0], nn.Linear)
    torch.testing.assert_close(net(x), linear(net[0], x))


def test_mlp_accepts_width_one():
    torch.manual_seed(4)
    net = mlp(3, (1,), 2)
    x = torch.randn(6, 3)
    first, last = [m for m in net if isinstance(m, nn.Linear)]
    assert first.out_features == 1
    torch.testing.assert_close(net(x), linear(last, F.relu(linear(first, x))))


@pytest.mark.parametrize("hidden", [[4, 0], (0,), (3, -2)])
def test_mlp_rejects_widths_below_one_with_message(hidden):
    message = f"hidden widths must be >= 1, got {tuple(hidden)}"
    with pytest.raises(ValueError, match=exactly(message)):
        mlp(3, hidden, 2)


# --- residual blocks ------------------------------------------------------------------------------
def test_residual_block_defaults_are_mish_and_no_dropout():
    torch.manual_seed(5)
    block = ResidualBlock(6).train()  # training mode: a default dropout would act here
    randomise_layer_norms(block)
    x = torch.randn(9, 6)
    torch.testing.assert_close(block(x), residual_block(block, x, F.mish))
    torch.testing.assert_close(block(x), block(x), rtol=0, atol=0)  # deterministic


@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_residual_block_dropout_acts_on_the_input_in_training_only(act):
    torch.manual_seed(6)
    block = ResidualBlock(6, act=act, dropout=0.5)
    randomise_layer_norms(block)
    x = torch.randn(9, 6)
    torch.manual_seed(7)
    out = block.train()(x)
    torch.manual_seed(7)  # the same draw as the block's dropout makes
    dropped = F.dropout(x, 0.5, training=True)
    assert 0 < int((dropped == 0).sum()) < x.numel()
    torch.testing.assert_close(out, residual_block(block, x, FUNCTIONS[act], dropped))
    # Evaluation mode: no dropout at all.
    torch.testing.assert_close(block.eval()(x), residual_block(block, x, FUNCTIONS[act]))


@pytest.mark.parametrize("act", [None, "relu"])
@pytest.mark.parametrize("num_blocks", [1, 2])
def test_residual_mlp_is_linear_blocks_activation_linear(act, num_blocks):
    torch.manual_seed(8)
    kwargs = {} if act is None else {"act": act}
    fn = FUNCTIONS[act or "mish"]  # mish by default
    net = ResidualMLP(4, 6, num_blocks, 3, **kwargs)
    randomise_layer_norms(net)
    x = torch.randn(5, 4)
    h = linear(net.inp, x)
    for block in net.blocks:
        h = residual_block(block, h, fn)
    (out,) = [m for m in net.out if isinstance(m, nn.Linear)]
    torch.testing.assert_close(net(x), linear(out, fn(h)), rtol=1e-5, atol=1e-5)
