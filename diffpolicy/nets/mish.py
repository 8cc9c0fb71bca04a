"""Mish, x * tanh(softplus(x)), computed from one sigmoid.

torch's `aten::mish` evaluates softplus and tanh element by element with scalar libm calls: on a
256 x 256 activation it costs more than the matmul it follows (docs: Speed, "Where the time of
one update goes"). With s = sigmoid(x) (vectorised in torch), softplus(x) = -log(1 - s), and

    tanh(softplus(x)) = ((1 + e^x)^2 - 1) / ((1 + e^x)^2 + 1) = s (2 - s) / (2 - s (2 - s)),

since 1 + e^x = 1 / (1 - s). The numerator s (2 - s) has no cancellation for either sign of x and
the denominator lies in [1, 2], so the result matches torch's Mish to float rounding everywhere
(tests/test_nets.py checks values and gradients over [-100, 100]).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


def _tanh_softplus(s: Tensor) -> Tensor:
    num = s * (2.0 - s)
    return num.div_(torch.rsub(num, 2.0))


def _mish_grad(grad: Tensor, x: Tensor, s: Tensor, tsp: Tensor) -> Tensor:
    """grad times d/dx [x tanh(softplus(x))] = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2), where
    1 - tanh(sp)^2 = ((1 - s)(1 + tanh(sp)))^2 avoids the cancellation as tanh(sp) -> 1."""
    sech = torch.rsub(s, 1.0).mul_(tsp + 1.0)
    return grad * torch.addcmul(tsp, x * s, sech.square_())


class _MishFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        tsp = _tanh_softplus(s)
        ctx.save_for_backward(x, s, tsp)
        return x * tsp

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        return _mish_grad(grad, *ctx.saved_tensors)


def mish(x: Tensor) -> Tensor:
    """Mish of any tensor; same values as `torch.nn.functional.mish` to float rounding."""
    if torch.compiler.is_compiling():  # let the compiler fuse the closed form itself
        return x * _tanh_softplus(torch.sigmoid(x))
    return _MishFunction.apply(x)


class Mish(nn.Module):
    """`nn.Mish` with the sigmoid formula above: the activation the QSM reference uses."""

    def forward(self, x: Tensor) -> Tensor:
        return mish(x)
