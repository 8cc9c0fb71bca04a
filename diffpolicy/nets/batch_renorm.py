"""Batch renormalisation (Ioffe, 2017) for ensembles of networks, as CrossQ's critics use it.

In training mode a layer normalises with the batch's statistics, corrected towards the running
ones: x_hat = (x - mu_B) / sigma_B * r + d, with r = sigma_B / sigma and d = (mu_B - mu) / sigma
clipped to [1 / r_max, r_max] and [-d_max, d_max] and treated as constants. During the first
`warmup_steps` training calls r = 1 and d = 0 (plain batch normalisation), as in CrossQ, while the
running statistics settle. In evaluation mode it uses the running statistics alone, so the output
of one sample does not depend on the rest of its batch (what a per-sample grad_a Q needs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable


class _Renormalise(torch.autograd.Function):
    """y = (x - mean) * inv_std * (r w) + (d w + b), where mean and inv_std = 1 / sigma_B are the
    batch statistics of x over dim 1 of (members, batch, features), r and d constants.

    Written out, forward and backward, because autograd's graph of the same expression (or
    F.batch_norm on a (batch, members * features) view) spends most of its time in strided
    broadcasts: here every pass over the activations is contiguous, three forward, four backward.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, x, weight, bias, mean, inv_std, r, d):  # type: ignore[override]
        x_hat = (x - mean).mul_(inv_std)
        scale = r * weight
        ctx.save_for_backward(x_hat, inv_std, scale, r, d)
        return torch.addcmul(d * weight + bias, x_hat, scale)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_y):  # type: ignore[override]
        return *_renormalise_grads(grad_y, *ctx.saved_tensors), None, None, None, None


def _renormalise_grads(grad_y, x_hat, inv_std, scale, r, d) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of `_Renormalise` with respect to x, weight and bias."""
    batch = x_hat.shape[1]
    grad_bias = grad_y.sum(dim=1, keepdim=True)
    grad_dot = (grad_y * x_hat).sum(dim=1, keepdim=True)
    grad_weight = r * grad_dot + d * grad_bias
    # Through the batch statistics: dx = scale / sigma_B * (g - mean(g) - x_hat mean(g x_hat)).
    grad_x = torch.addcmul(grad_y - grad_bias / batch, x_hat, grad_dot, value=-1.0 / batch)
    return grad_x.mul_(scale * inv_std), grad_weight, grad_bias


class EnsembleBatchRenorm(nn.Module):
    """Batch renormalisation of (members, batch, features) with statistics per member.

    momentum follows torch's convention: running <- (1 - momentum) running + momentum batch.
    """

    def __init__(
        self,
        members: int,
        features: int,
        momentum: float = 0.01,
        eps: float = 1e-3,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup_steps: int = 100_000,
    ) -> None:
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must lie in (0, 1], got {momentum}")
        if not (eps > 0 and r_max >= 1 and d_max >= 0 and warmup_steps >= 0):
            raise ValueError("need eps > 0, r_max >= 1, d_max >= 0 and warmup_steps >= 0")
        self.momentum, self.eps = momentum, eps
        self.r_max, self.d_max, self.warmup_steps = r_max, d_max, warmup_steps
        self.weight = nn.Parameter(torch.ones(members, 1, features))
        self.bias = nn.Parameter(torch.zeros(members, 1, features))
        self.register_buffer("running_mean", torch.zeros(members, 1, features))
        self.register_buffer("running_var", torch.ones(members, 1, features))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        """x: (members, batch, features) -> the same shape, in the statistics' dtype: under
        autocast a bfloat16 input is normalised, and its statistics kept, in float32."""
        x = x.to(self.running_mean.dtype)
        if not self.training:
            # (x - mean) / sigma * w + b as one pass over x: x * a + (b - mean * a).
            scale = torch.rsqrt(self.running_var + self.eps) * self.weight
            return torch.addcmul(self.bias - self.running_mean * scale, x, scale)
        x = x.contiguous()
        with torch.no_grad():
            mean = x.mean(dim=1, keepdim=True)
            var = (x - mean).square().mean(dim=1, keepdim=True)
            running_std = (self.running_var + self.eps).sqrt()
            r = ((var + self.eps).sqrt() / running_std).clamp(1.0 / self.r_max, self.r_max)
            d = ((mean - self.running_mean) / running_std).clamp(-self.d_max, self.d_max)
            # Tensors, not a Python branch on `steps`: no host read in the update.
            renorm = self.steps >= self.warmup_steps
            r = torch.where(renorm, r, torch.ones_like(r))
            d = torch.where(renorm, d, torch.zeros_like(d))
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
            self.steps += 1
            inv_std = torch.rsqrt(var + self.eps)
        return _Renormalise.apply(x, self.weight, self.bias, mean, inv_std, r, d)
